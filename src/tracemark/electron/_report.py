"""Report formats: SARIF 2.1.0 (code scanning), JSON (documented in docs/electron.md) and a table."""

from __future__ import annotations

from typing import Any

from tracemark import __version__
from tracemark.electron._findings import AuditReport, Finding
from tracemark.electron._rules import RULES, Severity

SARIF_SCHEMA = "https://json.schemastore.org/sarif-2.1.0.json"
JSON_FORMAT = "tracemark.electron.audit/v1"


def to_sarif(report: AuditReport) -> dict[str, Any]:
    """The report as one SARIF 2.1.0 log with a single run."""
    used = sorted({finding.rule_id for finding in report.findings})
    index = {rule_id: position for position, rule_id in enumerate(used)}
    rules = []
    for rule_id in used:
        rule = RULES[rule_id]
        rules.append(
            {
                "id": rule.id,
                "name": "".join(part.capitalize() for part in rule.id.split("-")),
                "shortDescription": {"text": rule.summary},
                "fullDescription": {"text": rule.summary + "."},
                "help": {"text": rule.help, "markdown": f"{rule.help}\n\nSee [{rule.help_uri}]({rule.help_uri})."},
                "helpUri": rule.help_uri,
                "defaultConfiguration": {"level": rule.severity.sarif_level},
                "properties": {
                    "tags": ["security", "electron"],
                    "security-severity": rule.severity.security_severity,
                    "problem.severity": rule.severity.value,
                },
            }
        )
    results = []
    for finding in report.findings:
        severity = finding.effective_severity
        result: dict[str, Any] = {
            "ruleId": finding.rule_id,
            "ruleIndex": index[finding.rule_id],
            "level": severity.sarif_level,
            "message": {"text": finding.message},
            "properties": {"severity": severity.value, "security-severity": severity.security_severity},
        }
        location = finding.location
        physical: dict[str, Any] = {
            "artifactLocation": {"uri": location.path if location else ".", "uriBaseId": "SRCROOT"}
        }
        if location and location.line:
            physical["region"] = {"startLine": location.line, "startColumn": max(location.column, 1)}
        result["locations"] = [{"physicalLocation": physical}]
        results.append(result)
    run: dict[str, Any] = {
        "tool": {
            "driver": {
                "name": "tracemark-electron",
                "version": __version__,
                "informationUri": "https://www.electronjs.org/docs/latest/tutorial/security",
                "rules": rules,
            }
        },
        "originalUriBaseIds": {"SRCROOT": {"description": {"text": f"the audited app: {report.target}"}}},
        "results": results,
        "properties": _summary(report),
    }
    return {"$schema": SARIF_SCHEMA, "version": "2.1.0", "runs": [run]}


def _summary(report: AuditReport) -> dict[str, Any]:
    return {
        "target": report.target,
        "input_kind": report.input_kind,
        "files_scanned": report.files_scanned,
        "electron_version": report.electron_version,
        "electron_version_source": report.electron_version_source,
        "advisories_checked": report.advisories_checked,
        "fuses": report.fuses,
        "asar_header_sha256": report.asar_header_sha256,
        "notices": list(report.notices),
    }


def to_json(report: AuditReport) -> dict[str, Any]:
    """The report as the documented JSON object (``format`` names its schema)."""
    counts = {severity.value: 0 for severity in Severity}
    for finding in report.findings:
        counts[finding.effective_severity.value] += 1
    return {
        "format": JSON_FORMAT,
        **_summary(report),
        "counts": counts,
        "findings": [finding.to_json() for finding in report.findings],
    }


def render_table(report: AuditReport) -> str:
    """A human table, most severe first, followed by the notices."""
    lines = [f"tracemark electron audit: {report.target} ({report.input_kind}, {report.files_scanned} files)"]
    version = report.electron_version or "unknown"
    lines.append(
        f"Electron {version}" + (f" (from {report.electron_version_source})" if report.electron_version_source else "")
    )
    ordered = sorted(report.findings, key=_table_order)
    if ordered:
        rows = [
            (f.effective_severity.value.upper(), f.rule_id, str(f.location) if f.location else "-", f.message)
            for f in ordered
        ]
        widths = [max(len(row[i]) for row in [("SEVERITY", "RULE", "LOCATION", ""), *rows]) for i in range(3)]
        header = ("SEVERITY", "RULE", "LOCATION", "MESSAGE")
        lines.append("  ".join(cell.ljust(widths[i]) if i < 3 else cell for i, cell in enumerate(header)))
        for row in rows:
            lines.append("  ".join(cell.ljust(widths[i]) if i < 3 else cell for i, cell in enumerate(row)))
    else:
        lines.append("no findings")
    counts = {severity: 0 for severity in Severity}
    for finding in report.findings:
        counts[finding.effective_severity] += 1
    lines.append(", ".join(f"{counts[s]} {s.value}" for s in Severity))
    lines.extend(f"note: {notice}" for notice in report.notices)
    return "\n".join(lines)


def _table_order(finding: Finding) -> tuple[int, int, str, int, int, str]:
    """Most severe first; findings without a location after those with one; then by place and rule."""
    location = finding.location
    if location is None:
        return (-finding.effective_severity.rank, 1, "", 0, 0, finding.rule_id)
    return (-finding.effective_severity.rank, 0, location.path, location.line, location.column, finding.rule_id)
