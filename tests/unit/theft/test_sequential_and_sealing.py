"""Sequential looks with alpha spending, the suggestive band, and sealed, signed transcripts (issue #22)."""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping

import numpy as np
import pytest

from tests.unit.theft.conftest import biased_completion, prompts
from tracemark._json import as_mapping
from tracemark.errors import InvalidInputError, TheftError
from tracemark.keys import TextKey
from tracemark.text import TextTokenizer, load_scheme
from tracemark.theft import (
    CallableTextModel,
    RadioactivityConfig,
    SequentialPlan,
    Transcript,
    radioactivity,
    radioactivity_from_transcript,
    radioactivity_sequential,
    radioactivity_sequential_from_transcript,
    render_html,
    wrong_keys,
)
from tracemark.theft._closed import _closed_sequences, _hits_under, _score_rows, _tuple_table
from tracemark.theft._radioactivity import TupleStatistic
from tracemark.theft._verdict import decide, recommended_budget
from tracemark.tlog import NoteSigner

KeyMaker = Callable[..., TextKey]
PLAN = SequentialPlan((1000, 2000, 4000))


def suspect(key: TextKey | None, strength: float) -> CallableTextModel:
    return CallableTextModel(biased_completion(key, strength), "synthetic")


def sequential_config(**settings: object) -> RadioactivityConfig:
    return RadioactivityConfig(**{"budget_tokens": 4000, "min_tuples": 200, "null_keys": 40, **settings})  # type: ignore[arg-type]


# -- the plan ----------------------------------------------------------------------------


def test_spending_shares_sum_to_one_and_follow_the_power_family() -> None:
    shares = SequentialPlan((25_000, 50_000, 100_000, 200_000), rho=3.0).shares()
    assert sum(shares) == pytest.approx(1.0, abs=1e-12)
    assert shares[0] == pytest.approx((1 / 8) ** 3)
    assert list(shares) == sorted(shares)  # O'Brien-Fleming-like: little early, most at the end
    even = SequentialPlan((1, 2, 3, 4), rho=1.0).shares()
    assert even == pytest.approx((0.25, 0.25, 0.25, 0.25))


def test_rho_one_half_spends_half_of_alpha_at_a_quarter_of_the_budget() -> None:
    # the mixes benchmark's plan: a first look at 25k keeps what a fixed 25k test at alpha / 2 finds
    shares = SequentialPlan((25_000, 50_000, 100_000), rho=0.5).shares()
    assert shares == pytest.approx((0.5, 0.5**0.5 - 0.5, 1 - 0.5**0.5))
    assert sum(shares) == pytest.approx(1.0, abs=1e-12)


@pytest.mark.parametrize("looks", [(), (2000, 1000), (0, 10), (5, 5)])
def test_malformed_plans_are_refused(looks: tuple[int, ...]) -> None:
    with pytest.raises(InvalidInputError):
        SequentialPlan(looks).shares()


def test_the_budget_must_be_the_last_look(make_key: KeyMaker, tokenizer: TextTokenizer) -> None:
    key = make_key()
    with pytest.raises(InvalidInputError, match="last look"):
        radioactivity_sequential(suspect(None, 0.0), [key], prompts(200), tokenizer,
                                 sequential_config(budget_tokens=3000), PLAN)  # fmt: skip


# -- sequential runs ---------------------------------------------------------------------


def test_a_radioactive_suspect_stops_at_the_first_look(make_key: KeyMaker, tokenizer: TextTokenizer) -> None:
    key = make_key()
    verdict, transcript = radioactivity_sequential(suspect(key, 0.3), [key], prompts(200), tokenizer,
                                                   sequential_config(), PLAN, max_new_tokens=64)  # fmt: skip
    assert verdict.decision == "evidence"
    assert verdict.counts["stopped"] == "crossed"
    assert verdict.counts["looks_taken"] == 1
    looks = verdict.statistic["looks"]
    assert isinstance(looks, tuple)
    assert len(looks) == 1
    # fewer queries than the plan's maximum: the transcript holds only what was asked
    assert sum(len(e.response.split()) for e in transcript.exchanges) < 2000
    again = radioactivity_sequential_from_transcript(transcript, [key], tokenizer, sequential_config(), PLAN)
    assert json.dumps(again.to_json(), sort_keys=True) == json.dumps(verdict.to_json(), sort_keys=True)


def test_a_clean_suspect_runs_every_look_and_is_not_accused(make_key: KeyMaker, tokenizer: TextTokenizer) -> None:
    key = make_key()
    verdict, _ = radioactivity_sequential(suspect(None, 0.0), [key], prompts(400), tokenizer,
                                          sequential_config(), PLAN, max_new_tokens=64)  # fmt: skip
    assert verdict.decision != "evidence"
    assert verdict.counts["looks_taken"] == 3
    assert verdict.counts["response_tokens"] == 4000
    assert verdict.p_value is not None
    looks = verdict.statistic["looks"]
    assert isinstance(looks, tuple)
    # the sequential p-value is the smallest p_k / share_k
    ratios = [float(look["p_value"]) / float(look["alpha_share"]) for look in looks if isinstance(look, Mapping)]
    assert len(ratios) == 3
    expected = min([1.0, *ratios])
    assert verdict.p_value == pytest.approx(expected, rel=1e-9)


def test_the_sequential_rule_keeps_its_level_over_a_thousand_wrong_keys(
    make_key: KeyMaker, tokenizer: TextTokenizer
) -> None:
    """Wrong keys on one clean transcript: the share crossing any look stays under alpha's binomial limit."""
    key = make_key()
    _, transcript = radioactivity_sequential(suspect(None, 0.0), [key], prompts(400), tokenizer,
                                             sequential_config(null_keys=0), PLAN, max_new_tokens=64)  # fmt: skip
    keys = wrong_keys(key, 1000, "sequential-test")
    crossed = {0.05: np.zeros(1000, bool), 0.01: np.zeros(1000, bool)}
    for budget, share in zip(PLAN.looks, PLAN.shares(), strict=True):
        sequences = _closed_sequences(transcript, tokenizer, budget)
        scheme = load_scheme(key)
        units, _ = _score_rows(scheme, sequences)
        table = _tuple_table(scheme, sequences, units)
        weights = np.minimum(table.counts, 16).astype(float)
        statistic = TupleStatistic("weighted", weights, scheme.trials_per_unit, scheme.success_probability)
        values = np.array([statistic.value(_hits_under(load_scheme(k), table, sequences)) for k in keys])
        p_values, _ = statistic.null_p_values(values)
        for level, mask in crossed.items():
            mask |= p_values <= level * share
    assert crossed[0.05].sum() <= 69  # 99.9 % quantile of Binomial(1000, 0.05)
    assert crossed[0.01].sum() <= 20


# -- the suggestive band -----------------------------------------------------------------


def test_decide_reads_the_suggestive_band_as_inconclusive() -> None:
    assert decide(0.0035, 1e-3, [], suggestive=0.05) == "inconclusive"
    assert decide(0.0035, 1e-3, []) == "no-evidence"
    assert decide(0.2, 1e-3, [], suggestive=0.05) == "no-evidence"
    assert decide(1e-4, 1e-3, [], suggestive=0.05) == "evidence"


def test_recommended_budget_grows_as_the_evidence_weakens() -> None:
    strong = recommended_budget(1e-3 * 1.01, 1e-3, 25_000)
    weak = recommended_budget(0.04, 1e-3, 25_000)
    assert strong is not None
    assert weak is not None
    assert 25_000 <= strong < weak
    assert recommended_budget(0.6, 1e-3, 25_000) is None


def test_a_p_value_between_alpha_and_suggestive_is_inconclusive_with_a_budget(
    make_key: KeyMaker, tokenizer: TextTokenizer
) -> None:
    key = make_key()
    model = suspect(key, 0.1)
    first, transcript = radioactivity(model, [key], prompts(80), tokenizer,
                                      RadioactivityConfig(budget_tokens=3000, min_tuples=500, null_keys=40),
                                      max_new_tokens=64)  # fmt: skip
    assert first.p_value is not None
    assert 0 < first.p_value < 1e-8
    # an alpha below the observed p: the same data now lies in the suggestive band
    strict = RadioactivityConfig(budget_tokens=3000, min_tuples=500, null_keys=40, alpha=first.p_value / 1000)
    verdict = radioactivity_from_transcript(transcript, [key], tokenizer, strict, exploratory=True)
    assert verdict.decision == "inconclusive"
    strict_plain, _ = radioactivity(model, [key], prompts(80), tokenizer, strict, max_new_tokens=64)
    assert strict_plain.decision == "inconclusive"
    assert any("suggestive" in reason for reason in strict_plain.reasons)
    budget = strict_plain.counts["recommended_budget_tokens"]
    assert isinstance(budget, int)
    assert budget > 3000
    no_band = RadioactivityConfig(budget_tokens=3000, min_tuples=500, null_keys=40, alpha=first.p_value / 1000,
                                  suggestive=None)  # fmt: skip
    off, _ = radioactivity(model, [key], prompts(80), tokenizer, no_band, max_new_tokens=64)
    assert off.decision == "no-evidence"


# -- sealing -----------------------------------------------------------------------------


def sealed_run(key: TextKey, tokenizer: TextTokenizer, signer: NoteSigner) -> Transcript:
    config = RadioactivityConfig(budget_tokens=2000, min_tuples=200, null_keys=20)
    _, transcript = radioactivity(suspect(key, 0.1), [key], prompts(80), tokenizer, config, max_new_tokens=64,
                                  signer=signer)  # fmt: skip
    return transcript


def test_a_sealed_transcript_verifies_and_round_trips(make_key: KeyMaker, tokenizer: TextTokenizer) -> None:
    key = make_key()
    signer = NoteSigner.generate("example.invalid/theft")
    transcript = sealed_run(key, tokenizer, signer)
    again = Transcript.from_jsonl(transcript.to_jsonl())
    again.verify(signer.vkey)
    assert again.to_jsonl() == transcript.to_jsonl()
    assert again.seal is not None
    assert all(again.seal.sealed_at <= e.asked_at <= e.answered_at for e in again.exchanges)
    assert again.sampling["max_new_tokens"] == 64
    record = again.preregistration
    assert record["key_ids"] == (key.key_id,)
    registered = RadioactivityConfig(budget_tokens=2000, min_tuples=200, null_keys=20)
    verdict = radioactivity_from_transcript(again, [key], tokenizer, registered)
    pack = as_mapping(verdict.evidence["preregistration"])
    assert pack["status"] == "sealed"
    assert pack["first_query_at"] is not None
    assert pack["transcript_signer"] == signer.vkey


def test_an_edited_transcript_is_detected_even_with_its_hashes_recomputed(
    make_key: KeyMaker, tokenizer: TextTokenizer
) -> None:
    key = make_key()
    signer = NoteSigner.generate("example.invalid/theft")
    lines = sealed_run(key, tokenizer, signer).to_jsonl().decode().splitlines()
    record = json.loads(lines[3])
    record["response"] = record["response"] + " w1"
    record["response_sha256"] = __import__("hashlib").sha256(record["response"].encode()).hexdigest()
    lines[3] = json.dumps(record, sort_keys=True)
    with pytest.raises(InvalidInputError, match="edited"):
        Transcript.from_jsonl(("\n".join(lines) + "\n").encode())
    # the forger also recomputes the chain head in the signature line: the signature still fails
    forged = Transcript.from_jsonl(("\n".join(lines[:-1]) + "\n").encode())
    signature = json.loads(lines[-1])
    signature["chain_sha256"] = forged.chain_head()
    lines[-1] = json.dumps(signature, sort_keys=True)
    reread = Transcript.from_jsonl(("\n".join(lines) + "\n").encode())
    with pytest.raises(TheftError, match="edited"):
        reread.verify(signer.vkey)


def test_unsigned_or_foreign_transcripts_fail_verification(make_key: KeyMaker, tokenizer: TextTokenizer) -> None:
    key = make_key()
    signer = NoteSigner.generate("example.invalid/theft")
    other = NoteSigner.generate("example.invalid/other")
    transcript = sealed_run(key, tokenizer, signer)
    with pytest.raises(TheftError, match="another key"):
        transcript.verify(other.vkey)
    lines = transcript.to_jsonl().decode().splitlines()
    stripped = Transcript.from_jsonl(("\n".join(lines[:-1]) + "\n").encode())
    with pytest.raises(TheftError, match="not sealed and signed"):
        stripped.verify(signer.vkey)


def test_other_settings_are_refused_or_labelled_exploratory(make_key: KeyMaker, tokenizer: TextTokenizer) -> None:
    key = make_key()
    transcript = sealed_run(key, tokenizer, NoteSigner.generate("example.invalid/theft"))
    smaller = RadioactivityConfig(budget_tokens=1500, min_tuples=200, null_keys=20)
    with pytest.raises(TheftError, match="pre-registration"):
        radioactivity_from_transcript(transcript, [key], tokenizer, smaller)
    exploratory = radioactivity_from_transcript(transcript, [key], tokenizer, smaller, exploratory=True)
    assert exploratory.decision == "inconclusive"
    assert exploratory.reasons[0].startswith("exploratory")
    assert as_mapping(exploratory.evidence["preregistration"])["status"] == "exploratory"
    with pytest.raises(TheftError, match="pre-registration"):
        radioactivity_from_transcript(transcript, [key], tokenizer,
                                      RadioactivityConfig(budget_tokens=2000, min_tuples=200, null_keys=20,
                                                          statistic="distinct"))  # fmt: skip
    registered = RadioactivityConfig(budget_tokens=2000, min_tuples=200, null_keys=20)
    other_key = make_key()
    with pytest.raises(TheftError, match="pre-registration"):
        radioactivity_from_transcript(transcript, [other_key], tokenizer, registered)


def test_the_report_says_what_was_tested_and_what_it_does_not_show(
    make_key: KeyMaker, tokenizer: TextTokenizer
) -> None:
    key = make_key()
    config = RadioactivityConfig(budget_tokens=2000, min_tuples=200, null_keys=20)
    verdict, _ = radioactivity(suspect(None, 0.0), [key], prompts(80), tokenizer, config, max_new_tokens=64)
    page = render_html(verdict)
    assert "2000 response tokens" in page
    assert "does not show" in page
