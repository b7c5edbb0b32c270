"""The verdict every theft test returns: one frozen shape, a JSON form and the evidence to re-run it.

Each test answers its own question with its own null hypothesis (``h0``).  ``decision``
is ``evidence`` (the null is rejected at ``alpha`` after every correction),
``no-evidence`` (it is not; a miss is not proof of innocence) or ``inconclusive`` (the
test could not be run as pre-registered: budget not reached, probes failed, too few
tuples, a failed null check).  ``reasons`` says why.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import math
from dataclasses import dataclass, field, fields
from importlib import metadata
from typing import TYPE_CHECKING, Literal, TypedDict, cast

from tracemark._json import FrozenDict, FrozenJSONObject, JSONObject, freeze, thaw_object

if TYPE_CHECKING:
    from _typeshed import DataclassInstance

VERDICT_FORMAT = "tracemark.theft.verdict/v1"

Decision = Literal["evidence", "no-evidence", "inconclusive"]

#: The members whose shape depends on the test (radioactivity, identity, weights): open JSON objects.
_OPEN_MEMBERS = ("statistic", "effect", "counts", "correction", "evidence")


class TheftVerdictJSON(TypedDict):
    """:meth:`TheftVerdict.to_json`'s object; non-finite floats are null."""

    format: str
    test: str
    question: str
    h0: str
    decision: Decision
    reasons: list[str]
    alpha: float | None
    p_value: float | None
    log10_p_value: float | None
    p_value_method: str
    statistic: JSONObject
    effect: JSONObject
    counts: JSONObject
    correction: JSONObject
    null_check: JSONObject | None
    details: list[JSONObject]
    evidence: JSONObject


@dataclass(frozen=True)
class TheftVerdict:
    """Result of one theft test (radioactivity, identity, weight provenance).

    ``p_value`` is one-sided and corrected for every key or reference tried (see
    ``correction``); it is the probability of a result at least this extreme under
    ``h0``, never a probability of guilt.  ``log10_p_value`` keeps the magnitude when the
    float underflows.  The open-shaped members (``statistic`` ... ``evidence``) are stored as
    deep read-only copies (:class:`~tracemark._json.FrozenDict`, tuples for lists).
    """

    test: str
    question: str
    h0: str
    decision: Decision
    reasons: tuple[str, ...]
    alpha: float
    p_value: float | None
    log10_p_value: float | None
    p_value_method: str
    statistic: FrozenJSONObject
    effect: FrozenJSONObject
    counts: FrozenJSONObject
    correction: FrozenJSONObject
    null_check: FrozenJSONObject | None = None
    details: tuple[FrozenJSONObject, ...] = ()
    evidence: FrozenJSONObject = field(default_factory=FrozenDict)

    def __post_init__(self) -> None:
        for name in _OPEN_MEMBERS:
            object.__setattr__(self, name, freeze(getattr(self, name)))
        if self.null_check is not None:
            object.__setattr__(self, "null_check", freeze(self.null_check))
        object.__setattr__(self, "details", tuple(freeze(row) for row in self.details))

    def to_json(self) -> TheftVerdictJSON:
        """The JSON object (``format`` ``tracemark.theft.verdict/v1``); infinities and NaN become null."""
        data: FrozenJSONObject = {
            "format": VERDICT_FORMAT,
            "test": self.test,
            "question": self.question,
            "h0": self.h0,
            "decision": self.decision,
            "reasons": list(self.reasons),
            "alpha": self.alpha,
            "p_value": self.p_value,
            "log10_p_value": self.log10_p_value,
            "p_value_method": self.p_value_method,
            "statistic": self.statistic,
            "effect": self.effect,
            "counts": self.counts,
            "correction": self.correction,
            "null_check": self.null_check,
            "details": list(self.details),
            "evidence": self.evidence,
        }
        return cast(TheftVerdictJSON, thaw_object(data, finite=True))


def row_json(row: DataclassInstance) -> JSONObject:
    """A verdict row (a frozen dataclass of JSON scalars and tuples of them) as its JSON object, fields in order."""
    data: JSONObject = {}
    for item in fields(row):
        value = getattr(row, item.name)
        data[item.name] = list(value) if isinstance(value, tuple) else value
    return data


def sha256_text(text: str) -> str:
    """SHA-256 of a string's UTF-8 bytes (prompt and response hashes in evidence packs)."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


@functools.cache
def library_versions() -> dict[str, str]:
    """Versions a re-run should match (tracemark and the numerical libraries)."""
    from tracemark import __version__

    found = {"tracemark": __version__}
    for dist in ("numpy", "scipy", "tokenizers", "torch", "transformers"):
        with contextlib.suppress(metadata.PackageNotFoundError):
            found[dist] = metadata.version(dist)
    return found


def bonferroni(p_value: float, log10_p_value: float, tests: int) -> tuple[float, float]:
    """``min(1, tests * p)`` with its logarithm."""
    log_adjusted = min(0.0, log10_p_value + math.log10(tests)) if math.isfinite(log10_p_value) else -math.inf
    return min(1.0, p_value * tests), log_adjusted


def decide(p_value: float, alpha: float, blockers: list[str], *, suggestive: float | None = None) -> Decision:
    """``inconclusive`` when any precondition failed, else ``evidence`` iff ``p <= alpha``.

    With a ``suggestive`` level, a p-value in ``(alpha, suggestive]`` is ``inconclusive`` too: a
    reason to spend more budget, never a clean bill.
    """
    if blockers:
        return "inconclusive"
    if p_value <= alpha:
        return "evidence"
    if suggestive is not None and p_value <= suggestive:
        return "inconclusive"
    return "no-evidence"


def recommended_budget(p_value: float, alpha: float, budget: int, *, power: float = 0.8) -> int | None:
    """Budget at which the observed effect would give ``evidence`` with probability ``power``.

    The test's z-score grows with the square root of the budget at a fixed effect:
    ``n = budget * ((z(1 - alpha) + z(power)) / z(1 - p))^2``.  ``None`` when ``p >= 0.5`` (no
    effect in the test's direction to extrapolate).  Larger budgets add rarer tuples that the
    suspect learned more weakly, so treat the figure as a lower bound.
    """
    from scipy import stats

    if not 0.0 < p_value < 0.5 or not 0.0 < alpha < 1.0:
        return None
    observed = float(stats.norm.isf(p_value))
    needed = float(stats.norm.isf(alpha)) + float(stats.norm.ppf(power))
    return max(budget, math.ceil(budget * (needed / observed) ** 2))
