"""Exact tail probabilities shared by every detector: binomial, weighted binomial, Chernoff.

Under a watermark's null hypothesis (the text was written without the key) every distinct
scored unit is an independent draw, because the keyed function is a pseudo-random function
of the unit and repeated units are scored once.  Green counts are then exactly binomial,
and p-values are binomial upper tails computed from the regularised incomplete beta
function, not from a normal approximation (which understates small-sample tails by an
order of magnitude: z > 4 is p = 3.2e-5 under the normal but 2.9e-4 at 16 tokens).

Weighted statistics ``S = sum_i w_i h_i`` (SynthID's weighted mean, radioactivity's
count-weighted score) have a known null distribution too, conditioned on the weights.
:func:`weighted_binomial_upper_tail` is the one function both use; it picks the cheapest of
three methods by an estimate of their work:

* **integer weights, dynamic programme**: units with the same weight ``w`` pool into one
  ``w * Binomial(m_w, p)`` term, and the distribution of ``S`` is built term by term on
  ``[0, s)``, all mass that reaches ``s`` collected in the tail.  Every step adds
  non-negative terms (no cancellation), so the tail is exact to float64 rounding until it
  underflows (below 1e-280 the next method takes over).  Its work grows with the trials per
  term times the support: cheap for a few short terms (SynthID on short texts).
* **integer weights, FFT**: the characteristic function of ``S`` is the product of the
  closed-form ones of the terms and an inverse FFT returns the whole distribution.  An
  FFT's error is absolute (about 1e-15 of the largest probability), so a far tail is
  computed under an *exponentially tilted* measure whose mean sits at ``s``:
  ``P(S >= s) = M(l) e^(-l s) sum_{k>=s} q_l(k) e^(-l (k-s))``.  The identity is exact for
  every ``l``; the tilt only moves the mass the FFT resolves to where the sum is taken, so
  tails of 1e-300 and below keep their logarithm to about twelve digits.  This is not a
  saddlepoint approximation.  Its work grows with the number of distinct weights times the
  support: cheap for many units with few distinct weights (radioactivity).
* **real weights**, integer supports beyond :data:`MAX_EXACT_SUPPORT`, or exact methods
  over the caller's work budget: :func:`chernoff_upper_bound` returns the Chernoff bound
  ``inf_l exp(-l s) E[exp(l S)]`` from the exact moment generating function: never smaller
  than the true tail (a conservative p-value), within a polynomial factor of it.  It stays
  valid for negatively associated hits (KGW green lists shared by units with the same
  context, drawn without replacement) because their moment generating function is bounded
  by the independent one (Joag-Dev and Proschan, 1983).

scipy is imported inside the functions: it costs seconds at start-up, and commands that
score nothing (keys, tlog) should not pay for it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray


@dataclass(frozen=True)
class TailProbability:
    """P(X >= observed) with its base-10 logarithm (kept when the float underflows)."""

    p_value: float
    log10_p_value: float
    method: str


def binomial_upper_tail(successes: int, trials: int, probability: float) -> TailProbability:
    """Exact P(X >= successes) for X ~ Binomial(trials, probability)."""
    if trials < 0 or not 0.0 < probability < 1.0:
        raise ValueError("binomial tail needs trials >= 0 and 0 < probability < 1")
    if successes <= 0:
        return TailProbability(1.0, 0.0, "binomial-exact")
    if successes > trials:
        return TailProbability(0.0, -math.inf, "binomial-exact")
    from scipy import special, stats

    # P(X >= k) = I_p(k, n - k + 1)
    p = float(special.betainc(successes, trials - successes + 1, probability))
    if p > 1e-290:
        return TailProbability(p, math.log10(p), "binomial-exact")
    ks = np.arange(successes, trials + 1)
    log_terms = stats.binom.logpmf(ks, trials, probability)
    log_p = float(special.logsumexp(log_terms))
    return TailProbability(math.exp(log_p), log_p / math.log(10.0), "binomial-exact")


def binomial_upper_tail_array(
    successes: NDArray[np.int64], trials: NDArray[np.int64], probability: float
) -> NDArray[np.float64]:
    """Vectorised exact P(X >= k) for many (k, n) pairs (used for window scans)."""
    from scipy import special

    k = np.asarray(successes, dtype=np.float64)
    n = np.asarray(trials, dtype=np.float64)
    out = np.ones(np.broadcast(k, n).shape, dtype=np.float64)
    inside = (k > 0) & (k <= n)
    out[inside] = special.betainc(k[inside], n[inside] - k[inside] + 1.0, probability)
    out[k > n] = 0.0
    return out


def binomial_z_score(successes: int, trials: int, probability: float) -> float:
    """The familiar z-score, reported for comparison only (never used for the decision)."""
    if trials == 0:
        return 0.0
    return (successes - probability * trials) / math.sqrt(trials * probability * (1.0 - probability))


#: Largest support (sum of weight x trials) the exact FFT method handles; above it the Chernoff bound is used.
MAX_EXACT_SUPPORT = 1 << 24
#: Work estimates count multiply-adds of a vectorised float64 loop (about a nanosecond each on one core).
#: One numpy call of the dynamic programme costs about this many besides its elements...
_DP_CALL_WORK = 5_000
#: ... and one FFT frequency of one distinct weight (a log, an arctangent, a cosine, a sine) about this many.
_FFT_TERM_WORK = 30
#: Below this the dynamic programme's float64 tail may have lost mass to underflow; the FFT takes over.
_DP_FLOOR = 1e-280


def _tail(log_p: float, method: str) -> TailProbability:
    log_p = min(0.0, log_p)
    return TailProbability(math.exp(log_p) if log_p > -745.0 else 0.0, log_p / math.log(10.0), method)


def _group(weights: NDArray[np.int64], trials: NDArray[np.int64]) -> tuple[NDArray[np.int64], NDArray[np.int64]]:
    """Pool equal weights: distinct positive weight values and the Bernoulli trials each carries."""
    w = np.asarray(weights, dtype=np.int64)
    m = np.asarray(trials, dtype=np.int64)
    if w.shape != m.shape or w.ndim != 1:
        raise ValueError("weights and trials must be 1-D arrays of one length")
    if w.size and (int(w.min()) < 1 or int(m.min()) < 0):
        raise ValueError("weights must be positive integers and trials non-negative")
    values, inverse = np.unique(w, return_inverse=True)
    pooled = np.bincount(inverse, weights=m, minlength=values.size).astype(np.int64)
    keep = pooled > 0
    return values[keep], pooled[keep]


def _log_mgf(values: NDArray[np.int64], pooled: NDArray[np.int64], probability: float, tilt: float) -> float:
    """log E[exp(tilt * S)] for S = sum_w w * Binomial(m_w, p)."""
    logit = math.log(probability) - math.log1p(-probability)
    return float(np.sum(pooled * (math.log1p(-probability) + np.logaddexp(0.0, logit + tilt * values))))


def _tilted_probabilities(values: NDArray[np.int64], probability: float, tilt: float) -> NDArray[np.float64]:
    from scipy import special

    logit = math.log(probability) - math.log1p(-probability)
    return np.asarray(special.expit(logit + tilt * values), dtype=np.float64)


def _solve_tilt(values: NDArray[np.int64], pooled: NDArray[np.int64], probability: float, target: float) -> float:
    """The tilt whose tilted mean of S equals ``target`` (monotone in the tilt: bracket, then Brent)."""
    from scipy import optimize

    def excess(tilt: float) -> float:
        return float(np.sum(pooled * values * _tilted_probabilities(values, probability, tilt))) - target

    high = 1.0
    while excess(high) < 0.0:
        high *= 2.0
        if high > 1e6:
            break
    return float(optimize.brentq(excess, 0.0, high, xtol=1e-12, maxiter=200))


def _tilted_pmf(
    values: NDArray[np.int64], pooled: NDArray[np.int64], probability: float, tilt: float, support: int
) -> NDArray[np.float64]:
    """Distribution of S on 0..support under the tilted measure, by inverse FFT of the product of
    closed-form characteristic functions (magnitude and phase summed separately: no complex overflow)."""
    size = 1 << max(4, int(support).bit_length())
    theta = 2.0 * np.pi * np.arange(size // 2 + 1) / size
    log_magnitude = np.zeros(theta.shape[0])
    phase = np.zeros(theta.shape[0])
    for value, count, q in zip(values, pooled, _tilted_probabilities(values, probability, tilt), strict=True):
        angle = theta * float(value)
        real = (1.0 - q) + q * np.cos(angle)
        imag = -q * np.sin(angle)  # numpy's forward DFT uses exp(-i theta k)
        with np.errstate(divide="ignore"):
            log_magnitude += float(count) * 0.5 * np.log(real * real + imag * imag)
        phase += float(count) * np.arctan2(imag, real)
    spectrum = np.exp(log_magnitude) * (np.cos(phase) + 1j * np.sin(phase))
    pmf = np.fft.irfft(spectrum, n=size)[: support + 1]
    return np.clip(pmf, 0.0, None)


def _dp_work(values: NDArray[np.int64], pooled: NDArray[np.int64], observed: int) -> float:
    """Estimated work of :func:`_dp_tail`: one pass over the kept distribution per trial of each term."""
    lengths = np.minimum(observed, np.cumsum(values * pooled) + 1).astype(np.float64)
    return float(np.sum((pooled + 1.0) * (lengths + _DP_CALL_WORK)))


def _fft_work(values: NDArray[np.int64], support: int) -> float:
    """Estimated work of :func:`_tilted_pmf` on ``support``: every distinct weight at every frequency."""
    size = 1 << max(4, int(support).bit_length())
    return float((values.size * _FFT_TERM_WORK + 10) * (size // 2 + 1))


def _dp_tail(values: NDArray[np.int64], pooled: NDArray[np.int64], probability: float, observed: int) -> float:
    """Exact ``P(S >= observed)`` by dynamic programming over the terms, smallest weight first.

    The distribution is kept on ``[0, observed)`` and all mass that reaches ``observed`` (it
    can only grow: weights are positive) is accumulated in the tail; every operation adds
    non-negative float64 terms, so there is no cancellation.
    """
    from scipy import stats

    current = np.ones(1, dtype=np.float64)
    tail = 0.0
    kernels: dict[int, NDArray[np.float64]] = {}  # terms often share their trial count (SynthID: every layer)
    for value, count in zip(values.tolist(), pooled.tolist(), strict=True):
        kernel = kernels.get(count)
        if kernel is None:
            kernel = kernels[count] = np.asarray(stats.binom.pmf(np.arange(count + 1), count, probability))
        suffix = np.concatenate([np.cumsum(current[::-1])[::-1], [0.0]])
        following = np.zeros(min(observed, current.shape[0] + count * value), dtype=np.float64)
        for k in range(count + 1):
            shift = k * value
            keep = min(current.shape[0], observed - shift)
            if keep > 0:
                following[shift : shift + keep] += kernel[k] * current[:keep]
                tail += kernel[k] * suffix[keep]
            else:
                tail += kernel[k] * suffix[0]
        current = following
    return float(tail)


def weighted_binomial_upper_tail(
    observed: int,
    weights: NDArray[np.int64],
    trials: NDArray[np.int64],
    probability: float,
    *,
    max_work: float | None = None,
) -> TailProbability:
    """``P(S >= observed)`` for ``S = sum_i weights[i] * Binomial(trials[i], probability)``, independent terms.

    Exact (method ``weighted-binomial-exact``, see the module docstring: a dynamic programme
    or a tilted FFT, whichever is estimated cheaper) when the support ``sum(weights * trials)``
    is at most :data:`MAX_EXACT_SUPPORT` and the cheaper method's estimated work is at most
    ``max_work`` multiply-adds (unlimited when None); otherwise the conservative Chernoff bound.
    Unit weights alone give the binomial tail (``binomial-exact``).
    """
    if not 0.0 < probability < 1.0:
        raise ValueError("probability must lie strictly between 0 and 1")
    values, pooled = _group(weights, trials)
    if values.size == 1 and int(values[0]) == 1:
        return binomial_upper_tail(int(observed), int(pooled[0]), probability)
    support = int(np.sum(values * pooled))
    if observed <= 0 or observed > support:
        certain = observed <= 0
        return TailProbability(float(certain), 0.0 if certain else -math.inf, "weighted-binomial-exact")
    exact = None
    if support <= MAX_EXACT_SUPPORT:
        exact = _exact_tail(values, pooled, probability, observed, math.inf if max_work is None else max_work)
    return exact or _chernoff(float(observed), values.astype(np.float64), pooled.astype(np.float64), probability)


def _exact_tail(
    values: NDArray[np.int64], pooled: NDArray[np.int64], probability: float, observed: int, budget: float
) -> TailProbability | None:
    """The exact tail by the method estimated cheaper, or None when both are over ``budget`` (or underflowed)."""
    support = int(np.sum(values * pooled))
    fft_work = _fft_work(values, support)
    if _dp_work(values, pooled, observed) <= min(fft_work, budget):
        p = min(1.0, _dp_tail(values, pooled, probability, observed))
        if p >= _DP_FLOOR:
            return TailProbability(p, math.log10(p), "weighted-binomial-exact")
    return _fft_tail(values, pooled, probability, observed, support) if fft_work <= budget else None


def _fft_tail(
    values: NDArray[np.int64], pooled: NDArray[np.int64], probability: float, observed: int, support: int
) -> TailProbability | None:
    """The tilted-FFT tail (see the module docstring); None when the tilted tail underflowed."""
    mean = probability * support
    tilt = 0.0
    if observed > mean:
        tilt = _solve_tilt(values, pooled, probability, min(float(observed), support - 0.5))
    pmf = _tilted_pmf(values, pooled, probability, tilt, support)
    offsets = np.arange(support - observed + 1, dtype=np.float64)
    tail_sum = float(np.sum(pmf[observed:] * np.exp(-tilt * offsets)))
    if tail_sum <= 0.0:
        return None
    log_p = _log_mgf(values, pooled, probability, tilt) - tilt * observed + math.log(tail_sum)
    return _tail(log_p, "weighted-binomial-exact")


def weighted_binomial_null_survival(
    weights: NDArray[np.int64], trials: NDArray[np.int64], probability: float
) -> NDArray[np.float64]:
    """``P(S >= k)`` for every k in 0..support (the untilted null; accurate to about 1e-13 absolute).

    Used for many wrong keys on the same tuples: their statistics share one null distribution.
    """
    values, pooled = _group(weights, trials)
    support = int(np.sum(values * pooled))
    if support > MAX_EXACT_SUPPORT:
        raise ValueError(f"the weighted statistic's support ({support}) is too large for an exact null table")
    pmf = _tilted_pmf(values, pooled, probability, 0.0, support)
    pmf /= pmf.sum()
    survival = np.cumsum(pmf[::-1])[::-1]
    return np.asarray(np.clip(survival, 0.0, 1.0), dtype=np.float64)


def chernoff_upper_bound(observed: float, weights: NDArray[np.float64], probability: float) -> TailProbability:
    """Chernoff bound on ``P(sum_i weights[i] * B_i >= observed)``, ``B_i ~ Bernoulli(probability)`` independent.

    A valid (conservative) p-value for non-negative real weights; see the module docstring.
    """
    a = np.asarray(weights, dtype=np.float64)
    values, counts = np.unique(a[a > 0.0], return_counts=True)
    return _chernoff(float(observed), values, counts.astype(np.float64), probability)


def _chernoff(
    observed: float, values: NDArray[np.float64], pooled: NDArray[np.float64], probability: float
) -> TailProbability:
    """:func:`chernoff_upper_bound` of ``sum_w w * Binomial(pooled_w, probability)`` (distinct positive ``values``)."""
    from scipy import special

    total = float(np.sum(values * pooled))
    if values.size == 0 or observed <= probability * total:
        return TailProbability(1.0, 0.0, "chernoff-bound")
    if observed > total:
        return TailProbability(0.0, -math.inf, "chernoff-bound")
    log_q, log_p = math.log1p(-probability), math.log(probability)
    if observed >= total - 1e-12 * total:
        # all-hit corner: the infimum is the limit, P(every unit hits) (exact for this event)
        return _tail(float(np.sum(pooled)) * log_p, "chernoff-bound")

    def log_bound(tilt: float) -> float:
        per_term = np.logaddexp(log_q, log_p + tilt * values)
        value = float(np.sum(pooled * per_term)) - tilt * observed
        # float64 rounding of a sum of terms this large: a margin far above it keeps the bound an upper bound
        magnitude = abs(tilt * observed) + float(np.sum(pooled * np.abs(per_term)))
        return value + 1e-12 * (1.0 + magnitude)

    def slope(tilt: float) -> tuple[float, float]:
        tilted = special.expit(tilt * values + log_p - log_q)  # P(hit) under the exponentially tilted law
        return (
            float(np.sum(pooled * values * tilted)) - observed,
            float(np.sum(pooled * values * values * tilted * (1.0 - tilted))),
        )

    # the bound holds at every tilt >= 0; a safeguarded Newton search on the convex exponent makes it tight
    low, high = 0.0, 1.0 / float(values.max())
    cap = (60.0 + abs(log_p - log_q)) / float(values.min())  # beyond it every term hits with odds above e**60
    while high < cap and slope(high)[0] < 0.0:
        low, high = high, 2.0 * high
    high = min(high, cap)
    tilt = high
    for _ in range(100):
        gradient, curvature = slope(tilt)
        if abs(gradient) <= 1e-9 * observed:
            break
        if gradient > 0.0:
            high = tilt
        else:
            low = tilt
        step = tilt - gradient / curvature if curvature > 0.0 else -1.0
        tilt = step if low < step < high else 0.5 * (low + high)
        if high - low <= 1e-12 * high:
            break
    return _tail(min(log_bound(tilt), log_bound(high)), "chernoff-bound")


def clopper_pearson(successes: int, trials: int, confidence: float = 0.95) -> tuple[float, float]:
    """Exact two-sided confidence interval of a binomial proportion."""
    from scipy import stats

    if trials <= 0:
        return (0.0, 1.0)
    tail = (1.0 - confidence) / 2.0
    low = 0.0 if successes == 0 else float(stats.beta.ppf(tail, successes, trials - successes + 1))
    high = 1.0 if successes == trials else float(stats.beta.ppf(1.0 - tail, successes + 1, trials - successes))
    return (low, high)


def benjamini_hochberg(p_values: NDArray[np.float64], fdr: float) -> tuple[int, float | None]:
    """Number of discoveries and the p-value threshold of the Benjamini-Hochberg step-up procedure."""
    m = int(p_values.shape[0])
    if m == 0:
        return 0, None
    ordered = np.sort(p_values)
    passing = np.nonzero(ordered <= fdr * np.arange(1, m + 1) / m)[0]
    if passing.shape[0] == 0:
        return 0, None
    k = int(passing[-1]) + 1
    return k, float(ordered[k - 1])
