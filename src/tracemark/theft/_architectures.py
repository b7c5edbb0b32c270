"""Where each architecture keeps the matrices the weight invariants use.

Every reader turns a state dict into the same description: the token embedding (and how the first
norm reads it), then per layer an attention block and a feed-forward block, each with the gain of
the norm in front of it.  Matrices are returned in torch ``Linear`` layout (out x in) and loaded only
when a block is computed, so a checkpoint is never held whole.

Attention is described by ``q`` (heads*head_dim x d), ``k`` and ``v`` (kv_heads*head_dim x d) and
``o`` (d x heads*head_dim); query head ``h`` reads key/value head ``h // (heads / kv_heads)``, as
transformers' ``repeat_kv`` does, which covers multi-head (kv_heads = heads), grouped-query and
multi-query (kv_heads = 1) attention.  Fused projections (GPT-2's ``c_attn``, GPT-NeoX's and
Falcon's ``query_key_value``, Phi-3's ``qkv_proj``) are split into that form.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
from numpy.typing import NDArray

from tracemark.errors import TheftError

Array = NDArray[Any]
NormKind = Literal["layer", "rms"]


@dataclass(frozen=True)
class Attention:
    """One attention block in torch layout, with its head layout."""

    q: Array
    k: Array
    v: Array
    o: Array
    heads: int
    kv_heads: int


@dataclass(frozen=True)
class FeedForward:
    """One feed-forward block: ``up`` (hidden x d), ``gate`` for gated units (SwiGLU/GeGLU), ``down`` (d x hidden)."""

    up: Array
    down: Array
    gate: Array | None = None


@dataclass(frozen=True)
class Block:
    """A block to compute: its name, the norm gain in front of it (tensor name or None) and a loader."""

    name: str
    gain: str | None
    load: Callable[[], Attention | FeedForward]


@dataclass(frozen=True)
class Layout:
    """A model's embedding, norm kind and blocks."""

    architecture: str
    embedding: str
    norm: NormKind
    blocks: tuple[Block, ...]
    projection: str | None = None  # OPT's project_in (d x word_dim), applied to embedding rows


def _layers(weights: Mapping[str, object], pattern: str) -> list[tuple[str, str]]:
    """``(layer number, prefix up to the layer)`` for every name matching ``pattern`` (group 1: prefix, 2: layer)."""
    regex = re.compile(pattern)
    found = {(m.group(2), m.group(1)) for name in weights if (m := regex.fullmatch(name))}
    return sorted(found, key=lambda pair: int(pair[0]))


def _one(weights: Mapping[str, object], suffix: str) -> str | None:
    names = [n for n in weights if n == suffix or n.endswith("." + suffix)]
    if len(names) > 1:
        raise TheftError(f"more than one tensor ends with {suffix!r}: {', '.join(sorted(names))}")
    return names[0] if names else None


def _int(config: Mapping[str, object], *keys: str) -> int | None:
    for key in keys:
        value = config.get(key)
        if isinstance(value, int) and not isinstance(value, bool) and value > 0:
            return value
    return None


def _need(weights: Mapping[str, object], name: str) -> Array:
    try:
        return np.asarray(weights[name])
    except KeyError:
        raise TheftError(f"the checkpoint lacks {name}") from None


def _gain(weights: Mapping[str, object], name: str) -> str | None:
    return name if name in weights else None


def _heads_from_config(config: Mapping[str, object], q_rows: int, k_rows: int, where: str) -> tuple[int, int]:
    """``(heads, kv_heads)``; multi-head attention needs no config (one group is all heads)."""
    if q_rows == k_rows:
        count = _int(config, "num_attention_heads", "n_head", "num_heads") or 1
        return count, count
    heads = _int(config, "num_attention_heads", "n_head", "num_heads")
    kv_heads = _int(config, "num_key_value_heads", "num_kv_heads", "n_head_kv")
    if heads is None or kv_heads is None:
        raise TheftError(
            f"{where}: queries ({q_rows} rows) and keys ({k_rows} rows) differ, and without the model's config.json "
            "(num_attention_heads, num_key_value_heads) the grouping of query heads onto key/value heads is unknown"
        )
    if heads % kv_heads or q_rows % heads or k_rows != (q_rows // heads) * kv_heads:
        raise TheftError(f"{where}: {heads} heads over {kv_heads} key/value heads do not fit {q_rows}/{k_rows} rows")
    return heads, kv_heads


def gpt2(weights: Mapping[str, object], config: Mapping[str, object]) -> Layout | None:
    """GPT-2 (transformers' ``GPT2LMHeadModel``): Conv1D layout ``x @ W``, fused ``c_attn``, LayerNorm."""
    embedding = _one(weights, "wte.weight")
    layers = _layers(weights, r"((?:.*\.)?h\.)(\d+)\.attn\.c_attn\.weight")
    if embedding is None or not layers:
        return None
    blocks = []
    for layer, prefix in layers:
        base = f"{prefix}{layer}."

        def attention(base: str = base) -> Attention:
            fused = _need(weights, f"{base}attn.c_attn.weight")
            d = fused.shape[0]
            heads = _int(config, "n_head", "num_attention_heads") or 1
            q, k, v = fused[:, :d].T, fused[:, d : 2 * d].T, fused[:, 2 * d :].T
            return Attention(q, k, v, _need(weights, f"{base}attn.c_proj.weight").T, heads, heads)

        def mlp(base: str = base) -> FeedForward:
            return FeedForward(_need(weights, f"{base}mlp.c_fc.weight").T, _need(weights, f"{base}mlp.c_proj.weight").T)

        blocks.append(Block(f"layer{layer}.attn", _gain(weights, f"{base}ln_1.weight"), attention))
        blocks.append(Block(f"layer{layer}.mlp", _gain(weights, f"{base}ln_2.weight"), mlp))
    return Layout("gpt2", embedding, "layer", tuple(blocks))


def llama(weights: Mapping[str, object], config: Mapping[str, object]) -> Layout | None:
    """LLaMA, Mistral, Qwen2/3, Phi-3 and kin: RMSNorm, separate or fused projections, SwiGLU, any head layout."""
    embedding = _one(weights, "embed_tokens.weight")
    layers = _layers(weights, r"((?:.*\.)?layers\.)(\d+)\.self_attn\.(?:q_proj|qkv_proj)\.weight")
    if embedding is None or not layers or _one(weights, "decoder.embed_tokens.weight") is not None:
        return None
    blocks = []
    for layer, prefix in layers:
        base = f"{prefix}{layer}."

        def attention(base: str = base, layer: str = layer) -> Attention:
            attn = f"{base}self_attn."
            if f"{attn}qkv_proj.weight" in weights:
                fused = _need(weights, f"{attn}qkv_proj.weight")
                heads = _int(config, "num_attention_heads")
                kv_heads = _int(config, "num_key_value_heads") or heads
                if heads is None or kv_heads is None:
                    raise TheftError(f"layer {layer}: a fused qkv_proj needs config.json's num_attention_heads")
                head_dim = _int(config, "head_dim") or fused.shape[1] // heads
                q, k, v = np.split(fused, [heads * head_dim, (heads + kv_heads) * head_dim])
            else:
                q, k, v = (_need(weights, f"{attn}{n}_proj.weight") for n in "qkv")
                heads, kv_heads = _heads_from_config(config, q.shape[0], k.shape[0], f"layer {layer}")
            return Attention(q, k, v, _need(weights, f"{attn}o_proj.weight"), heads, kv_heads)

        def mlp(base: str = base) -> FeedForward:
            down = _need(weights, f"{base}mlp.down_proj.weight")
            if f"{base}mlp.gate_up_proj.weight" in weights:
                gate, up = np.split(_need(weights, f"{base}mlp.gate_up_proj.weight"), 2)
                return FeedForward(up, down, gate)
            gate_name = f"{base}mlp.gate_proj.weight"
            up = _need(weights, f"{base}mlp.up_proj.weight")
            return FeedForward(up, down, _need(weights, gate_name) if gate_name in weights else None)

        blocks.append(Block(f"layer{layer}.attn", _gain(weights, f"{base}input_layernorm.weight"), attention))
        if f"{base}mlp.down_proj.weight" in weights:
            blocks.append(Block(f"layer{layer}.mlp", _gain(weights, f"{base}post_attention_layernorm.weight"), mlp))
    return Layout("llama", embedding, "rms", tuple(blocks))


def opt(weights: Mapping[str, object], config: Mapping[str, object]) -> Layout | None:
    """OPT: LayerNorm, separate projections named ``out_proj``, ReLU ``fc1``/``fc2``, optional ``project_in``."""
    embedding = _one(weights, "decoder.embed_tokens.weight")
    layers = _layers(weights, r"((?:.*\.)?decoder\.layers\.)(\d+)\.self_attn\.q_proj\.weight")
    if embedding is None or not layers:
        return None
    pre_norm = config.get("do_layer_norm_before", True) is not False
    blocks = []
    for layer, prefix in layers:
        base = f"{prefix}{layer}."

        def attention(base: str = base) -> Attention:
            q, k, v, o = (_need(weights, f"{base}self_attn.{n}_proj.weight") for n in ("q", "k", "v", "out"))
            heads = _int(config, "num_attention_heads") or 1
            return Attention(q, k, v, o, heads, heads)

        def mlp(base: str = base) -> FeedForward:
            return FeedForward(_need(weights, f"{base}fc1.weight"), _need(weights, f"{base}fc2.weight"))

        # post-norm OPT (350m) applies these gains after the residual add, not in front of the block
        attn_gain = _gain(weights, f"{base}self_attn_layer_norm.weight") if pre_norm else None
        mlp_gain = _gain(weights, f"{base}final_layer_norm.weight") if pre_norm else None
        blocks.append(Block(f"layer{layer}.attn", attn_gain, attention))
        blocks.append(Block(f"layer{layer}.mlp", mlp_gain, mlp))
    return Layout("opt", embedding, "layer", tuple(blocks), projection=_one(weights, "decoder.project_in.weight"))


def gpt_neox(weights: Mapping[str, object], config: Mapping[str, object]) -> Layout | None:
    """GPT-NeoX / Pythia: LayerNorm, ``query_key_value`` interleaved per head as ``[heads, 3, head_dim]``."""
    embedding = _one(weights, "embed_in.weight")
    layers = _layers(weights, r"((?:.*\.)?layers\.)(\d+)\.attention\.query_key_value\.weight")
    if embedding is None or not layers:
        return None
    blocks = []
    for layer, prefix in layers:
        base = f"{prefix}{layer}."

        def attention(base: str = base, layer: str = layer) -> Attention:
            fused = _need(weights, f"{base}attention.query_key_value.weight")
            heads = _int(config, "num_attention_heads")
            if heads is None or fused.shape[0] % (3 * heads):
                raise TheftError(f"layer {layer}: GPT-NeoX's fused query_key_value needs config.json's head count")
            per_head = fused.reshape(heads, 3, fused.shape[0] // (3 * heads), fused.shape[1])
            q, k, v = (per_head[:, i].reshape(-1, fused.shape[1]) for i in range(3))
            return Attention(q, k, v, _need(weights, f"{base}attention.dense.weight"), heads, heads)

        def mlp(base: str = base) -> FeedForward:
            return FeedForward(
                _need(weights, f"{base}mlp.dense_h_to_4h.weight"), _need(weights, f"{base}mlp.dense_4h_to_h.weight")
            )

        blocks.append(Block(f"layer{layer}.attn", _gain(weights, f"{base}input_layernorm.weight"), attention))
        blocks.append(Block(f"layer{layer}.mlp", _gain(weights, f"{base}post_attention_layernorm.weight"), mlp))
    return Layout("gpt-neox", embedding, "layer", tuple(blocks))


def falcon(weights: Mapping[str, object], config: Mapping[str, object]) -> Layout | None:
    """Falcon: LayerNorm, ``query_key_value`` in any of its three layouts (per head, multi-query, grouped)."""
    embedding = _one(weights, "word_embeddings.weight")
    layers = _layers(weights, r"((?:.*\.)?h\.)(\d+)\.self_attention\.query_key_value\.weight")
    if embedding is None or not layers:
        return None
    heads = _int(config, "num_attention_heads", "n_head")
    new_layout = config.get("new_decoder_architecture") is True
    multi_query = config.get("multi_query", True) is not False
    parallel = config.get("parallel_attn", True) is not False
    blocks = []
    for layer, prefix in layers:
        base = f"{prefix}{layer}."

        def attention(base: str = base, layer: str = layer) -> Attention:
            fused = _need(weights, f"{base}self_attention.query_key_value.weight")
            d = fused.shape[1]
            if heads is None:
                raise TheftError(f"layer {layer}: Falcon's fused query_key_value needs config.json's head count")
            kv_heads = (_int(config, "num_kv_heads") or heads) if new_layout else 1 if multi_query else heads
            slots = heads + 2 * kv_heads if new_layout or multi_query else 3 * heads
            if fused.shape[0] % slots or (new_layout and heads % kv_heads):
                raise TheftError(
                    f"layer {layer}: query_key_value's {fused.shape[0]} rows do not fit the config's heads"
                )
            head_dim = fused.shape[0] // slots
            if new_layout:
                grouped = fused.reshape(kv_heads, heads // kv_heads + 2, head_dim, d)
                q = grouped[:, :-2].reshape(-1, d)
                k, v = grouped[:, -2].reshape(-1, d), grouped[:, -1].reshape(-1, d)
            elif multi_query:
                q, k, v = np.split(fused, [heads * head_dim, (heads + 1) * head_dim])
            else:
                per_head = fused.reshape(heads, 3, head_dim, d)
                q, k, v = (per_head[:, i].reshape(-1, d) for i in range(3))
            return Attention(q, k, v, _need(weights, f"{base}self_attention.dense.weight"), heads, kv_heads)

        def mlp(base: str = base) -> FeedForward:
            return FeedForward(
                _need(weights, f"{base}mlp.dense_h_to_4h.weight"), _need(weights, f"{base}mlp.dense_4h_to_h.weight")
            )

        attn_gain: str | None
        mlp_gain: str | None
        if f"{base}ln_attn.weight" in weights:
            attn_gain, mlp_gain = f"{base}ln_attn.weight", _gain(weights, f"{base}ln_mlp.weight")
        elif parallel or new_layout:
            attn_gain = mlp_gain = _gain(weights, f"{base}input_layernorm.weight")
        else:
            attn_gain = _gain(weights, f"{base}input_layernorm.weight")
            mlp_gain = _gain(weights, f"{base}post_attention_layernorm.weight")
        blocks.append(Block(f"layer{layer}.attn", attn_gain, attention))
        blocks.append(Block(f"layer{layer}.mlp", mlp_gain, mlp))
    return Layout("falcon", embedding, "layer", tuple(blocks))


READERS: tuple[Callable[[Mapping[str, object], Mapping[str, object]], Layout | None], ...] = (
    gpt2,
    opt,
    llama,
    gpt_neox,
    falcon,
)


def layout(weights: Mapping[str, object], config: Mapping[str, object]) -> Layout:
    """The first reader that recognises the state dict's names."""
    for reader in READERS:
        found = reader(weights, config)
        if found is not None:
            return found
    raise TheftError(
        "unrecognised architecture: weight provenance reads GPT-2, OPT, LLaMA/Mistral/Qwen/Phi-3-style, "
        "GPT-NeoX and Falcon state dicts"
    )
