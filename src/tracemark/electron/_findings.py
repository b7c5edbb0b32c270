"""Results of an audit: frozen findings with their location, and the report that holds them."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from tracemark.electron._rules import RULES, Severity


@dataclass(frozen=True, order=True)
class Location:
    """A place in the audited app: a path relative to its root (inside the asar for packed apps)."""

    path: str
    line: int = 0
    column: int = 0

    def __str__(self) -> str:
        return f"{self.path}:{self.line}:{self.column}" if self.line else self.path


@dataclass(frozen=True)
class Finding:
    """One flaw: which rule, how severe, what exactly, and where."""

    rule_id: str
    message: str
    location: Location | None = None
    severity: Severity | None = None

    @property
    def effective_severity(self) -> Severity:
        return self.severity if self.severity is not None else RULES[self.rule_id].severity

    def to_json(self) -> dict[str, Any]:
        location = self.location
        return {
            "rule": self.rule_id,
            "severity": self.effective_severity.value,
            "message": self.message,
            "path": location.path if location else None,
            "line": location.line if location and location.line else None,
            "column": location.column if location and location.column else None,
        }


@dataclass(frozen=True)
class AuditReport:
    """Everything one audit concluded about an app."""

    target: str
    input_kind: str  # "folder", "asar" or "packaged"
    findings: tuple[Finding, ...]
    files_scanned: int
    electron_version: str | None = None
    electron_version_source: str | None = None
    fuses: dict[str, str] | None = None
    asar_header_sha256: str | None = None
    advisories_checked: bool = False
    notices: tuple[str, ...] = field(default_factory=tuple)

    def count_at_least(self, threshold: Severity) -> int:
        """How many findings are at or above ``threshold``."""
        return sum(1 for finding in self.findings if finding.effective_severity.rank >= threshold.rank)
