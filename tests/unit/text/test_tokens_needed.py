"""``tokens_needed``: how many scored tokens the observed hit rate needs to decide at alpha (#23)."""

from __future__ import annotations

import numpy as np
import pytest

from tracemark._stats import binomial_upper_tail
from tracemark.text import detect_tokens
from tracemark.text._schemes.native import NativeScheme
from tracemark.text._verdict import tokens_needed

from .test_native import make_key


def _sequence(scheme: NativeScheme, length: int, rate: float, rng: np.random.Generator) -> list[int]:
    """A token sequence whose units are green with probability ``rate`` (of 32 candidates, one of the wanted colour)."""
    sequence = [int(t) for t in rng.integers(0, scheme.vocab_size, 2)]
    for _ in range(length):
        candidates = rng.integers(0, scheme.vocab_size, 32)
        green = scheme.green(np.array([[*sequence[len(sequence) - scheme.context_width :], c] for c in candidates]))
        wanted = np.nonzero(green == (rng.random() < rate))[0]
        sequence.append(int(candidates[wanted[0] if wanted.size else 0]))
    return sequence


@pytest.mark.parametrize(("rate", "p0", "trials"), [(0.4, 0.25, 1), (0.6, 0.25, 1), (0.53, 0.5, 30), (0.9, 0.25, 1)])
def test_the_formula_meets_the_binomial_at_its_boundary(rate: float, p0: float, trials: int) -> None:
    alpha = 1e-6
    needed = tokens_needed(round(rate * 10_000 * trials), 10_000, trials, p0, alpha)
    assert needed is not None

    def decided(n: int) -> bool:
        total = n * trials
        return binomial_upper_tail(int(np.ceil(rate * total - 1e-9)), total, p0).p_value <= alpha

    assert decided(needed)
    assert not decided(needed - 1)


def test_a_rate_at_or_below_the_null_needs_no_length() -> None:
    assert tokens_needed(25, 100, 1, 0.25, 1e-6) is None
    assert tokens_needed(10, 100, 1, 0.25, 1e-6) is None
    assert tokens_needed(0, 0, 1, 0.25, 1e-6) is None


def test_tokens_needed_against_a_simulation_of_detection() -> None:
    # texts of the length the formula gives, at the rate it was given, are decided about half the time
    # (the expected hit count sits at the boundary); twice as long, nearly always; half as long, almost never.
    # Over 20 keys and seeds the fractions were 0.30-0.63, 0.93-1.0 and 0-0.13 (40 texts each, 118 tokens needed).
    key = make_key()
    scheme = NativeScheme(key)
    rate = 0.45
    needed = tokens_needed(45, 100, 1, scheme.success_probability, 1e-6)
    assert needed is not None
    rng = np.random.default_rng(2026)

    def decided_fraction(length: int) -> float:
        verdicts = [
            detect_tokens(np.array(_sequence(scheme, length, rate, rng)), key, scan_windows=False) for _ in range(40)
        ]
        return sum(v.marked for v in verdicts) / len(verdicts)

    assert 0.2 <= decided_fraction(needed) <= 0.8
    assert decided_fraction(2 * needed) >= 0.85
    assert decided_fraction(needed // 2) <= 0.3


def test_the_verdict_reports_it_with_its_corrections() -> None:
    key = make_key()
    scheme = NativeScheme(key)
    rng = np.random.default_rng(4)
    marked = detect_tokens(np.array(_sequence(scheme, 400, 0.6, rng)), key, scan_windows=False)
    assert marked.marked
    assert marked.tokens_needed is not None
    assert marked.tokens_needed <= marked.tokens_scored  # how few sufficed
    assert marked.to_json()["tokens_needed"] == marked.tokens_needed
    short = detect_tokens(np.array(_sequence(scheme, 40, 0.45, rng)), key, scan_windows=False)
    assert not short.marked
    assert short.tokens_needed is not None
    assert short.tokens_needed > short.tokens_scored
    # the windowed test halves the whole-text route's alpha: more tokens needed at the same rate
    windowed = detect_tokens(np.array(_sequence(scheme, 400, 0.45, rng)), key)
    same = tokens_needed(windowed.hits, windowed.tokens_scored, 1, scheme.success_probability, 1e-6 / 2)
    assert windowed.windows_tested > 0
    assert windowed.tokens_needed == same
