"""The null distributions behind every radioactivity p-value: exact where claimed, conservative elsewhere."""

from __future__ import annotations

import math

import numpy as np
import pytest
from numpy.typing import NDArray
from scipy import stats

from tracemark._stats import (
    _dp_tail,
    _fft_tail,
    _group,
    binomial_upper_tail,
    chernoff_upper_bound,
    clopper_pearson,
    weighted_binomial_null_survival,
    weighted_binomial_upper_tail,
)


def brute_force_survival(weights: NDArray[np.int64], trials: NDArray[np.int64], p: float) -> NDArray[np.float64]:
    """P(S >= k) by direct convolution of every term (no FFT, no tilting)."""
    pmf = np.array([1.0])
    for w, m in zip(weights, trials, strict=True):
        term = np.zeros(w * m + 1)
        term[:: int(w)] = stats.binom.pmf(np.arange(m + 1), m, p)
        pmf = np.convolve(pmf, term)
    return np.cumsum(pmf[::-1])[::-1]


@pytest.mark.parametrize(("seed", "p", "max_trials"), [(0, 0.25, 1), (1, 0.5, 1), (2, 0.25, 3), (3, 0.1, 1)])
def test_weighted_tail_is_exact_far_into_the_tail(seed: int, p: float, max_trials: int) -> None:
    rng = np.random.default_rng(seed)
    weights = rng.integers(1, 7, 60)
    trials = rng.integers(1, max_trials + 1, 60)
    truth = brute_force_survival(weights, trials, p)
    for observed in range(0, truth.shape[0], 7):
        tail = weighted_binomial_upper_tail(observed, weights, trials, p)
        if truth[observed] > 1e-300:
            assert tail.log10_p_value == pytest.approx(math.log10(truth[observed]), rel=1e-9, abs=1e-12)
    table = weighted_binomial_null_survival(weights, trials, p)
    assert np.max(np.abs(table - truth)) < 1e-12


@pytest.mark.parametrize(("seed", "p", "max_trials"), [(5, 0.25, 1), (6, 0.5, 4), (7, 0.7, 2)])
def test_both_exact_methods_equal_direct_convolution(seed: int, p: float, max_trials: int) -> None:
    """The dynamic programme and the tilted FFT (each chosen where it is cheaper) give the same exact tail."""
    rng = np.random.default_rng(seed)
    weights = rng.integers(1, 30, 12)
    trials = rng.integers(1, max_trials + 1, 12)
    truth = brute_force_survival(weights, trials, p)
    values, pooled = _group(weights, trials)
    support = int(np.sum(values * pooled))
    for observed in range(1, support + 1, 3):
        dp = _dp_tail(values, pooled, p, observed)
        fft = _fft_tail(values, pooled, p, observed, support)
        assert fft is not None
        if truth[observed] > 1e-280:
            assert dp == pytest.approx(truth[observed], rel=1e-12)
            assert fft.log10_p_value == pytest.approx(math.log10(truth[observed]), rel=1e-9, abs=1e-12)


def test_a_work_budget_trades_the_exact_tail_for_the_bound() -> None:
    """SynthID's weighted mean on long texts: over the caller's budget the conservative bound is returned."""
    weights = 10 * 29 - 9 * np.arange(30)  # SynthID's integer weights at depth 30
    trials = np.full(30, 24)
    observed = int(0.55 * 24 * weights.sum())
    exact = weighted_binomial_upper_tail(observed, weights, trials, 0.5)
    bounded = weighted_binomial_upper_tail(observed, weights, trials, 0.5, max_work=1e6)
    assert exact.method == "weighted-binomial-exact"
    assert bounded.method == "chernoff-bound"
    assert exact.p_value < bounded.p_value < 10 * exact.p_value
    assert weighted_binomial_upper_tail(observed, weights, trials, 0.5, max_work=1e8) == exact


def test_unit_weights_reduce_to_the_binomial_tail() -> None:
    weights = np.ones(500, dtype=np.int64)
    trials = np.ones(500, dtype=np.int64)
    for k in (0, 100, 125, 200, 400, 500):
        tail = weighted_binomial_upper_tail(k, weights, trials, 0.25)
        assert tail.p_value == pytest.approx(float(stats.binom.sf(k - 1, 500, 0.25)), rel=1e-9)


def test_tiny_tails_keep_their_logarithm() -> None:
    tail = binomial_upper_tail(60_000, 100_000, 0.25)
    assert tail.p_value == 0.0
    assert -20_000 < tail.log10_p_value < -5_000
    weights = np.minimum(np.random.default_rng(4).geometric(0.5, 20_000), 16)
    observed = int(0.5 * weights.sum())
    weighted = weighted_binomial_upper_tail(observed, weights, np.ones_like(weights), 0.25)
    bound = chernoff_upper_bound(float(observed), weights.astype(np.float64), 0.25)
    assert math.isfinite(weighted.log10_p_value)
    assert weighted.log10_p_value < -300
    # the exact tail lies below the Chernoff bound, within a polynomial factor of it
    assert bound.log10_p_value - 5 < weighted.log10_p_value < bound.log10_p_value


def test_impossible_and_trivial_observations() -> None:
    weights = np.array([1, 2, 3])
    trials = np.ones(3, dtype=np.int64)
    assert weighted_binomial_upper_tail(0, weights, trials, 0.25).p_value == 1.0
    assert weighted_binomial_upper_tail(7, weights, trials, 0.25).p_value == 0.0
    assert weighted_binomial_upper_tail(6, weights, trials, 0.25).p_value == pytest.approx(0.25**3)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_chernoff_bound_is_never_below_the_exact_tail(seed: int) -> None:
    rng = np.random.default_rng(seed)
    weights = rng.integers(1, 5, 40)
    truth = brute_force_survival(weights, np.ones_like(weights), 0.3)
    for observed in range(1, int(weights.sum()) + 1):
        bound = chernoff_upper_bound(float(observed), weights.astype(np.float64), 0.3)
        assert bound.p_value >= truth[observed] * (1 - 1e-9)


def test_weighted_test_is_calibrated_by_simulation() -> None:
    """Draw many null data sets with one fixed weight vector: the rejection rate stays at or below alpha."""
    rng = np.random.default_rng(11)
    weights = np.minimum(rng.geometric(0.4, 300), 8)
    draws = 4000
    hits = rng.random((draws, weights.shape[0])) < 0.25
    statistics = hits.astype(np.int64) @ weights
    survival = weighted_binomial_null_survival(weights, np.ones_like(weights), 0.25)
    p_values = survival[statistics]
    values, inverse = np.unique(statistics, return_inverse=True)
    bound_of = np.array([chernoff_upper_bound(float(v), weights.astype(np.float64), 0.25).p_value for v in values])
    bounds = bound_of[inverse]
    for alpha in (0.05, 0.01):
        upper = stats.binom.ppf(0.995, draws, alpha) / draws
        assert np.mean(p_values <= alpha) <= upper
        assert np.mean(bounds <= alpha) <= np.mean(p_values <= alpha)  # conservative
    # exact: the rejection rate is not far *below* alpha either (the band's lower edge)
    assert np.mean(p_values <= 0.05) >= stats.binom.ppf(0.005, draws, 0.05) / draws - 0.02


def test_clopper_pearson_covers_the_estimate() -> None:
    low, high = clopper_pearson(30, 100)
    assert low < 0.3 < high
    assert clopper_pearson(0, 10)[0] == 0.0
    assert clopper_pearson(10, 10)[1] == 1.0
