"""Tiny transformers models of each architecture the weight test reads, and function-preserving transforms.

Models are built offline from their transformers configs with seeded random weights; norm gains and
biases are randomised too, so that folding them is not a no-op.  Every transform below keeps the
network's function (the tests check the logits) while moving the raw weights far away.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import numpy as np
from numpy.typing import NDArray

State = dict[str, NDArray[np.float64]]
VOCAB = 96
WIDTH = 32
LAYERS = 2


def build(family: str, seed: int, **overrides: Any) -> tuple[Any, State]:
    """A float64 model of ``family`` and its state dict (numpy, torch layout), norms randomised."""
    import torch
    import transformers

    common: dict[str, Any] = {"vocab_size": VOCAB, "tie_word_embeddings": False, "pad_token_id": 0,
                              "bos_token_id": 1, "eos_token_id": 2}  # fmt: skip
    configs: dict[str, Callable[[], Any]] = {
        "gpt2": lambda: transformers.GPT2Config(n_embd=WIDTH, n_layer=LAYERS, n_head=4, n_positions=64, **common),
        "llama": lambda: transformers.LlamaConfig(
            hidden_size=WIDTH, intermediate_size=48, num_hidden_layers=LAYERS, num_attention_heads=4,
            num_key_value_heads=overrides.pop("kv", 4), max_position_embeddings=64, **common),
        "mistral": lambda: transformers.MistralConfig(
            hidden_size=WIDTH, intermediate_size=48, num_hidden_layers=LAYERS, num_attention_heads=4,
            num_key_value_heads=2, max_position_embeddings=64, sliding_window=None, **common),
        "qwen2": lambda: transformers.Qwen2Config(
            hidden_size=WIDTH, intermediate_size=48, num_hidden_layers=LAYERS, num_attention_heads=4,
            num_key_value_heads=1, max_position_embeddings=64, **common),
        "phi3": lambda: transformers.Phi3Config(
            hidden_size=WIDTH, intermediate_size=48, num_hidden_layers=LAYERS, num_attention_heads=4,
            num_key_value_heads=2, max_position_embeddings=64, **common),
        "opt": lambda: transformers.OPTConfig(
            hidden_size=WIDTH, ffn_dim=64, num_hidden_layers=LAYERS, num_attention_heads=4, word_embed_proj_dim=WIDTH,
            max_position_embeddings=64, **common),
        "gpt-neox": lambda: transformers.GPTNeoXConfig(
            hidden_size=WIDTH, intermediate_size=64, num_hidden_layers=LAYERS, num_attention_heads=4,
            max_position_embeddings=64, **common),
        "falcon": lambda: transformers.FalconConfig(
            hidden_size=WIDTH, num_hidden_layers=LAYERS, num_attention_heads=4, **overrides.pop("falcon", {}),
            **common),
    }  # fmt: skip
    config = configs[family]()
    for key, value in overrides.items():
        setattr(config, key, value)
    torch.manual_seed(seed)
    # transformers leaves from_config unannotated
    model = transformers.AutoModelForCausalLM.from_config(config).double().eval()  # type: ignore[no-untyped-call]
    rng = np.random.default_rng(seed + 10_000)
    state = {k: v.detach().numpy().copy() for k, v in model.state_dict().items()}
    for name, value in state.items():
        if value.ndim == 1 and ("norm" in name or ".ln_" in name or "layernorm" in name or "layer_norm" in name):
            if name.endswith("weight"):
                state[name] = rng.uniform(0.5, 1.5, value.shape)
            elif not name.endswith("ln_f.bias"):  # GPT-2's final bias stays 0 (no lm_head bias to take it)
                state[name] = rng.normal(0.0, 0.1, value.shape)
    load(model, state)
    return model, state


def load(model: Any, state: State) -> None:
    import torch

    model.load_state_dict({k: torch.from_numpy(np.ascontiguousarray(v)) for k, v in state.items()}, strict=True)


def logits(model: Any, state: State, inputs: NDArray[np.int64]) -> NDArray[np.float64]:
    import torch

    load(model, state)
    with torch.no_grad():
        out: NDArray[np.float64] = model(input_ids=torch.from_numpy(inputs)).logits.numpy()
    return out


def orthogonal(rng: np.random.Generator, width: int, keep_ones: bool = False) -> NDArray[np.float64]:
    """A random orthogonal matrix; with ``keep_ones`` one that maps the all-ones vector to itself (LayerNorm)."""
    q, r = np.linalg.qr(rng.normal(size=(width, width)))
    q = q * np.sign(np.diag(r))
    if not keep_ones:
        return np.asarray(q, dtype=np.float64)
    basis, _ = np.linalg.qr(np.column_stack([np.ones(width), rng.normal(size=(width, width - 1))]))
    inner = orthogonal(rng, width - 1)
    block = np.eye(width)
    block[1:, 1:] = inner
    return np.asarray(basis @ block @ basis.T, dtype=np.float64)


# ---- LLaMA family (LLaMA, Mistral, Qwen2): RMSNorm, RoPE (pairs i, i + head_dim/2), GQA, SwiGLU ----


def llama_transform(  # noqa: C901 - one branch per transform keeps each one readable
    state: State, config: Any, rng: np.random.Generator, ops: Iterable[str]
) -> State:
    """Apply ``ops`` (fold, rotate, heads, qk, vo, neurons) in that order; the function is unchanged."""
    s = {k: v.copy() for k, v in state.items()}
    ops = set(ops)
    heads, kv = config.num_attention_heads, config.num_key_value_heads
    dh = config.hidden_size // heads
    group = heads // kv
    width = config.hidden_size
    layers = [f"model.layers.{i}." for i in range(config.num_hidden_layers)]

    def attn(base: str, name: str) -> str:
        return f"{base}self_attn.{name}_proj"

    if "fold" in ops or "rotate" in ops:
        for base in layers:
            mlp = [f"{base}mlp.gate_proj", f"{base}mlp.up_proj"]
            for norm, reads in (("input_layernorm", [attn(base, n) for n in "qkv"]), ("post_attention_layernorm", mlp)):
                gain = s[f"{base}{norm}.weight"]
                for read in reads:
                    s[f"{read}.weight"] = s[f"{read}.weight"] * gain
                s[f"{base}{norm}.weight"] = np.ones(width)
        s["lm_head.weight"] = s["lm_head.weight"] * s["model.norm.weight"]
        s["model.norm.weight"] = np.ones(width)
    if "rotate" in ops:
        q = orthogonal(rng, width)
        s["model.embed_tokens.weight"] = s["model.embed_tokens.weight"] @ q
        s["lm_head.weight"] = s["lm_head.weight"] @ q
        for base in layers:
            for read in [attn(base, n) for n in "qkv"] + [f"{base}mlp.gate_proj", f"{base}mlp.up_proj"]:
                s[f"{read}.weight"] = s[f"{read}.weight"] @ q
            for write in (attn(base, "o"), f"{base}mlp.down_proj"):
                s[f"{write}.weight"] = q.T @ s[f"{write}.weight"]
    for base in layers:
        qn, kn, vn, on = (attn(base, n) for n in "qkvo")

        def rows(name: str, count: int, order: Any = None, factor: Any = None) -> None:
            """Reorder (by head) and scale (per head and dim) a projection's output rows, bias too."""
            for suffix in ("weight", "bias"):
                if f"{name}.{suffix}" in s:
                    value = s[f"{name}.{suffix}"]
                    shaped = value.reshape(count, dh, -1)
                    shaped = shaped if order is None else shaped[order]
                    shaped = shaped if factor is None else shaped * factor[:, :, None]
                    s[f"{name}.{suffix}"] = shaped.reshape(value.shape)

        if "heads" in ops:
            groups = rng.permutation(kv)
            order = np.concatenate([g * group + rng.permutation(group) for g in groups])
            rows(qn, heads, order=order)
            rows(kn, kv, order=groups)
            rows(vn, kv, order=groups)
            s[f"{on}.weight"] = s[f"{on}.weight"].reshape(width, heads, dh)[:, order].reshape(width, -1)
        if "qk" in ops:
            pairs = rng.uniform(0.5, 2.0, (kv, dh // 2))
            scale = np.concatenate([pairs, pairs], axis=1)  # RoPE rotates dims i and i + dh/2 together
            rows(kn, kv, factor=1.0 / scale)
            rows(qn, heads, factor=np.repeat(scale, group, axis=0))
        if "vo" in ops:
            scale = rng.uniform(0.5, 2.0, (kv, dh))
            rows(vn, kv, factor=scale)
            per_query = np.repeat(scale, group, axis=0)
            s[f"{on}.weight"] = (s[f"{on}.weight"].reshape(width, heads, dh) / per_query).reshape(width, -1)
        if "neurons" in ops:
            hidden: int = s[f"{base}mlp.up_proj.weight"].shape[0]
            order, scale = rng.permutation(hidden), rng.uniform(0.5, 2.0, hidden)
            s[f"{base}mlp.gate_proj.weight"] = s[f"{base}mlp.gate_proj.weight"][order]
            s[f"{base}mlp.up_proj.weight"] = s[f"{base}mlp.up_proj.weight"][order] * scale[:, None]
            s[f"{base}mlp.down_proj.weight"] = s[f"{base}mlp.down_proj.weight"][:, order] / scale
    return s


# ---- GPT-2: LayerNorm with bias, Conv1D (x @ W), fused c_attn, GELU ----


def gpt2_transform(state: State, config: Any, rng: np.random.Generator, ops: Iterable[str]) -> State:
    """Apply ``ops`` (fold, rotate, heads, qk, vo, neurons); rotations keep the all-ones vector (LayerNorm)."""
    s = {k: v.copy() for k, v in state.items()}
    ops = set(ops)
    width, heads = config.n_embd, config.n_head
    dh = width // heads
    layers = [f"transformer.h.{i}." for i in range(config.n_layer)]
    if "fold" in ops or "rotate" in ops:
        for base in layers:
            for norm, read in (("ln_1", "attn.c_attn"), ("ln_2", "mlp.c_fc")):
                gain, shift = s[f"{base}{norm}.weight"], s[f"{base}{norm}.bias"]
                weight = s[f"{base}{read}.weight"]
                s[f"{base}{read}.bias"] = s[f"{base}{read}.bias"] + shift @ weight
                s[f"{base}{read}.weight"] = gain[:, None] * weight
                s[f"{base}{norm}.weight"], s[f"{base}{norm}.bias"] = np.ones(width), np.zeros(width)
        gain = s["transformer.ln_f.weight"]
        s["lm_head.weight"] = s["lm_head.weight"] * gain
        s["transformer.ln_f.bias"] = s["transformer.ln_f.bias"] / gain
        s["transformer.ln_f.weight"] = np.ones(width)
    if "rotate" in ops:
        q = orthogonal(rng, width, keep_ones=True)
        for name in ("transformer.wte.weight", "transformer.wpe.weight", "lm_head.weight"):
            s[name] = s[name] @ q
        s["transformer.ln_f.bias"] = s["transformer.ln_f.bias"] @ q
        for base in layers:
            for read in ("attn.c_attn", "mlp.c_fc"):
                s[f"{base}{read}.weight"] = q.T @ s[f"{base}{read}.weight"]
            for write in ("attn.c_proj", "mlp.c_proj"):
                s[f"{base}{write}.weight"] = s[f"{base}{write}.weight"] @ q
                s[f"{base}{write}.bias"] = s[f"{base}{write}.bias"] @ q
    for base in layers:
        fused, proj = f"{base}attn.c_attn", f"{base}attn.c_proj"
        if "heads" in ops:
            order = np.concatenate([np.arange(h * dh, (h + 1) * dh) for h in rng.permutation(heads)])
            columns = np.concatenate([order, order + width, order + 2 * width])
            s[f"{fused}.weight"], s[f"{fused}.bias"] = s[f"{fused}.weight"][:, columns], s[f"{fused}.bias"][columns]
            s[f"{proj}.weight"] = s[f"{proj}.weight"][order]
        if "qk" in ops:
            scale = np.concatenate([rng.uniform(0.5, 2.0, width), 1.0 / np.ones(width), np.ones(width)])
            scale[width : 2 * width] = 1.0 / scale[:width]
            s[f"{fused}.weight"], s[f"{fused}.bias"] = s[f"{fused}.weight"] * scale, s[f"{fused}.bias"] * scale
        if "vo" in ops:
            values = rng.uniform(0.5, 2.0, width)
            scale = np.concatenate([np.ones(2 * width), values])
            s[f"{fused}.weight"], s[f"{fused}.bias"] = s[f"{fused}.weight"] * scale, s[f"{fused}.bias"] * scale
            s[f"{proj}.weight"] = s[f"{proj}.weight"] / values[:, None]
        if "neurons" in ops:  # GELU is not homogeneous: permute only
            order = rng.permutation(s[f"{base}mlp.c_fc.weight"].shape[1])
            s[f"{base}mlp.c_fc.weight"] = s[f"{base}mlp.c_fc.weight"][:, order]
            s[f"{base}mlp.c_fc.bias"] = s[f"{base}mlp.c_fc.bias"][order]
            s[f"{base}mlp.c_proj.weight"] = s[f"{base}mlp.c_proj.weight"][order]
    return s


# ---- LayerNorm models with torch-layout projections (OPT, GPT-NeoX, Falcon): fold gains, permute neurons ----


def fold_and_permute(
    state: State, norms: dict[str, list[str]], mlps: list[tuple[str, str]], rng: np.random.Generator
) -> State:
    """Fold each LayerNorm (gain and bias) into the Linears that read it; permute each MLP's hidden units."""
    s = {k: v.copy() for k, v in state.items()}
    for norm, reads in norms.items():
        gain, shift = s[f"{norm}.weight"], s[f"{norm}.bias"]
        biased = all(f"{read}.bias" in s for read in reads)
        for read in reads:
            weight = s[f"{read}.weight"]
            if biased:
                s[f"{read}.bias"] = s[f"{read}.bias"] + weight @ shift
            s[f"{read}.weight"] = weight * gain
        # without Linear biases (Falcon) the shift stays in the norm, divided by the gain it no longer has
        s[f"{norm}.weight"], s[f"{norm}.bias"] = np.ones_like(gain), np.zeros_like(shift) if biased else shift / gain
    for up, down in mlps:
        order = rng.permutation(s[f"{up}.weight"].shape[0])
        s[f"{up}.weight"] = s[f"{up}.weight"][order]
        if f"{up}.bias" in s:
            s[f"{up}.bias"] = s[f"{up}.bias"][order]
        s[f"{down}.weight"] = s[f"{down}.weight"][:, order]
    return s


def permute_fused_heads(state: State, fused: str, dense: str, heads: int, rng: np.random.Generator) -> State:
    """Permute the heads of a ``[heads, 3, head_dim]`` fused QKV (GPT-NeoX, Falcon without multi-query)."""
    s = {k: v.copy() for k, v in state.items()}
    order = rng.permutation(heads)
    weight = s[f"{fused}.weight"]
    s[f"{fused}.weight"] = weight.reshape(heads, -1, weight.shape[1])[order].reshape(weight.shape)
    if f"{fused}.bias" in s:
        s[f"{fused}.bias"] = s[f"{fused}.bias"].reshape(heads, -1)[order].reshape(-1)
    out = s[f"{dense}.weight"]
    s[f"{dense}.weight"] = out.reshape(out.shape[0], heads, -1)[:, order].reshape(out.shape)
    return s


def permute_query_heads(state: State, fused: str, dense: str, config: Any, rng: np.random.Generator) -> State:
    """Permute Falcon's query heads within their key/value group (multi-query and the grouped layout)."""
    s = {k: v.copy() for k, v in state.items()}
    heads = config.num_attention_heads
    kv = config.num_kv_heads if config.new_decoder_architecture else 1
    group = heads // kv
    weight = s[f"{fused}.weight"]
    dh = config.hidden_size // heads
    width = weight.shape[1]
    order = np.concatenate([g * group + rng.permutation(group) for g in rng.permutation(kv)])
    if config.new_decoder_architecture:
        groups = order.reshape(kv, group)[:, 0] // group
        blocks = weight.reshape(kv, group + 2, dh, width)[groups]
        within = order.reshape(kv, group) % group
        blocks = np.stack([np.concatenate([b[:group][w], b[group:]]) for b, w in zip(blocks, within, strict=True)])
        s[f"{fused}.weight"] = blocks.reshape(weight.shape)
    else:
        queries = weight[: heads * dh].reshape(heads, dh, width)[order].reshape(-1, width)
        s[f"{fused}.weight"] = np.concatenate([queries, weight[heads * dh :]])
    out = s[f"{dense}.weight"]
    s[f"{dense}.weight"] = out.reshape(out.shape[0], heads, dh)[:, order].reshape(out.shape)
    return s


def config_dict(model: Any) -> dict[str, Any]:
    result: dict[str, Any] = model.config.to_dict()
    return result
