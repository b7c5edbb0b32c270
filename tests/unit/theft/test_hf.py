"""The Hugging Face adapter on the bundled reference model (GPT-2, vocabulary 8192): generation, next-token
probabilities, open-mode calibration on a model that never saw the key, and weight provenance on real key names."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from tests.unit.theft.conftest import assert_clean
from tracemark.keys import Keyring
from tracemark.text import TextTokenizer, new_text_key, reference_model_dir
from tracemark.theft import RadioactivityConfig, WeightConfig, load_weights, radioactivity_open, weight_provenance

pytest.importorskip("torch")
pytest.importorskip("transformers")


@pytest.fixture(scope="module")
def hf_model() -> object:
    from tracemark.theft import HFModel

    return HFModel(reference_model_dir())


def test_generation_and_probabilities(hf_model: object) -> None:
    from tracemark.theft import HFModel

    assert isinstance(hf_model, HFModel)
    first = hf_model.complete("The documentation explains", max_new_tokens=8, seed=1)
    assert first == hf_model.complete("The documentation explains", max_new_tokens=8, seed=1)
    assert first.strip()
    ids, probs = hf_model.top_tokens(np.arange(1, 40, dtype=np.int64), 16)
    assert ids.shape == probs.shape == (39, 16)
    assert np.all(np.diff(probs, axis=1) <= 0)
    assert np.all(probs.sum(axis=1) <= 1.0 + 1e-6)


def test_open_mode_finds_no_radioactivity_in_a_model_that_never_saw_the_key(
    hf_model: object, isolated_home: Path
) -> None:
    from tracemark.theft import HFModel

    assert isinstance(hf_model, HFModel)
    keyring = Keyring(isolated_home)
    keyring.create()
    model_dir = reference_model_dir()
    key = new_text_key(keyring, "native", model_dir, params={"context_width": 1})
    texts = [(model_dir / "README.md").read_text()] * 2
    config = RadioactivityConfig(budget_tokens=600, min_tuples=100, null_keys=20, top_k=32)
    verdict = radioactivity_open(hf_model, [key], texts, TextTokenizer(model_dir), config)
    # the bundled model may be retrained: assert no accusation, not one particular p-value
    assert_clean(verdict.decision, verdict.p_value, verdict.alpha, verdict.reasons)
    assert verdict.p_value is not None
    assert verdict.p_value > 1e-3
    assert verdict.null_check is not None
    assert verdict.null_check["wrong_keys"] == 20


def test_weight_provenance_reads_the_reference_checkpoint() -> None:
    reference = load_weights(reference_model_dir())
    rng = np.random.default_rng(0)
    copy = dict(reference)
    prefix = next(k for k in reference if k.endswith("h.0.mlp.c_fc.weight"))[: -len("h.0.mlp.c_fc.weight")]
    for layer in range(4):
        base = f"{prefix}h.{layer}.mlp."
        order = rng.permutation(reference[base + "c_fc.weight"].shape[1])
        copy[base + "c_fc.weight"] = reference[base + "c_fc.weight"][:, order]
        copy[base + "c_fc.bias"] = reference[base + "c_fc.bias"][order]
        copy[base + "c_proj.weight"] = reference[base + "c_proj.weight"][order]
    verdict = weight_provenance(copy, reference, WeightConfig(tokens=64, permutations=199))
    assert verdict.decision == "evidence"
    assert verdict.counts["invariants_shared"] == 12


def test_cli_open_mode_reads_with_a_local_model(
    isolated_home: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import json

    from tracemark.cli import main

    keyring = Keyring(isolated_home)
    keyring.create()
    model_dir = reference_model_dir()
    key = new_text_key(keyring, "native", model_dir, params={"context_width": 1})
    read = tmp_path / "read.txt"
    read.write_text((model_dir / "README.md").read_text())
    status = main(
        ["theft", "radioactivity", "--mode", "open", "--model", str(model_dir), "--key", key.key_id,
         "--suspect-model", str(model_dir), "--read", str(read), "--budget", "300", "--min-tuples", "50",
         "--null-keys", "10", "--top-k", "16", "--json"]
    )  # fmt: skip
    verdict = json.loads(capsys.readouterr().out)
    assert status == 0
    assert verdict["test"] == "radioactivity/open"
    assert verdict["statistic"]["name"] == "mass"
    assert_clean(verdict["decision"], verdict["p_value"], verdict["alpha"], verdict["reasons"])
    assert verdict["null_check"]["wrong_keys"] == 10
