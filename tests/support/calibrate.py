"""Empirical false-positive rates of a key on unmarked text (calibration).

The p-values are exact under the null, so on text written without the key the share
of windows with ``p <= alpha`` must not exceed ``alpha`` (up to sampling error).  This
module measures that share on a corpus, vectorised over all windows at once: one
``score`` call over the whole token stream, then per-window de-duplication and exact
binomial tails.

A level is *demonstrated* when the one-sided 95 % Clopper–Pearson upper bound of the rate is
at or below ``alpha``: a claim that fails when the windows are too few to show it, not only
when the rate is too high.  Windows scored under one key are not independent (they share
units, which that key colours the same way everywhere), so the bound can be computed on an
effective sample: windows and false positives divided by the design effect, the variance of
the per-key count over its mean (Kish, 1965), at least 1.
"""

from __future__ import annotations

import math
import secrets
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray
from scipy import stats

from tracemark._stats import binomial_upper_tail_array
from tracemark.keys import TextKey
from tracemark.text import TextTokenizer, scheme_class
from tracemark.text._schemes import load_scheme
from tracemark.text._units import bulk_scheme, count_distinct_units

#: Confidence of the one-sided bounds (and 1 - the level of the exact test of excess).
CONFIDENCE = 0.95


@dataclass(frozen=True)
class RateAtLevel:
    """Observed false positives at one significance level and what they demonstrate.

    ``upper_bound`` and ``lower_bound`` are one-sided 95 % Clopper–Pearson bounds of the rate on
    ``windows / design_effect`` windows; ``status`` is ``"pass"`` (upper bound at or below
    ``alpha``), ``"excess"`` (lower bound above ``alpha``; with a design effect of 1 that is the
    exact one-sided binomial test of "rate <= alpha" rejecting at 5 %) or ``"not demonstrated"``
    (too few effective windows to tell).  ``p_value_of_excess`` is that exact test on the raw
    counts, as if the windows were independent.
    """

    alpha: float
    windows: int
    false_positives: int
    rate: float
    design_effect: float
    lower_bound: float
    upper_bound: float
    p_value_of_excess: float

    @property
    def status(self) -> str:
        """``"pass"``, ``"excess"`` or ``"not demonstrated"`` (see the class docstring)."""
        if self.upper_bound <= self.alpha:
            return "pass"
        return "excess" if self.lower_bound > self.alpha else "not demonstrated"

    @property
    def passes(self) -> bool:
        """True when the data show the rate is at most ``alpha`` (the upper bound is at or below it)."""
        return self.status == "pass"

    def to_json(self) -> dict[str, Any]:
        """The JSON object the benchmarks record."""
        return {
            "alpha": self.alpha, "windows": self.windows, "false_positives": self.false_positives,
            "rate": self.rate, "design_effect": self.design_effect, "lower_bound_95": self.lower_bound,
            "upper_bound_95": self.upper_bound, "p_value_of_excess": self.p_value_of_excess,
            "status": self.status, "passes": self.passes,
        }  # fmt: skip


def one_sided_bounds(successes: float, trials: float, confidence: float = CONFIDENCE) -> tuple[float, float]:
    """One-sided Clopper–Pearson lower and upper bounds (each holds with ``confidence``).

    Fractional counts (an effective sample) use the same beta quantiles.
    """
    low = 0.0 if successes <= 0 else float(stats.beta.ppf(1.0 - confidence, successes, trials - successes + 1))
    high = 1.0 if successes >= trials else float(stats.beta.ppf(confidence, successes + 1, trials - successes))
    return low, high


def p_value_of_excess(successes: int, trials: int, alpha: float) -> float:
    """Exact one-sided binomial test of "rate <= alpha": P(X >= successes) for X ~ Binomial(trials, alpha)."""
    return float(stats.binom.sf(successes - 1, trials, alpha))


def detectable_rate(trials: int, alpha: float, *, power: float = 0.9, level: float = 1.0 - CONFIDENCE) -> float:
    """The smallest rate that the exact test of "rate <= alpha" on ``trials`` windows rejects with ``power``."""
    critical = int(stats.binom.isf(level, trials, alpha)) + 1  # smallest count with P(X >= count) <= level
    low, high = alpha, 1.0
    for _ in range(60):
        middle = (low + high) / 2.0
        if stats.binom.sf(critical - 1, trials, middle) >= power:
            high = middle
        else:
            low = middle
    return high


def fresh_text_key(scheme: str, model_dir: Path | str, params: Mapping[str, Any] | None = None) -> TextKey:
    """A new key of ``scheme`` for the tokenizer of ``model_dir``, with fresh random secrets, stored nowhere."""
    tokenizer = TextTokenizer(model_dir)
    return scheme_class(scheme).new_key(
        secret_source=lambda label: secrets.token_bytes(64),
        vocab_size=tokenizer.vocab_size,
        tokenizer_sha256=tokenizer.sha256,
        params=params,
    )


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


def false_positive_rates(
    p_values: NDArray[np.float64], alphas: Sequence[float], design_effects: Sequence[float] | None = None
) -> list[RateAtLevel]:
    """Share of p-values at or below each level, with one-sided bounds and the exact test of excess.

    ``design_effects`` (one per level, default 1) shrink the sample for the bounds when windows
    are correlated; the exact test uses the raw counts.
    """
    total = int(p_values.shape[0])
    out = []
    for index, alpha in enumerate(alphas):
        hits = int(np.count_nonzero(p_values <= alpha))
        effect = max(1.0, float(design_effects[index])) if design_effects is not None else 1.0
        low, high = one_sided_bounds(hits / effect, total / effect)
        rate = hits / total if total else math.nan
        out.append(RateAtLevel(alpha, total, hits, rate, effect, low, high, p_value_of_excess(hits, total, alpha)))
    return out


def design_effect(counts: Sequence[float], expected: Sequence[float]) -> float:
    """Variance of independent clusters' counts over their mean expectation, at least 1 (Kish's design effect)."""
    observed = np.asarray(counts, dtype=np.float64)
    mean = float(np.mean(np.asarray(expected, dtype=np.float64)))
    if observed.shape[0] < 2 or mean <= 0.0:
        return 1.0
    return max(1.0, float(observed.var(ddof=1)) / mean)
