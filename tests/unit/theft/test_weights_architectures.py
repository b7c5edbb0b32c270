"""Weight provenance on real architectures and checkpoint formats (issue #22, item 6).

OPT, GPT-NeoX, Falcon (all three attention layouts) and Phi-3 (fused projections) are built from
their transformers configs; copies with LayerNorms folded and neurons and heads permuted compute the
same logits and must read ``evidence``; independent models must read ``no-evidence``.  Checkpoints
are written as bfloat16/float16 safetensors, sharded with an index, and read back lazily.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from tests.unit.theft import tiny_models
from tracemark._json import as_float
from tracemark.errors import InvalidInputError, TheftError
from tracemark.theft import WeightConfig, load_weights, weight_provenance
from tracemark.theft._tensors import WeightSource, bfloat16_to_float32

pytest.importorskip("torch")
pytest.importorskip("transformers")

CONFIG = WeightConfig(tokens=48, permutations=199)
INPUTS = np.arange(3, 27).reshape(2, 12)


def _source(state: tiny_models.State, model: Any) -> WeightSource:
    return WeightSource.from_arrays({k: v.astype(np.float32) for k, v in state.items()}, tiny_models.config_dict(model))


def _same_function(model: Any, before: tiny_models.State, after: tiny_models.State) -> None:
    reference = tiny_models.logits(model, before, INPUTS)
    changed = tiny_models.logits(model, after, INPUTS)
    np.testing.assert_allclose(changed, reference, rtol=0, atol=1e-6 * float(np.abs(reference).max()))


def _opt_copy(state: tiny_models.State, model: Any, rng: np.random.Generator) -> tiny_models.State:
    layers = [f"model.decoder.layers.{i}." for i in range(model.config.num_hidden_layers)]
    norms = {f"{b}self_attn_layer_norm": [f"{b}self_attn.{n}_proj" for n in "qkv"] for b in layers}
    norms.update({f"{b}final_layer_norm": [f"{b}fc1"] for b in layers})
    return tiny_models.fold_and_permute(state, norms, [(f"{b}fc1", f"{b}fc2") for b in layers], rng)


def _neox_copy(state: tiny_models.State, model: Any, rng: np.random.Generator) -> tiny_models.State:
    layers = [f"gpt_neox.layers.{i}." for i in range(model.config.num_hidden_layers)]
    norms = {f"{b}input_layernorm": [f"{b}attention.query_key_value"] for b in layers}
    norms.update({f"{b}post_attention_layernorm": [f"{b}mlp.dense_h_to_4h"] for b in layers})
    mlps = [(f"{b}mlp.dense_h_to_4h", f"{b}mlp.dense_4h_to_h") for b in layers]
    copy = tiny_models.fold_and_permute(state, norms, mlps, rng)
    for b in layers:
        heads = model.config.num_attention_heads
        copy = tiny_models.permute_fused_heads(copy, f"{b}attention.query_key_value", f"{b}attention.dense", heads, rng)
    return copy


def _falcon_copy(state: tiny_models.State, model: Any, rng: np.random.Generator) -> tiny_models.State:
    config = model.config
    layers = [f"transformer.h.{i}." for i in range(config.num_hidden_layers)]
    reads = {b: [f"{b}self_attention.query_key_value", f"{b}mlp.dense_h_to_4h"] for b in layers}
    if config.new_decoder_architecture:
        norms = {f"{b}ln_attn": reads[b][:1] for b in layers} | {f"{b}ln_mlp": reads[b][1:] for b in layers}
    else:
        norms = {f"{b}input_layernorm": reads[b] for b in layers}
    copy = tiny_models.fold_and_permute(
        state, norms, [(f"{b}mlp.dense_h_to_4h", f"{b}mlp.dense_4h_to_h") for b in layers], rng
    )
    for b in layers:
        fused, dense = f"{b}self_attention.query_key_value", f"{b}self_attention.dense"
        if config.multi_query or config.new_decoder_architecture:
            copy = tiny_models.permute_query_heads(copy, fused, dense, config, rng)
        else:
            copy = tiny_models.permute_fused_heads(copy, fused, dense, config.num_attention_heads, rng)
    return copy


FALCON_LAYOUTS = {
    "multi-query": {"multi_query": True},
    "per-head": {"multi_query": False},
    "grouped": {"new_decoder_architecture": True, "num_kv_heads": 2},
}
CASES: list[tuple[str, dict[str, Any], Any]] = [
    ("opt", {}, _opt_copy),
    ("gpt-neox", {}, _neox_copy),
    *[("falcon", {"falcon": layout}, _falcon_copy) for layout in FALCON_LAYOUTS.values()],
]


@pytest.mark.parametrize(("family", "overrides", "copy"), CASES, ids=["opt", "neox", *FALCON_LAYOUTS])
def test_layernorm_architectures_copies_are_evidence_and_strangers_are_not(
    family: str, overrides: dict[str, Any], copy: Any
) -> None:
    model, state = tiny_models.build(family, 0, **{k: dict(v) for k, v in overrides.items()})
    changed = copy(state, model, np.random.default_rng(1))
    _same_function(model, state, changed)
    verdict = weight_provenance(_source(changed, model), _source(state, model), CONFIG)
    assert verdict.decision == "evidence", verdict.statistic
    assert as_float(verdict.statistic["value"]) == pytest.approx(1.0, abs=1e-5)
    assert verdict.counts["invariants_shared"] == 3 * tiny_models.LAYERS  # qk, vo and ffn of every layer
    other_model, other = tiny_models.build(family, 5, **{k: dict(v) for k, v in overrides.items()})
    stranger = weight_provenance(_source(other, other_model), _source(state, model), CONFIG)
    assert stranger.decision == "no-evidence"


def test_phi3_fused_projections_are_split() -> None:
    model, state = tiny_models.build("phi3", 0)
    split = {k: v for k, v in state.items() if "qkv_proj" not in k and "gate_up_proj" not in k}
    for i in range(tiny_models.LAYERS):
        base = f"model.layers.{i}."
        q, k, v = np.split(state[f"{base}self_attn.qkv_proj.weight"], [32, 48])
        split |= {f"{base}self_attn.q_proj.weight": q, f"{base}self_attn.k_proj.weight": k,
                  f"{base}self_attn.v_proj.weight": v}  # fmt: skip
        gate, up = np.split(state[f"{base}mlp.gate_up_proj.weight"], 2)
        split |= {f"{base}mlp.gate_proj.weight": gate, f"{base}mlp.up_proj.weight": up}
    fused = weight_provenance(_source(state, model), _source(state, model), CONFIG)
    unfused = weight_provenance(
        WeightSource.from_arrays(split, tiny_models.config_dict(model)), _source(state, model), CONFIG
    )
    assert fused.counts["invariants_shared"] == unfused.counts["invariants_shared"] == 8
    assert as_float(unfused.statistic["value"]) == pytest.approx(1.0, abs=1e-6)


def test_grouped_query_attention_without_a_config_is_refused_not_dropped() -> None:
    model, state = tiny_models.build("llama", 0, kv=2)
    with pytest.raises(TheftError, match="num_key_value_heads"):
        weight_provenance(dict(state), dict(state), CONFIG)
    verdict = weight_provenance(_source(state, model), _source(state, model), CONFIG)
    assert verdict.counts["invariants_shared"] == 4 * tiny_models.LAYERS  # qk, vo, ffn_up, ffn_glu: none dropped


def _save(path: Path, state: dict[str, Any]) -> None:
    from safetensors.torch import save_file

    path.parent.mkdir(parents=True, exist_ok=True)
    save_file({k: v.contiguous() for k, v in state.items()}, str(path))


@pytest.mark.parametrize("dtype", ["bfloat16", "float16"])
def test_half_precision_and_sharded_checkpoints_are_read(tmp_path: Path, dtype: str) -> None:
    import torch

    model, state = tiny_models.build("llama", 0, kv=2)
    tensors = {k: torch.from_numpy(v).to(getattr(torch, dtype)) for k, v in state.items()}
    names = sorted(tensors)
    shards = {"model-00001-of-00002.safetensors": names[: len(names) // 2],
              "model-00002-of-00002.safetensors": names[len(names) // 2 :]}  # fmt: skip
    for file, members in shards.items():
        _save(tmp_path / "sharded" / file, {n: tensors[n] for n in members})
    index = {"metadata": {}, "weight_map": {n: f for f, members in shards.items() for n in members}}
    (tmp_path / "sharded" / "model.safetensors.index.json").write_text(json.dumps(index))
    model.config.to_json_file(str(tmp_path / "sharded" / "config.json"))
    loaded = load_weights(tmp_path / "sharded")
    assert set(loaded) == set(state)
    assert loaded.config["num_key_value_heads"] == 2
    name = "model.layers.0.mlp.down_proj.weight"
    np.testing.assert_array_equal(loaded[name], tensors[name].float().numpy())  # widened exactly
    rows = np.array([5, 1, 40], dtype=np.int64)
    np.testing.assert_array_equal(
        loaded.rows("model.embed_tokens.weight", rows), loaded["model.embed_tokens.weight"][rows]
    )
    verdict = weight_provenance(loaded, _source(state, model), CONFIG)
    assert verdict.decision == "evidence"
    assert as_float(verdict.statistic["value"]) > 0.99  # half precision moves the invariants a little
    (tmp_path / "sharded" / "model-00002-of-00002.safetensors").unlink()
    with pytest.raises(TheftError, match="not a file"):
        load_weights(tmp_path / "sharded")


def test_bfloat16_widening_is_exact() -> None:
    import torch

    values = torch.tensor([1.0, -2.5, 3.140625, 1e-30, -0.0, float("inf")], dtype=torch.bfloat16)
    raw = values.view(torch.int16).numpy().view(np.uint16)
    np.testing.assert_array_equal(bfloat16_to_float32(raw), values.float().numpy())


def test_malformed_safetensors_are_refused(tmp_path: Path) -> None:
    header = json.dumps({"w": {"dtype": "F32", "shape": [4, 4], "data_offsets": [0, 64]}}).encode()
    (tmp_path / "short.safetensors").write_bytes(len(header).to_bytes(8, "little") + header + b"\0" * 10)
    with pytest.raises(TheftError, match="byte range"):
        load_weights(tmp_path / "short.safetensors")
    header = json.dumps({"w": {"dtype": "F8_E4M3", "shape": [1], "data_offsets": [0, 1]}}).encode()
    (tmp_path / "f8.safetensors").write_bytes(len(header).to_bytes(8, "little") + header + b"\0")
    with pytest.raises(TheftError, match="F8_E4M3"):
        load_weights(tmp_path / "f8.safetensors")
    (tmp_path / "huge.safetensors").write_bytes((2**40).to_bytes(8, "little") + b"{}")
    with pytest.raises(TheftError, match="header length"):
        load_weights(tmp_path / "huge.safetensors")
    (tmp_path / "index").mkdir()
    (tmp_path / "index" / "model.safetensors.index.json").write_text('{"weight_map": {"a": "../short.safetensors"}}')
    with pytest.raises(TheftError, match="not a file"):
        load_weights(tmp_path / "index")
    with pytest.raises(InvalidInputError):
        load_weights(tmp_path / "absent")


def test_membership_and_shapes_do_not_read_tensors(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    model, state = tiny_models.build("llama", 0, kv=2)
    import torch

    _save(tmp_path / "m" / "model.safetensors", {k: torch.from_numpy(v).float() for k, v in state.items()})
    model.config.to_json_file(str(tmp_path / "m" / "config.json"))
    loaded = load_weights(tmp_path / "m")
    reads: list[str] = []
    original = WeightSource._read

    def counting(info: Any, indices: Any) -> Any:
        reads.append(str(info.shape))
        return original(info, indices)

    monkeypatch.setattr(WeightSource, "_read", staticmethod(counting))
    assert "model.layers.0.mlp.gate_proj.weight" in loaded
    assert "model.layers.0.mlp.gate_up_proj.weight" not in loaded
    assert loaded.shape("model.embed_tokens.weight") == (tiny_models.VOCAB, tiny_models.WIDTH)
    assert reads == []
    weight_provenance(loaded, loaded, CONFIG)
    matrices = sum(1 for v in state.values() if v.ndim == 2) - 1  # lm_head is never read
    assert len(reads) <= 2 * (matrices + 2 * tiny_models.LAYERS)  # each tensor read once per model, no more
