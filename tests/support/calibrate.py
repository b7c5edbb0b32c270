"""Empirical false-positive rates of a key on unmarked text (calibration).

The p-values are exact under the null, so on text written without the key the share
of windows with ``p <= alpha`` must not exceed ``alpha`` (up to sampling error).  This
module measures that share on a corpus, vectorised over all windows at once: one
``score`` call over the whole token stream, then per-window de-duplication and exact
binomial tails.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray
from scipy import stats

from tracemark._stats import binomial_upper_tail_array
from tracemark.keys import TextKey
from tracemark.text._schemes import load_scheme
from tracemark.text._units import bulk_scheme, count_distinct_units


@dataclass(frozen=True)
class RateAtLevel:
    """Observed false positives at one significance level, with a Clopper–Pearson interval."""

    alpha: float
    windows: int
    false_positives: int
    rate: float
    interval_low: float
    interval_high: float

    @property
    def within_nominal(self) -> bool:
        """True when the nominal level is not below the interval (no excess false positives)."""
        return self.interval_low <= self.alpha


def clopper_pearson(successes: int, trials: int, confidence: float = 0.95) -> tuple[float, float]:
    """Exact two-sided binomial confidence interval for a proportion."""
    tail = (1.0 - confidence) / 2.0
    low = 0.0 if successes == 0 else float(stats.beta.ppf(tail, successes, trials - successes + 1))
    high = 1.0 if successes == trials else float(stats.beta.ppf(1.0 - tail, successes + 1, trials - successes))
    return low, high


def window_p_values(
    key: TextKey, token_ids: NDArray[np.int64], window: int, *, deduplicate: bool = True
) -> NDArray[np.float64]:
    """Exact p-values of consecutive non-overlapping windows of ``window`` tokens.

    Each window is de-duplicated as the detector does; ``deduplicate=False`` counts every
    position (what detectors that score repeated n-grams do), for comparison.
    """
    return window_tests(key, token_ids, window, deduplicate=deduplicate)[0]


def window_tests(
    key: TextKey, token_ids: NDArray[np.int64], window: int, *, deduplicate: bool = True
) -> tuple[NDArray[np.float64], NDArray[np.int64]]:
    """:func:`window_p_values` and, per window, the number of Bernoulli trials its test had.

    A window's test uses only the units that lie wholly inside it, so each window is an
    independent sequence: schemes with a bulk path score all windows as the rows of one
    batch (:mod:`tracemark.text._units`).
    """
    scheme = load_scheme(key)
    full = int(token_ids.shape[0] // window)
    if deduplicate and bulk_scheme(scheme) is not None:
        windows = np.asarray(token_ids[: full * window], dtype=np.int64).reshape(full, window)
        counted = count_distinct_units(scheme, list(windows))
        keep = counted.distinct > 0
        trials = counted.distinct[keep] * scheme.trials_per_unit
        return binomial_upper_tail_array(counted.hits[keep], trials, scheme.success_probability), trials
    units = scheme.score(np.asarray(token_ids, dtype=np.int64))
    window_index = units.positions // window
    # drop the trailing partial window and units whose context reaches into the previous window
    offset = units.positions - window_index * window
    usable = (window_index < full) & (offset >= scheme.context_width)
    rows = np.column_stack([window_index[usable], units.unit_keys[usable]]).astype(np.int64)
    hits = units.hits[usable]
    void = np.ascontiguousarray(rows).view(np.dtype((np.void, rows.itemsize * rows.shape[1]))).ravel()
    if deduplicate:
        _, first = np.unique(void, return_index=True)
    else:
        first = np.arange(rows.shape[0])
    distinct_window = rows[first, 0]
    counts = np.bincount(distinct_window, minlength=full)
    hit_sums = np.bincount(distinct_window, weights=hits[first], minlength=full).astype(np.int64)
    keep = counts > 0
    trials = counts[keep] * scheme.trials_per_unit
    return binomial_upper_tail_array(hit_sums[keep], trials, scheme.success_probability), trials


def exact_sizes(trials: NDArray[np.int64], probability: float, alpha: float) -> NDArray[np.float64]:
    """Probability under the null that a test with ``trials`` Bernoulli(``probability``) trials gives p <= alpha.

    The binomial test is discrete, so this is at most ``alpha`` and often well below it;
    summed over windows it is the number of false positives an exactly calibrated detector
    expects on the corpus.
    """
    n = np.asarray(trials, dtype=np.float64)
    # smallest k with P(X >= k) <= alpha is isf(alpha) + 1; the size is P(X >= k) = sf(k - 1)
    threshold = stats.binom.isf(alpha, n, probability)
    return np.asarray(stats.binom.sf(threshold, n, probability), dtype=np.float64)


def false_positive_rates(p_values: NDArray[np.float64], alphas: Sequence[float]) -> list[RateAtLevel]:
    """Share of p-values at or below each level, with 95 % Clopper–Pearson intervals."""
    total = int(p_values.shape[0])
    out = []
    for alpha in alphas:
        hits = int(np.count_nonzero(p_values <= alpha))
        low, high = clopper_pearson(hits, total)
        out.append(RateAtLevel(alpha, total, hits, hits / total if total else math.nan, low, high))
    return out
