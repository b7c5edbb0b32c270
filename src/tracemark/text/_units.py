"""Distinct-unit counting for whole-text tests, many sequences at once.

A whole-text test needs, per sequence, the number of distinct units (context plus
token) and how many of them are hits.  Sequences are laid out as rows of a matrix
(sorted by length and cut into cache-sized chunks, so padding stays small); the scheme
colours every unit of the chunk in one vectorised call; each unit becomes one 64-bit
code with its hit in the lowest bit; every row is sorted in place, and the first code
of each run is a distinct unit (equal units have equal hits, so the bit never splits
a run).  Sorting short rows is about twice as fast as one sort of everything, and
reading hits from the sorted codes needs no gather.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from tracemark.errors import KeyMismatchError
from tracemark.text._schemes._base import BulkScoringScheme, WatermarkScheme

#: Codes per chunk (rows x longest row): 2 MiB of uint64, inside L2 on current CPUs.
_CHUNK_CODES = 1 << 18
_PADDING = np.uint64(2**64 - 1)  # above every code (a unit's bits plus the hit bit: at most 63)


@dataclass(frozen=True)
class UnitCounts:
    """Per-sequence counts of a whole-text test (one entry per sequence)."""

    units: NDArray[np.int64]  # scorable positions (length - context width, at least 0)
    distinct: NDArray[np.int64]  # distinct units among them
    hits: NDArray[np.int64]  # hits over the distinct units


def bulk_scheme(scheme: WatermarkScheme) -> BulkScoringScheme | None:
    """The scheme as a bulk scorer, or None when its key configuration has no bulk path."""
    if not isinstance(scheme, BulkScoringScheme) or not scheme.supports_bulk():
        return None
    if _token_bits(scheme.vocab_size) * (scheme.context_width + 1) + 1 > 63:
        return None
    return scheme


def _token_bits(vocab_size: int) -> int:
    return max(1, int(vocab_size - 1).bit_length())


def count_distinct_units(
    scheme: WatermarkScheme, sequences: Sequence[NDArray[np.int64]], *, from_start: bool = True
) -> UnitCounts:
    """Distinct units and their hits for every sequence (``bulk_scheme(scheme)`` must not be None).

    With ``from_start`` (each sequence is a whole text), what the scheme never scores at a
    text's start (:meth:`BulkScoringScheme.skip_leading`) is dropped first and counts as
    unscorable.
    """
    bulk = bulk_scheme(scheme)
    if bulk is None:
        raise ValueError(f"{scheme.name} with this key has no bulk scoring path")
    if from_start:
        sequences = [bulk.skip_leading(np.asarray(s)) for s in sequences]
    width = scheme.context_width
    bits = _token_bits(scheme.vocab_size)
    count = len(sequences)
    lengths = np.fromiter((len(s) for s in sequences), dtype=np.int64, count=count)
    units = np.maximum(lengths - width, 0)
    distinct = np.zeros(count, dtype=np.int64)
    hits = np.zeros(count, dtype=np.int64)
    order = np.argsort(units, kind="stable")
    sorted_units = units[order].tolist()
    start = 0
    while start < count:
        stop = _chunk_end(sorted_units, start)
        rows = order[start:stop]
        widest = int(units[rows[-1]])
        if widest > 0:
            matrix = _matrix(sequences, rows, lengths, widest + width, scheme.vocab_size)
            distinct[rows], hits[rows] = _count_chunk(bulk, matrix, units[rows], width, bits)
        start = stop
    return UnitCounts(units=units, distinct=distinct, hits=hits)


def _chunk_end(sorted_units: list[int], start: int) -> int:
    """Largest ``stop`` whose rows ``start:stop`` (sorted by length) fit ``_CHUNK_CODES`` codes, at least one row."""
    low, high = start + 1, len(sorted_units)
    while low < high:
        middle = (low + high + 1) // 2
        if (middle - start) * max(1, sorted_units[middle - 1]) <= _CHUNK_CODES:
            low = middle
        else:
            high = middle - 1
    return low


def _matrix(
    sequences: Sequence[NDArray[np.int64]],
    rows: NDArray[np.int64],
    lengths: NDArray[np.int64],
    columns: int,
    vocab_size: int,
) -> NDArray[np.int64]:
    picked = [np.asarray(sequences[i]) for i in rows.tolist()]
    if bool((lengths[rows] == columns).all()):
        matrix = np.stack(picked).astype(np.int64, copy=False)
    else:
        matrix = np.zeros((len(picked), columns), dtype=np.int64)
        for row, ids in enumerate(picked):
            matrix[row, : ids.shape[0]] = ids
    if matrix.ndim != 2:
        raise KeyMismatchError("token ids must be one-dimensional sequences")
    if matrix.size and (int(matrix.min()) < 0 or int(matrix.max()) >= vocab_size):
        raise KeyMismatchError(f"a token id is outside the key's vocabulary of {vocab_size}")
    return matrix


def _count_chunk(
    scheme: BulkScoringScheme, matrix: NDArray[np.int64], units: NDArray[np.int64], width: int, bits: int
) -> tuple[NDArray[np.int64], NDArray[np.int64]]:
    widest = matrix.shape[1] - width
    hits = scheme.unit_hits(np.lib.stride_tricks.sliding_window_view(matrix, width + 1, axis=1))
    ids = matrix.view(np.uint64)  # ids are checked non-negative: the same bits
    codes = ids[:, :widest].copy()
    shift = np.uint64(bits)
    for column in range(1, width + 1):
        np.left_shift(codes, shift, out=codes)
        np.bitwise_or(codes, ids[:, column : column + widest], out=codes)
    np.left_shift(codes, np.uint64(1), out=codes)
    np.bitwise_or(codes, hits, out=codes)
    padded = int(units.min()) < widest
    if padded:
        codes[np.arange(widest) >= units[:, None]] = _PADDING
    codes.sort(axis=1)
    first = np.empty(codes.shape, dtype=np.bool_)
    first[:, 0] = True
    np.not_equal(codes[:, 1:], codes[:, :-1], out=first[:, 1:])
    if padded:
        first &= codes != _PADDING
    distinct = np.count_nonzero(first, axis=1).astype(np.int64)
    first &= (codes & np.uint64(1)).astype(np.bool_)
    return distinct, np.count_nonzero(first, axis=1).astype(np.int64)
