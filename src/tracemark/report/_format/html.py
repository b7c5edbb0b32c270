"""A standalone HTML page: one file to attach to a ticket or open in a browser; no scripts, no remote content."""

from __future__ import annotations

from html import escape

from tracemark.report._format.interface import Formatter, counts_line, reading_order
from tracemark.report._report import Report

_STYLE = (
    "body{font-family:system-ui,sans-serif;margin:2em;color:#222}"
    "table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:.3em .6em;text-align:left;vertical-align:top}"
    ".critical,.high,.unknown{color:#b00020;font-weight:bold}.medium{color:#a15c00}.low,.info{color:#555}"
)


class HtmlFormat(Formatter):
    """Heading, a table of findings linked to their rules' help, counts, summary and notes; all text escaped."""

    name = "html"
    for_people = True

    def format(self, report: Report) -> str:
        title = escape(report.tool.full_name or report.tool.name) + (
            f": {escape(report.subject)}" if report.subject else ""
        )
        parts = [
            "<!DOCTYPE html>",
            '<html lang="en"><head><meta charset="utf-8">',
            "<meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; style-src 'unsafe-inline'\">",
            f"<title>{title}</title><style>{_STYLE}</style></head><body>",
            f"<h1>{title}</h1>",
        ]
        parts.extend(f"<p>{escape(line)}</p>" for line in report.heading)
        findings = reading_order(report.findings)
        if findings:
            parts.append(
                "<table><thead><tr><th>Severity</th><th>Rule</th><th>Location</th><th>Message</th></tr></thead>"
            )
            parts.append("<tbody>")
            for finding in findings:
                uri = report.rule(finding.rule_id).help_uri or finding.help_uri
                rule = escape(finding.rule_id)
                if uri.startswith("https://"):
                    rule = f'<a href="{escape(uri)}">{rule}</a>'
                where = escape(str(finding.location)) if finding.location else "-"
                severity = escape(finding.severity.value)
                parts.append(
                    f'<tr><td class="{severity}">{severity}</td><td>{rule}</td><td><code>{where}</code></td>'
                    f"<td>{escape(finding.message)}</td></tr>"
                )
            parts.append("</tbody></table>")
        else:
            parts.append("<p>No findings.</p>")
        parts.append(f"<p><strong>{escape(counts_line(report))}</strong></p>")
        parts.extend(f"<p>{escape(line)}</p>" for line in report.summary)
        parts.extend(f"<p>note: {escape(notice)}</p>" for notice in report.notices)
        parts.append("</body></html>")
        return "\n".join(parts)
