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
from typing import Required, TypedDict

from tracemark._json import JSONObject, thaw_object
from tracemark.report._finding import Finding, Location
from tracemark.report._format.interface import Formatter
from tracemark.report._report import Report

SARIF_SCHEMA = "https://json.schemastore.org/sarif-2.1.0.json"
SARIF_VERSION = "2.1.0"
#: The ``partialFingerprints`` key (SARIF §3.27.17) under which :attr:`Finding.fingerprint` is given.
FINGERPRINT_KEY = "tracemark/v1"
_BASE = "SRCROOT"
_WORDS = re.compile(r"[A-Za-z0-9]+")


# The parts of a SARIF 2.1.0 log that tracemark writes (the schema allows much more).  Keys that
# are not Python names use the functional form.  Objects with optional members are ``total=False``
# with the members present from the start marked ``Required``: the others are added one by one so
# that the keys keep the order SARIF's own examples use.


class SarifText(TypedDict):
    """A ``message`` or ``multiformatMessageString`` (§3.11, §3.12) in plain text."""

    text: str


class SarifMarkdownText(TypedDict):
    """A ``multiformatMessageString`` with a Markdown rendering (a rule's ``help``)."""

    text: str
    markdown: str


class SarifArtifactLocation(TypedDict, total=False):
    """An ``artifactLocation`` (§3.4): a URI, relative to ``uriBaseId`` when that is given."""

    uri: Required[str]
    uriBaseId: str


class SarifRegion(TypedDict, total=False):
    """A ``region`` (§3.30): a line and column, or a byte offset."""

    startLine: int
    startColumn: int
    byteOffset: int


class SarifPhysicalLocation(TypedDict, total=False):
    """A ``physicalLocation`` (§3.29)."""

    artifactLocation: Required[SarifArtifactLocation]
    region: SarifRegion


class SarifLogicalLocation(TypedDict):
    """A ``logicalLocation`` (§3.33): here a member inside an archive."""

    fullyQualifiedName: str
    kind: str


class SarifLocation(TypedDict, total=False):
    """A ``location`` (§3.28)."""

    physicalLocation: Required[SarifPhysicalLocation]
    logicalLocations: list[SarifLogicalLocation]


class SarifConfiguration(TypedDict):
    """A ``reportingConfiguration`` (§3.50): the rule's default level."""

    level: str


#: A rule's ``properties``: its tags and GitHub's numeric ``security-severity``.
SarifRuleProperties = TypedDict(
    "SarifRuleProperties", {"tags": list[str], "security-severity": str, "problem.severity": str}
)
#: A result's ``properties``: the tracemark severity and GitHub's ``security-severity``.
SarifResultProperties = TypedDict("SarifResultProperties", {"severity": str, "security-severity": str})


class SarifRule(TypedDict, total=False):
    """A ``reportingDescriptor`` (§3.49)."""

    id: Required[str]
    name: Required[str]
    shortDescription: Required[SarifText]
    fullDescription: Required[SarifText]
    help: SarifMarkdownText
    helpUri: str
    defaultConfiguration: SarifConfiguration
    properties: SarifRuleProperties


class SarifResult(TypedDict):
    """A ``result`` (§3.27)."""

    ruleId: str
    ruleIndex: int
    level: str
    message: SarifText
    locations: list[SarifLocation]
    partialFingerprints: dict[str, str]
    properties: SarifResultProperties


class SarifDriver(TypedDict, total=False):
    """The ``tool.driver`` ``toolComponent`` (§3.19)."""

    name: Required[str]
    fullName: str
    version: str
    informationUri: str
    rules: list[SarifRule]


class SarifTool(TypedDict):
    """A ``tool`` (§3.18)."""

    driver: SarifDriver


class SarifBase(TypedDict):
    """An ``originalUriBaseIds`` entry (§3.14.14): what a base id such as ``SRCROOT`` stands for."""

    description: SarifText


class SarifRun(TypedDict, total=False):
    """A ``run`` (§3.14); ``properties`` are the report's facts."""

    tool: Required[SarifTool]
    originalUriBaseIds: Required[dict[str, SarifBase]]
    results: Required[list[SarifResult]]
    properties: JSONObject


#: A SARIF 2.1.0 log (§3.13) with one run.
SarifLog = TypedDict("SarifLog", {"$schema": str, "version": str, "runs": list[SarifRun]})


class SarifFormat(Formatter):
    """One SARIF 2.1.0 log with a single run; see :meth:`document`."""

    name = "sarif"
    for_people = False

    def document(self, report: Report) -> SarifLog:
        """The SARIF log as a JSON object."""
        used = sorted({finding.rule_id for finding in report.findings})
        index = {rule_id: position for position, rule_id in enumerate(used)}
        tool = report.tool
        driver: SarifDriver = {"name": tool.name}
        if tool.full_name:
            driver["fullName"] = tool.full_name
        driver["version"] = tool.version
        if tool.information_uri:
            driver["informationUri"] = tool.information_uri
        driver["rules"] = [_rule(report, rule_id) for rule_id in used]
        run: SarifRun = {
            "tool": {"driver": driver},
            "originalUriBaseIds": {_BASE: {"description": {"text": f"the examined target: {report.subject or '.'}"}}},
            "results": [_result(finding, index[finding.rule_id]) for finding in report.findings],
        }
        if report.facts:
            run["properties"] = thaw_object(report.facts)
        return {"$schema": SARIF_SCHEMA, "version": SARIF_VERSION, "runs": [run]}

    def format(self, report: Report) -> str:
        return json.dumps(self.document(report), indent=2, ensure_ascii=False)


def _rule(report: Report, rule_id: str) -> SarifRule:
    """A ``reportingDescriptor`` (§3.49); the level is the rule's default, else its first finding's severity."""
    rule = report.rule(rule_id)
    severity = rule.severity or next(f.severity for f in report.findings if f.rule_id == rule_id)
    entry: SarifRule = {
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


def _result(finding: Finding, rule_index: int) -> SarifResult:
    """A ``result`` (§3.27); a finding about the whole target points at the target itself."""
    primary = finding.location
    # A member inside an archive is only a logical location, which viewers do not show: say it.
    text = f"{primary}: {finding.message}" if primary is not None and primary.member else finding.message
    locations: list[SarifLocation] = [_location(location) for location in finding.locations] or [
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


def _location(location: Location) -> SarifLocation:
    artifact: SarifArtifactLocation = {"uri": location.artifact}
    if not (PurePosixPath(location.artifact).is_absolute() or PureWindowsPath(location.artifact).is_absolute()):
        artifact["uriBaseId"] = _BASE
    physical: SarifPhysicalLocation = {"artifactLocation": artifact}
    region: SarifRegion = {}
    if location.line:
        region["startLine"] = location.line
        region["startColumn"] = max(location.column, 1)
    if location.offset is not None and not location.member:
        region["byteOffset"] = location.offset
    if region:
        physical["region"] = region
    entry: SarifLocation = {"physicalLocation": physical}
    if location.member:
        entry["logicalLocations"] = [{"fullyQualifiedName": location.path, "kind": "member"}]
    return entry
