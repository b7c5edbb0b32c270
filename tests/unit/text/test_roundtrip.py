"""Generate with the bundled reference model, then detect: every scheme, through the library and the CLI."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from tests.conftest import REFERENCE_MODEL
from tracemark.keys import Keyring, TextKey
from tracemark.text import SCHEME_NAMES, TextTokenizer, WatermarkedGenerator, detect_watermark, new_text_key

PROMPTS = ["The documentation explains how", "A module is a file containing Python definitions and"]


@pytest.fixture(scope="module")
def generated(tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[TextKey, list[str]]]:
    import os

    os.environ["TRACEMARK_HOME"] = str(tmp_path_factory.mktemp("home"))
    keyring = Keyring()
    keyring.create()
    out = {}
    for scheme in SCHEME_NAMES:
        key = new_text_key(keyring, scheme, REFERENCE_MODEL)
        generations = WatermarkedGenerator(REFERENCE_MODEL, key).generate(PROMPTS, max_new_tokens=200, seed=3)
        assert all(len(g.token_ids) == 200 for g in generations)
        out[scheme] = (key, [g.text for g in generations])
    return out


@pytest.mark.parametrize("scheme", SCHEME_NAMES)
def test_generated_200_tokens_detect_below_1e_6(generated: dict[str, tuple[TextKey, list[str]]], scheme: str) -> None:
    key, texts = generated[scheme]
    tokenizer = TextTokenizer(REFERENCE_MODEL)
    for prompt, text in zip(PROMPTS, texts, strict=True):
        verdict = detect_watermark(text, key, tokenizer, prompt=prompt)
        assert verdict.marked, verdict
        assert verdict.p_value < 1e-6
        assert verdict.tokens_scored > 100


@pytest.mark.parametrize("scheme", SCHEME_NAMES)
def test_other_keys_do_not_fire(generated: dict[str, tuple[TextKey, list[str]]], scheme: str) -> None:
    tokenizer = TextTokenizer(REFERENCE_MODEL)
    _, texts = generated[scheme]
    for other, (other_key, _) in generated.items():
        if other == scheme:
            continue
        for text in texts:
            assert detect_watermark(text, other_key, tokenizer).p_value > 1e-6


def test_unmarked_generation_is_not_marked(generated: dict[str, tuple[TextKey, list[str]]]) -> None:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model = AutoModelForCausalLM.from_pretrained(REFERENCE_MODEL)
    hf_tokenizer = AutoTokenizer.from_pretrained(REFERENCE_MODEL)
    torch.manual_seed(5)
    batch = hf_tokenizer([PROMPTS[0]], return_tensors="pt")
    output = model.generate(**batch, do_sample=True, max_new_tokens=200, min_new_tokens=200, top_k=0)
    text = str(hf_tokenizer.decode(output[0, batch["input_ids"].shape[1] :], skip_special_tokens=True))
    tokenizer = TextTokenizer(REFERENCE_MODEL)
    for key, _ in generated.values():
        assert not detect_watermark(text, key, tokenizer).marked


def test_cli_generate_then_detect(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    from tracemark.cli import main

    assert main(["keys", "init"]) == 0
    capsys.readouterr()
    assert main(["text", "generate", "--prompt", PROMPTS[0], "--seed", "1", "--json"]) == 0
    captured = capsys.readouterr()
    assert "Loading weights" not in captured.err  # the result, not a progress bar
    generation = json.loads(captured.out)
    assert generation["tokens"] == 200
    assert generation["scheme"] == "native"
    sample = tmp_path / "marked.txt"
    sample.write_text(generation["text"])
    assert main(["text", "detect", str(sample), "--json"]) == 0
    verdict = json.loads(capsys.readouterr().out)
    assert verdict["marked"] is True
    assert verdict["p_value"] < 1e-6
    assert verdict["key_id"] == generation["key_id"]
    assert np.isfinite(verdict["log10_p_value"])


def test_asking_for_more_than_the_context_is_a_clear_error(generated: dict[str, tuple[TextKey, list[str]]]) -> None:
    from tracemark.errors import InvalidInputError

    key, _ = generated["native"]
    with pytest.raises(InvalidInputError, match="context"):
        WatermarkedGenerator(REFERENCE_MODEL, key).generate([PROMPTS[0]], max_new_tokens=400)
