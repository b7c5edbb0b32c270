"""The audit's result, and its report forms: SARIF 2.1.0, JSON (documented in docs/electron.md), a table.

The forms are :mod:`tracemark.report`'s; this module says what an audit puts in them.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from tracemark import report
from tracemark._json import JSONObject, freeze
from tracemark.electron._checks import RULES
from tracemark.electron._checks._base import SECURITY_GUIDE
from tracemark.report import Finding, Report, SarifLog, Severity, Tool

#: The JSON form's ``format`` member.
JSON_FORMAT = "tracemark.electron.audit/v1"
#: SARIF's driver name (code scanning keys alerts on it).
TOOL = Tool("tracemark-electron", "tracemark electron audit", SECURITY_GUIDE)


@dataclass(frozen=True)
class AuditReport:
    """Everything one audit concluded about an app."""

    target: str
    input_kind: str  # "folder", "asar" or "packaged"
    findings: tuple[Finding, ...]
    files_scanned: int
    electron_version: str | None = None
    electron_version_source: str | None = None
    fuses: Mapping[str, str] | None = None
    asar_header_sha256: str | None = None
    advisories_checked: bool = False
    notices: tuple[str, ...] = field(default_factory=tuple)

    def __post_init__(self) -> None:
        if self.fuses is not None:
            object.__setattr__(self, "fuses", freeze(self.fuses))

    def count_at_least(self, threshold: Severity) -> int:
        """How many findings are at or above ``threshold``."""
        return report.count_at_least((finding.severity for finding in self.findings), threshold)

    def to_report(self) -> Report:
        """The audit as a :class:`tracemark.report.Report`, ready for any format."""
        version = self.electron_version or "unknown"
        source = f" (from {self.electron_version_source})" if self.electron_version_source else ""
        return Report(
            TOOL,
            self.findings,
            tuple(RULES.values()),
            subject=self.target,
            schema=JSON_FORMAT,
            facts=self._summary(),
            heading=(
                f"tracemark electron audit: {self.target} ({self.input_kind}, {self.files_scanned} files)",
                f"Electron {version}{source}",
            ),
            notices=self.notices,
        )

    def _summary(self) -> JSONObject:
        return {
            "target": self.target,
            "input_kind": self.input_kind,
            "files_scanned": self.files_scanned,
            "electron_version": self.electron_version,
            "electron_version_source": self.electron_version_source,
            "advisories_checked": self.advisories_checked,
            "fuses": dict(self.fuses) if self.fuses is not None else None,
            "asar_header_sha256": self.asar_header_sha256,
            "notices": list(self.notices),
        }


def to_sarif(audited: AuditReport) -> SarifLog:
    """The audit as one SARIF 2.1.0 log with a single run."""
    return report.to_sarif(audited.to_report())


def to_json(audited: AuditReport) -> JSONObject:
    """The audit as the documented JSON object (``format`` names its schema)."""
    return report.to_json(audited.to_report())


def render_table(audited: AuditReport) -> str:
    """A human table, most severe first, followed by the counts and the notices."""
    return report.render(audited.to_report(), "table")
