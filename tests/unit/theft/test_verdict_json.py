"""The members of every theft verdict's rows, effects and null checks, in the order the JSON holds them."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from tests.unit.theft.conftest import biased_completion, next_token_probabilities, prompts, read_texts
from tests.unit.theft.test_identify import CONFIG, PROMPTS, model
from tests.unit.theft.test_identify_logprobs import PROMPTS as LOGPROB_PROMPTS
from tests.unit.theft.test_identify_logprobs import model as logprob_model
from tests.unit.theft.test_identify_logprobs import tokenize
from tracemark.keys import TextKey
from tracemark.text import TextTokenizer
from tracemark.theft import (
    CallableNextTokenModel,
    CallableTextModel,
    RadioactivityConfig,
    TheftVerdict,
    identify,
    identify_logprobs,
    radioactivity,
    radioactivity_open,
)

VERDICT = [
    "format", "test", "question", "h0", "decision", "reasons", "alpha", "p_value", "log10_p_value", "p_value_method",
    "statistic", "effect", "counts", "correction", "null_check", "details", "evidence",
]  # fmt: skip
KEY_ROW = ["key_id", "key_commitment", "scheme", "statistic", "p_value", "log10_p_value", "p_value_method", "hits"]
RADIOACTIVITY_EFFECT = ["name", "estimate", "rate", "null_rate", "ci_low", "ci_high", "ci_method"]
NULL_CHECK = ["wrong_keys", "seed", "levels", "ks_uniformity_p", "true_key_rank_p_value", "passed"]
NULL_CHECK_LEVEL = ["flagged", "expected", "upper_limit"]
SAMPLE_ROW = [
    "reference", "model", "mmd2", "p_value", "log10_p_value", "permutation_mean", "permutation_q95",
    "failed_samples", "response_sha256", "p_value_holm", "consistent",
]  # fmt: skip
LOGPROB_ROW = [
    "reference", "model", "p_value", "log10_p_value", "reads_scored", "reads_deviating", "deviating_share",
    "deviating_share_ci95", "positions_scored", "positions_over_tolerance", "positions_missing_token",
    "median_abs_logprob_gap", "q99_abs_logprob_gap", "failed_reads", "p_value_holm", "consistent",
]  # fmt: skip

KeyMaker = Callable[..., TextKey]


def _json(verdict: TheftVerdict) -> Any:
    """The verdict's JSON after a strict round trip (no NaN or Infinity), its members checked."""
    data = verdict.to_json()
    assert list(data) == VERDICT
    round_trip = json.loads(json.dumps(data, allow_nan=False))
    assert round_trip == data
    return round_trip


def test_radioactivity_rows_effect_and_null_check(make_key: KeyMaker, tokenizer: TextTokenizer) -> None:
    key, other = make_key(), make_key()
    config = RadioactivityConfig(budget_tokens=1500, min_tuples=100, null_keys=5)
    closed, _ = radioactivity(
        CallableTextModel(biased_completion(key, 0.5)), [key, other], prompts(40), tokenizer, config
    )
    open_config = RadioactivityConfig(budget_tokens=1000, min_tuples=100, null_keys=5, top_k=8)
    suspect = CallableNextTokenModel(next_token_probabilities(key, 1.0), "suspect")
    opened = radioactivity_open(suspect, [key], read_texts(30, 40), tokenizer, open_config)
    for verdict in (closed, opened):
        data = _json(verdict)
        assert [list(row) for row in data["details"]] == [KEY_ROW] * len(verdict.details)
        assert list(data["effect"]) == RADIOACTIVITY_EFFECT
        assert list(data["null_check"]) == NULL_CHECK
        assert all(list(level) == NULL_CHECK_LEVEL for level in data["null_check"]["levels"].values())
        assert list(data["statistic"]) == ["name", "value", "key_id"]
    assert [row["key_id"] for row in closed.details] == [key.key_id, other.key_id]


def test_a_verdict_with_nothing_scored_keeps_its_rows(make_key: KeyMaker, tokenizer: TextTokenizer) -> None:
    key = make_key()
    config = RadioactivityConfig(budget_tokens=10, min_tuples=100, null_keys=0)
    verdict, _ = radioactivity(CallableTextModel(lambda prompt, tokens, seed: ""), [key], prompts(3), tokenizer, config)
    data = _json(verdict)
    assert data["details"] == [
        {"key_id": key.key_id, "key_commitment": key.commitment, "scheme": "native", "statistic": 0.0,
         "p_value": 1.0, "log10_p_value": 0.0, "p_value_method": "no tuples", "hits": 0}
    ]  # fmt: skip
    assert data["effect"] == {}
    assert data["null_check"] is None


def test_identity_rows_end_in_the_open_set_members() -> None:
    samples = identify(model(0.0, "endpoint"), {"ours": model(0.0, "ours"), "other": model(1.5, "o")}, PROMPTS, CONFIG)
    data = _json(samples)
    assert [list(row) for row in data["details"]] == [SAMPLE_ROW, SAMPLE_ROW]
    assert list(data["effect"]) == ["name", "reference", "estimate", "null_q95"]
    logprobs = identify_logprobs(logprob_model("endpoint"), {"ours": logprob_model("ours")}, LOGPROB_PROMPTS, tokenize)
    data = _json(logprobs)
    assert [list(row) for row in data["details"]] == [LOGPROB_ROW]
    assert list(data["effect"]) == [
        "name", "reference", "estimate", "ci_low", "ci_high", "median_abs_logprob_gap",
    ]  # fmt: skip
    row = logprobs.details[0]
    assert row["deviating_share_ci95"] == (0.0, row["deviating_share_ci95"][1])  # type: ignore[index]
    assert row["consistent"] is True
