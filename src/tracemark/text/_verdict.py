"""Detection verdicts: frozen dataclasses with a documented JSON form."""

from __future__ import annotations

import functools
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TypedDict

import numpy as np
from numpy.typing import NDArray

from tracemark._json import FrozenJSONObject, JSONObject, freeze, thaw_object

VERDICT_FORMAT = "tracemark.text.verdict/v1"


@dataclass(frozen=True)
class Span:
    """A stretch of the text whose windows are significant after the multiple-testing correction."""

    start_token: int
    end_token: int
    start_char: int
    end_char: int
    tokens_scored: int
    hits: int
    p_value: float
    p_value_corrected: float


@dataclass(frozen=True)
class TokenMark:
    """One token of the canonical text: its characters and whether it counted as a hit.

    ``status`` is ``"hit"``, ``"miss"``, ``"repeat"`` (a repeated unit, scored once),
    ``"prompt"`` or ``"context"`` (no full context before it: not scorable).
    """

    start_char: int
    end_char: int
    status: str


@dataclass(frozen=True)
class Statistic:
    """A secondary statistic (e.g. SynthID's weighted mean), reported but not used for the decision."""

    name: str
    score: float
    p_value: float
    log10_p_value: float
    method: str


#: :func:`tokens_needed` looks up to ``2**_MAX_DOUBLINGS`` scored tokens (a rate this close to the null needs
#: more than any text holds, and is reported as None).
_MAX_DOUBLINGS = 40


def tokens_needed(hits: int, units: int, trials_per_unit: int, p0: float, target: float) -> int | None:
    """Fewest distinct scored tokens at the observed hit rate whose whole-text p-value reaches ``target``.

    The observed rate is ``r = hits / (units * m)`` with ``m = trials_per_unit``.  A text of ``n``
    scored tokens at that rate holds ``k(n) = ceil(r * n * m)`` hits out of ``n * m`` trials; the
    answer is the smallest ``n`` with the exact binomial tail ``P(Binomial(n m, p0) >= k(n)) <= target``
    (``target`` is alpha over the correction the whole-text p-value gets: x2 when windows are tested,
    x the number of text variants).  None when ``r <= p0`` (no length decides) or nothing was scored.
    Searched below the Chernoff length ``log(1 / target) / (m KL(r || p0))``, which always suffices, by
    narrowing the bracket on 65-point grids, each one vectorised call (the tail falls with ``n`` for
    ``r > p0``, up to the ceiling's rounding, which moves the answer by at most a few tokens).
    """
    if units <= 0 or trials_per_unit <= 0 or hits <= 0:
        return None
    rate = hits / (units * trials_per_unit)
    if rate <= p0:
        return None
    from scipy import special

    def reached(lengths: NDArray[np.int64]) -> NDArray[np.bool_]:
        trials = lengths * trials_per_unit
        k = np.minimum(trials, np.ceil(rate * trials - 1e-9))
        with np.errstate(all="ignore"):
            tail = special.betainc(np.maximum(k, 1), np.maximum(trials - k + 1, 1), p0)
        return np.asarray((k > 0) & (tail <= target))

    # Chernoff: P(X >= r N) <= exp(-N KL(r || p0)), so N = log(1 / target) / KL trials always suffice
    divergence = rate * math.log(rate / p0) + (
        (1.0 - rate) * math.log((1.0 - rate) / (1.0 - p0)) if rate < 1.0 else 0.0
    )
    high = max(1, math.ceil(math.log(1.0 / target) / (divergence * trials_per_unit)))
    while not reached(np.array([high], dtype=np.int64))[0]:
        high *= 2
        if high > 1 << _MAX_DOUBLINGS:
            return None
    low = 0
    while high - low > 1:  # narrow the bracket 64-fold per vectorised call
        grid = np.unique(np.linspace(low, high, 65).round().astype(np.int64))
        first = int(np.argmax(reached(grid)))  # grid[-1] == high is reached
        low, high = (int(grid[first - 1]) if first else low), int(grid[first])
    return high


#: What ``p_value`` is a probability over, stated in every verdict (measured in docs/text-watermark.md,
#: "False positives"): keys, not texts.  One key colours a passage the same way wherever it
#: recurs, so a corpus whose texts share passages sees one key flag more of it than alpha.
NULL_HYPOTHESIS = (
    "the text was written without this key; p_value is the chance, over the key's random choice, of a score "
    "at least this high. Under one key, texts sharing passages (licence headers, boilerplate code) are flagged "
    "together: on source code, the share of files one key flagged at 0.01 ranged from 0 to 6.3 % across 100 keys"
)


@dataclass(frozen=True)
class Verdict:
    """The result of watermark detection, with the evidence a third party needs to check it.

    ``p_value`` is the probability that text written without the key scores at least
    this well; ``marked`` is ``p_value <= alpha``.  ``tokens_scored`` counts distinct
    units (a repeated context-and-token unit is scored once).  ``params``,
    ``canonicalization`` and ``versions`` are stored as read-only copies.
    """

    scheme: str
    scheme_version: str
    key_id: str
    key_commitment: str
    tokenizer_sha256: str
    vocab_size: int
    params: FrozenJSONObject
    marked: bool
    alpha: float
    p_value: float
    log10_p_value: float
    p_value_method: str
    p_value_whole_text: float
    score: float
    z_score: float
    hits: int
    trials: int
    null_hit_probability: float
    tokens_total: int
    tokens_scored: int
    tokens_repeated: int
    tokens_in_prompt: int
    tokens_unscorable: int
    deduplicated: bool
    windows_tested: int
    correction: str
    spans: tuple[Span, ...]
    statistics: tuple[Statistic, ...]
    canonicalization: FrozenJSONObject
    versions: Mapping[str, str]
    null_hypothesis: str = NULL_HYPOTHESIS
    token_marks: tuple[TokenMark, ...] = field(default=(), repr=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "params", freeze(self.params))
        object.__setattr__(self, "canonicalization", freeze(self.canonicalization))
        object.__setattr__(self, "versions", freeze(self.versions))

    @functools.cached_property
    def tokens_needed(self) -> int | None:
        """Distinct scored tokens the observed hit rate needs to reach ``alpha`` on the whole-text test.

        For an unmarked or inconclusive text: how long a text at this rate would have to be to
        decide; for a marked one: how few sufficed.  The whole-text p-value's correction is applied
        (x2 when windows were tested, x the variants tested); see :func:`tokens_needed`.  None when
        the rate is at or below the null's (no length would decide).  Computed on first access.
        """
        if self.tokens_scored <= 0:
            return None
        factor = (2 if self.windows_tested else 1) * int(str(self.canonicalization.get("variants_tested", 1)))
        return tokens_needed(self.hits, self.tokens_scored, self.trials // self.tokens_scored,
                             self.null_hit_probability, self.alpha / factor)  # fmt: skip

    def to_json(self) -> VerdictJSON:
        """The JSON object (``format`` ``tracemark.text.verdict/v1``); infinities and NaN become null.

        Built member by member, without :func:`dataclasses.asdict`'s deep copies: the service
        answers every detection request with it.
        """
        return {
            "scheme": self.scheme,
            "scheme_version": self.scheme_version,
            "key_id": self.key_id,
            "key_commitment": self.key_commitment,
            "tokenizer_sha256": self.tokenizer_sha256,
            "vocab_size": self.vocab_size,
            "params": thaw_object(self.params, finite=True),
            "marked": self.marked,
            "alpha": self.alpha,
            "p_value": _number(self.p_value),
            "log10_p_value": _number(self.log10_p_value),
            "p_value_method": self.p_value_method,
            "p_value_whole_text": _number(self.p_value_whole_text),
            "score": _number(self.score),
            "z_score": _number(self.z_score),
            "hits": self.hits,
            "trials": self.trials,
            "null_hit_probability": self.null_hit_probability,
            "tokens_total": self.tokens_total,
            "tokens_scored": self.tokens_scored,
            "tokens_repeated": self.tokens_repeated,
            "tokens_in_prompt": self.tokens_in_prompt,
            "tokens_unscorable": self.tokens_unscorable,
            "deduplicated": self.deduplicated,
            "windows_tested": self.windows_tested,
            "correction": self.correction,
            "spans": [_span_json(span) for span in self.spans],
            "statistics": [_statistic_json(statistic) for statistic in self.statistics],
            "canonicalization": thaw_object(self.canonicalization, finite=True),
            "versions": dict(self.versions),
            "null_hypothesis": self.null_hypothesis,
            "tokens_needed": self.tokens_needed,
            "token_marks": [[mark.start_char, mark.end_char, mark.status] for mark in self.token_marks],
            "format": VERDICT_FORMAT,
        }


class SpanJSON(TypedDict):
    """A :class:`Span` in :meth:`Verdict.to_json` (non-finite floats are null)."""

    start_token: int
    end_token: int
    start_char: int
    end_char: int
    tokens_scored: int
    hits: int
    p_value: float | None
    p_value_corrected: float | None


class StatisticJSON(TypedDict):
    """A :class:`Statistic` in :meth:`Verdict.to_json` (non-finite floats are null)."""

    name: str
    score: float | None
    p_value: float | None
    log10_p_value: float | None
    method: str


class VerdictJSON(TypedDict):
    """:meth:`Verdict.to_json`'s object: the verdict's fields plus ``format``; non-finite floats are null.

    ``token_marks`` holds ``[start_char, end_char, status]`` triples.
    """

    scheme: str
    scheme_version: str
    key_id: str
    key_commitment: str
    tokenizer_sha256: str
    vocab_size: int
    params: JSONObject
    marked: bool
    alpha: float
    p_value: float | None
    log10_p_value: float | None
    p_value_method: str
    p_value_whole_text: float | None
    score: float | None
    z_score: float | None
    hits: int
    trials: int
    null_hit_probability: float
    tokens_total: int
    tokens_scored: int
    tokens_repeated: int
    tokens_in_prompt: int
    tokens_unscorable: int
    deduplicated: bool
    windows_tested: int
    correction: str
    spans: list[SpanJSON]
    statistics: list[StatisticJSON]
    canonicalization: JSONObject
    versions: dict[str, str]
    null_hypothesis: str
    tokens_needed: int | None
    token_marks: list[list[int | str]]
    format: str


def _number(value: float) -> float | None:
    """A float as JSON: non-finite values become null."""
    return value if math.isfinite(value) else None


def _span_json(span: Span) -> SpanJSON:
    return {
        "start_token": span.start_token,
        "end_token": span.end_token,
        "start_char": span.start_char,
        "end_char": span.end_char,
        "tokens_scored": span.tokens_scored,
        "hits": span.hits,
        "p_value": _number(span.p_value),
        "p_value_corrected": _number(span.p_value_corrected),
    }


def _statistic_json(statistic: Statistic) -> StatisticJSON:
    return {
        "name": statistic.name,
        "score": _number(statistic.score),
        "p_value": _number(statistic.p_value),
        "log10_p_value": _number(statistic.log10_p_value),
        "method": statistic.method,
    }
