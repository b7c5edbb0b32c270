"""Supply-chain SARIF validated against the official SARIF 2.1.0 JSON schema.

The schema comes from ``tests/support/sarif.py``.  Without it these tests skip; the structural tests in
``test_cli.py`` run regardless.
"""

from __future__ import annotations

import json

from tests.support.sarif import REPO, sarif_validator, schema_errors
from tracemark.report import Finding, Location, Report, Severity, Tool, to_sarif
from tracemark.supply import scan_path

CORPUS = REPO / "tests" / "fixtures" / "supply"


def test_scan_and_deps_sarif_are_schema_valid() -> None:
    validator = sarif_validator()
    findings = list(scan_path(CORPUS / "malicious").findings)
    findings.append(
        Finding("GHSA-xxxx-yyyy-zzzz", Severity.UNKNOWN, "requests 2.0: advisory", (Location("requirements.txt:3"),))
    )
    findings.append(
        Finding("deps.unpinned", Severity.HIGH, "numpy: no exact version", (Location("/abs/requirements.txt"),))
    )
    report = Report(Tool("tracemark", "tracemark supply scan"), tuple(findings), subject=str(CORPUS / "malicious"))
    log = json.loads(json.dumps(to_sarif(report)))
    assert len(log["runs"][0]["results"]) == len(findings)
    errors = schema_errors(validator, log)
    assert errors == [], errors[0].message if errors else ""
    log["runs"][0]["results"][0]["level"] = "critical"
    assert list(validator.iter_errors(log))
