"""Contract tests over every text attack plug-in, and what canonicalisation undoes."""

from __future__ import annotations

import numpy as np
import pytest

from tracemark.redteam import TEXT_ATTACKS, AttackContext, TextAttack
from tracemark.text import canonicalize

TEXT = (
    "The package maintainer uploads a new version. Users install it with apt. The system keeps a log of "
    "every change, and the documentation explains each option in detail. Errors are reported to the team."
)
HUMAN = ("Yesterday I walked to the market and bought apples.", "My neighbour plays the piano every evening.")


@pytest.mark.parametrize("attack", list(TEXT_ATTACKS.values()), ids=list(TEXT_ATTACKS))
def test_attack_contract(attack: TextAttack) -> None:
    assert attack.name
    assert attack.version.isdigit()
    assert attack.strength_meaning
    assert attack.level in {"character", "word", "document", "model"}
    assert attack.strengths
    assert all(0.0 <= s <= 1.0 for s in attack.strengths)
    context = AttackContext(same_side=(TEXT, TEXT[::-1]), human=HUMAN)
    strongest = max(attack.strengths)
    first = attack.apply(TEXT, strongest, np.random.default_rng(7), context)
    again = attack.apply(TEXT, strongest, np.random.default_rng(7), context)
    assert isinstance(first, str)
    assert first == again  # seeded: reproducible
    if attack.name != "copy-paste-mixture":
        assert first != TEXT  # the attack does something at its strongest setting
    with pytest.raises(ValueError, match="strength"):
        attack.apply(TEXT, 1.5, np.random.default_rng(0))


@pytest.mark.parametrize("name", ["zero-width", "bidi"])
def test_invisible_characters_are_undone_by_canonicalisation(name: str) -> None:
    attacked = TEXT_ATTACKS[name].apply(TEXT, 1.0, np.random.default_rng(1))
    assert len(attacked) > len(TEXT)
    assert canonicalize(attacked).text == canonicalize(TEXT).text


def test_homoglyphs_change_letters_but_not_length_of_words() -> None:
    attacked = TEXT_ATTACKS["homoglyph"].apply(TEXT, 1.0, np.random.default_rng(2))
    assert attacked != TEXT
    assert len(attacked.split()) == len(TEXT.split())
    assert any(ord(ch) > 127 for ch in attacked)


def test_span_attack_keeps_the_text_inside_human_text() -> None:
    span = TEXT_ATTACKS["span-in-human-text"]
    attacked = span.apply(TEXT, 0.25, np.random.default_rng(3), AttackContext(human=HUMAN))
    assert TEXT in attacked
    assert len(TEXT) / len(attacked) == pytest.approx(0.25, abs=0.05)
