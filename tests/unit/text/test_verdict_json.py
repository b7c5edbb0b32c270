"""The text verdict's JSON form: the documented members, in order, and the same object a deep copy gives."""

from __future__ import annotations

import json
import math
from collections.abc import Iterator, Mapping
from dataclasses import asdict, replace
from pathlib import Path

import pytest

from tracemark.keys import Keyring
from tracemark.text import TextTokenizer, Verdict, detect_watermark, new_text_key

UNMARKED = " ".join(f"w{(i * 7919) % 2000}" for i in range(300))

#: docs/text-watermark.md, "Verdict JSON": every member, in the order the object holds them.
DOCUMENTED_MEMBERS = [
    "scheme", "scheme_version", "key_id", "key_commitment", "tokenizer_sha256", "vocab_size", "params",
    "marked", "alpha", "p_value", "log10_p_value", "p_value_method", "p_value_whole_text", "score", "z_score",
    "hits", "trials", "null_hit_probability", "tokens_total", "tokens_scored", "tokens_repeated",
    "tokens_in_prompt", "tokens_unscorable", "deduplicated", "windows_tested", "correction", "spans",
    "statistics", "canonicalization", "versions", "null_hypothesis", "tokens_needed", "token_marks",
    "format",
]  # fmt: skip
SPAN_MEMBERS = [
    "start_token", "end_token", "start_char", "end_char", "tokens_scored", "hits", "p_value", "p_value_corrected",
]  # fmt: skip
STATISTIC_MEMBERS = ["name", "score", "p_value", "log10_p_value", "method"]


def _deep_copy_json(verdict: Verdict) -> object:
    """The verdict's JSON built the slow, obvious way: a deep copy, non-finite floats null."""

    def plain(value: object) -> object:
        if isinstance(value, float) and not math.isfinite(value):
            return None
        if isinstance(value, Mapping):
            return {key: plain(item) for key, item in value.items()}
        if isinstance(value, list | tuple):
            return [plain(item) for item in value]
        return value

    data = asdict(verdict)
    del data["token_marks"]
    data["tokens_needed"] = verdict.tokens_needed
    data["token_marks"] = [[mark.start_char, mark.end_char, mark.status] for mark in verdict.token_marks]
    data["format"] = "tracemark.text.verdict/v1"
    return plain(data)


def _verdicts(word_model: Path) -> Iterator[Verdict]:
    keyring = Keyring()
    keyring.create()
    tokenizer = TextTokenizer(word_model)
    for scheme in ("native", "kgw", "synthid"):
        key = new_text_key(keyring, scheme, word_model)
        yield detect_watermark(UNMARKED, key, tokenizer)
        yield detect_watermark(UNMARKED, key, tokenizer, explain=True)
        yield detect_watermark(UNMARKED, key, tokenizer, prompt="w1 w2 w3", explain=True, scan_windows=False)
        yield detect_watermark("w1 w2", key, tokenizer)  # nothing scorable: infinities and NaN become null


def test_verdict_json_holds_the_documented_members_in_order(word_model: Path) -> None:
    verdicts = list(_verdicts(word_model))
    assert any(v.statistics for v in verdicts)
    for verdict in verdicts:
        data = verdict.to_json()
        assert list(data) == DOCUMENTED_MEMBERS
        for span in data["spans"]:
            assert list(span) == SPAN_MEMBERS
        for statistic in data["statistics"]:
            assert list(statistic) == STATISTIC_MEMBERS
        text = json.dumps(data, allow_nan=False)  # strict JSON: no NaN or Infinity
        assert json.loads(text) == data


def test_verdict_json_equals_the_deep_copy(word_model: Path) -> None:
    for verdict in _verdicts(word_model):
        fast = verdict.to_json()
        assert json.dumps(fast) == json.dumps(_deep_copy_json(verdict))


def test_verdict_json_shares_nothing_with_the_verdict(word_model: Path) -> None:
    verdict = next(_verdicts(word_model))
    data = verdict.to_json()
    data["params"]["gamma"] = 0.99
    data["versions"]["tracemark"] = "changed"
    assert verdict.params["gamma"] != 0.99
    assert verdict.versions["tracemark"] != "changed"
    assert verdict.to_json()["params"]["gamma"] != 0.99


@pytest.mark.parametrize("value", [math.inf, -math.inf, math.nan])
def test_non_finite_numbers_become_null(word_model: Path, value: float) -> None:
    verdict = next(_verdicts(word_model))
    odd = replace(verdict, log10_p_value=value, z_score=value)
    data = odd.to_json()
    assert data["log10_p_value"] is None
    assert data["z_score"] is None
