"""GGUF checkpoints (llama.cpp) in the weight test: names, metadata, RoPE row order and quantised types.

Needs the ``gguf`` package (the ``text`` extra); the file is written here with ``gguf.GGUFWriter`` the
way llama.cpp's converter lays out a LLaMA model: Q and K rows reordered inside each head for its RoPE,
large matrices in Q8_0, the rest in float16/float32.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from tests.unit.theft import tiny_models
from tracemark._json import as_float
from tracemark.errors import TheftError
from tracemark.theft import WeightConfig, load_weights, weight_provenance
from tracemark.theft._tensors import WeightSource

gguf = pytest.importorskip("gguf")
pytest.importorskip("torch")
pytest.importorskip("transformers")

CONFIG = WeightConfig(tokens=48, permutations=199)
_NAMES = {
    "self_attn.q_proj": "attn_q", "self_attn.k_proj": "attn_k", "self_attn.v_proj": "attn_v",
    "self_attn.o_proj": "attn_output", "mlp.gate_proj": "ffn_gate", "mlp.up_proj": "ffn_up",
    "mlp.down_proj": "ffn_down", "input_layernorm": "attn_norm", "post_attention_layernorm": "ffn_norm",
}  # fmt: skip


def _rope_rows(weight: Any, heads: int) -> Any:
    """llama.cpp's reordering of Q/K rows inside each head (half-split to interleaved)."""
    out, width = weight.shape
    return weight.reshape(heads, 2, out // heads // 2, width).swapaxes(1, 2).reshape(out, width)


def _write(path: Path, state: tiny_models.State, config: Any, architecture: str = "llama") -> None:
    writer = gguf.GGUFWriter(str(path), architecture)
    writer.add_uint32(f"{architecture}.attention.head_count", config.num_attention_heads)
    writer.add_uint32(f"{architecture}.attention.head_count_kv", config.num_key_value_heads)
    for name, value in state.items():
        array = np.ascontiguousarray(value, dtype=np.float32)
        if name == "model.embed_tokens.weight":
            target = "token_embd.weight"
        elif name == "model.norm.weight":
            target = "output_norm.weight"
        elif name == "lm_head.weight":
            target = "output.weight"
        else:
            _, _, layer, rest = name.split(".", 3)
            module = rest.rsplit(".", 1)[0]
            target = f"blk.{layer}.{_NAMES[module]}.weight"
            if module == "self_attn.q_proj":
                array = _rope_rows(array, config.num_attention_heads)
            elif module == "self_attn.k_proj":
                array = _rope_rows(array, config.num_key_value_heads)
        if array.ndim == 2 and array.shape[1] % 32 == 0 and "ffn" in target:
            writer.add_tensor(target, gguf.quants.quantize(array, gguf.GGMLQuantizationType.Q8_0),
                              raw_dtype=gguf.GGMLQuantizationType.Q8_0)  # fmt: skip
        elif array.ndim == 2:
            writer.add_tensor(target, array.astype(np.float16))
        else:
            writer.add_tensor(target, array)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()


def test_a_quantised_gguf_copy_is_recognised_and_a_stranger_is_not(tmp_path: Path) -> None:
    model, state = tiny_models.build("llama", 0, kv=2)
    _write(tmp_path / "copy.gguf", state, model.config)
    loaded = load_weights(tmp_path / "copy.gguf")
    assert loaded.config["num_key_value_heads"] == 2
    assert loaded.shape("model.layers.0.self_attn.k_proj.weight") == (16, 32)
    reference = WeightSource.from_arrays(state, tiny_models.config_dict(model))
    verdict = weight_provenance(loaded, reference, CONFIG)
    assert verdict.decision == "evidence"
    assert verdict.counts["invariants_shared"] == 4 * tiny_models.LAYERS
    assert as_float(verdict.statistic["value"]) > 0.99  # float16 and Q8_0 move it a little
    other_model, other = tiny_models.build("llama", 4, kv=2)
    _write(tmp_path / "other.gguf", other, other_model.config)
    assert weight_provenance(load_weights(tmp_path / "other.gguf"), reference, CONFIG).decision == "no-evidence"


def test_other_gguf_architectures_and_broken_files_are_refused(tmp_path: Path) -> None:
    writer = gguf.GGUFWriter(str(tmp_path / "gpt2.gguf"), "gpt2")
    writer.add_tensor("token_embd.weight", np.zeros((8, 4), np.float32))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    with pytest.raises(TheftError, match="'gpt2' is not read"):
        load_weights(tmp_path / "gpt2.gguf")
    (tmp_path / "broken.gguf").write_bytes(b"GGUF\x03\x00\x00\x00garbage")
    with pytest.raises(TheftError, match="cannot read"):
        load_weights(tmp_path / "broken.gguf")
