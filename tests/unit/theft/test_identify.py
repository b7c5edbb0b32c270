"""Model identity (MMD, Hamming kernel): same distribution is not rejected, a shifted one is, open-set answers."""

from __future__ import annotations

import hashlib
from collections.abc import Callable

import numpy as np
import pytest
from scipy import stats

from tracemark._json import as_float
from tracemark.errors import InvalidInputError, SuspectQueryError
from tracemark.theft import CallableTextModel, IdentityConfig, identify, mmd_permutation_test

PROMPTS = [f"prompt number {i}" for i in range(30)]
CONFIG = IdentityConfig(samples_per_prompt=8, completion_tokens=12, max_new_tokens=12, permutations=199)


def sampler(shift: float, temperature: float = 1.0) -> Callable[[str, int, int], str]:
    """A model over 12 letters whose favourite letter depends on the prompt; ``shift`` moves mass elsewhere."""

    def complete(prompt: str, max_new_tokens: int, seed: int) -> str:
        favourite = int(hashlib.sha256(prompt.encode()).hexdigest(), 16) % 12
        logits = np.zeros(12)
        logits[favourite] = 2.0
        logits[(favourite + 5) % 12] += shift
        probs = np.exp(logits / temperature)
        rng = np.random.default_rng(seed)
        letters = rng.choice(12, size=max_new_tokens, p=probs / probs.sum())
        return "".join(chr(97 + int(c)) for c in letters)

    return complete


def model(shift: float, name: str, temperature: float = 1.0) -> CallableTextModel:
    return CallableTextModel(sampler(shift, temperature), name)


def test_the_same_model_sampled_with_other_seeds_is_not_rejected() -> None:
    verdict = identify(model(0.0, "endpoint"), {"ours": model(0.0, "ours")}, PROMPTS, CONFIG)
    assert verdict.decision == "no-evidence"
    assert verdict.statistic["answer"] == "indistinguishable-from:ours"  # samples alone never say "is ours"
    assert verdict.p_value is not None
    assert verdict.p_value > 0.05


@pytest.mark.parametrize(("shift", "temperature"), [(1.5, 1.0), (0.0, 1.6)])
def test_a_different_distribution_is_rejected(shift: float, temperature: float) -> None:
    verdict = identify(model(shift, "endpoint", temperature), {"ours": model(0.0, "ours")}, PROMPTS, CONFIG)
    assert verdict.decision == "evidence"
    assert verdict.statistic["answer"] == "no-match"
    assert verdict.p_value == pytest.approx(1 / 200)


def test_open_set_names_the_consistent_reference() -> None:
    references = {"base": model(0.0, "base"), "tuned": model(1.5, "tuned"), "other": model(-2.0, "other")}
    verdict = identify(model(1.5, "endpoint"), references, PROMPTS, CONFIG)
    assert verdict.decision == "no-evidence"
    assert verdict.statistic["consistent_with"] == ("tuned",)
    by_name = {row["reference"]: row for row in verdict.details}
    assert as_float(by_name["base"]["p_value_holm"]) <= 0.05
    assert as_float(by_name["other"]["p_value_holm"]) <= 0.05
    assert by_name["tuned"]["consistent"]


def test_permutation_p_values_are_calibrated_under_the_null() -> None:
    rng = np.random.default_rng(3)
    p_values = []
    for _ in range(200):
        x = rng.integers(0, 3, (10, 6, 5))
        y = rng.integers(0, 3, (10, 6, 5))
        p_values.append(mmd_permutation_test(x, y, 99, rng)[1])
    p = np.array(p_values)
    assert np.mean(p <= 0.05) <= stats.binom.ppf(0.995, 200, 0.05) / 200
    assert np.mean(p <= 0.2) >= stats.binom.ppf(0.005, 200, 0.2) / 200 - 0.05


def test_failing_endpoint_is_inconclusive() -> None:
    inner = sampler(0.0)

    def flaky(prompt: str, max_new_tokens: int, seed: int) -> str:
        if seed % 2:
            raise SuspectQueryError("rate limited")
        return inner(prompt, max_new_tokens, seed)

    def dead(prompt: str, max_new_tokens: int, seed: int) -> str:
        raise ConnectionError("down")

    flaky_verdict = identify(CallableTextModel(flaky), {"ours": model(0.0, "ours")}, PROMPTS, CONFIG)
    assert flaky_verdict.decision in ("no-evidence", "evidence")  # one retry per sample absorbs the failures
    verdict = identify(CallableTextModel(dead), {"ours": model(0.0, "ours")}, PROMPTS, CONFIG)
    assert verdict.decision == "inconclusive"
    assert verdict.statistic["answer"] == "inconclusive"
    assert any("endpoint samples failed" in r for r in verdict.reasons)


def test_too_few_prompts_or_permutations_are_inconclusive() -> None:
    few = identify(model(3.0, "e"), {"ours": model(0.0, "ours")}, PROMPTS[:3], CONFIG)
    assert few.decision == "inconclusive"
    coarse = IdentityConfig(samples_per_prompt=8, completion_tokens=12, max_new_tokens=12, permutations=19, alpha=0.01)
    verdict = identify(model(3.0, "e"), {"ours": model(0.0, "ours")}, PROMPTS, coarse)
    assert verdict.decision == "inconclusive"


def test_bad_settings_are_refused() -> None:
    with pytest.raises(InvalidInputError):
        identify(model(0.0, "e"), {}, PROMPTS, CONFIG)
    with pytest.raises(InvalidInputError):
        identify(model(0.0, "e"), {"a": model(0.0, "a")}, ["", "x"], CONFIG)
    with pytest.raises(InvalidInputError):
        identify(model(0.0, "e"), {"a": model(0.0, "a")}, PROMPTS, IdentityConfig(samples_per_prompt=1))
