"""Where the mark is: maximum-scoring segments over the scored units, with a bounded null.

Once a text is found marked, the user wants the marked passage's boundaries.  Each kept
unit ``i`` gets the log-likelihood-ratio score of its hits ``h_i`` out of ``m`` trials,
marked (hit probability ``p1``) against unmarked (``p0``)::

    s_i = h_i * log(p1 / p0) + (m - h_i) * log((1 - p1) / (1 - p0))

The segment with the largest sum is the most likely single marked stretch (Ruzzo and
Tompa's maximal segment; a change-point pair).  Inside a marked passage the sum climbs,
outside it falls, so its ends sit at the passage's boundaries up to a few tokens (the
sum's random walk near the edge), instead of at the edges of dyadic windows.
``p1`` is estimated from the data (the densest significant window, then the segment
found with it, twice); this only moves the boundaries, never the p-values below.

Each segment's p-value is its exact binomial tail; its corrected p-value multiplies by
the number of segments a search over ``n`` units could have chosen, ``n (n + 1) / 2``
(Bonferroni over every segment: valid whatever the search picked, since the search is a
function of the data).  Further marked passages are searched for left and right of each
found segment, up to :data:`MAX_SPANS`.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from tracemark._stats import binomial_upper_tail

#: Most spans one verdict reports.
MAX_SPANS = 16
#: A remainder shorter than this many units is not searched again.
MIN_SEARCH_UNITS = 8
_ESTIMATION_ROUNDS = 2


@dataclass(frozen=True)
class Segment:
    """A stretch ``[start, end)`` of kept units with its hits and p-values."""

    start: int
    end: int
    hits: int
    p_value: float
    p_value_corrected: float


def segment_count(units: int) -> int:
    """How many segments a search over ``units`` units chooses among: ``n (n + 1) / 2``."""
    return units * (units + 1) // 2


def llr_weights(p0: float, p1: float) -> tuple[float, float]:
    """Per-trial scores of a hit and of a miss for marked rate ``p1`` against null rate ``p0``."""
    return math.log(p1 / p0), math.log((1.0 - p1) / (1.0 - p0))


#: Units per block of the segment search: its float arrays stay a few MiB whatever the text's length.
SEARCH_BLOCK = 1 << 18


def best_segment(scores: NDArray[np.float64]) -> tuple[int, int, float]:
    """``(start, end, sum)`` of the maximum-sum segment of ``scores`` (at least one element)."""
    return _best_segment_blocks(lambda lo, hi: scores[lo:hi], int(scores.shape[0]))


def _best_segment_blocks(block: Callable[[int, int], NDArray[np.float64]], n: int) -> tuple[int, int, float]:
    """:func:`best_segment` over scores handed out block by block (``block(lo, hi)`` = ``scores[lo:hi]``).

    The prefix sums run on from block to block (``cumsum`` of the carried sum and the block is the
    same left-to-right sum as one ``cumsum`` of everything, bit for bit), so the result equals the
    whole-array search's: the end is the first index of the largest gain, the start the first index
    of the smallest prefix sum before it.  Two passes: the end first, then the start.
    """
    carried, lowest = 0.0, math.inf
    best_gain, best_end = -math.inf, -1
    for lo in range(0, n, SEARCH_BLOCK):
        hi = min(n, lo + SEARCH_BLOCK)
        prefix = np.cumsum(np.concatenate([[carried], block(lo, hi)]))  # prefix sums lo .. hi
        running = np.minimum(np.minimum.accumulate(prefix[:-1]), lowest)
        gains = prefix[1:] - running
        at = int(np.argmax(gains))
        if best_end < 0 or gains[at] > best_gain:
            best_gain, best_end = float(gains[at]), lo + at + 1
        lowest = float(running[-1])
        carried = float(prefix[-1])
    carried, lowest, start = 0.0, math.inf, 0
    for lo in range(0, best_end, SEARCH_BLOCK):
        hi = min(best_end, lo + SEARCH_BLOCK)
        prefix = np.cumsum(np.concatenate([[carried], block(lo, hi)]))
        at = int(np.argmin(prefix[:-1]))
        if prefix[at] < lowest:
            lowest, start = float(prefix[at]), lo + at
        carried = float(prefix[-1])
    return start, best_end, best_gain


def _inside(rate: float, p0: float) -> float:
    """``rate`` kept inside (p0, 1): a rate at or below p0 carries no direction, 1 gives an infinite miss score."""
    return min(max(rate, p0 + 0.05 * (1.0 - p0)), 1.0 - 0.01 * (1.0 - p0))


def _marked_rate(hits: NDArray[np.integer], trials: int, p0: float, start: int, end: int) -> float:
    return _inside(float(hits[start:end].sum()) / max(1, (end - start) * trials), p0)


def _search(hits: NDArray[np.integer], trials: int, p0: float, rate: float) -> tuple[int, int, float]:
    start, end, gain = 0, hits.shape[0], 0.0
    for _ in range(_ESTIMATION_ROUNDS):
        win, loss = llr_weights(p0, rate)

        def scores(lo: int, hi: int, win: float = win, loss: float = loss) -> NDArray[np.float64]:
            return np.asarray(hits[lo:hi] * (win - loss) + trials * loss, dtype=np.float64)

        start, end, gain = _best_segment_blocks(scores, int(hits.shape[0]))
        rate = _marked_rate(hits, trials, p0, start, end)
    return start, end, gain


def find_segments(
    hits: NDArray[np.integer], trials: int, p0: float, *, initial_rate: float, alpha: float
) -> list[Segment]:
    """Marked segments among kept units, best first; those significant after correction, else the best one.

    ``initial_rate`` is a first guess of the marked hit rate per trial (e.g. the densest
    significant window's); ``alpha`` decides which segments count as significant.
    """
    n = int(hits.shape[0])
    if n == 0:
        return []
    searches = segment_count(n)
    found: list[Segment] = []
    pending = [(0, n)]
    rate = _inside(initial_rate, p0)
    while pending and len(found) < MAX_SPANS:
        lo, hi = pending.pop(0)
        start, end, gain = _search(hits[lo:hi], trials, p0, rate)
        if gain <= 0.0:
            continue
        segment_hits = int(hits[lo + start : lo + end].sum())
        tail = binomial_upper_tail(segment_hits, (end - start) * trials, p0)
        corrected = min(1.0, tail.p_value * searches)
        if corrected > alpha and found:
            continue
        found.append(Segment(lo + start, lo + end, segment_hits, tail.p_value, corrected))
        if corrected > alpha:
            break  # the best segment is not significant alone: report it as the evidence's location, no more
        for part in ((lo, lo + start), (lo + end, hi)):
            if part[1] - part[0] >= MIN_SEARCH_UNITS:
                pending.append(part)
    found.sort(key=lambda s: s.start)
    return found
