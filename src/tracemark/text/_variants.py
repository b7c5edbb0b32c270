"""Case and layout variants of a text, tested beside it when the text looks re-cased or re-wrapped.

A token-level mark is keyed on token ids, and upper-casing a text changes nearly every
token: ``"The cat"`` and ``"THE CAT"`` share no token.  A reader still sees the same
words, so detection also tests variants that undo the usual edits:

* ``lower``: every letter lower-cased, when the text looks re-cased (mostly capitals, or
  most words capitalised: ALL CAPS, Title Case);
* ``sentence``: lower-cased, then the first letter of the text and of each sentence
  capitalised (recovers the tokens of a generated text's sentence starts);
* ``unwrapped``: single line breaks inside paragraphs joined with spaces, when the text
  looks like prose wrapped at a fixed width (:func:`looks_wrapped`; code does not);
* ``spaces`` (since #12): every run of spaces and tabs between two visible characters, and
  every single line break between two visible characters, made one space, when the text
  looks re-spaced (:func:`looks_respaced`: tabs, doubled spaces or line breaks inside lines;
  a text whose spaces were swapped for tabs, doubled spaces or line breaks loses one to three
  scored units per swap, since a word's token carries its leading space).

* ``typos`` (since #12, when the caller passes the tokenizer): the text with each word that looks
  misspelt replaced by the spelling one letter edit away that the tokenizer's own unigram cost
  prefers (:mod:`._typos`), when at least a quarter of a prose text's words are not words of the
  vocabulary (:func:`._typos.looks_typoed`).

``lower`` and ``sentence`` are also tested when words look re-cased one by one
(:func:`looks_recased`: at least :data:`MIXED_SHARE` of the words carry a capital after their
first letter, ``tHE`` or ``WORD``, where generated prose has about 3 %): a casing edit of
random words changes their tokens, and sentence case restores most of them.

Which variants are tested depends on the text alone, never on the key, so under the null
hypothesis (the text was written without the key) each variant's p-value is valid, and
the smallest of ``k`` p-values times ``k`` (Bonferroni) is a valid p-value for the union.
Every variant but ``spaces`` and ``typos`` has the length of the text it came from, character for
character; those two carry, per character, its position in the text
(:meth:`TextVariant.body_offsets` maps token offsets back).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

import numpy as np
from numpy.typing import NDArray

from tracemark.text._tokenizer import TextTokenizer
from tracemark.text._typos import Lexicon, looks_typoed, repair_typos

#: Longest text (characters) whose variants are tested.
MAX_VARIANT_CHARS = 1 << 18
#: Share of capitals among letters above which a text counts as upper-cased.
UPPER_SHARE = 0.6
#: Share of words (two or more letters) starting with a capital above which a text counts as title-cased.
TITLE_SHARE = 0.6
#: Share of words (two or more letters) with a capital after the first letter (``tHE``, ``WORD``) above
#: which a text counts as re-cased word by word (the casing attack); generated prose has about 3 %.
MIXED_SHARE = 0.1
#: Whitespace edits (tabs or doubled spaces inside a line, line breaks between two visible characters)
#: from which a text counts as re-spaced, and their least share of the whitespace between visible characters.
RESPACED_EDITS = 3
RESPACED_SHARE = 0.02
_WORD = re.compile(r"[^\W\d_]{2,}")
_SENTENCE_START = re.compile(r"(^|[.!?]\s+|\n\s*)([^\W\d_])")
_SOFT_BREAK = re.compile(r"(?<=\S)\n(?=\S)")
#: Whitespace between two visible characters: a run of spaces and tabs, or one line break.
_INNER_SPACE = re.compile(r"(?<=\S)(?:[ \t]+|\n)(?=\S)")


@dataclass(frozen=True, eq=False)
class TextVariant:
    """A variant of a text: its name, its characters, and (when its length differs) where each came from."""

    name: str
    text: str
    #: ``origin[i]`` is the position in the text of the variant's character ``i``; None: the same positions.
    origin: NDArray[np.int64] | None = field(default=None, repr=False)

    def body_offsets(self, offsets: NDArray[np.int64]) -> NDArray[np.int64]:
        """``(n, 2)`` character offsets into the variant as offsets into the text it came from."""
        if self.origin is None:
            return offsets
        out = np.empty_like(offsets)
        if offsets.shape[0] == 0:
            return out
        last = self.origin.shape[0] - 1
        starts = np.minimum(offsets[:, 0], last)
        ends = np.clip(offsets[:, 1] - 1, 0, last)
        out[:, 0] = self.origin[starts]
        out[:, 1] = np.maximum(self.origin[ends] + 1, out[:, 0])
        empty = offsets[:, 1] <= offsets[:, 0]
        out[empty, 1] = out[empty, 0]
        return out


def _same_length_lower(text: str) -> str:
    lowered = text.lower()
    if len(lowered) == len(text):
        return lowered
    # a few letters lower-case to two characters (e.g. U+0130): keep those as they are
    return "".join(ch if len(ch.lower()) != 1 else ch.lower() for ch in text)


def recasing(text: str) -> str | None:
    """How ``text`` looks re-cased: ``"upper"``, ``"title"``, ``"mixed"`` (word by word), or None."""
    letters = [ch for ch in text if ch.isalpha()]
    if len(letters) < 8:
        return None
    upper = sum(1 for ch in letters if ch.isupper())
    if upper > UPPER_SHARE * len(letters):
        return "upper"
    words = _WORD.findall(text)
    if len(words) < 4:
        return None
    capitalised = sum(1 for word in words if word[0].isupper())
    if capitalised > TITLE_SHARE * len(words):
        return "title"
    mixed = sum(1 for word in words if any(ch.isupper() for ch in word[1:]))
    return "mixed" if len(words) >= 8 and mixed >= MIXED_SHARE * len(words) else None


def looks_recased(text: str) -> bool:
    """Whether ``text`` looks upper-cased, title-cased or re-cased word by word (:data:`UPPER_SHARE`,
    :data:`TITLE_SHARE`, :data:`MIXED_SHARE`)."""
    return recasing(text) is not None


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


def _is_edit(run: str) -> bool:
    return run != " " and (run == "\n" or "\t" in run or len(run) > 1)


def looks_respaced(text: str) -> bool:
    """Whether ``text`` looks re-spaced: at least :data:`RESPACED_EDITS` tabs, doubled spaces or single line
    breaks between visible characters, and at least :data:`RESPACED_SHARE` of that whitespace."""
    runs = [m.group() for m in _INNER_SPACE.finditer(text)]
    edits = sum(1 for run in runs if _is_edit(run))
    return edits >= RESPACED_EDITS and edits >= RESPACED_SHARE * len(runs)


def respace(text: str) -> TextVariant:
    """The ``spaces`` variant: every run of spaces and tabs, and every single line break, between two visible
    characters made one space; ``origin`` maps each character back to ``text``."""
    pieces: list[str] = []
    origin: list[NDArray[np.int64]] = []
    done = 0
    for match in _INNER_SPACE.finditer(text):
        if not _is_edit(match.group()):
            continue
        pieces += [text[done : match.start()], " "]
        origin += [np.arange(done, match.start(), dtype=np.int64), np.array([match.start()], dtype=np.int64)]
        done = match.end()
    pieces.append(text[done:])
    origin.append(np.arange(done, len(text), dtype=np.int64))
    return TextVariant("spaces", "".join(pieces), np.concatenate(origin))


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


def text_variants(text: str, tokenizer: TextTokenizer | None = None) -> list[TextVariant]:
    """The text as given, then the variants its own shape calls for (see the module docstring).

    With ``tokenizer``, a text that looks misspelt (:func:`._typos.looks_typoed`) is also tested with its typos
    repaired (``typos``, :func:`._typos.repair_typos`).  Texts over :data:`MAX_VARIANT_CHARS` are tested as given
    only (each variant costs one more detection).
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
    elif looks_respaced(text):  # re-wrapped prose is unwrapped already: its line breaks are the wrap
        spaced = [respace(v.text) for v in variants]
        variants += [TextVariant(f"{v.name}, spaces" if v.name != "as given" else "spaces", s.text, s.origin)
                     for v, s in zip(variants, spaced, strict=True)]  # fmt: skip
    if tokenizer is not None and looks_typoed(text, Lexicon.of(tokenizer)):
        repaired, origin, changed = repair_typos(text, tokenizer)
        if changed:
            variants.append(TextVariant("typos", repaired, origin))
    return variants
