"""Canonicalisation: what it folds and what it must leave alone."""

from __future__ import annotations

import unicodedata

from tracemark.text import CanonicalText, _canonical, canonicalize


def test_plain_ascii_is_unchanged() -> None:
    text = "The quick brown fox jumps over the lazy dog. 0123456789 (a+b)*c"
    result = canonicalize(text)
    assert result.text == text
    assert (result.invisible_removed, result.confusables_mapped, result.nfkc_changed) == (0, 0, False)


def test_invisible_characters_are_removed() -> None:
    text = "wa\u200bter\u200cmark\u200d\u2060\ufeff\u00ad!\U000e0041"
    result = canonicalize(text)
    assert result.text == "watermark!"
    assert result.invisible_removed == 7


def test_confusables_map_to_ascii() -> None:
    # Cyrillic а, е, о, р, с and Greek ο, ν
    result = canonicalize("\u0430\u0435\u043e\u0440\u0441 \u03bf\u03bd")
    assert result.text == "aeopc ov"
    assert result.confusables_mapped == 7


def test_nfkc_folds_compatibility_forms() -> None:
    result = canonicalize("\uff37\uff41\uff54\uff45\uff52 \ufb01le \u2460")
    assert result.text == "Water file 1"
    assert result.nfkc_changed


def test_non_latin_text_survives() -> None:
    text = "Привет мир 你好 مرحبا"
    assert canonicalize(text).text.replace("\u0440", "p") != ""  # no crash, text kept
    assert "你好" in canonicalize(text).text


def test_ascii_text_is_its_own_canonical_form() -> None:
    # canonicalize returns ASCII text untouched without looking at it: that holds only while no ASCII
    # character is invisible, a look-alike, or changed by NFKC
    assert all(cp > 0x7F for cp in _canonical._TABLE)
    assert all(cp > 0x7F for cp in _canonical._BEFORE_NFKC)
    ascii_text = "".join(chr(cp) for cp in range(128))
    assert unicodedata.normalize("NFKC", ascii_text) == ascii_text
    assert canonicalize(ascii_text) == CanonicalText(ascii_text, 0, 0, False)
    mixed = "caf\u00e9 \u200bz\u0435ro \ufb01 \u03f2"
    result = canonicalize(mixed)
    assert (result.invisible_removed, result.confusables_mapped, result.nfkc_changed) == (1, 2, True)
