"""Case and layout variants of a text, tested beside it when the text looks re-cased or re-wrapped.

A token-level mark is keyed on token ids, and upper-casing a text changes nearly every
token: ``"The cat"`` and ``"THE CAT"`` share no token.  A reader still sees the same
words, so detection also tests variants that undo the usual edits:

* ``lower``: every letter lower-cased, when the text looks re-cased (mostly capitals, or
  most words capitalised: ALL CAPS, Title Case);
* ``sentence``: lower-cased, then the first letter of the text and of each sentence
  capitalised (recovers the tokens of a generated text's sentence starts);
* ``unwrapped``: single line breaks inside paragraphs joined with spaces, when the text
  looks like prose wrapped at a fixed width (:func:`looks_wrapped`; code does not).

Which variants are tested depends on the text alone, never on the key, so under the null
hypothesis (the text was written without the key) each variant's p-value is valid, and
the smallest of ``k`` p-values times ``k`` (Bonferroni) is a valid p-value for the union.
Every variant has the length of the text it came from, character for character, so
token offsets need no second map.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

#: Longest text (characters) whose variants are tested.
MAX_VARIANT_CHARS = 1 << 18
#: Share of capitals among letters above which a text counts as upper-cased.
UPPER_SHARE = 0.6
#: Share of words (two or more letters) starting with a capital above which a text counts as title-cased.
TITLE_SHARE = 0.6
_WORD = re.compile(r"[^\W\d_]{2,}")
_SENTENCE_START = re.compile(r"(^|[.!?]\s+|\n\s*)([^\W\d_])")
_SOFT_BREAK = re.compile(r"(?<=\S)\n(?=\S)")


@dataclass(frozen=True)
class TextVariant:
    """A variant of a text: its name and its characters (same length as the text)."""

    name: str
    text: str


def _same_length_lower(text: str) -> str:
    lowered = text.lower()
    if len(lowered) == len(text):
        return lowered
    # a few letters lower-case to two characters (e.g. U+0130): keep those as they are
    return "".join(ch if len(ch.lower()) != 1 else ch.lower() for ch in text)


def looks_recased(text: str) -> bool:
    """Whether ``text`` looks upper-cased or title-cased (see :data:`UPPER_SHARE`, :data:`TITLE_SHARE`)."""
    letters = [ch for ch in text if ch.isalpha()]
    if len(letters) < 8:
        return False
    upper = sum(1 for ch in letters if ch.isupper())
    if upper > UPPER_SHARE * len(letters):
        return True
    words = _WORD.findall(text)
    if len(words) < 4:
        return False
    capitalised = sum(1 for word in words if word[0].isupper())
    return capitalised > TITLE_SHARE * len(words)


def sentence_case(text: str) -> str:
    """Lower-case ``text``, then capitalise the first letter of the text and of each sentence."""
    lowered = _same_length_lower(text)

    def capitalise(match: re.Match[str]) -> str:
        upper = match.group(2).upper()
        return match.group(1) + (upper if len(upper) == 1 else match.group(2))

    return _SENTENCE_START.sub(capitalise, lowered)


def unwrap_lines(text: str) -> str:
    """Single line breaks between non-blank lines become spaces (character for character)."""
    return _SOFT_BREAK.sub(" ", text)


def looks_wrapped(text: str) -> bool:
    """Whether ``text`` looks like prose wrapped at a fixed width: at least two soft line breaks, and the
    lines before them of a similar length between 30 and 120 characters (code's lines vary far more)."""
    ends = [m.start() for m in _SOFT_BREAK.finditer(text)]
    if len(ends) < 2:
        return False
    lengths = [end - (text.rfind("\n", 0, end) + 1) for end in ends]
    longest = max(lengths)
    similar = sum(1 for n in lengths if n >= 0.7 * longest)
    return 30 <= longest <= 120 and similar >= 0.8 * len(lengths)


def text_variants(text: str) -> list[TextVariant]:
    """The text as given, then the variants its own shape calls for (see the module docstring).

    Texts over :data:`MAX_VARIANT_CHARS` are tested as given only (each variant costs one more
    detection).
    """
    variants = [TextVariant("as given", text)]
    if len(text) > MAX_VARIANT_CHARS:
        return variants
    if looks_recased(text):
        variants.append(TextVariant("lower", _same_length_lower(text)))
        variants.append(TextVariant("sentence", sentence_case(text)))
    if looks_wrapped(text):
        unwrapped = unwrap_lines(text)
        variants += [TextVariant(f"{v.name}, unwrapped", unwrap_lines(v.text)) for v in variants[1:]]
        variants.append(TextVariant("unwrapped", unwrapped))
    return variants
