"""Radioactivity: power on suspects biased toward the key, calibration on clean ones, every inconclusive case."""

from __future__ import annotations

import itertools
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from numpy.typing import NDArray

from tests.conftest import write_word_level_model_dir
from tests.unit.theft.conftest import (
    assert_clean,
    biased_completion,
    next_token_probabilities,
    prompts,
    read_texts,
    words,
)
from tracemark._json import as_float, as_mapping, as_sequence, thaw_object
from tracemark.errors import InvalidInputError, KeyMismatchError, SuspectQueryError, TheftError
from tracemark.keys import TextKey
from tracemark.text import TextTokenizer, load_scheme
from tracemark.text._schemes.native import NativeScheme
from tracemark.theft import (
    CallableNextTokenModel,
    CallableTextModel,
    RadioactivityConfig,
    TheftVerdict,
    Transcript,
    collect_completions,
    radioactivity,
    radioactivity_from_transcript,
    radioactivity_open,
    wrong_keys,
)

KeyMaker = Callable[..., TextKey]
CompletionFn = Callable[[str, int, int], str]


def closed(
    key: TextKey, tokenizer: TextTokenizer, strength: float, *, keys: list[TextKey] | None = None, **settings: object
) -> tuple[TheftVerdict, Transcript]:
    config = RadioactivityConfig(**{"budget_tokens": 3000, "min_tuples": 500, "null_keys": 60, **settings})  # type: ignore[arg-type]
    suspect = CallableTextModel(biased_completion(key if strength else None, strength), "synthetic")
    return radioactivity(suspect, keys or [key], prompts(80), tokenizer, config, max_new_tokens=64)


@pytest.mark.parametrize("statistic", ["weighted", "distinct"])
def test_a_weakly_biased_suspect_is_caught(make_key: KeyMaker, tokenizer: TextTokenizer, statistic: str) -> None:
    key = make_key()
    verdict, _ = closed(key, tokenizer, 0.1, statistic=statistic)
    assert verdict.decision == "evidence"
    assert verdict.p_value is not None
    assert verdict.p_value < 1e-8
    assert as_float(verdict.effect["ci_low"]) > 0.0
    assert verdict.null_check is not None
    assert verdict.null_check["passed"]
    assert verdict.counts["response_tokens"] == 3000


@pytest.mark.parametrize("statistic", ["weighted", "distinct"])
def test_a_clean_suspect_is_not_accused(make_key: KeyMaker, tokenizer: TextTokenizer, statistic: str) -> None:
    key = make_key()
    verdict, _ = closed(key, tokenizer, 0.0, statistic=statistic)
    assert_clean(verdict.decision, verdict.p_value, verdict.alpha, verdict.reasons)
    assert verdict.p_value is not None
    assert verdict.p_value > 1e-3
    assert verdict.null_check is not None
    assert verdict.null_check["passed"]


def test_wrong_keys_stay_calibrated_on_radioactive_data(make_key: KeyMaker, tokenizer: TextTokenizer) -> None:
    """400 wrong keys on a strongly radioactive transcript: false-positive counts below their limits."""
    key = make_key()
    verdict, _ = closed(key, tokenizer, 0.3, null_keys=400)
    check = verdict.null_check
    assert check is not None
    assert check["passed"]
    for alpha in ("0.05", "0.01"):
        level = as_mapping(as_mapping(check["levels"])[alpha])
        assert as_float(level["flagged"]) <= as_float(level["upper_limit"])
    assert as_float(check["ks_uniformity_p"]) > 1e-3
    assert check["true_key_rank_p_value"] == pytest.approx(1 / 401)


def test_wrong_keys_are_reproducible_from_their_public_seed(make_key: KeyMaker) -> None:
    key = make_key()
    first = wrong_keys(key, 3, "seed")
    again = wrong_keys(key, 3, "seed")
    other = wrong_keys(key, 3, "other")
    units = np.random.default_rng(0).integers(1, 2001, (500, 2))
    colours = [load_scheme(k).score(units.ravel()).hits for k in (*first, *again, *other)]
    assert np.array_equal(colours[0], colours[3])
    assert np.array_equal(colours[2], colours[5])
    assert not np.array_equal(colours[0], colours[6])
    assert not np.array_equal(colours[0], colours[1])


def test_bonferroni_counts_every_key_tried(make_key: KeyMaker, tokenizer: TextTokenizer) -> None:
    key = make_key()
    others = [make_key() for _ in range(3)]
    one, _ = closed(key, tokenizer, 0.02, keys=[key], null_keys=0)
    several, _ = closed(key, tokenizer, 0.02, keys=[*others, key], null_keys=0, keys_tried=40)
    assert one.p_value is not None
    assert several.p_value is not None
    assert several.p_value == pytest.approx(min(1.0, 40 * one.p_value), rel=1e-9)
    assert several.statistic["key_id"] == key.key_id
    assert several.correction["keys_tried"] == 40
    with pytest.raises(InvalidInputError):
        closed(key, tokenizer, 0.0, keys=[*others, key], keys_tried=2)


def test_budget_not_reached_is_inconclusive(make_key: KeyMaker, tokenizer: TextTokenizer) -> None:
    key = make_key()
    config = RadioactivityConfig(budget_tokens=5000, min_tuples=10, null_keys=0)
    suspect = CallableTextModel(biased_completion(None, 0.0))
    verdict, _ = radioactivity(suspect, [key], prompts(10), tokenizer, config, max_new_tokens=64)
    assert verdict.decision == "inconclusive"
    assert any("budget not reached: 640 of 5000" in r for r in verdict.reasons)


def test_failing_probes_are_inconclusive_never_clean(make_key: KeyMaker, tokenizer: TextTokenizer) -> None:
    key = make_key()
    clean = biased_completion(None, 0.0)

    def flaky(prompt: str, max_new_tokens: int, seed: int) -> str:
        if seed % 3 == 0:
            raise SuspectQueryError("refused")
        return clean(prompt, max_new_tokens, seed)

    config = RadioactivityConfig(budget_tokens=2000, min_tuples=10, null_keys=0)
    verdict, transcript = radioactivity(CallableTextModel(flaky), [key], prompts(60), tokenizer, config)
    assert transcript.failures > 0
    assert verdict.decision == "inconclusive"
    assert any("probes failed" in r for r in verdict.reasons)


def test_too_few_tuples_is_inconclusive(make_key: KeyMaker, tokenizer: TextTokenizer) -> None:
    key = make_key()
    verdict, _ = closed(key, tokenizer, 0.0, min_tuples=100_000, null_keys=0)
    assert verdict.decision == "inconclusive"
    assert any("too few tuples" in r for r in verdict.reasons)


def test_copying_a_watermarked_prompt_is_not_radioactivity(make_key: KeyMaker, tokenizer: TextTokenizer) -> None:
    """Prompts written by the watermarked model; a clean suspect that repeats its prompt before answering."""
    key = make_key()
    marked = biased_completion(key, 1.0)
    clean = biased_completion(None, 0.0)
    marked_prompts = [f"w{i} " + marked(f"w{i}", 40, 1000 + i) for i in range(60)]

    def echo(prompt: str, max_new_tokens: int, seed: int) -> str:
        return prompt + " " + clean(prompt, max_new_tokens, seed)

    config = RadioactivityConfig(budget_tokens=4000, min_tuples=500, null_keys=0)
    verdict, _ = radioactivity(CallableTextModel(echo), [key], marked_prompts, tokenizer, config, max_new_tokens=40)
    assert as_float(verdict.counts["tuples_in_prompts"]) > 1000
    assert_clean(verdict.decision, verdict.p_value, verdict.alpha, verdict.reasons)


def test_a_transcript_re_runs_to_the_same_verdict(make_key: KeyMaker, tokenizer: TextTokenizer) -> None:
    key = make_key()
    verdict, transcript = closed(key, tokenizer, 0.05, null_keys=20)
    recorded: dict[str, Any] = thaw_object(as_mapping(verdict.evidence["config"]))
    config = RadioactivityConfig(**recorded)
    again = radioactivity_from_transcript(Transcript.from_jsonl(transcript.to_jsonl()), [key], tokenizer, config)
    assert again.to_json() == verdict.to_json()
    assert (
        as_sequence(verdict.evidence["response_sha256"])[0]
        == transcript.to_jsonl().decode().splitlines()[1].split('"response_sha256": "')[1][:64]
    )
    assert as_mapping(as_sequence(verdict.evidence["keys"])[0])["commitment"] == key.commitment
    assert "secret" not in str(verdict.to_json())


def test_tampered_or_truncated_transcripts_are_refused(make_key: KeyMaker, tokenizer: TextTokenizer) -> None:
    key = make_key()
    _, transcript = closed(key, tokenizer, 0.0, null_keys=0, budget_tokens=300, min_tuples=1)
    data = transcript.to_jsonl()
    lines = data.decode().splitlines()
    first = lines[1]
    word = first.split('"response": "')[1].split(" ")[0]
    tampered = "\n".join([lines[0], first.replace(f'"response": "{word}', '"response": "w1', 1), *lines[2:]])
    with pytest.raises(InvalidInputError, match="hash"):
        Transcript.from_jsonl(tampered.encode())
    with pytest.raises(InvalidInputError, match="truncated"):
        Transcript.from_jsonl("\n".join(lines[:-1]).encode())
    for junk in (b"", b"\xff\xfe", b"[]", b'{"format": "other"}'):
        with pytest.raises(InvalidInputError):
            Transcript.from_jsonl(junk)


def test_keys_with_key_dependent_tuples_are_refused(make_key: KeyMaker, tokenizer: TextTokenizer) -> None:
    key = make_key("kgw", seeding_scheme="selfhash", context_width=2)
    with pytest.raises(TheftError, match="selfhash"):
        closed(key, tokenizer, 0.0)


def test_kgw_lefthash_keys_are_supported(make_key: KeyMaker, tokenizer: TextTokenizer) -> None:
    key = make_key("kgw")
    config = RadioactivityConfig(budget_tokens=1000, min_tuples=500)  # default null keys: 20 for KGW
    suspect = CallableTextModel(biased_completion(None, 0.0))
    verdict, _ = radioactivity(suspect, [key], prompts(30), tokenizer, config, max_new_tokens=64)
    assert_clean(verdict.decision, verdict.p_value, verdict.alpha, verdict.reasons)
    assert verdict.details[0]["scheme"] == "kgw"
    assert verdict.null_check is not None
    assert verdict.null_check["wrong_keys"] == 20


@pytest.mark.parametrize("statistic", ["mass", "top1"])
def test_open_mode_reads_the_bias_from_probabilities(
    make_key: KeyMaker, tokenizer: TextTokenizer, statistic: str
) -> None:
    key = make_key()
    config = RadioactivityConfig(budget_tokens=2000, statistic=statistic, min_tuples=200, null_keys=40, top_k=16)
    texts = read_texts(40, 50)
    radioactive = CallableNextTokenModel(next_token_probabilities(key, 1.0), "radioactive")
    clean = CallableNextTokenModel(next_token_probabilities(key, 0.0), "clean")
    hit = radioactivity_open(radioactive, [key], texts, tokenizer, config)
    miss = radioactivity_open(clean, [key], texts, tokenizer, config)
    assert hit.decision == "evidence"
    assert hit.p_value is not None
    assert hit.p_value < 1e-10
    assert miss.p_value is not None
    assert miss.p_value > 1e-3
    # between alpha and the suggestive level 0.05 a clean reading is inconclusive, never evidence
    assert miss.decision == ("inconclusive" if miss.p_value <= 0.05 else "no-evidence")
    for verdict in (hit, miss):
        assert verdict.null_check is not None
        assert verdict.null_check["passed"]
        assert verdict.counts["read_tokens"] == 2000


def test_open_mode_drops_tuples_of_the_read_text(make_key: KeyMaker, tokenizer: TextTokenizer) -> None:
    """A clean model that predicts the (watermarked) read text perfectly is not radioactive."""
    key = make_key()
    marked = biased_completion(key, 1.0)
    texts = [marked(f"w{i}", 60, i) for i in range(30)]
    follow = {}
    for text in texts:
        ids = tokenizer.encode(text).ids
        follow.update({int(a): int(b) for a, b in itertools.pairwise(ids)})

    def oracle(ids: NDArray[np.int64]) -> NDArray[np.float64]:
        probs = np.full((ids.shape[0], key.vocab_size), 1e-6)
        for row, token in enumerate(ids):
            probs[row, follow.get(int(token), 1)] = 1.0
            probs[row, (int(token) * 7) % 2000 + 1] += 0.5
        result: NDArray[np.float64] = probs / probs.sum(axis=1, keepdims=True)
        return result

    config = RadioactivityConfig(budget_tokens=1800, statistic="top1", min_tuples=100, null_keys=0, top_k=4)
    verdict = radioactivity_open(CallableNextTokenModel(oracle), [key], texts, tokenizer, config)
    assert_clean(verdict.decision, verdict.p_value, verdict.alpha, verdict.reasons)


def test_configuration_is_validated(make_key: KeyMaker, tokenizer: TextTokenizer) -> None:
    key = make_key()
    suspect = CallableTextModel(biased_completion(None, 0.0))
    for bad in (
        RadioactivityConfig(budget_tokens=0),
        RadioactivityConfig(budget_tokens=10, statistic="mass"),
        RadioactivityConfig(budget_tokens=10, alpha=1.5),
        RadioactivityConfig(budget_tokens=10, weight_cap=0),
    ):
        with pytest.raises(InvalidInputError):
            radioactivity(suspect, [key], prompts(3), tokenizer, bad)
    with pytest.raises(InvalidInputError):
        radioactivity(suspect, [], prompts(3), tokenizer, RadioactivityConfig(budget_tokens=10))
    assert words([1, 2]) == "w0 w1"


def test_open_mode_refuses_a_suspect_with_another_tokenizer(
    make_key: KeyMaker, tokenizer: TextTokenizer, tmp_path: Path
) -> None:
    other = write_word_level_model_dir(tmp_path / "other", [f"v{i}" for i in range(2000)])

    class LocalModel(CallableNextTokenModel):
        model_dir = other

    suspect = LocalModel(next_token_probabilities(make_key(), 0.0))
    with pytest.raises(KeyMismatchError, match="tokenizer"):
        radioactivity_open(suspect, [make_key()], read_texts(2, 10), tokenizer, RadioactivityConfig(budget_tokens=10))


def test_keys_with_other_tuples_are_tested_separately(make_key: KeyMaker, tokenizer: TextTokenizer) -> None:
    width_one, width_two = make_key(), make_key(context_width=2)
    with pytest.raises(InvalidInputError, match="context width"):
        closed(width_one, tokenizer, 0.0, keys=[width_one, width_two], null_keys=0)


def memorising_completion(key: TextKey | None, pool_size: int = 40, share: float = 0.3) -> CompletionFn:
    """A suspect that repeats a small pool of memorised bigrams (green under ``key`` when given, else random)
    between random words: the case the count-weighted statistic is built for."""
    candidates = np.random.default_rng(99).integers(1, 2001, (4000, 2))
    if key is not None:
        scheme = load_scheme(key)
        assert isinstance(scheme, NativeScheme)
        candidates = candidates[scheme.green(candidates)]
    pool = candidates[:pool_size]

    def complete(prompt: str, max_new_tokens: int, seed: int) -> str:
        rng = np.random.default_rng(seed)
        out: list[int] = []
        while len(out) < max_new_tokens:
            if rng.random() < share:
                out.extend(int(t) for t in pool[rng.integers(pool_size)])
            else:
                out.append(int(rng.integers(1, 2001)))
        return words(out[:max_new_tokens])

    return complete


def test_weighting_by_emission_counts_finds_memorised_tuples(make_key: KeyMaker, tokenizer: TextTokenizer) -> None:
    key = make_key()
    suspect = CallableTextModel(memorising_completion(key))
    # collected without a pre-registration: both statistics are then tests the reader may run
    transcript = collect_completions(suspect, prompts(60), tokenizer, budget_tokens=3000, max_new_tokens=64)
    results = {}
    for statistic in ("weighted", "distinct"):
        config = RadioactivityConfig(budget_tokens=3000, statistic=statistic, null_keys=50, min_tuples=500)
        results[statistic] = radioactivity_from_transcript(transcript, [key], tokenizer, config)
    weighted, distinct = results["weighted"], results["distinct"]
    assert weighted.decision == "evidence"
    assert weighted.log10_p_value is not None
    assert weighted.log10_p_value < -10
    assert_clean(distinct.decision, distinct.p_value, distinct.alpha, distinct.reasons)
    assert weighted.null_check is not None
    assert weighted.null_check["passed"]


def test_a_repetitive_clean_suspect_is_not_accused_by_the_weighted_statistic(
    make_key: KeyMaker, tokenizer: TextTokenizer
) -> None:
    key = make_key()
    suspect = CallableTextModel(memorising_completion(None))
    config = RadioactivityConfig(budget_tokens=3000, null_keys=200, min_tuples=500)
    verdict, _ = radioactivity(suspect, [key], prompts(60), tokenizer, config, max_new_tokens=64)
    assert_clean(verdict.decision, verdict.p_value, verdict.alpha, verdict.reasons)
    assert verdict.null_check is not None
    assert verdict.null_check["passed"]
    assert as_float(verdict.counts["repeated_positions"]) > 500


def scored_completion(key: TextKey, strength: float) -> CompletionFn:
    """Any scheme: among 4 random candidates prefer, with probability ``strength``, the one scoring most hits."""
    scheme = load_scheme(key)
    width = scheme.context_width

    def complete(prompt: str, max_new_tokens: int, seed: int) -> str:
        rng = np.random.default_rng(seed)
        out = [int(w[1:]) + 1 for w in prompt.split()][-width:]
        for _ in range(max_new_tokens):
            candidates = rng.integers(1, 2001, 4)
            pick = int(candidates[0])
            if rng.random() < strength:
                rows = np.array([[*out[-width:], int(c)] for c in candidates], dtype=np.int64)
                hits = [int(scheme.score(row).hits[-1]) for row in rows]
                pick = int(candidates[int(np.argmax(hits))])
            out.append(pick)
        return words(out[width:])

    return complete


def test_synthid_keys_count_every_tournament_layer(make_key: KeyMaker, tokenizer: TextTokenizer) -> None:
    """SynthID units carry ``depth`` Bernoulli(1/2) trials each; the weighted null uses all of them."""
    key = make_key("synthid", ngram_len=3, depth=8)
    config = RadioactivityConfig(budget_tokens=800, min_tuples=300, null_keys=30)
    marked, _ = radioactivity(
        CallableTextModel(scored_completion(key, 0.3)), [key], prompts(20), tokenizer, config, max_new_tokens=40
    )
    clean, _ = radioactivity(
        CallableTextModel(biased_completion(None, 0.0)), [key], prompts(20), tokenizer, config, max_new_tokens=40
    )
    assert marked.decision == "evidence"
    assert_clean(clean.decision, clean.p_value, clean.alpha, clean.reasons)
    assert marked.effect["null_rate"] == pytest.approx(0.5)
    for verdict in (marked, clean):
        assert verdict.null_check is not None
        assert verdict.null_check["passed"]
