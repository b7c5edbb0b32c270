"""Canonical text form used before tokenising, at generation and at detection.

Character-level tricks (compatibility forms, zero-width characters, look-alike letters
from other scripts) change the token ids without changing what a reader sees, and so
erase a token-level watermark.  Detection therefore tokenises the canonical form:

1. Unicode NFKC (full-width letters, ligatures, compatibility digits fold to ASCII);
2. invisible format characters removed (zero-width space/joiners, word joiner, BOM,
   soft hyphen, bidi controls, variation selectors, tag characters);
3. confusable letters of Cyrillic, Greek and Latin-extended mapped to the ASCII letter
   they imitate (the subset of Unicode's confusables that render identically in
   common fonts), and exotic spaces and dashes mapped to their ASCII forms.
"""

from __future__ import annotations

import itertools
import re
import unicodedata
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

_INVISIBLE_RANGES = (
    (0x00AD, 0x00AD),  # soft hyphen
    (0x034F, 0x034F),  # combining grapheme joiner
    (0x061C, 0x061C),  # Arabic letter mark
    (0x115F, 0x1160),  # Hangul fillers
    (0x17B4, 0x17B5),
    (0x180B, 0x180F),  # Mongolian variation selectors / vowel separator
    (0x200B, 0x200F),  # zero-width space, ZWNJ, ZWJ, LRM, RLM
    (0x202A, 0x202E),  # bidi embedding controls
    (0x2060, 0x2064),  # word joiner, invisible operators
    (0x2066, 0x206F),  # bidi isolates, deprecated format characters
    (0x3164, 0x3164),  # Hangul filler
    (0xFE00, 0xFE0F),  # variation selectors
    (0xFEFF, 0xFEFF),  # zero-width no-break space / BOM
    (0xFFA0, 0xFFA0),
    (0x1D173, 0x1D17A),
    (0xE0000, 0xE007F),  # tag characters
    (0xE0100, 0xE01EF),  # variation selectors supplement
)

# Look-alikes that NFKC leaves alone.  Keys are code points, values the ASCII letter.
_CONFUSABLES: dict[str, str] = {
    # Cyrillic lower case
    "\u0430": "a", "\u0432": "B", "\u0435": "e", "\u043e": "o", "\u0440": "p", "\u0441": "c",
    "\u0443": "y", "\u0445": "x", "\u0455": "s", "\u0456": "i", "\u0458": "j", "\u0501": "d",
    "\u04bb": "h", "\u0461": "w", "\u051b": "q", "\u051d": "w", "\u0491": "r", "\u04cf": "l",
    # Cyrillic upper case
    "\u0410": "A", "\u0412": "B", "\u0415": "E", "\u041a": "K", "\u041c": "M", "\u041d": "H",
    "\u041e": "O", "\u0420": "P", "\u0421": "C", "\u0422": "T", "\u0425": "X", "\u0405": "S",
    "\u0406": "I", "\u0408": "J", "\u04c0": "I", "\u0417": "3", "\u0423": "Y", "\u051a": "Q",
    "\u051c": "W",
    # Greek
    "\u03b1": "a", "\u03bf": "o", "\u03c1": "p", "\u03c5": "u", "\u03bd": "v", "\u03b9": "i",
    "\u03ba": "k", "\u03c7": "x", "\u0391": "A", "\u0392": "B", "\u0395": "E", "\u0396": "Z",
    "\u0397": "H", "\u0399": "I", "\u039a": "K", "\u039c": "M", "\u039d": "N", "\u039f": "O",
    "\u03a1": "P", "\u03a4": "T", "\u03a5": "Y", "\u03a7": "X", "\u03f2": "c", "\u03f3": "j",
    # Latin extended and IPA look-alikes
    "\u0131": "i", "\u0237": "j", "\u0261": "g", "\u0269": "i", "\u026a": "i", "\u028f": "y",
    "\u1d00": "A", "\u1d04": "c", "\u1d05": "D", "\u1d07": "E", "\u1d0a": "J", "\u1d0b": "K",
    "\u1d0d": "M", "\u1d0f": "o", "\u1d18": "P", "\u1d1b": "T", "\u1d1c": "u", "\u1d20": "v",
    "\u1d21": "w", "\u1d22": "z", "\u01c3": "!", "\u0251": "a", "\u0252": "a",
    # Armenian and Cherokee letters that read as Latin
    "\u0578": "n", "\u057d": "u", "\u0585": "o", "\u0570": "h", "\u13a0": "D", "\u13a1": "R",
    "\u13a2": "T", "\u13a9": "Y", "\u13aa": "A", "\u13ab": "J", "\u13ac": "E", "\u13b3": "W",
    "\u13b7": "M", "\u13bb": "H", "\u13c0": "G", "\u13c2": "h", "\u13c3": "Z", "\u13cf": "b",
    "\u13d2": "R", "\u13da": "S", "\u13de": "L", "\u13df": "C", "\u13e2": "P", "\u13e6": "K",
    # Lisu capitals that read as Latin ones (Unicode's confusables), Tai Le and Cyrillic additions (#12: the
    # red team's homoglyph attack used ꓮ ꓚ ꓲ ꓳ, ᥙ and є, which the table missed)
    "\ua4d0": "B", "\ua4d1": "P", "\ua4d2": "d", "\ua4d3": "D", "\ua4d4": "T", "\ua4d6": "G",
    "\ua4d7": "K", "\ua4d9": "J", "\ua4da": "C", "\ua4dc": "Z", "\ua4dd": "F", "\ua4df": "M",
    "\ua4e0": "N", "\ua4e1": "L", "\ua4e2": "S", "\ua4e3": "R", "\ua4e6": "V", "\ua4e7": "H",
    "\ua4ea": "W", "\ua4eb": "X", "\ua4ec": "Y", "\ua4ee": "A", "\ua4f0": "E", "\ua4f2": "I",
    "\ua4f3": "O", "\ua4f4": "U", "\u1959": "u", "\u0454": "e",
    # punctuation and spaces
    "\u2010": "-", "\u2011": "-", "\u2012": "-", "\u2013": "-", "\u2014": "-", "\u2212": "-",
    "\u2018": "'", "\u2019": "'", "\u201a": "'", "\u201b": "'", "\u2032": "'",
    "\u201c": '"', "\u201d": '"', "\u201e": '"', "\u201f": '"', "\u2033": '"',
    "\u00a0": " ", "\u2007": " ", "\u202f": " ", "\u3000": " ",
}  # fmt: skip

_TABLE: dict[int, str | None] = {ord(k): v for k, v in _CONFUSABLES.items()}
for _lo, _hi in _INVISIBLE_RANGES:
    for _cp in range(_lo, _hi + 1):
        _TABLE[_cp] = None
# Look-alikes that NFKC would turn into another letter first (U+03F2 GREEK LUNATE SIGMA SYMBOL becomes
# U+03C2 final sigma, so its entry never applied): mapped before NFKC as well (#12).
_BEFORE_NFKC: dict[int, str | None] = {
    ord(k): v for k, v in _CONFUSABLES.items() if k.isalpha() and unicodedata.normalize("NFKC", k) != k
}


@dataclass(frozen=True)
class CanonicalText:
    """The canonical form of a text and what canonicalisation changed."""

    text: str
    invisible_removed: int
    confusables_mapped: int
    nfkc_changed: bool


# Only non-ASCII characters are removed, mapped or changed by NFKC: an ASCII text is its own canonical form,
# and the counts need to look at non-ASCII characters only (most of a text; the counts were a third of a scan).
_NON_ASCII = re.compile(r"[^\x00-\x7f]+")


def canonicalize(text: str) -> CanonicalText:
    """Return the canonical form used for tokenising (see module docstring)."""
    if text.isascii():
        return CanonicalText(text=text, invisible_removed=0, confusables_mapped=0, nfkc_changed=False)
    nfkc = unicodedata.normalize("NFKC", text.translate(_BEFORE_NFKC))
    odd = "".join(_NON_ASCII.findall(nfkc))
    invisible = sum(1 for ch in odd if _TABLE.get(ord(ch), ch) is None)
    mapped = sum(1 for ch in odd if _TABLE.get(ord(ch)) is not None)
    mapped += sum(1 for ch in "".join(_NON_ASCII.findall(text)) if ord(ch) in _BEFORE_NFKC)
    out = nfkc.translate(_TABLE)
    # A mapped character may form a new NFKC composition with its neighbour; fold again.
    out = unicodedata.normalize("NFKC", out)
    return CanonicalText(text=out, invisible_removed=invisible, confusables_mapped=mapped, nfkc_changed=nfkc != text)


def _canonical_piece(piece: str) -> str:
    return unicodedata.normalize("NFKC", unicodedata.normalize("NFKC", piece.translate(_BEFORE_NFKC)).translate(_TABLE))


@dataclass(frozen=True)
class OffsetMap:
    """Maps character offsets in a canonical text back to the text the user gave.

    The text is cut into segments whose canonical forms, concatenated, give the canonical
    text: runs of ASCII (canonical as they are, mapped character by character) and, between
    them, each non-ASCII character with its combining marks (and the character before it,
    which a combining mark may compose with).  A canonical offset inside such a segment maps
    to the segment's start (for a token's start) or end (for a token's end) in the original.
    Where per-character segments do not reproduce the canonical text (rare compositions
    across characters, e.g. Hangul jamo), whole non-ASCII runs are the segments instead.
    """

    canonical_ends: NDArray[np.int64]
    canonical_starts: NDArray[np.int64]
    original_starts: NDArray[np.int64]
    original_ends: NDArray[np.int64]
    linear: NDArray[np.bool_]

    def to_original(self, offsets: NDArray[np.int64], shift: int = 0) -> NDArray[np.int64]:
        """``(n, 2)`` token offsets into the canonical text (plus ``shift``) as offsets into the original."""
        starts = np.asarray(offsets[:, 0], dtype=np.int64) + shift
        ends = np.asarray(offsets[:, 1], dtype=np.int64) + shift
        out = np.empty((starts.shape[0], 2), dtype=np.int64)
        last = self.canonical_ends.shape[0] - 1
        first_seg = np.minimum(np.searchsorted(self.canonical_ends, starts, side="right"), last)
        out[:, 0] = np.where(
            self.linear[first_seg],
            self.original_starts[first_seg] + (starts - self.canonical_starts[first_seg]),
            self.original_starts[first_seg],
        )
        end_seg = np.minimum(np.searchsorted(self.canonical_ends, np.maximum(ends - 1, 0), side="right"), last)
        out[:, 1] = np.where(
            self.linear[end_seg],
            self.original_starts[end_seg] + (ends - self.canonical_starts[end_seg]),
            self.original_ends[end_seg],
        )
        out[:, 1] = np.maximum(out[:, 1], out[:, 0])
        return out


def _segments(text: str, fine: bool) -> list[tuple[int, int, str, bool]]:
    segments: list[tuple[int, int, str, bool]] = []
    done = 0
    for match in _NON_ASCII.finditer(text):
        start = match.start()
        if start > done:  # the character before a non-ASCII run joins it (a combining mark may compose with it)
            start -= 1
            if start > done:
                segments.append((done, start, text[done:start], True))
        cuts = [start]
        if fine:
            cuts += [i for i in range(start + 1, match.end()) if not unicodedata.combining(text[i])]
        cuts.append(match.end())
        for lo, hi in itertools.pairwise(cuts):
            segments.append((lo, hi, _canonical_piece(text[lo:hi]), False))
        done = match.end()
    if done < len(text):
        segments.append((done, len(text), text[done:], True))
    return segments


def offset_map(text: str, canonical: str) -> OffsetMap | None:
    """The map from ``canonical`` (= ``canonicalize(text).text``) back to ``text``; None when they are equal."""
    if text == canonical:
        return None
    segments = _segments(text, fine=True)
    if "".join(s[2] for s in segments) != canonical:
        segments = _segments(text, fine=False)
        if "".join(s[2] for s in segments) != canonical:
            segments = [(0, len(text), canonical, False)]
    lengths = np.array([len(s[2]) for s in segments], dtype=np.int64)
    ends = np.cumsum(lengths)
    return OffsetMap(
        canonical_ends=ends,
        canonical_starts=ends - lengths,
        original_starts=np.array([s[0] for s in segments], dtype=np.int64),
        original_ends=np.array([s[1] for s in segments], dtype=np.int64),
        linear=np.array([s[3] for s in segments], dtype=np.bool_),
    )
