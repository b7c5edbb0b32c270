"""The interface every report format implements."""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import ClassVar

from tracemark.report._finding import Finding
from tracemark.report._report import Report


class Formatter(ABC):
    """Renders a :class:`~tracemark.report.Report` in one format; one implementation per format."""

    #: The value ``--format`` takes for this format.
    name: ClassVar[str]
    #: Whether people read it (table, Markdown, HTML) rather than programs (JSON, SARIF).
    for_people: ClassVar[bool]

    @abstractmethod
    def format(self, report: Report) -> str:
        """The whole report as text, without a final newline."""


def reading_order(findings: tuple[Finding, ...]) -> list[Finding]:
    """Most severe first; findings without a location after those with one; then by place and rule."""

    def key(finding: Finding) -> tuple[int, bool, str, int, int, str]:
        location = finding.location
        if location is None:
            return (-finding.severity.rank, True, "", 0, 0, finding.rule_id)
        return (-finding.severity.rank, False, location.path, location.line, location.column, finding.rule_id)

    return sorted(findings, key=key)


def counts_line(report: Report) -> str:
    """``1 critical, 0 high, 2 medium, 0 low, 1 info``."""
    return ", ".join(f"{count} {severity.value}" for severity, count in report.counts().items())
