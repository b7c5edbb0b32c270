"""The ``typos`` variant (#12): misspelt words repaired from the tokenizer alone, never from the key."""

from __future__ import annotations

import re
from collections.abc import Callable

import numpy as np
import pytest

from tests.support.keys import fixed_secret
from tests.support.marked_text import english_text as _english_text
from tracemark.keys import TextKey
from tracemark.text import TextTokenizer, detect_watermark
from tracemark.text import _detect as detect_module
from tracemark.text._schemes.native import NativeScheme
from tracemark.text._typos import Lexicon, looks_typoed, repair_typos, spellings
from tracemark.text._variants import TextVariant, text_variants

_ENGLISH = " ".join(
    (
        "the of and to in is for that with as on are by this be it from or an can not which you at will all",
        "has one their there been more when use used other into new some two also time these only then them",
        "its than any file may should first each over most such data system where after before under while",
        "because between work number example function value program package user server option support code",
        "output input model order group point level state return string object class module error list name",
        "line change version",
    )
).split()


def _setup() -> tuple[TextKey, TextTokenizer, list[int]]:
    from tests.conftest import REFERENCE_MODEL

    tokenizer = TextTokenizer(REFERENCE_MODEL)
    key = NativeScheme.new_key(secret_source=fixed_secret, vocab_size=tokenizer.vocab_size,
                               tokenizer_sha256=tokenizer.sha256, params={"context_width": 2})  # fmt: skip
    single = [int(tokenizer.encode(" " + w).ids[0]) for w in _ENGLISH if tokenizer.encode(" " + w).ids.shape[0] == 1]
    return key, tokenizer, single


# A second typo generator, written apart from the red team's: QWERTY row neighbours and doubled letters.
_ROWS = ("qwertyuiop", "asdfghjkl", "zxcvbnm")


def _row_neighbour(ch: str, rng: np.random.Generator) -> str:
    for row in _ROWS:
        at = row.find(ch.lower())
        if at >= 0:
            options = [row[j] for j in (at - 1, at + 1) if 0 <= j < len(row)]
            return options[int(rng.integers(len(options)))]
    return ch


def _keyboard_and_doubling(text: str, share: float, rng: np.random.Generator) -> str:
    def edit(match: re.Match[str]) -> str:
        word = match.group()
        if rng.random() >= share:
            return word
        i = int(rng.integers(len(word)))
        if rng.random() < 0.5:
            return word[: i + 1] + word[i] + word[i + 1 :]
        return word[:i] + _row_neighbour(word[i], rng) + word[i + 1 :]

    return re.sub(r"[A-Za-z]+", edit, text)


def _red_team_typos(text: str, share: float, rng: np.random.Generator) -> str:
    from tracemark.redteam import TEXT_ATTACKS

    return TEXT_ATTACKS["typo"].apply(text, share, rng)


Typos = Callable[[str, float, np.random.Generator], str]


@pytest.mark.parametrize("typos", [_red_team_typos, _keyboard_and_doubling], ids=["red-team", "keyboard-doubling"])
def test_repaired_typos_restore_detection(typos: Typos) -> None:
    key, tokenizer, words = _setup()
    found_plain = found = 0
    for seed in range(6):
        text = _english_text(key, tokenizer, words, seed, marked=True)
        edited = typos(text, 0.5, np.random.default_rng(seed))
        found_plain += detect_watermark(edited, key, tokenizer, variants=False, alpha=1e-6).marked
        verdict = detect_watermark(edited, key, tokenizer, alpha=1e-6, explain=True)
        found += verdict.marked
        assert verdict.canonicalization["variant"] == "typos"
        assert "Bonferroni x2" in verdict.p_value_method
        assert all(0 <= m.start_char <= m.end_char <= len(edited) for m in verdict.token_marks)
    assert found == 6
    assert found_plain <= 1


def test_the_repair_never_consults_the_key(monkeypatch: pytest.MonkeyPatch) -> None:
    key, tokenizer, words = _setup()
    other, _, _ = _setup()
    assert other.key_id != key.key_id
    seen: list[list[tuple[str, str]]] = []

    def recording(text: str, tokenizer: TextTokenizer | None = None) -> list[TextVariant]:
        variants = text_variants(text, tokenizer)
        seen.append([(v.name, v.text) for v in variants])
        return variants

    monkeypatch.setattr(detect_module, "text_variants", recording)
    edited = _red_team_typos(_english_text(key, tokenizer, words, 7, marked=True), 0.5, np.random.default_rng(7))
    marked = detect_watermark(edited, key, tokenizer, alpha=1e-6)
    unmarked = detect_watermark(edited, other, tokenizer, alpha=1e-6)
    assert marked.marked
    assert not unmarked.marked
    assert len(seen) == 2
    assert seen[0] == seen[1]
    assert [name for name, _ in seen[0]] == ["as given", "typos"]


def test_clean_text_is_untouched() -> None:
    key, tokenizer, words = _setup()
    lexicon = Lexicon.of(tokenizer)
    for seed in range(4):
        text = _english_text(key, tokenizer, words, 20 + seed, marked=True)
        assert not looks_typoed(text, lexicon)
        assert [v.name for v in text_variants(text, tokenizer)] == ["as given"]
        verdict = detect_watermark(text, key, tokenizer)
        assert verdict.p_value == detect_watermark(text, key, tokenizer, variants=False).p_value
    prose = "The function returns the value of the first option in the list, and the user can change it later. "
    assert not looks_typoed(prose * 3, lexicon)
    assert repair_typos(prose * 3, tokenizer)[0] == prose * 3  # each word occurs more than once: kept


def test_unmarked_typoed_text_is_not_flagged() -> None:
    key, tokenizer, words = _setup()
    p_values = []
    for seed in range(150):
        text = _english_text(key, tokenizer, words, 1000 + seed, marked=False)
        typos = _red_team_typos if seed % 2 else _keyboard_and_doubling
        edited = typos(text, 0.5, np.random.default_rng(seed))
        verdict = detect_watermark(edited, key, tokenizer, scan_windows=False)
        assert verdict.canonicalization["variants_tested"] == 2
        p_values.append(verdict.p_value)
    p = np.array(p_values)
    assert np.mean(p <= 0.05) <= 0.05 + 3 * np.sqrt(0.05 * 0.95 / 150)
    assert not (p <= 1e-6).any()


def test_spellings_and_offsets() -> None:
    assert "one." in spellings("on.e")
    assert "the" in spellings("hte")
    assert "the" in spellings("thee")
    assert "the" in spellings("th")
    assert "The" in spellings("he", capital=True)
    assert "The" not in spellings("he")
    assert "txe" not in spellings("Txe")
    assert "tae" not in spellings("Txe")
    _, tokenizer, _ = _setup()
    text = "We wnat the fiel to be wirtten. wnat"
    repaired, origin, changed = repair_typos(text, tokenizer)
    assert changed >= 2
    assert "file" in repaired
    assert "written" in repaired
    assert origin.shape[0] == len(repaired)
    assert "wnat" in repaired  # it occurs twice: a word of the text, kept
    assert all(text[i] == ch for ch, i in zip(repaired, origin.tolist(), strict=True) if ch == " ")
