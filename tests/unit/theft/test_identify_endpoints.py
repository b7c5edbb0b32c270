"""Identity against real endpoints (issue #22, item 5): failure caps, transcripts, headlines, samples vs logprobs.

Also the open-mode radioactivity read tolerance: one failed read of many no longer turns a decisive
p-value into ``inconclusive``; more than ``max_failure_rate`` still does.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
from numpy.typing import NDArray

from tests.unit.theft.conftest import next_token_probabilities, read_texts
from tests.unit.theft.test_identify import CONFIG, PROMPTS, model, sampler
from tests.unit.theft.test_identify_logprobs import PROMPTS as WORD_PROMPTS
from tests.unit.theft.test_identify_logprobs import bigram, tokenize
from tracemark._json import FrozenJSON, JSONObject
from tracemark.errors import SuspectQueryError
from tracemark.keys import TextKey
from tracemark.text import TextTokenizer
from tracemark.theft import (
    CallableNextTokenModel,
    CallableTextModel,
    IdentityConfig,
    LogprobIdentityConfig,
    RadioactivityConfig,
    identify,
    identify_logprobs,
    radioactivity_open,
)


def _text(value: FrozenJSON) -> str:
    """A verdict's statistic known to be a string (the headline, the answer)."""
    assert isinstance(value, str)
    return value


def _dead(calls: list[int]) -> Callable[[str, int, int], str]:
    def complete(prompt: str, max_new_tokens: int, seed: int) -> str:
        calls.append(seed)
        raise SuspectQueryError("timed out after 30 s")

    return complete


def test_a_dead_endpoint_is_abandoned_after_the_cap_and_reads_inconclusive() -> None:
    calls: list[int] = []
    verdict = identify(CallableTextModel(_dead(calls)), {"ours": model(0.0, "ours")}, PROMPTS, CONFIG)
    assert len(calls) == CONFIG.max_consecutive_failures == 10  # not 30 prompts x 8 samples x 2 tries
    assert verdict.decision == "inconclusive"
    assert any("stopped after 10 failed requests to endpoint" in r for r in verdict.reasons)
    assert verdict.counts["endpoint_requests_not_sent"] == len(PROMPTS) * CONFIG.samples_per_prompt - 5
    assert _text(verdict.statistic["headline"]).startswith("INCONCLUSIVE")


def test_a_total_cap_stops_a_flaky_endpoint_and_the_retries_absorb_one_without_a_cap() -> None:
    inner = sampler(0.0)
    calls: list[int] = []

    def flaky(prompt: str, max_new_tokens: int, seed: int) -> str:
        calls.append(seed)
        if seed % 2:
            raise SuspectQueryError("rate limited")
        return inner(prompt, max_new_tokens, seed)

    capped = IdentityConfig(**{**CONFIG.__dict__, "max_failed_requests": 5})
    verdict = identify(CallableTextModel(flaky), {"ours": model(0.0, "ours")}, PROMPTS, capped)
    assert verdict.decision == "inconclusive"
    assert verdict.counts["endpoint_failed_requests"] == 5
    assert len(calls) <= 11
    uncapped = identify(CallableTextModel(flaky), {"ours": model(0.0, "ours")}, PROMPTS, CONFIG)
    assert uncapped.decision != "inconclusive"  # alternate failures never reach 10 in a row


def test_every_request_is_recorded_with_its_time_and_answer() -> None:
    records: list[JSONObject] = []
    inner = sampler(0.0)

    def sometimes(prompt: str, max_new_tokens: int, seed: int) -> str:
        if seed == 3:
            raise SuspectQueryError("HTTP 503")
        return inner(prompt, max_new_tokens, seed)

    verdict = identify(
        CallableTextModel(sometimes), {"ours": model(0.0, "ours")}, PROMPTS[:12], CONFIG, on_request=records.append
    )
    endpoint = [r for r in records if r["model"] == "endpoint"]
    reference = [r for r in records if r["model"] == "reference:ours"]
    assert len(endpoint) == 12 * CONFIG.samples_per_prompt + 1  # one failure, retried with the next seed
    assert len(reference) == 12 * CONFIG.samples_per_prompt
    assert verdict.counts["endpoint_requests"] == len(endpoint)
    failed = [r for r in endpoint if not r["ok"]]
    assert len(failed) == 1
    assert failed[0]["seed"] == 3
    assert failed[0]["error"] == "HTTP 503"
    for record in endpoint:
        assert isinstance(record["started_utc"], str)
        assert record["started_utc"].endswith("+00:00")
        seconds = record["seconds"]
        assert isinstance(seconds, float)
        assert seconds >= 0.0
    answered = [r for r in endpoint if r["ok"]]
    assert answered[0]["response"] == inner(PROMPTS[0], CONFIG.max_new_tokens, 0)
    assert [r["index"] for r in endpoint] == list(range(len(endpoint)))


def _word_sampler(probabilities: Callable[[NDArray[np.int64]], NDArray[np.float64]]) -> CallableTextModel:
    """A text model that samples words from a bigram model's next-token probabilities."""

    def complete(prompt: str, max_new_tokens: int, seed: int) -> str:
        rng = np.random.default_rng(seed)
        last = tokenize(prompt)[-1]
        words = []
        for _ in range(max_new_tokens):
            probs = probabilities(np.array([last], dtype=np.int64))[0]
            last = int(rng.choice(probs.shape[0], p=probs))
            words.append(f"w{max(last - 1, 0)}")
        return " ".join(words)

    return CallableTextModel(complete, "sampler")


def _words(text: str) -> list[int]:
    return tokenize(text)


def test_samples_never_call_a_fine_tuned_copy_consistent_where_logprobs_say_no_match() -> None:
    tuned, ours = bigram(noise=0.01, seed=1), bigram()
    config = IdentityConfig(samples_per_prompt=8, completion_tokens=8, max_new_tokens=8, permutations=199)
    samples = identify(_word_sampler(tuned), {"ours": _word_sampler(ours)}, WORD_PROMPTS, config, tokenize=_words)
    logprobs = identify_logprobs(
        CallableNextTokenModel(tuned, "tuned"),
        {"ours": CallableNextTokenModel(ours, "ours")},
        WORD_PROMPTS,
        tokenize,
        LogprobIdentityConfig(),
    )
    assert logprobs.statistic["answer"] == "no-match"
    assert _text(logprobs.statistic["headline"]).startswith("The endpoint is NOT consistent with ours")
    assert not str(samples.statistic["answer"]).startswith("consistent-with")
    assert samples.statistic["answer"] == "indistinguishable-from:ours"  # at this budget samples cannot tell
    assert "does not show the endpoint IS that model" in str(samples.statistic["headline"])
    assert any("samples only" in r for r in samples.reasons)


def test_the_headline_answers_the_question_both_ways() -> None:
    ours = {"ours": CallableNextTokenModel(bigram(), "ours")}
    same = identify_logprobs(CallableNextTokenModel(bigram(), "e"), ours, WORD_PROMPTS, tokenize)
    assert _text(same.statistic["headline"]).startswith("The endpoint IS consistent with ours")
    other = identify_logprobs(
        CallableNextTokenModel(bigram(temperature=1.3), "e"),
        ours,
        WORD_PROMPTS,
        tokenize,
    )
    assert _text(other.statistic["headline"]).startswith("The endpoint is NOT consistent with ours")
    dead = identify_logprobs(
        CallableNextTokenModel(lambda ids: (_ for _ in ()).throw(SuspectQueryError("down")), "e"),
        ours,
        WORD_PROMPTS,
        tokenize,
    )
    assert dead.decision == "inconclusive"
    assert dead.counts["endpoint_requests"] == 10


def _failing_reads(inner: Callable[[NDArray[np.int64]], NDArray[np.float64]], fail: set[int]) -> Any:
    calls = [0]

    def probabilities(ids: NDArray[np.int64]) -> NDArray[np.float64]:
        calls[0] += 1
        if calls[0] in fail:
            raise SuspectQueryError("read timed out")
        return inner(ids)

    return probabilities


def test_open_mode_tolerates_a_bounded_share_of_failed_reads(
    make_key: Callable[..., TextKey], tokenizer: TextTokenizer
) -> None:
    key = make_key()
    config = RadioactivityConfig(budget_tokens=2000, min_tuples=200, null_keys=40, top_k=16)
    texts = read_texts(40, 50)
    radioactive = next_token_probabilities(key, 1.0)
    one = radioactivity_open(
        CallableNextTokenModel(_failing_reads(radioactive, {7}), "one-failed"), [key], texts, tokenizer, config
    )
    assert one.decision == "evidence"
    assert one.counts["failed_reads"] == 1
    read_sequences = one.counts["read_sequences"]
    assert isinstance(read_sequences, int)
    assert one.counts["answered_reads"] == read_sequences - 1
    assert one.p_value is not None
    assert one.p_value < 1e-8
    many = radioactivity_open(
        CallableNextTokenModel(_failing_reads(radioactive, set(range(1, 41, 3))), "many-failed"),
        [key],
        texts,
        tokenizer,
        config,
    )
    assert many.decision == "inconclusive"
    assert any("more than max_failure_rate" in r for r in many.reasons)


@pytest.mark.parametrize("bad", [{"max_failed_requests": 0}, {"max_consecutive_failures": 0}])
def test_caps_must_be_positive(bad: dict[str, int]) -> None:
    from tracemark.errors import InvalidInputError

    with pytest.raises(InvalidInputError):
        identify(model(0.0, "e"), {"ours": model(0.0, "ours")}, PROMPTS, IdentityConfig(**bad))


def test_cli_writes_the_request_transcript_and_prints_the_headline(
    stub: Any, tmp_path: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    import json

    from tests.unit.theft.conftest import prompts
    from tracemark.cli import main

    prompt_file = tmp_path / "prompts.txt"
    prompt_file.write_text("\n".join(prompts(12)) + "\n")
    transcript = tmp_path / "requests.jsonl"
    argv = ["theft", "identify", "--endpoint-url", f"{stub.url}#served", "--reference", f"ours={stub.url}#ours",
            "--prompts", str(prompt_file), "--samples", "4", "--tokens", "16", "--permutations", "99",
            "--request-transcript", str(transcript), "--max-consecutive-failures", "3"]  # fmt: skip
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "The endpoint's samples could not be told apart from those of ours" in out
    records = [json.loads(line) for line in transcript.read_text().splitlines()]
    assert len(records) == 2 * 12 * 4  # endpoint and reference, every sample
    assert {r["model"] for r in records} == {"endpoint", "reference:ours"}
    assert all(r["ok"] and isinstance(r["response"], str) and r["seconds"] >= 0 for r in records)
    assert main([*argv[:-2], "--max-consecutive-failures", "0"]) != 0  # a meaningless cap is refused


def test_the_report_headline_is_the_answer_not_the_decision_code() -> None:
    from tracemark.theft import render_html, render_markdown

    ours = {"ours": CallableNextTokenModel(bigram(), "ours")}
    same = identify_logprobs(CallableNextTokenModel(bigram(), "e"), ours, WORD_PROMPTS, tokenize)
    page = render_html(same)
    headline = page.split("<strong>", 1)[1].split("</strong>", 1)[0]
    assert headline.startswith("The endpoint IS consistent with ours")
    assert "NO EVIDENCE" not in headline
    assert render_markdown(same).splitlines()[2].startswith("**The endpoint IS consistent with ours")
