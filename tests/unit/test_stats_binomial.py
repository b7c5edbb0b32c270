"""Exact p-values: checked against brute-force enumeration of the binomial distribution."""

from __future__ import annotations

import math
from fractions import Fraction
from itertools import product

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from tracemark._stats import binomial_upper_tail, binomial_upper_tail_array


def brute_force_tail(k: int, n: int, p: Fraction) -> Fraction:
    total = Fraction(0)
    for outcome in product((0, 1), repeat=n):
        if sum(outcome) >= k:
            term = Fraction(1)
            for bit in outcome:
                term *= p if bit else 1 - p
            total += term
    return total


@pytest.mark.parametrize("n", range(0, 11))
@pytest.mark.parametrize("p", [Fraction(1, 4), Fraction(1, 2)])
def test_tail_equals_enumeration_for_small_lengths(n: int, p: Fraction) -> None:
    for k in range(0, n + 2):
        exact = brute_force_tail(k, n, p)
        got = binomial_upper_tail(k, n, float(p))
        assert got.p_value == pytest.approx(float(exact), rel=1e-12, abs=0)
        assert got.method == "binomial-exact"


def test_tiny_tails_keep_their_logarithm() -> None:
    # 2000 hits of 2000 trials at gamma = 0.25: p = 0.25**2000, far below float range
    got = binomial_upper_tail(2000, 2000, 0.25)
    assert got.log10_p_value == pytest.approx(2000 * math.log10(0.25), rel=1e-9)
    got = binomial_upper_tail(900, 1000, 0.25)
    assert got.p_value < 1e-290 or got.p_value > 0
    assert got.log10_p_value < -300


@given(st.integers(1, 400), st.data())
def test_array_matches_scalar(n: int, data: st.DataObject) -> None:
    k = data.draw(st.integers(0, n))
    scalar = binomial_upper_tail(k, n, 0.25).p_value
    vector = binomial_upper_tail_array(np.array([k]), np.array([n]), 0.25)[0]
    assert vector == pytest.approx(scalar, rel=1e-9, abs=1e-300)


def test_normal_approximation_would_understate_small_sample_tails() -> None:
    # z > 4 at 16 tokens: the normal tail says 3.2e-5; the exact tail is an order of magnitude larger
    trials, gamma = 16, 0.25
    k = math.ceil(gamma * trials + 4 * math.sqrt(trials * gamma * (1 - gamma)))
    assert binomial_upper_tail(k, trials, gamma).p_value > 2e-4


@pytest.mark.parametrize("probability", [0.25, 0.5])
@pytest.mark.parametrize("alpha", [1e-2, 1e-6])
def test_exact_size_is_the_null_probability_of_rejecting(probability: float, alpha: float) -> None:
    from tests.support.calibrate import exact_sizes

    trials = np.arange(1, 120)
    sizes = exact_sizes(trials, probability, alpha)
    for n, size in zip(trials.tolist(), sizes.tolist(), strict=True):
        rejecting = [k for k in range(n + 1) if binomial_upper_tail(k, n, probability).p_value <= alpha]
        expected = binomial_upper_tail(rejecting[0], n, probability).p_value if rejecting else 0.0
        assert size == pytest.approx(expected, rel=1e-9, abs=1e-300)
        assert size <= alpha
