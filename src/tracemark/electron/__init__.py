"""tracemark.electron: audit an Electron app for insecure settings, IPC sinks, fuses and outdated Electron.

    from tracemark.electron import audit, to_sarif

    report = audit("path/to/app")            # a source folder, an app.asar, or a packaged app
    for finding in report.findings:          # tracemark.report.Finding
        print(finding.severity, finding.rule_id, finding.location, finding.message)

Settings are resolved through constants, spreads, ``Object.assign``, computed keys and imports;
fuses are read from the executable; ASAR archives are checked block by block; the Electron
version is checked against an offline OSV database (or the report says it was not).  Each kind
of flaw is one registered check class with its metadata (``RULES`` lists them); findings and
their forms (table, JSON, SARIF, Markdown, HTML) are :mod:`tracemark.report`'s.
"""

from tracemark.electron._asar import (
    AsarArchive,
    AsarEntry,
    AsarFormatError,
    AsarIntegrity,
    IntegrityProblem,
    check_integrity,
    open_asar,
)
from tracemark.electron._audit import audit
from tracemark.electron._checks import FUSE_RULES, RULES, AdvisorySource
from tracemark.electron._fuses import (
    FUSE_NAMES,
    SENTINEL,
    FuseState,
    FuseWire,
    FuseWireError,
    decode_fuse_wire,
    encode_fuse_wire,
    read_fuses,
)
from tracemark.electron._html import csp_weaknesses, parse_csp
from tracemark.electron._report import AuditReport, render_table, to_json, to_sarif
from tracemark.report import Finding, Location, Rule, Severity

__all__ = [
    "FUSE_NAMES",
    "FUSE_RULES",
    "RULES",
    "SENTINEL",
    "AdvisorySource",
    "AsarArchive",
    "AsarEntry",
    "AsarFormatError",
    "AsarIntegrity",
    "AuditReport",
    "Finding",
    "FuseState",
    "FuseWire",
    "FuseWireError",
    "IntegrityProblem",
    "Location",
    "Rule",
    "Severity",
    "audit",
    "check_integrity",
    "csp_weaknesses",
    "decode_fuse_wire",
    "encode_fuse_wire",
    "open_asar",
    "parse_csp",
    "read_fuses",
    "render_table",
    "to_json",
    "to_sarif",
]
