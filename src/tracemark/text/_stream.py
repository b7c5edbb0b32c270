"""Streamed detection: long texts read, tokenised and scored piece by piece, in bounded memory.

A long text is cut into pieces of about :data:`PIECE_CHARS` characters, each just before a
space that has an ASCII non-space on both sides.  Such a cut changes nothing:

* canonicalisation works per character (NFKC never composes across a space, the
  confusable and invisible-character table maps single characters), so the pieces'
  canonical forms, concatenated, are the whole text's canonical form;
* tokenizers that split words before a space (:meth:`TextTokenizer.encode` cuts there
  too) give the same ids for the pieces as for the whole text.

Each piece is scored with the last :data:`CARRY_TOKENS` tokens before it as context, so
units that straddle a cut are scored as in the whole text.  What the verdict needs is kept:

* the distinct units seen so far, as exact 64-bit codes (:func:`unit_codes`) in a
  :class:`UnitSet` (8 bytes per distinct unit), so that de-duplication is the whole text's;
* the kept units' hits in text order (one byte per kept unit), for the window scan and
  the span search;
* one bit per token saying whether its unit was kept, to turn a span's unit indices
  back into token positions;
* counts, and the sums a scheme's further statistics need (:meth:`extra_totals`).

A marked text's span ends are then located by a second pass that re-reads and
re-tokenises only the pieces holding them.  The verdict equals the in-memory one
(:func:`detect_watermark` on the whole text): same units, same hits in the same order,
same tests (the tests in ``tests/unit/text/test_streamed_detect.py`` compare them).
"""

from __future__ import annotations

import codecs
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import BinaryIO, Unpack

import numpy as np
from numpy.typing import NDArray

from tracemark._json import JSONValue
from tracemark.errors import InvalidInputError
from tracemark.keys import TextKey
from tracemark.text._canonical import canonicalize, offset_map
from tracemark.text._detect import (
    DEFAULT_ALPHA,
    DetectOptions,
    _Counts,
    _verdict,
    check_key_fits,
    decide,
    detect_watermark,
    spans_of,
)
from tracemark.text._schemes import ScoredUnits, WatermarkScheme, load_scheme
from tracemark.text._schemes._base import hash_rows
from tracemark.text._tokenizer import TextTokenizer
from tracemark.text._variants import MAX_VARIANT_CHARS
from tracemark.text._verdict import Statistic, Verdict

#: Characters per piece of a streamed text.
PIECE_CHARS = 1 << 18
#: Texts up to this many characters are tested whole (with their case and line-wrap variants).
STREAM_ABOVE_CHARS = MAX_VARIANT_CHARS
#: Tokens of context carried into the next piece (every scheme's units span at most 33 tokens).
CARRY_TOKENS = 64
#: Longest input :func:`detect_watermark_stream` accepts by default (characters, or bytes of a file).
DEFAULT_MAX_CHARS_STREAM = 1 << 30
#: Bytes read from a file at a time.
READ_BYTES = 1 << 20
_BUCKET_BITS = 8
#: An odd multiplier: ``code * _MIX mod 2**64`` is a bijection that spreads codes over the buckets.
_MIX = np.uint64(0x9E3779B97F4A7C15)


def unit_codes(scheme: WatermarkScheme, units: ScoredUnits) -> NDArray[np.uint64]:
    """One 64-bit code per row of ``units``, equal when the rows are the same unit.

    Exact when the scheme has a short code (:meth:`WatermarkScheme.dedup_codes`) or the unit's
    token ids fit 64 bits side by side (native, kgw); otherwise (SynthID ``sha256``'s 5-grams) a
    keyless 64-bit hash of the ids, where two distinct units share a code with probability
    about ``u**2 / 2**65`` for ``u`` distinct units.  Such a collision drops one unit as a
    repeat; which units collide does not depend on the key, so the null distribution (and
    every p-value) stays exact, and only a unit's worth of evidence is lost.
    """
    custom = scheme.dedup_codes(units)
    if custom is not None:
        return custom
    keys = units.unit_keys
    width = keys.shape[1]
    bits = max(1, int(scheme.vocab_size - 1).bit_length())
    codes = np.zeros(keys.shape[0], dtype=np.uint64)
    if bits * width <= 64:
        for column in range(width):
            codes <<= np.uint64(bits)
            codes |= keys[:, column].astype(np.uint64)
        return codes
    return hash_rows(keys)


class UnitSet:
    """A growing set of 64-bit codes: ``2**8`` sorted buckets, 8 bytes a code, exact membership.

    Codes are multiplied by an odd constant (a bijection of 64-bit integers) and bucketed by
    the product's top bits, so one piece's insertion rewrites small buckets, not the whole set.
    """

    def __init__(self) -> None:
        self._buckets: list[NDArray[np.uint64]] = [np.empty(0, dtype=np.uint64)] * (1 << _BUCKET_BITS)
        self.size = 0

    def add(self, codes: NDArray[np.uint64]) -> NDArray[np.bool_]:
        """Insert ``codes`` (distinct); True where a code was not in the set before."""
        mixed = codes * _MIX
        order = np.argsort(mixed, kind="stable")
        ordered = mixed[order]
        shift = np.uint64(64 - _BUCKET_BITS)
        edges = np.searchsorted(ordered >> shift, np.arange((1 << _BUCKET_BITS) + 1, dtype=np.uint64))
        new = np.zeros(codes.shape[0], dtype=np.bool_)
        for bucket in np.nonzero(np.diff(edges))[0].tolist():
            lo, hi = int(edges[bucket]), int(edges[bucket + 1])
            part = ordered[lo:hi]
            held = self._buckets[bucket]
            at = np.searchsorted(held, part)
            seen = np.zeros(part.shape[0], dtype=np.bool_)
            inside = at < held.shape[0]
            seen[inside] = held[at[inside]] == part[inside]
            fresh = ~seen
            if fresh.any():
                self._buckets[bucket] = np.insert(held, at[fresh], part[fresh])
                new[order[lo:hi][fresh]] = True
        self.size += int(new.sum())
        return new


@dataclass
class _PieceRecord:
    """Where a piece lies, for the second pass: its characters and its tokens."""

    char_start: int
    char_end: int
    byte_start: int
    byte_end: int
    token_start: int
    token_count: int
    kept_before: int
    kept_count: int
    kept_bits: NDArray[np.uint8]


@dataclass
class StreamedScore:
    """Scores a text's tokens piece by piece and keeps only what the verdict needs (module docstring)."""

    scheme: WatermarkScheme
    prompt_length: int = 0
    deduplicate: bool = True
    tokens_total: int = 0
    answer_units: int = 0
    kept_units: int = 0
    hits_total: int = 0
    extra: tuple[int, ...] = ()
    seen: UnitSet = field(default_factory=UnitSet)
    _carry: NDArray[np.int64] = field(default_factory=lambda: np.empty(0, dtype=np.int64))
    _hits: list[NDArray[np.uint8]] = field(default_factory=list)

    def feed(self, ids: NDArray[np.int64]) -> tuple[int, NDArray[np.uint8]]:
        """Score the next tokens of the text; returns how many units were kept and their bits per token."""
        base = self.tokens_total
        sequence = np.concatenate([self._carry, ids])
        offset = base - self._carry.shape[0]
        units = self.scheme.score(sequence)
        positions = units.positions + offset
        answer = (positions >= base) & (positions >= self.prompt_length)
        rows = np.nonzero(answer)[0]
        self.answer_units += int(rows.shape[0])
        if self.deduplicate and rows.shape[0]:
            picked = ScoredUnits(positions[rows], units.unit_keys[rows], units.hits[rows])
            codes = unit_codes(self.scheme, picked)
            distinct, first = np.unique(codes, return_index=True)
            fresh = self.seen.add(distinct)
            rows = rows[np.sort(first[fresh])]
        kept = ScoredUnits(
            positions=positions[rows],
            unit_keys=units.unit_keys[rows],
            hits=units.hits[rows],
            layer_values=None if units.layer_values is None else units.layer_values[rows],
        )
        self._hits.append(kept.hits.astype(np.uint8 if self.scheme.trials_per_unit < 256 else np.uint16))
        self.kept_units += int(rows.shape[0])
        self.hits_total += int(kept.hits.sum())
        totals = self.scheme.extra_totals(kept)
        self.extra = totals if not self.extra else tuple(a + b for a, b in zip(self.extra, totals, strict=True))
        mask = np.zeros(ids.shape[0], dtype=np.bool_)
        mask[kept.positions - base] = True
        self.tokens_total += int(ids.shape[0])
        self._carry = sequence[-CARRY_TOKENS:]
        return int(rows.shape[0]), np.packbits(mask)

    def hits(self) -> NDArray[np.integer]:
        """The kept units' hits in text order (the pieces' lists joined once)."""
        joined = np.concatenate(self._hits) if self._hits else np.empty(0, dtype=np.uint8)
        self._hits = [joined]
        return joined


class _Source:
    """A text read piece by piece from a string or a binary file, and read again by piece."""

    def __init__(self, source: str | BinaryIO, max_chars: int) -> None:
        self._text = source if isinstance(source, str) else None
        self._file = None if isinstance(source, str) else source
        self._max_chars = max_chars

    def pieces(self, first_chars: int, piece_chars: int) -> Iterator[tuple[str, int, int, int, int]]:
        """``(piece, char_start, char_end, byte_start, byte_end)`` in order; the first has ``first_chars`` at least."""
        buffer = ""
        char_start = byte_start = 0
        wanted = max(first_chars, piece_chars)
        for block, final in self._blocks():
            buffer += block
            while len(buffer) > wanted or (final and buffer):
                cut = len(buffer) if final and len(buffer) <= wanted else _safe_cut(buffer, wanted)
                if cut <= 0:
                    break  # no safe cut yet: read on (a text without one is held whole)
                piece, buffer = buffer[:cut], buffer[cut:]
                size = len(piece.encode("utf-8", "surrogatepass"))
                yield piece, char_start, char_start + cut, byte_start, byte_start + size
                char_start += cut
                byte_start += size
                wanted = piece_chars
            if final and buffer:  # the rest had no safe cut
                size = len(buffer.encode("utf-8", "surrogatepass"))
                yield buffer, char_start, char_start + len(buffer), byte_start, byte_start + size

    def _blocks(self) -> Iterator[tuple[str, bool]]:
        if self._text is not None:
            if len(self._text) > self._max_chars:
                raise InvalidInputError(f"text has {len(self._text)} characters; the limit is {self._max_chars}")
            for lo in range(0, len(self._text), READ_BYTES):
                block = self._text[lo : lo + READ_BYTES]
                if "\x00" in block:
                    raise InvalidInputError("text contains NUL characters: binary input is not text")
                yield block, lo + READ_BYTES >= len(self._text)
            if not self._text:
                yield "", True
            return
        if self._file is None:
            raise ValueError("no source")
        self._file.seek(0)
        decoder = codecs.getincrementaldecoder("utf-8")("strict")
        read = 0
        while True:
            data = self._file.read(READ_BYTES)
            final = not data
            if b"\x00" in data:
                raise InvalidInputError("input holds NUL bytes: binary input is not text")
            try:
                block = decoder.decode(data, final=final)
            except UnicodeDecodeError as exc:
                raise InvalidInputError(f"input is not valid UTF-8 (byte {read + exc.start})") from None
            read += len(data)
            if read > self._max_chars:
                raise InvalidInputError(f"input is larger than the limit of {self._max_chars} bytes")
            yield block, final
            if final:
                return

    def reread(self, record: _PieceRecord) -> str:
        """The characters of a piece, read again."""
        if self._text is not None:
            return self._text[record.char_start : record.char_end]
        if self._file is None:
            raise ValueError("no source")
        self._file.seek(record.byte_start)
        return self._file.read(record.byte_end - record.byte_start).decode("utf-8")


def _safe_cut(text: str, limit: int) -> int:
    """The last index below ``limit`` holding a space between two ASCII non-spaces (0 if none)."""
    cut = text.rfind(" ", 1, min(limit, len(text) - 1))
    while cut > 0 and not (_ascii_word(text[cut - 1]) and _ascii_word(text[cut + 1])):
        cut = text.rfind(" ", 1, cut)
    return max(cut, 0)


def _ascii_word(ch: str) -> bool:
    return ch < "\x80" and not ch.isspace()


@dataclass
class _Piece:
    """A piece's canonical body tokens and how its token offsets map back to the text as given."""

    ids: NDArray[np.int64]
    invisible: int
    confusables: int
    nfkc_changed: bool
    has_text: bool


def _tokenise_piece(
    tokenizer: TextTokenizer, piece: str, char_start: int, canonical_prompt: str | None, want_offsets: bool
) -> tuple[_Piece, NDArray[np.int64] | None]:
    canonical = canonicalize(piece)
    body, shift = canonical.text, 0
    if canonical_prompt and body.startswith(canonical_prompt):
        body, shift = body[len(canonical_prompt) :], len(canonical_prompt)
    encoded = tokenizer.encode(body)
    offsets = None
    if want_offsets:
        back = offset_map(piece, canonical.text)
        offsets = (encoded.offsets + shift if back is None else back.to_original(encoded.offsets, shift)) + char_start
    info = _Piece(encoded.ids, canonical.invisible_removed, canonical.confusables_mapped, canonical.nfkc_changed,
                  bool(body.strip()))  # fmt: skip
    return info, offsets


def detect_watermark_stream(
    source: str | BinaryIO,
    key: TextKey,
    tokenizer: TextTokenizer,
    *,
    piece_chars: int = PIECE_CHARS,
    stream_above_chars: int = STREAM_ABOVE_CHARS,
    **options: Unpack[DetectOptions],
) -> Verdict:
    """:func:`detect_watermark` for a text of any length, read from ``source`` in pieces (bounded memory).

    ``source`` is the text or a binary file (UTF-8; seekable: a marked text's span ends are
    read again).  A text of at most ``stream_above_chars`` characters is tested whole, as
    :func:`detect_watermark` does (with its variants); a longer one is streamed and tested
    as given (:func:`detect_watermark` tests no variants above that length either).  With
    ``explain`` or ``include_canonical_text`` (output that grows with the text), with a
    tokenizer that cannot be cut at spaces, the text is read whole.  ``max_chars`` limits
    characters (bytes for a file).  Memory: about 9 bytes per distinct scored unit plus
    one bit per token, besides one piece's working set (``bench/bench_text_memory.py``).
    """
    max_chars = options.get("max_chars", DEFAULT_MAX_CHARS_STREAM)
    alpha = options.get("alpha", DEFAULT_ALPHA)
    if not 0.0 < alpha < 1.0:
        raise InvalidInputError("alpha must lie strictly between 0 and 1")
    if not isinstance(source, str) and not hasattr(source, "read"):
        raise InvalidInputError("source must be a str or a binary file")
    check_key_fits(key, tokenizer)
    reader = _Source(source, max_chars)
    whole: DetectOptions = options.copy()
    whole["max_chars"] = max_chars
    whole_only = options.get("explain", False) or options.get("include_canonical_text", False)
    if whole_only or not getattr(tokenizer, "_chunkable", False):
        return detect_watermark(_read_all(reader), key, tokenizer, **whole)
    prompt = options.get("prompt")
    canonical_prompt = canonicalize(prompt).text if prompt else None
    pieces = reader.pieces(max(stream_above_chars, 4 * len(prompt or "") + 64), piece_chars)
    head = next(pieces, None)
    following = next(pieces, None) if head is not None else None
    if head is None or following is None:  # one piece: the whole text, tested as detect_watermark does
        text = head[0] if head is not None else ""
        return detect_watermark(text, key, tokenizer, **whole)
    return _stream(reader, _chain(head, following, pieces), key, tokenizer, canonical_prompt, options)


def _chain(
    head: tuple[str, int, int, int, int],
    following: tuple[str, int, int, int, int],
    rest: Iterator[tuple[str, int, int, int, int]],
) -> Iterator[tuple[str, int, int, int, int]]:
    yield head
    yield following
    yield from rest


def _read_all(reader: _Source) -> str:
    return "".join(block for block, _ in reader._blocks())


def _stream(
    reader: _Source,
    pieces: Iterator[tuple[str, int, int, int, int]],
    key: TextKey,
    tokenizer: TextTokenizer,
    canonical_prompt: str | None,
    options: DetectOptions,
) -> Verdict:
    alpha = options.get("alpha", DEFAULT_ALPHA)
    scheme = load_scheme(key)
    prompt_ids = tokenizer.encode(canonical_prompt).ids if canonical_prompt else np.empty(0, dtype=np.int64)
    prompt_length = int(prompt_ids.shape[0])
    scorer = StreamedScore(scheme, prompt_length=prompt_length, deduplicate=options.get("deduplicate", True))
    records: list[_PieceRecord] = []
    invisible = confusables = 0
    nfkc_changed = has_text = False
    if prompt_length:
        scorer.feed(prompt_ids)
    for index, (piece, char_start, char_end, byte_start, byte_end) in enumerate(pieces):
        info, _ = _tokenise_piece(tokenizer, piece, char_start, canonical_prompt if index == 0 else None, False)
        invisible += info.invisible
        confusables += info.confusables
        nfkc_changed |= info.nfkc_changed
        has_text |= info.has_text
        token_start = scorer.tokens_total
        kept_before = scorer.kept_units
        kept_count, bits = scorer.feed(info.ids)
        records.append(_PieceRecord(char_start, char_end, byte_start, byte_end, token_start, int(info.ids.shape[0]),
                                    kept_before, kept_count, bits))  # fmt: skip
    if not has_text:
        raise InvalidInputError("no text to test (empty after removing the prompt and invisible characters)")
    hits = scorer.hits()
    decision = decide(hits, scheme.trials_per_unit, scheme.success_probability, alpha,
                      scan_windows=options.get("scan_windows", True))  # fmt: skip

    def position(kept_index: int) -> int:
        if kept_index < 0 or kept_index >= scorer.kept_units:
            raise IndexError(kept_index)
        starts = [r.kept_before for r in records]
        record = records[int(np.searchsorted(starts, kept_index, side="right")) - 1]
        bits = np.unpackbits(record.kept_bits, count=record.token_count)
        return record.token_start + int(np.nonzero(bits)[0][kept_index - record.kept_before])

    def chars(positions: list[int]) -> dict[int, tuple[int, int]]:
        found: dict[int, tuple[int, int]] = {}
        for index, record in enumerate(records):
            inside = [p for p in positions if record.token_start <= p < record.token_start + record.token_count]
            if not inside:
                continue
            _, offsets = _tokenise_piece(tokenizer, reader.reread(record), record.char_start,
                                         canonical_prompt if index == 0 else None, True)  # fmt: skip
            if offsets is None:
                raise ValueError("no offsets")
            for p in inside:
                found[p] = (int(offsets[p - record.token_start][0]), int(offsets[p - record.token_start][1]))
        for p in positions:  # a prompt token (never a span end) has no characters in the text
            found.setdefault(p, (-1, -1))
        return found

    spans = spans_of(decision.segments, position, chars)
    extra = tuple(
        Statistic(s.name, s.score, s.p_value, s.log10_p_value, s.method)
        for s in scheme.extra_statistics_from_totals(scorer.extra, scorer.kept_units)
    )
    counts = _Counts(
        tokens_total=scorer.tokens_total,
        tokens_scored=scorer.kept_units,
        tokens_repeated=scorer.answer_units - scorer.kept_units,
        tokens_in_prompt=min(prompt_length, scorer.tokens_total),
        tokens_unscorable=scorer.tokens_total - min(prompt_length, scorer.tokens_total) - scorer.answer_units,
        hits=scorer.hits_total,
    )
    summary: dict[str, JSONValue] = {
        "form": "NFKC+invisible-removed+confusables-mapped",
        "invisible_removed": invisible,
        "confusables_mapped": confusables,
        "nfkc_changed": nfkc_changed,
        "offsets": "characters of the text as given",
        "streamed_pieces": len(records),
    }
    outcome = decision.outcome(options.get("deduplicate", True), spans, extra)
    return _verdict(scheme, counts, outcome, alpha=alpha, canonicalization=summary)
