"""Weight provenance: permuted, rescaled or fine-tuned copies are recognised, independent models are not."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
from numpy.typing import NDArray

from tracemark._json import as_float
from tracemark.errors import InvalidInputError, TheftError
from tracemark.theft import WeightConfig, load_weights, weight_provenance

CONFIG = WeightConfig(tokens=48, permutations=199)
State = dict[str, NDArray[Any]]


def gpt2_state(seed: int, layers: int = 2, width: int = 32, vocab: int = 300) -> State:
    """A GPT-2 state dict with transformers' key names, Conv1D layout (x @ W) and initialisation scale.

    Built with numpy so the tests need no torch; ``test_adapters`` checks the same reader on a real
    ``GPT2LMHeadModel``.
    """
    rng = np.random.default_rng(seed)

    def normal(*shape: int) -> NDArray[np.float32]:
        return rng.normal(0.0, 0.02, shape).astype(np.float32)

    state: State = {"transformer.wte.weight": normal(vocab, width), "transformer.wpe.weight": normal(32, width)}
    for layer in range(layers):
        base = f"transformer.h.{layer}."
        state.update(
            {
                base + "ln_1.weight": np.ones(width, np.float32),
                base + "attn.c_attn.weight": normal(width, 3 * width),
                base + "attn.c_attn.bias": np.zeros(3 * width, np.float32),
                base + "attn.c_proj.weight": normal(width, width),
                base + "ln_2.weight": np.ones(width, np.float32),
                base + "mlp.c_fc.weight": normal(width, 4 * width),
                base + "mlp.c_fc.bias": np.zeros(4 * width, np.float32),
                base + "mlp.c_proj.weight": normal(4 * width, width),
            }
        )
    return state


def permute_and_scale(state: State, seed: int) -> State:
    """Same function: permute every MLP's hidden neurons and attention heads, rescale neurons and V/O pairs."""
    rng = np.random.default_rng(seed)
    out = {k: v.copy() for k, v in state.items()}
    layers = {int(k.split(".")[2]) for k in state if k.startswith("transformer.h.")}
    width = state["transformer.wte.weight"].shape[1]
    head = width // 4
    for layer in layers:
        base = f"transformer.h.{layer}."
        fc, fc_b, proj = (state[base + n] for n in ("mlp.c_fc.weight", "mlp.c_fc.bias", "mlp.c_proj.weight"))
        order = rng.permutation(fc.shape[1])
        scale = np.asarray(rng.uniform(0.5, 2.0, size=fc.shape[1]), dtype=np.float64)
        out[base + "mlp.c_fc.weight"] = fc[:, order] * scale
        out[base + "mlp.c_fc.bias"] = fc_b[order] * scale
        out[base + "mlp.c_proj.weight"] = proj[order] / scale[:, None]
        heads = rng.permutation(4)
        columns = np.concatenate([np.arange(h * head, (h + 1) * head) for h in heads])
        attn, attn_b, o = (
            state[base + "attn.c_attn.weight"],
            state[base + "attn.c_attn.bias"],
            state[base + "attn.c_proj.weight"],
        )
        all_columns = np.concatenate([columns, columns + width, columns + 2 * width])
        out[base + "attn.c_attn.weight"] = attn[:, all_columns]
        out[base + "attn.c_attn.bias"] = attn_b[all_columns]
        v_scale = 3.0
        out[base + "attn.c_attn.weight"][:, 2 * width :] *= v_scale
        out[base + "attn.c_attn.bias"][2 * width :] *= v_scale
        out[base + "attn.c_proj.weight"] = o[columns] / v_scale
    return out


def perturb(state: State, relative: float, seed: int) -> State:
    rng = np.random.default_rng(seed)
    return {
        k: v + rng.normal(0.0, relative * (float(v.std()) + 1e-12), v.shape).astype(v.dtype) for k, v in state.items()
    }


def raw_cosine(a: State, b: State) -> float:
    names = [k for k in a if a[k].ndim == 2 and k.startswith("transformer.h.")]
    x = np.concatenate([a[k].ravel() for k in names])
    y = np.concatenate([b[k].ravel() for k in names])
    return float(x @ y / np.linalg.norm(x) / np.linalg.norm(y))


def test_a_permuted_and_rescaled_copy_is_recognised_where_raw_cosine_fails() -> None:
    reference = gpt2_state(0)
    copy = permute_and_scale(reference, 1)
    assert raw_cosine(copy, reference) < 0.6  # the naive score is fooled by a free relabelling
    verdict = weight_provenance(copy, reference, CONFIG)
    assert verdict.decision == "evidence"
    assert verdict.statistic["value"] == pytest.approx(1.0, abs=1e-6)
    assert verdict.p_value == pytest.approx(1 / 200)


def test_a_fine_tuned_copy_is_recognised() -> None:
    reference = gpt2_state(0)
    verdict = weight_provenance(perturb(permute_and_scale(reference, 2), 0.15, 3), reference, CONFIG)
    assert verdict.decision == "evidence"
    assert as_float(verdict.statistic["value"]) >= CONFIG.evidence_similarity


def test_a_related_but_distant_model_is_inconclusive_not_accused() -> None:
    """Between the two similarity lines the test says what it knows: related, not shown derived."""
    reference = gpt2_state(0)
    verdict = weight_provenance(perturb(permute_and_scale(reference, 2), 0.6, 3), reference, CONFIG)
    assert verdict.p_value is not None
    assert verdict.p_value <= CONFIG.alpha
    assert CONFIG.min_similarity <= as_float(verdict.statistic["value"]) < CONFIG.evidence_similarity
    assert verdict.decision == "inconclusive"
    assert any("same tokenizer" in reason for reason in verdict.reasons)


def test_similarity_lines_must_be_ordered() -> None:
    with pytest.raises(InvalidInputError, match="evidence_similarity"):
        weight_provenance(gpt2_state(1), gpt2_state(0), WeightConfig(min_similarity=0.9, evidence_similarity=0.5))


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_independent_initialisations_are_not_accused(seed: int) -> None:
    verdict = weight_provenance(gpt2_state(seed), gpt2_state(0), CONFIG)
    assert verdict.decision == "no-evidence"
    assert abs(as_float(verdict.statistic["value"])) < 0.1


def llama_state(seed: int, width: int = 32, hidden: int = 64, vocab: int = 300) -> State:
    """A LLaMA-style state dict (torch Linear layout: out x in)."""
    rng = np.random.default_rng(seed)

    def normal(*shape: int) -> NDArray[np.float32]:
        return rng.normal(0.0, 0.02, shape).astype(np.float32)

    state: State = {"model.embed_tokens.weight": normal(vocab, width)}
    for layer in range(2):
        base = f"model.layers.{layer}."
        for name in ("q_proj", "k_proj", "v_proj", "o_proj"):
            state[f"{base}self_attn.{name}.weight"] = normal(width, width)
        state[base + "mlp.gate_proj.weight"] = normal(hidden, width)
        state[base + "mlp.up_proj.weight"] = normal(hidden, width)
        state[base + "mlp.down_proj.weight"] = normal(width, hidden)
    return state


def test_llama_style_state_dicts_are_read() -> None:
    state = llama_state(0)
    rng = np.random.default_rng(0)
    copy = {k: v.copy() for k, v in state.items()}
    for layer in range(2):
        base = f"model.layers.{layer}.mlp."
        order = rng.permutation(64)
        for name in ("gate_proj", "up_proj"):
            copy[base + name + ".weight"] = state[base + name + ".weight"][order]
        copy[base + "down_proj.weight"] = state[base + "down_proj.weight"][:, order]
    same = weight_provenance(copy, state, CONFIG)
    assert same.decision == "evidence"
    assert same.counts["invariants_shared"] == 8
    assert weight_provenance(llama_state(1), state, CONFIG).decision == "no-evidence"


def test_too_few_permutations_are_inconclusive() -> None:
    reference = gpt2_state(0)
    verdict = weight_provenance(reference, reference, WeightConfig(tokens=32, permutations=19, alpha=0.01))
    assert verdict.decision == "inconclusive"


def test_weights_load_from_safetensors_and_pickles_are_refused(tmp_path: Path) -> None:
    from safetensors.numpy import save_file

    state = gpt2_state(0)
    save_file({k: np.ascontiguousarray(v) for k, v in state.items()}, str(tmp_path / "model.safetensors"))
    loaded = load_weights(tmp_path)
    assert set(loaded) == set(state)
    (tmp_path / "pickled").mkdir()
    (tmp_path / "pickled" / "pytorch_model.bin").write_bytes(b"\x80\x04not loaded")
    with pytest.raises(TheftError, match="pickle"):
        load_weights(tmp_path / "pickled")
    with pytest.raises(TheftError, match="pickle"):
        load_weights(tmp_path / "pickled" / "pytorch_model.bin")
    (tmp_path / "broken.safetensors").write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00{not json}")
    with pytest.raises(TheftError):
        load_weights(tmp_path / "broken.safetensors")
    with pytest.raises(InvalidInputError):
        load_weights(tmp_path / "missing")


def test_unknown_architectures_are_refused() -> None:
    with pytest.raises(TheftError, match="architecture"):
        weight_provenance({"w": np.zeros((3, 3))}, {"w": np.zeros((3, 3))}, CONFIG)
