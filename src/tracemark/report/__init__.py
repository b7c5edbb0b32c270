"""tracemark.report: one findings model and one report layer for every capability.

A capability reports :class:`Finding` objects on one :class:`Severity` scale, wraps them in a
:class:`Report` and renders it in any format (table, JSON, SARIF 2.1.0, Markdown, HTML); the
``--fail-on`` gate is :meth:`Report.fails`::

    from tracemark.report import Finding, Location, Report, Severity, Tool, render

    finding = Finding("prompt-leak", Severity.HIGH, "the system prompt is echoed", (Location("run.jsonl", 12),))
    report = Report(Tool("tracemark-redteam"), (finding,))
    print(render(report, "sarif"))
    status = 1 if report.fails(Severity.MEDIUM) else 0
"""

from __future__ import annotations

from tracemark._json import JSONObject
from tracemark.errors import InvalidInputError
from tracemark.report._finding import MEMBER_SEPARATOR, Finding, Location, Rule
from tracemark.report._format import FORMATS, Formatter
from tracemark.report._format.json import JsonFormat
from tracemark.report._format.sarif import SARIF_SCHEMA, SarifFormat, SarifLog
from tracemark.report._report import Report, Tool
from tracemark.report._severity import FAIL_ON_CHOICES, Severity, count_at_least, fail_on_threshold

#: The values ``--format`` takes, the human table first.
FORMAT_NAMES: tuple[str, ...] = tuple(FORMATS)


def formatter(name: str) -> Formatter:
    """The formatter for a ``--format`` value; raises :class:`InvalidInputError` for an unknown one."""
    try:
        return FORMATS[name]
    except KeyError:
        raise InvalidInputError(f"unknown report format {name!r}: expected one of {', '.join(FORMATS)}") from None


def render(report: Report, format_name: str) -> str:
    """The report in one format, as text without a final newline."""
    return formatter(format_name).format(report)


def to_json(report: Report) -> JSONObject:
    """The report's JSON form as an object."""
    return JsonFormat().document(report)


def to_sarif(report: Report) -> SarifLog:
    """The report as a SARIF 2.1.0 log object."""
    return SarifFormat().document(report)


__all__ = [
    "FAIL_ON_CHOICES",
    "FORMAT_NAMES",
    "MEMBER_SEPARATOR",
    "SARIF_SCHEMA",
    "Finding",
    "Formatter",
    "Location",
    "Report",
    "Rule",
    "SarifLog",
    "Severity",
    "Tool",
    "count_at_least",
    "fail_on_threshold",
    "formatter",
    "render",
    "to_json",
    "to_sarif",
]
