"""Detection rules every scheme shares: de-duplication, prompt exclusion, windows, key checks, bad input."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

from tracemark._json import as_float
from tracemark.errors import InvalidInputError, KeyMismatchError, ModelLoadError
from tracemark.keys import Keyring, TextKey
from tracemark.text import TextTokenizer, detect_tokens, detect_watermark, new_text_key, tokenizer_fingerprint
from tracemark.text._schemes.native import NativeScheme

from .test_native import make_key, marked_sequence


def test_repeated_units_are_scored_once() -> None:
    key = make_key()
    scheme = NativeScheme(key)
    # find a green unit and repeat it many times: without de-duplication it looks marked
    rng = np.random.default_rng(0)
    while True:
        unit = rng.integers(0, 8192, 3)
        if scheme.green(unit[None, :])[0]:
            break
    sequence = np.tile(unit, 100)
    deduplicated = detect_tokens(sequence, key)
    counted = detect_tokens(sequence, key, deduplicate=False)
    assert deduplicated.tokens_scored == 3
    assert deduplicated.tokens_repeated == sequence.shape[0] - 2 - 3
    assert not deduplicated.marked
    assert counted.tokens_scored == sequence.shape[0] - 2
    assert counted.p_value < deduplicated.p_value


def test_prompt_tokens_are_never_scored() -> None:
    key = make_key()
    rng = np.random.default_rng(5)
    marked = marked_sequence(NativeScheme(key), 120, rng)
    # the marked text is the prompt; the answer is unmarked random text
    answer = rng.integers(0, 8192, 120).tolist()
    sequence = np.array(marked + answer)
    with_prompt = detect_tokens(sequence, key, prompt_length=len(marked))
    without_prompt = detect_tokens(sequence, key)
    assert with_prompt.tokens_in_prompt == len(marked)
    assert with_prompt.tokens_scored == len(answer)
    assert not with_prompt.marked
    assert without_prompt.marked


def test_windowed_scan_finds_a_marked_span_inside_human_text() -> None:
    key = make_key()
    rng = np.random.default_rng(8)
    human_before = rng.integers(0, 8192, 900).tolist()
    marked = marked_sequence(NativeScheme(key), 200, rng)
    human_after = rng.integers(0, 8192, 900).tolist()
    sequence = np.array(human_before + marked + human_after)
    verdict = detect_tokens(sequence, key)
    assert verdict.marked
    assert verdict.windows_tested > 50
    assert "Bonferroni" in verdict.correction
    assert verdict.spans
    span = min(verdict.spans, key=lambda s: s.p_value_corrected)
    assert span.start_token >= 850
    assert span.end_token <= 1160
    whole_only = detect_tokens(sequence, key, scan_windows=False)
    assert verdict.p_value < whole_only.p_value


def test_unmarked_random_text_has_uniform_p_values() -> None:
    key = make_key()
    rng = np.random.default_rng(21)
    p_values = np.array([detect_tokens(rng.integers(0, 8192, 100), key, scan_windows=False).p_value
                         for _ in range(2000)])  # fmt: skip
    # binomial p-values are discrete and conservative: P(p <= a) <= a
    for alpha in (0.01, 0.05, 0.1):
        assert (p_values <= alpha).mean() <= alpha + 3 * np.sqrt(alpha / 2000)
    assert (p_values <= 0.5).mean() > 0.35


def test_token_ids_outside_the_vocabulary_mean_a_wrong_tokenizer() -> None:
    with pytest.raises(KeyMismatchError):
        detect_tokens(np.array([1, 2, 99_999]), make_key())


def test_key_for_another_tokenizer_is_refused(word_model: Path, tmp_path: Path) -> None:
    from tests.conftest import write_word_level_model_dir

    keyring = Keyring()
    keyring.create()
    key = new_text_key(keyring, "native", word_model)
    other = write_word_level_model_dir(tmp_path / "other", ["x", "y", "z"] * 1)
    with pytest.raises(KeyMismatchError, match="tokenizer"):
        detect_watermark("x y z", key, TextTokenizer(other))


def test_key_for_another_vocab_size_is_refused(word_model: Path, tmp_path: Path) -> None:
    from tests.conftest import write_word_level_model_dir

    keyring = Keyring()
    keyring.create()
    key = new_text_key(keyring, "native", word_model)
    bigger = write_word_level_model_dir(tmp_path / "bigger", [f"w{i}" for i in range(2000)], vocab_size=4096)
    with pytest.raises(KeyMismatchError, match="vocab_size"):
        detect_watermark("w1 w2 w3", key, TextTokenizer(bigger))


def _marked_words(key: TextKey, n: int, seed: int) -> str:
    scheme = NativeScheme(key)
    ids = marked_sequence(scheme, n, np.random.default_rng(seed), strength=0.95)
    return " ".join("[UNK]" if i == 0 else f"w{i - 1}" for i in ids)


def test_canonicalisation_defeats_invisible_and_homoglyph_tricks(word_model: Path) -> None:
    keyring = Keyring()
    keyring.create()
    tokenizer = TextTokenizer(word_model)
    key = NativeScheme.new_key(
        secret_source=keyring.derive_secret, vocab_size=tokenizer.vocab_size, tokenizer_sha256=tokenizer.sha256
    )
    text = _marked_words(key, 150, seed=4).replace("[UNK]", "w0")
    clean = detect_watermark(text, key, tokenizer)
    assert clean.marked
    # zero-width characters inside every word and Cyrillic look-alikes would split or change every token
    attacked = "".join(ch + "\u200b" if ch.isdigit() else ch for ch in text).replace("w", "\u051d")
    assert attacked != text
    verdict = detect_watermark(attacked, key, tokenizer)
    assert as_float(verdict.canonicalization["invisible_removed"]) > 100
    assert as_float(verdict.canonicalization["confusables_mapped"]) > 100
    assert verdict.hits == clean.hits
    assert verdict.marked


@pytest.mark.parametrize("text", ["", "   \n", "\u200b\u200b"])
def test_empty_input_is_refused(word_model: Path, text: str) -> None:
    keyring = Keyring()
    keyring.create()
    key = new_text_key(keyring, "native", word_model)
    with pytest.raises(InvalidInputError):
        detect_watermark(text, key, TextTokenizer(word_model))


def test_binary_and_huge_inputs_are_refused(word_model: Path) -> None:
    keyring = Keyring()
    keyring.create()
    key = new_text_key(keyring, "native", word_model)
    tokenizer = TextTokenizer(word_model)
    with pytest.raises(InvalidInputError, match="NUL"):
        detect_watermark("w1 \x00 w2", key, tokenizer)
    with pytest.raises(InvalidInputError, match="limit"):
        detect_watermark("w1 " * 2_000_000, key, tokenizer)


def test_verdict_json_has_the_documented_fields(word_model: Path) -> None:
    keyring = Keyring()
    keyring.create()
    key = new_text_key(keyring, "native", word_model)
    text = _marked_words(key, 60, seed=2).replace("[UNK]", "w0")
    verdict = detect_watermark(text, key, TextTokenizer(word_model), explain=True)
    data = verdict.to_json()
    for field in ("scheme", "key_id", "p_value", "score", "tokens_scored", "tokens_total", "spans", "versions"):
        assert field in data
    assert data["format"] == "tracemark.text.verdict/v1"
    assert data["versions"]["tracemark"]
    assert len(data["token_marks"]) == verdict.tokens_total
    statuses = {mark[2] for mark in data["token_marks"]}
    assert statuses <= {"hit", "miss", "repeat", "context", "prompt"}
    assert "hit" in statuses
    assert os.fspath(word_model) not in str(data["params"])


def test_fast_whole_text_path_equals_the_general_path() -> None:
    key = make_key()
    rng = np.random.default_rng(13)
    for length in (1, 2, 3, 50, 300):
        ids = rng.integers(0, 8192, length)
        if length > 100:
            ids[60:90] = ids[10:40]  # repeated stretch
        for prompt in (0, 7):
            fast = detect_tokens(ids, key, scan_windows=False, prompt_length=prompt)
            general = detect_tokens(ids, key, scan_windows=False, prompt_length=prompt, explain=True)
            for field in ("hits", "tokens_scored", "tokens_repeated", "tokens_unscorable", "tokens_in_prompt"):
                assert getattr(fast, field) == getattr(general, field), field
            assert fast.p_value == pytest.approx(general.p_value, rel=1e-12)


def test_batch_detection_equals_one_call_per_text() -> None:
    from tracemark.text import detect_batch

    key = make_key()
    rng = np.random.default_rng(17)
    texts = [rng.integers(0, 8192, int(rng.integers(1, 300))) for _ in range(200)]
    texts[3] = np.tile(texts[4][:10], 20)
    texts.append(np.array(marked_sequence(NativeScheme(key), 150, rng)))
    batch = detect_batch(texts, key)
    assert len(batch) == len(texts)
    for ids, verdict in zip(texts, batch, strict=True):
        single = detect_tokens(ids, key, scan_windows=False)
        assert (verdict.hits, verdict.tokens_scored, verdict.tokens_repeated) == (
            single.hits,
            single.tokens_scored,
            single.tokens_repeated,
        )
        assert verdict.p_value == pytest.approx(single.p_value, rel=1e-9)
    assert batch[-1].marked


def test_every_verdict_states_what_its_p_value_is_over() -> None:
    # a p-value is over keys, not texts: the verdict says so, since under one key texts that
    # share boilerplate are flagged together (docs/text-watermark.md, "False positives")
    verdict = detect_tokens(np.random.default_rng(1).integers(0, 8192, 300), make_key())
    statement = verdict.to_json()["null_hypothesis"]
    assert "over the key" in statement
    assert "texts sharing passages" in statement


@pytest.mark.parametrize("content", [b"[1, 2]", b'"a tokenizer"', b"{not json"])
def test_a_tokenizer_json_that_is_no_object_is_refused(content: bytes) -> None:
    with pytest.raises(ModelLoadError):
        tokenizer_fingerprint(content)
