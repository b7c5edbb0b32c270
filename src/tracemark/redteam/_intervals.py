"""Wilson score intervals for the rates a red-team run reports (TPR, FPR, attack success, over-refusal).

A rate measured on ``n`` samples is only as good as its interval: 0/200 is not "never", it is
"below 1.9 % with 95 % confidence".  The Wilson interval keeps its coverage near the nominal level
at rates close to 0 and 1, where the normal (Wald) interval collapses to a point.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

#: z for a two-sided 95 % interval.
Z_95 = 1.959963984540054


@dataclass(frozen=True)
class Rate:
    """``successes`` out of ``trials`` with its Wilson 95 % interval (``None`` rate when nothing was counted)."""

    successes: int
    trials: int
    low: float
    high: float

    @property
    def value(self) -> float | None:
        """The observed proportion, or ``None`` for 0/0 (never reported as 0)."""
        return self.successes / self.trials if self.trials else None


def wilson_interval(successes: int, trials: int, z: float = Z_95) -> tuple[float, float]:
    """Wilson score interval of a binomial proportion; (0, 1) when there are no trials."""
    if trials <= 0:
        return (0.0, 1.0)
    if not 0 <= successes <= trials:
        raise ValueError(f"successes {successes} outside 0..{trials}")
    p = successes / trials
    z2 = z * z
    centre = (p + z2 / (2 * trials)) / (1 + z2 / trials)
    half = z * math.sqrt(p * (1 - p) / trials + z2 / (4 * trials * trials)) / (1 + z2 / trials)
    low = 0.0 if successes == 0 else max(0.0, centre - half)
    high = 1.0 if successes == trials else min(1.0, centre + half)
    return (low, high)


def rate(successes: int, trials: int) -> Rate:
    """A :class:`Rate` with its Wilson interval."""
    low, high = wilson_interval(successes, trials)
    return Rate(successes, trials, low, high)
