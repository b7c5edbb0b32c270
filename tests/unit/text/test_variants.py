"""Case and line-wrap variants: a re-cased or re-wrapped marked text is still found, at a corrected level (#23)."""

from __future__ import annotations

import textwrap
from pathlib import Path

import numpy as np
import pytest

from tracemark.keys import Keyring, TextKey
from tracemark.text import TextTokenizer, detect_watermark
from tracemark.text._schemes.native import NativeScheme
from tracemark.text._variants import looks_recased, sentence_case, text_variants, unwrap_lines

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
