"""Case and line-wrap variants: a re-cased or re-wrapped marked text is still found, at a corrected level (#23)."""

from __future__ import annotations

import textwrap
from pathlib import Path

import numpy as np
import pytest

from tests.support.marked_text import english_text as _english_text
from tracemark.keys import Keyring, TextKey
from tracemark.text import TextTokenizer, detect_watermark
from tracemark.text._schemes.native import NativeScheme
from tracemark.text._variants import (
    looks_recased,
    looks_respaced,
    respace,
    sentence_case,
    text_variants,
    unwrap_lines,
)

from .test_native import marked_sequence


def _setup(word_model: Path) -> tuple[TextKey, TextTokenizer]:
    keyring = Keyring()
    keyring.create()
    tokenizer = TextTokenizer(word_model)
    key = NativeScheme.new_key(
        secret_source=keyring.derive_secret, vocab_size=tokenizer.vocab_size, tokenizer_sha256=tokenizer.sha256
    )
    return key, tokenizer


def _marked_text(key: TextKey, seed: int, length: int = 150) -> str:
    ids = marked_sequence(NativeScheme(key), length, np.random.default_rng(seed), strength=0.9)
    return " ".join("w0" if i == 0 else f"w{i - 1}" for i in ids)


@pytest.mark.parametrize("edit", [str.upper, str.title])
def test_a_re_cased_marked_text_is_still_found(word_model: Path, edit: object) -> None:
    # before #23, upper-casing removed the mark for every scheme (0/32 native, 0/32 kgw, 1/32 synthid)
    key, tokenizer = _setup(word_model)
    text = _marked_text(key, seed=1)
    assert callable(edit)
    recased = edit(text)
    assert not detect_watermark(recased, key, tokenizer, variants=False).marked
    verdict = detect_watermark(recased, key, tokenizer)
    assert verdict.marked
    assert verdict.canonicalization["variants_tested"] == 3
    assert "Bonferroni x3" in verdict.p_value_method
    plain = detect_watermark(text, key, tokenizer)
    assert verdict.p_value == pytest.approx(min(1.0, 3 * plain.p_value), rel=1e-9)


def test_a_re_wrapped_marked_text_is_still_found(word_model: Path) -> None:
    key, tokenizer = _setup(word_model)
    wrapped = textwrap.fill(_marked_text(key, seed=2), width=40)
    assert "\n" in wrapped
    verdict = detect_watermark(wrapped, key, tokenizer)
    assert verdict.marked
    assert verdict.canonicalization["variants_tested"] == 2


def test_plain_text_is_tested_as_given_only(word_model: Path) -> None:
    key, tokenizer = _setup(word_model)
    text = _marked_text(key, seed=3)
    verdict = detect_watermark(text, key, tokenizer)
    assert verdict.canonicalization.get("variants_tested", 1) == 1
    assert verdict.p_value == detect_watermark(text, key, tokenizer, variants=False).p_value


def test_variants_keep_the_level_on_unmarked_capitals(word_model: Path) -> None:
    key, tokenizer = _setup(word_model)
    rng = np.random.default_rng(5)
    p_values = [
        detect_watermark(" ".join(f"W{int(i)}" for i in rng.integers(0, 1999, 120)), key, tokenizer).p_value
        for _ in range(300)
    ]
    assert np.mean(np.array(p_values) <= 0.05) <= 0.05 + 3 * np.sqrt(0.05 * 0.95 / 300)


def test_which_variants_depends_on_the_text_alone() -> None:
    assert not looks_recased("The cat sat on the mat. It was warm.")
    assert looks_recased("THE CAT SAT ON THE MAT. IT WAS WARM.")
    assert looks_recased("The Cat Sat On The Mat And It Was Warm")
    assert sentence_case("THE CAT SAT. IT WAS WARM!\nNEW LINE") == "The cat sat. It was warm!\nNew line"
    assert unwrap_lines("one two\nthree\n\nfour") == "one two three\n\nfour"
    wrapped = textwrap.fill("THE CAT SAT ON THE MAT AND LOOKED AT THE DOG. " * 4, 40)
    names = [v.name for v in text_variants(wrapped)]
    assert names == ["as given", "lower", "sentence", "lower, unwrapped", "sentence, unwrapped", "unwrapped"]
    assert all(len(v.text) == len(wrapped) for v in text_variants(wrapped))
    code = "def f(x):\n    return x + 1\n\n\nclass A:\n    pass\nprint(f(2))\n"
    assert [v.name for v in text_variants(code)] == ["as given"]


# --- #12: whitespace swaps and word-by-word casing on real tokens (the reference model's tokenizer) ---

_ENGLISH = [
    "the",
    "of",
    "and",
    "to",
    "in",
    "is",
    "that",
    "for",
    "it",
    "as",
    "was",
    "with",
    "be",
    "by",
    "on",
    "not",
    "he",
    "this",
    "are",
    "or",
    "his",
    "from",
    "at",
    "which",
    "but",
    "have",
    "an",
    "they",
    "you",
    "were",
    "her",
    "she",
    "there",
    "been",
    "one",
    "all",
    "we",
    "their",
    "has",
    "would",
    "when",
    "if",
    "so",
    "no",
    "will",
    "more",
    "can",
    "about",
    "other",
    "into",
    "some",
    "could",
    "them",
    "than",
    "then",
    "now",
    "only",
    "its",
    "over",
    "also",
    "after",
    "first",
    "two",
    "new",
    "where",
    "most",
    "may",
    "such",
    "through",
    "years",
    "made",
    "these",
    "many",
    "before",
    "must",
    "back",
    "under",
    "people",
    "just",
    "well",
    "because",
    "while",
    "should",
    "long",
    "own",
    "same",
    "still",
    "between",
    "last",
    "found",
    "work",
    "great",
    "very",
    "old",
    "good",
    "little",
    "world",
    "might",
    "being",
    "both",
    "part",
    "place",
    "system",
    "small",
    "number",
    "data",
    "file",
    "value",
    "list",
    "name",
    "line",
    "time",
    "way",
    "change",
    "error",
    "code",
    "output",
    "input",
    "model",
    "order",
    "group",
    "point",
    "level",
    "state",
]


def _reference_setup() -> tuple[TextKey, TextTokenizer, list[int]]:
    from tests.conftest import REFERENCE_MODEL

    keyring = Keyring()
    keyring.create()
    tokenizer = TextTokenizer(REFERENCE_MODEL)
    key = NativeScheme.new_key(
        secret_source=keyring.derive_secret, vocab_size=tokenizer.vocab_size, tokenizer_sha256=tokenizer.sha256
    )
    single = [int(tokenizer.encode(" " + w).ids[0]) for w in _ENGLISH if tokenizer.encode(" " + w).ids.shape[0] == 1]
    return key, tokenizer, single


@pytest.mark.parametrize(("attack", "strength"), [("whitespace", 1.0), ("casing", 0.5)])
def test_a_respaced_or_recased_marked_text_is_still_found(attack: str, strength: float) -> None:
    # before #12 the red team measured TPR 0.136 for every space swapped and 0.268 for half the words re-cased
    from tracemark.redteam import TEXT_ATTACKS

    key, tokenizer, words = _reference_setup()
    found_plain = found = 0
    for seed in range(6):
        text = _english_text(key, tokenizer, words, seed, marked=True)
        assert len(text_variants(text)) == 1  # clean prose: tested as given only, its verdict unchanged
        edited = TEXT_ATTACKS[attack].apply(text, strength, np.random.default_rng(seed))
        found_plain += detect_watermark(edited, key, tokenizer, variants=False, alpha=1e-6).marked
        verdict = detect_watermark(edited, key, tokenizer, alpha=1e-6, explain=True)
        found += verdict.marked
        variants_tested = verdict.canonicalization["variants_tested"]
        assert isinstance(variants_tested, int)
        assert variants_tested >= 2
        for start, end in (
            (m.start_char, m.end_char) for m in verdict.token_marks
        ):  # offsets stay in the text as given
            assert 0 <= start <= end <= len(edited)
    assert found == 6
    assert found_plain < found


def test_the_spaces_variant_maps_offsets_back() -> None:
    text = "one\ttwo  three\nfour\n\nfive six"
    variant = respace(text)
    assert variant.text == "one two three four\n\nfive six"
    assert variant.origin is not None
    assert all(ch == text[i] or ch == " " for ch, i in zip(variant.text, variant.origin.tolist(), strict=True))
    offsets = np.array([[4, 7], [8, 13], [14, 18], [25, 28]], dtype=np.int64)  # two, three, four, six
    back = variant.body_offsets(offsets)
    assert [text[a:b] for a, b in back.tolist()] == ["two", "three", "four", "six"]
    assert looks_respaced("a\tb c  d e\nf g h i")
    assert not looks_respaced("A paragraph.\n\nAnother one with words.\nAnd a line.")
    assert not looks_respaced("def f(x):\n    return x\n")


def test_word_by_word_casing_is_recognised_and_plain_prose_is_not() -> None:
    prose = "The model reads the file and writes a new list of values to the output of the system. " * 3
    assert not looks_recased(prose)
    assert not looks_recased(
        "Use the HTTP interface of the service to fetch the data for the user and the group, then write it out."
    )
    recased = "The MODEL reads THE file aND writes a NEW list of VALUES to tHE output OF the system. " * 3
    assert looks_recased(recased)


def test_variants_keep_the_level_on_respaced_and_recased_unmarked_text() -> None:
    from tracemark.redteam import TEXT_ATTACKS

    key, tokenizer, words = _reference_setup()
    p_values = []
    for seed in range(150):
        text = _english_text(key, tokenizer, words, 1000 + seed, marked=False)
        rng = np.random.default_rng(seed)
        edited = TEXT_ATTACKS["casing"].apply(TEXT_ATTACKS["whitespace"].apply(text, 0.5, rng), 0.5, rng)
        verdict = detect_watermark(edited, key, tokenizer, scan_windows=False)
        variants_tested = verdict.canonicalization["variants_tested"]
        assert isinstance(variants_tested, int)
        assert variants_tested == 6  # as given, lower, sentence, each re-spaced
        p_values.append(verdict.p_value)
    assert np.mean(np.array(p_values) <= 0.05) <= 0.05 + 3 * np.sqrt(0.05 * 0.95 / 150)
