"""Model identity from log-probabilities: float noise is the same model, an int8-sized change is not."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from numpy.typing import NDArray

from tests.unit.theft.conftest import StubServer, prompts
from tracemark._json import as_float
from tracemark.errors import InvalidInputError, SuspectQueryError
from tracemark.text import TextTokenizer
from tracemark.theft import (
    CallableNextTokenModel,
    EndpointNextTokens,
    LogprobIdentityConfig,
    OpenAICompatibleEndpoint,
    identify_logprobs,
)
from tracemark.theft._identify_logprobs import position_deviations

VOCAB = 2001  # the word tokenizer: id 0 unused, ids 1..2000 are w0..w1999
PROMPTS = prompts(40, seed=3, length=12)
BASE = np.random.default_rng(11).normal(0.0, 2.0, (VOCAB, VOCAB))


def tokenize(text: str) -> list[int]:
    return [int(word[1:]) + 1 for word in text.split()]


def bigram(
    noise: float = 0.0, temperature: float = 1.0, seed: int = 0
) -> Callable[[NDArray[np.int64]], NDArray[np.float64]]:
    """Next-token probabilities of a bigram model; ``noise`` perturbs every logit (an int8 copy moves them ~1e-2)."""
    logits = BASE + (np.random.default_rng(seed).normal(0.0, noise, BASE.shape) if noise else 0.0)

    def probabilities(ids: NDArray[np.int64]) -> NDArray[np.float64]:
        rows = logits[ids] / temperature
        rows = np.exp(rows - rows.max(axis=1, keepdims=True))
        result: NDArray[np.float64] = rows / rows.sum(axis=1, keepdims=True)
        return result

    return probabilities


def model(name: str, **kwargs: float) -> CallableNextTokenModel:
    return CallableNextTokenModel(bigram(**kwargs), name)  # type: ignore[arg-type]


def test_the_same_model_and_float_noise_are_consistent() -> None:
    same = identify_logprobs(model("endpoint"), {"ours": model("ours")}, PROMPTS, tokenize)
    assert same.decision == "no-evidence"
    assert same.statistic["answer"] == "consistent-with:ours"
    assert same.p_value == 1.0
    assert same.details[0]["reads_scored"] == 40
    assert same.details[0]["positions_scored"] == 40 * 12
    reordered = identify_logprobs(model("endpoint", noise=1e-6, seed=4), {"ours": model("ours")}, PROMPTS, tokenize)
    assert reordered.decision == "no-evidence"
    assert as_float(reordered.details[0]["q99_abs_logprob_gap"]) < 1e-4


@pytest.mark.parametrize("kwargs", [{"noise": 0.01, "seed": 1}, {"temperature": 1.3}, {"noise": 0.5, "seed": 2}])
def test_a_changed_model_is_no_match(kwargs: dict[str, float]) -> None:
    verdict = identify_logprobs(model("endpoint", **kwargs), {"ours": model("ours")}, PROMPTS, tokenize)
    assert verdict.decision == "evidence"
    assert verdict.statistic["answer"] == "no-match"
    assert verdict.details[0]["reads_deviating"] == 40
    assert verdict.log10_p_value is not None
    assert verdict.log10_p_value < -60  # 40 of 40 reads at outlier rate 0.01: 1e-80
    assert verdict.effect["estimate"] == 1.0


def test_open_set_names_the_int8_copy_and_tolerance_is_the_users_choice() -> None:
    references = {"fp32": model("fp32"), "int8": model("int8", noise=0.01, seed=1)}
    verdict = identify_logprobs(model("endpoint", noise=0.01, seed=1), references, PROMPTS, tokenize)
    assert verdict.statistic["consistent_with"] == ("int8",)
    assert verdict.decision == "no-evidence"
    loose = LogprobIdentityConfig(tolerance=0.2)  # accepts lower-precision serving, and int8 with it
    accepted = identify_logprobs(
        model("endpoint", noise=0.01, seed=1), {"fp32": model("fp32")}, PROMPTS, tokenize, loose
    )
    assert accepted.decision == "no-evidence"


def test_a_few_deviating_reads_are_within_the_outlier_rate() -> None:
    clean, noisy = bigram(), bigram(noise=0.05, seed=7)
    odd = {tuple(tokenize(p)) for p in PROMPTS[:1]}  # one read of 40 served by another kernel

    def flaky(ids: NDArray[np.int64]) -> NDArray[np.float64]:
        return noisy(ids) if tuple(int(i) for i in ids) in odd else clean(ids)

    config = LogprobIdentityConfig(outlier_rate=0.05)
    verdict = identify_logprobs(CallableNextTokenModel(flaky), {"ours": model("ours")}, PROMPTS, tokenize, config)
    assert verdict.details[0]["reads_deviating"] == 1
    assert verdict.decision == "no-evidence"
    assert verdict.p_value == pytest.approx(1 - 0.95**40)


def test_a_token_missing_from_a_full_list_is_an_infinite_deviation() -> None:
    reference = (np.array([[1, 2, 3], [1, 2, 3]]), np.array([[0.5, 0.3, 0.2], [0.5, 0.3, 0.2]]))
    full = (np.array([[1, 2, 4], [1, 2, 0]]), np.array([[0.5, 0.3, 0.2], [0.5, 0.3, 0.0]]))
    deviations = position_deviations(full, reference, compared=3)
    assert np.isinf(deviations[0])  # token 3 is missing from a full list
    assert deviations[1] == 0.0  # a list with an empty slot: the missing token is not scored


def test_failures_and_bad_settings() -> None:
    def dead(ids: NDArray[np.int64]) -> NDArray[np.float64]:
        raise SuspectQueryError("endpoint down")

    down = identify_logprobs(CallableNextTokenModel(dead), {"ours": model("ours")}, PROMPTS, tokenize)
    assert down.decision == "inconclusive"
    assert any("endpoint reads failed" in r for r in down.reasons)
    few = identify_logprobs(model("endpoint"), {"ours": model("ours")}, PROMPTS[:3], tokenize)
    assert few.decision == "inconclusive"
    for bad in ({"compared": 30}, {"tolerance": 0.0}, {"outlier_rate": 1.0}, {"max_read_tokens": 0}):
        with pytest.raises(InvalidInputError):
            identify_logprobs(model("e"), {"ours": model("ours")}, PROMPTS, tokenize, LogprobIdentityConfig(**bad))
    with pytest.raises(InvalidInputError):
        identify_logprobs(model("e"), {}, PROMPTS, tokenize)


def test_over_http_echoed_logprobs(stub: StubServer, tokenizer: TextTokenizer) -> None:
    reader = EndpointNextTokens(OpenAICompatibleEndpoint(stub.url, "served"), tokenizer)
    config = LogprobIdentityConfig(top_k=8)
    stub.next_token = bigram()
    same = identify_logprobs(reader, {"ours": model("ours")}, PROMPTS, tokenize, config)
    assert same.decision == "no-evidence", same.details
    assert stub.requests[-1]["echo"] is True
    stub.next_token = bigram(noise=0.01, seed=1)
    quantized = identify_logprobs(reader, {"ours": model("ours")}, PROMPTS, tokenize, config)
    assert quantized.decision == "evidence"
    stub.shift_tokens = True  # an endpoint that splits the text into other tokens cannot be compared
    misread = identify_logprobs(reader, {"ours": model("ours")}, PROMPTS, tokenize, config)
    assert misread.decision == "inconclusive"


def test_cli_logprobs_on_the_reference_model_and_its_int8_copy(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    pytest.importorskip("torch")
    import json
    import shutil

    from safetensors.torch import load_file, save_file

    from tracemark.cli import main
    from tracemark.text import reference_model_dir

    source = reference_model_dir()
    quantized = tmp_path / "int8"
    shutil.copytree(source, quantized)
    weights = load_file(str(quantized / "model.safetensors"))
    for name, tensor in weights.items():
        if tensor.ndim == 2:  # per-tensor symmetric int8, as an int8 deployment stores it
            scale = tensor.abs().max() / 127.0
            weights[name] = (tensor / scale).round().clamp(-127, 127) * scale
    save_file(weights, str(quantized / "model.safetensors"), metadata={"format": "pt"})
    prompt_file = tmp_path / "prompts.txt"
    words = (source / "README.md").read_text().split()
    prompt_file.write_text("\n".join(" ".join(words[i : i + 12]) for i in range(0, 240, 12)) + "\n")
    common = [
        "theft",
        "identify",
        "--logprobs",
        "--reference",
        f"ours={source}",
        "--prompts",
        str(prompt_file),
        "--json",
    ]
    assert main([*common, "--endpoint-model", str(source)]) == 0
    same = json.loads(capsys.readouterr().out)
    assert same["test"] == "identify/logprobs"
    assert same["decision"] == "no-evidence"
    assert main([*common, "--endpoint-model", str(quantized)]) == 0
    copy = json.loads(capsys.readouterr().out)
    assert copy["decision"] == "evidence"
    assert copy["statistic"]["answer"] == "no-match"
    assert main([*common[:-1], "--reference", f"ours-int8={quantized}", "--endpoint-model", str(quantized)]) == 0
    assert "answer: consistent-with:ours-int8" in capsys.readouterr().out
