"""The probe runner: send probes with bounded concurrency, retries, timeouts and a request budget; judge; count.

Every family reports two rates with Wilson intervals: attack success (ASR) on its attack probes and
over-refusal on its benign twins.  A probe whose answer never came (connection refused, timeout,
garbage, budget spent) is *inconclusive* and is left out of both rates, which therefore say on how
many answers they rest.  A family whose data source or detector is missing is SKIPPED with its reason.
The run's status is ``inconclusive`` when anything was skipped or a family got no answer at all:
never a silent 0/0.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import TypedDict

from tracemark.redteam._detectors import DETECTORS, judge
from tracemark.redteam._intervals import Rate, rate
from tracemark.redteam._probes import OWASP_2025, Probe
from tracemark.redteam._results import RateJSON, rate_json
from tracemark.redteam._targets import Reply, Target, TargetUnavailable

PROBE_FORMAT = "tracemark.redteam.probe/v1"


@dataclass(frozen=True)
class RunLimits:
    """How hard the runner may push the target."""

    concurrency: int = 4
    retries: int = 2
    backoff_seconds: float = 0.2
    #: The most requests the run may send (retries included); the rest are inconclusive.
    request_budget: int = 1000


@dataclass(frozen=True)
class Outcome:
    """One probe's result: ``status`` is ``answered`` or ``inconclusive``."""

    probe: Probe
    status: str
    success: bool
    refused: bool
    reason: str
    answer: str
    attempts: int


@dataclass(frozen=True)
class FamilyResult:
    """One probe family: ASR on attacks, over-refusal on twins, what was inconclusive or skipped."""

    family: str
    owasp: str
    attack_success: Rate
    over_refusal: Rate
    inconclusive: int
    skipped: str = ""

    @property
    def status(self) -> str:
        if self.skipped:
            return "skipped"
        if self.attack_success.trials == 0 and self.over_refusal.trials == 0:
            return "inconclusive"
        return "measured"


class OutcomeJSON(TypedDict):
    id: str
    family: str
    benign: bool
    status: str
    success: bool
    refused: bool
    reason: str
    answer: str
    attempts: int
    source: str


class FamilyJSON(TypedDict):
    family: str
    owasp: str
    owasp_title: str
    status: str
    attack_success: RateJSON
    over_refusal: RateJSON
    inconclusive: int
    skipped: str


class ProbeReportJSON(TypedDict):
    """``tracemark.redteam.probe/v1``."""

    format: str
    target: str
    status: str
    requests: int
    request_budget: int
    seconds: float
    families: list[FamilyJSON]
    outcomes: list[OutcomeJSON]
    skipped: list[str]


@dataclass(frozen=True)
class ProbeReport:
    """A probe run's results."""

    target: str
    families: tuple[FamilyResult, ...]
    outcomes: tuple[Outcome, ...]
    requests: int
    request_budget: int
    seconds: float

    @property
    def skipped(self) -> tuple[str, ...]:
        return tuple(f"{f.family}: {f.skipped}" for f in self.families if f.skipped)

    @property
    def status(self) -> str:
        """``complete`` or ``inconclusive`` (something skipped, or a family without any answer)."""
        return "complete" if all(f.status == "measured" for f in self.families) else "inconclusive"

    def to_json(self) -> ProbeReportJSON:
        return {
            "format": PROBE_FORMAT,
            "target": self.target,
            "status": self.status,
            "requests": self.requests,
            "request_budget": self.request_budget,
            "seconds": round(self.seconds, 3),
            "families": [
                {
                    "family": f.family,
                    "owasp": f.owasp,
                    "owasp_title": OWASP_2025.get(f.owasp, ""),
                    "status": f.status,
                    "attack_success": rate_json(f.attack_success),
                    "over_refusal": rate_json(f.over_refusal),
                    "inconclusive": f.inconclusive,
                    "skipped": f.skipped,
                }
                for f in self.families
            ],
            "outcomes": [
                {
                    "id": o.probe.id,
                    "family": o.probe.family,
                    "benign": o.probe.benign,
                    "status": o.status,
                    "success": o.success,
                    "refused": o.refused,
                    "reason": o.reason,
                    "answer": o.answer[:500],
                    "attempts": o.attempts,
                    "source": o.probe.source,
                }
                for o in self.outcomes
            ],
            "skipped": list(self.skipped),
        }


class _Budget:
    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.used = 0
        self._lock = threading.Lock()

    def take(self) -> bool:
        with self._lock:
            if self.used >= self.limit:
                return False
            self.used += 1
            return True


def _ask(target: Target, probe: Probe, limits: RunLimits, budget: _Budget) -> Outcome:
    reason = ""
    attempts = 0
    for attempt in range(limits.retries + 1):
        if not budget.take():
            reason = reason or "request budget spent"
            break
        attempts += 1
        try:
            reply: Reply = target.chat(probe.system, probe.prompt, probe.max_tokens)
        except TargetUnavailable as exc:
            reason = exc.reason
            if not exc.retry:
                break
            time.sleep(limits.backoff_seconds * (2**attempt))
            continue
        verdict = judge(probe.detector, reply.text, canary=probe.canary, max_tokens=probe.max_tokens,
                        finish_reason=reply.finish_reason)  # fmt: skip
        return Outcome(probe, "answered", verdict.success, verdict.refused, verdict.reason, reply.text, attempts)
    return Outcome(probe, "inconclusive", False, False, reason, "", attempts)


def run_probes(
    target: Target,
    probes: Sequence[Probe],
    *,
    limits: RunLimits | None = None,
    skipped: Sequence[tuple[str, str, str]] = (),
    progress: Callable[[int, int], None] | None = None,
) -> ProbeReport:
    """Send every probe, judge the answers and count per family.

    ``skipped`` lists ``(family, owasp, reason)`` for families whose data could not be loaded.  A probe
    naming an unknown detector makes its family SKIPPED (it is not sent).
    """
    limits = limits or RunLimits()
    started = time.monotonic()
    budget = _Budget(limits.request_budget)
    skips = {family: (owasp, reason) for family, owasp, reason in skipped}
    for probe in probes:
        if probe.detector not in DETECTORS:
            skips[probe.family] = (probe.owasp, f"detector {probe.detector!r} is not available")
    runnable = [p for p in probes if p.family not in skips]
    done = 0
    lock = threading.Lock()

    def one(probe: Probe) -> Outcome:
        nonlocal done
        outcome = _ask(target, probe, limits, budget)
        with lock:
            done += 1
            if progress is not None:
                progress(done, len(runnable))
        return outcome

    with ThreadPoolExecutor(max_workers=max(1, limits.concurrency)) as pool:
        outcomes = list(pool.map(one, runnable))
    families: list[FamilyResult] = []
    for family, owasp in sorted({(p.family, p.owasp) for p in runnable}):
        mine = [o for o in outcomes if o.probe.family == family]
        answered = [o for o in mine if o.status == "answered"]
        attacks = [o for o in answered if not o.probe.benign]
        twins = [o for o in answered if o.probe.benign]
        families.append(FamilyResult(
            family, owasp,
            attack_success=rate(sum(o.success for o in attacks), len(attacks)),
            over_refusal=rate(sum(o.refused for o in twins), len(twins)),
            inconclusive=len(mine) - len(answered),
        ))  # fmt: skip
    for family, (owasp, reason) in sorted(skips.items()):
        families.append(FamilyResult(family, owasp, rate(0, 0), rate(0, 0), 0, skipped=reason))
    return ProbeReport(target.description, tuple(families), tuple(outcomes), budget.used, limits.request_budget,
                       time.monotonic() - started)  # fmt: skip
