"""The human table: heading lines, one row per finding (most severe first), counts, summary and notes."""

from __future__ import annotations

from tracemark.report._format.interface import Formatter, counts_line, reading_order
from tracemark.report._report import Report

_HEADER = ("SEVERITY", "RULE", "LOCATION", "MESSAGE")


class TableFormat(Formatter):
    """Fixed-width columns for a terminal."""

    name = "table"
    for_people = True

    def format(self, report: Report) -> str:
        lines = list(report.heading)
        rows = [
            (f.severity.value.upper(), f.rule_id, str(f.location) if f.location else "-", f.message)
            for f in reading_order(report.findings)
        ]
        if rows:
            widths = [max(len(row[i]) for row in [_HEADER, *rows]) for i in range(3)]
            for row in [_HEADER, *rows]:
                lines.append("  ".join([*(row[i].ljust(widths[i]) for i in range(3)), row[3]]))
        else:
            lines.append("no findings")
        lines.append(counts_line(report))
        lines.extend(report.summary)
        lines.extend(f"note: {notice}" for notice in report.notices)
        return "\n".join(lines)
