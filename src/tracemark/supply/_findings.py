"""Findings and reports shared by the model scanner and the dependency audit."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

#: Severity labels, worst first.
SEVERITIES = ("critical", "high", "medium", "low")
_RANK = {name: len(SEVERITIES) - i for i, name in enumerate(SEVERITIES)}


def severity_rank(label: str) -> int:
    """4 for critical down to 1 for low; 0 for anything else (``unknown`` advisories rank as high)."""
    if label == "unknown":
        return _RANK["high"]
    return _RANK.get(label, 0)


@dataclass(frozen=True)
class Finding:
    """One reason to refuse an artefact, with where it was found."""

    rule: str
    severity: str
    #: The file, with ``!member`` for each archive layer (``model.tar.gz!gunzip!model/data.pkl``).
    location: str
    message: str
    #: Byte offset inside the innermost member, when it is known.
    offset: int | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "rule": self.rule,
            "severity": self.severity,
            "location": self.location,
            "message": self.message,
            "offset": self.offset,
        }


@dataclass(frozen=True)
class ScannedFile:
    """A file or archive member the scanner looked at, and what it recognised it as."""

    location: str
    format: str
    size: int


@dataclass(frozen=True)
class ScanReport:
    """The result of scanning a model file or folder."""

    target: str
    files: tuple[ScannedFile, ...]
    findings: tuple[Finding, ...]
    tool: str = "tracemark supply scan"
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def worst(self) -> str | None:
        """The worst severity among the findings, or ``None`` when there are none."""
        if not self.findings:
            return None
        return max((f.severity for f in self.findings), key=severity_rank)

    def fails(self, threshold: str) -> bool:
        """Whether any finding is at or above ``threshold`` (``critical``/``high``/``medium``/``low``)."""
        return any(severity_rank(f.severity) >= severity_rank(threshold) for f in self.findings)

    def to_json(self) -> dict[str, Any]:
        return {
            "target": self.target,
            "worst": self.worst,
            "files": [{"location": f.location, "format": f.format, "size": f.size} for f in self.files],
            "findings": [f.to_json() for f in self.findings],
            **self.extra,
        }
