"""One severity scale for every finding tracemark reports, and the ``--fail-on`` gate over it."""

from __future__ import annotations

from collections.abc import Iterable
from enum import StrEnum


class Severity(StrEnum):
    """How bad a finding is, worst first; comparisons follow the scale (``HIGH > MEDIUM``).

    ``UNKNOWN`` is an advisory that states no severity.  It fails closed: it gates and scores as
    ``HIGH`` (equal rank), and sorts right after it.
    """

    CRITICAL = "critical"
    HIGH = "high"
    UNKNOWN = "unknown"
    MEDIUM = "medium"
    LOW = "low"
    INFO = "info"

    @property
    def rank(self) -> int:
        """4 for critical down to 0 for info; what the ``--fail-on`` gate compares."""
        return _RANK[self]

    @property
    def sarif_level(self) -> str:
        """The SARIF 2.1.0 ``level`` (§3.27.10): ``error``, ``warning`` or ``note``."""
        return _SARIF_LEVEL[self]

    @property
    def security_severity(self) -> str:
        """GitHub code scanning's numeric ``security-severity`` (CVSS v3 bands: 9.0+ critical, 7.0+ high...)."""
        return _SECURITY_SEVERITY[self]

    def at_least(self, threshold: Severity) -> bool:
        """Whether this severity reaches ``threshold`` (``UNKNOWN`` reaches ``HIGH``)."""
        return self.rank >= threshold.rank

    def __lt__(self, other: str) -> bool:
        if not isinstance(other, Severity):
            return NotImplemented
        return self.rank < other.rank

    def __le__(self, other: str) -> bool:
        if not isinstance(other, Severity):
            return NotImplemented
        return self.rank <= other.rank

    def __gt__(self, other: str) -> bool:
        if not isinstance(other, Severity):
            return NotImplemented
        return self.rank > other.rank

    def __ge__(self, other: str) -> bool:
        if not isinstance(other, Severity):
            return NotImplemented
        return self.rank >= other.rank


_RANK = {
    Severity.CRITICAL: 4,
    Severity.HIGH: 3,
    Severity.UNKNOWN: 3,
    Severity.MEDIUM: 2,
    Severity.LOW: 1,
    Severity.INFO: 0,
}
_SARIF_LEVEL = {
    Severity.CRITICAL: "error",
    Severity.HIGH: "error",
    Severity.UNKNOWN: "error",
    Severity.MEDIUM: "warning",
    Severity.LOW: "note",
    Severity.INFO: "note",
}
_SECURITY_SEVERITY = {
    Severity.CRITICAL: "9.5",
    Severity.HIGH: "8.0",
    Severity.UNKNOWN: "8.0",
    Severity.MEDIUM: "5.5",
    Severity.LOW: "3.0",
    Severity.INFO: "0.0",
}

#: The values ``--fail-on`` takes: a severity, or ``never`` to always exit 0.
FAIL_ON_CHOICES = ("critical", "high", "medium", "low", "info", "never")


def fail_on_threshold(choice: str) -> Severity | None:
    """The severity a ``--fail-on`` value names, or ``None`` for ``never``."""
    return None if choice == "never" else Severity(choice)


def count_at_least(severities: Iterable[Severity], threshold: Severity | None) -> int:
    """How many of ``severities`` reach ``threshold`` (none when the threshold is ``None``: never fail)."""
    if threshold is None:
        return 0
    return sum(1 for severity in severities if severity.at_least(threshold))
