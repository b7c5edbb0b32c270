"""SARIF 2.1.0: what code-scanning services ingest.

One run per report.  Each rule a finding uses is listed once, sorted by id, with its help and
GitHub's numeric ``security-severity``; each finding becomes a ``result`` with its level, a
``partialFingerprints`` entry that keeps it recognisable across runs, and its locations.  Relative
paths are relative to ``SRCROOT``, the examined target; a path inside an archive keeps the file on
disk as the artifact and names the member as a logical location (``model.pt!archive/data.pkl``).
"""

from __future__ import annotations

import json
import re
from pathlib import PurePosixPath, PureWindowsPath
from typing import Any

from tracemark.report._finding import Finding, Location
from tracemark.report._format.interface import Formatter
from tracemark.report._report import Report

SARIF_SCHEMA = "https://json.schemastore.org/sarif-2.1.0.json"
SARIF_VERSION = "2.1.0"
#: The ``partialFingerprints`` key (SARIF §3.27.17) under which :attr:`Finding.fingerprint` is given.
FINGERPRINT_KEY = "tracemark/v1"
_BASE = "SRCROOT"
_WORDS = re.compile(r"[A-Za-z0-9]+")


class SarifFormat(Formatter):
    """One SARIF 2.1.0 log with a single run; see :meth:`document`."""

    name = "sarif"
    for_people = False

    def document(self, report: Report) -> dict[str, Any]:
        """The SARIF log as a JSON object."""
        used = sorted({finding.rule_id for finding in report.findings})
        index = {rule_id: position for position, rule_id in enumerate(used)}
        tool = report.tool
        driver: dict[str, Any] = {"name": tool.name}
        if tool.full_name:
            driver["fullName"] = tool.full_name
        driver["version"] = tool.version
        if tool.information_uri:
            driver["informationUri"] = tool.information_uri
        driver["rules"] = [_rule(report, rule_id) for rule_id in used]
        run: dict[str, Any] = {
            "tool": {"driver": driver},
            "originalUriBaseIds": {_BASE: {"description": {"text": f"the examined target: {report.subject or '.'}"}}},
            "results": [_result(finding, index[finding.rule_id]) for finding in report.findings],
        }
        if report.facts:
            run["properties"] = dict(report.facts)
        return {"$schema": SARIF_SCHEMA, "version": SARIF_VERSION, "runs": [run]}

    def format(self, report: Report) -> str:
        return json.dumps(self.document(report), indent=2, ensure_ascii=False)


def _rule(report: Report, rule_id: str) -> dict[str, Any]:
    """A ``reportingDescriptor`` (§3.49); the level is the rule's default, else its first finding's severity."""
    rule = report.rule(rule_id)
    severity = rule.severity or next(f.severity for f in report.findings if f.rule_id == rule_id)
    entry: dict[str, Any] = {
        "id": rule.id,
        "name": "".join(word.capitalize() for word in _WORDS.findall(rule.id)),
        "shortDescription": {"text": rule.title},
        "fullDescription": {"text": rule.title if rule.title.endswith(".") else f"{rule.title}."},
    }
    if rule.help:
        more = f"\n\nSee [{rule.help_uri}]({rule.help_uri})." if rule.help_uri else ""
        entry["help"] = {"text": rule.help, "markdown": rule.help + more}
    if rule.help_uri:
        entry["helpUri"] = rule.help_uri
    entry["defaultConfiguration"] = {"level": severity.sarif_level}
    entry["properties"] = {
        "tags": ["security", *rule.tags],
        "security-severity": severity.security_severity,
        "problem.severity": severity.value,
    }
    return entry


def _result(finding: Finding, rule_index: int) -> dict[str, Any]:
    """A ``result`` (§3.27); a finding about the whole target points at the target itself."""
    primary = finding.location
    # A member inside an archive is only a logical location, which viewers do not show: say it.
    text = f"{primary}: {finding.message}" if primary is not None and primary.member else finding.message
    locations = [_location(location) for location in finding.locations] or [
        {"physicalLocation": {"artifactLocation": {"uri": ".", "uriBaseId": _BASE}}}
    ]
    return {
        "ruleId": finding.rule_id,
        "ruleIndex": rule_index,
        "level": finding.severity.sarif_level,
        "message": {"text": text},
        "locations": locations,
        "partialFingerprints": {FINGERPRINT_KEY: finding.fingerprint},
        "properties": {"severity": finding.severity.value, "security-severity": finding.severity.security_severity},
    }


def _location(location: Location) -> dict[str, Any]:
    artifact: dict[str, Any] = {"uri": location.artifact}
    if not (PurePosixPath(location.artifact).is_absolute() or PureWindowsPath(location.artifact).is_absolute()):
        artifact["uriBaseId"] = _BASE
    physical: dict[str, Any] = {"artifactLocation": artifact}
    region: dict[str, Any] = {}
    if location.line:
        region["startLine"] = location.line
        region["startColumn"] = max(location.column, 1)
    if location.offset is not None and not location.member:
        region["byteOffset"] = location.offset
    if region:
        physical["region"] = region
    entry: dict[str, Any] = {"physicalLocation": physical}
    if location.member:
        entry["logicalLocations"] = [{"fullyQualifiedName": location.path, "kind": "member"}]
    return entry
