"""Markdown (GitHub flavoured): for pull-request comments and job summaries."""

from __future__ import annotations

from tracemark.report._format.interface import Formatter, counts_line, reading_order
from tracemark.report._report import Report


def _cell(text: str) -> str:
    """Text safe inside a table cell: pipes escaped, line breaks folded."""
    return text.replace("\\", "\\\\").replace("|", "\\|").replace("\r", " ").replace("\n", " ")


class MarkdownFormat(Formatter):
    """A title, the heading lines, a table of findings linked to their rules' help, counts and notes."""

    name = "markdown"
    for_people = True

    def format(self, report: Report) -> str:
        title = report.tool.full_name or report.tool.name
        lines = [f"# {_cell(title)}" + (f": {_cell(report.subject)}" if report.subject else ""), ""]
        lines.extend(f"{_cell(line)}  " for line in report.heading)
        if report.heading:
            lines.append("")
        findings = reading_order(report.findings)
        if findings:
            lines += ["| Severity | Rule | Location | Message |", "|---|---|---|---|"]
            for finding in findings:
                uri = report.rule(finding.rule_id).help_uri or finding.help_uri
                rule = f"[`{finding.rule_id}`]({uri})" if uri else f"`{finding.rule_id}`"
                where = f"`{_cell(str(finding.location))}`" if finding.location else "-"
                lines.append(f"| {finding.severity.value} | {rule} | {where} | {_cell(finding.message)} |")
        else:
            lines.append("No findings.")
        lines += ["", f"**{counts_line(report)}**"]
        lines.extend(f"{_cell(line)}  " for line in report.summary)
        if report.notices:
            lines.append("")
            lines.extend(f"> note: {_cell(notice)}  " for notice in report.notices)
        return "\n".join(lines)
