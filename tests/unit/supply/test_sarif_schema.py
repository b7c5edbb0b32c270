"""Supply-chain SARIF validated against the official SARIF 2.1.0 JSON schema.

The schema (``sarif-2.1.0-rtm.5.json`` from ``@microsoft/jest-sarif``) is npm-installed into
``bench/.node-sarif/`` (gitignored) by ``bench/bench_electron.py``; ``TRACEMARK_SARIF_SCHEMA``
can name another copy.  Without it these tests skip; the structural tests in ``test_cli.py`` run
regardless.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import jsonschema  # type: ignore[import-untyped]
import pytest

from tests.conftest import require_oracle
from tracemark.report import Finding, Location, Report, Severity, Tool, to_sarif
from tracemark.supply import scan_path

REPO = Path(__file__).resolve().parents[3]
SCHEMA = Path(
    os.environ.get(
        "TRACEMARK_SARIF_SCHEMA",
        REPO / "bench" / ".node-sarif" / "node_modules" / "@microsoft" / "jest-sarif" / "lib" / "schemas"
        / "sarif-2.1.0-rtm.5.json",
    )
)  # fmt: skip
CORPUS = REPO / "tests" / "fixtures" / "supply"


@pytest.fixture(autouse=True)
def _schema_installed() -> None:
    require_oracle(SCHEMA.is_file(), "the SARIF 2.1.0 schema")


def test_scan_and_deps_sarif_are_schema_valid() -> None:
    schema = json.loads(SCHEMA.read_text())
    validator = jsonschema.validators.validator_for(schema)(schema)
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
    errors = sorted(validator.iter_errors(log), key=str)
    assert errors == [], errors[0].message if errors else ""
    log["runs"][0]["results"][0]["level"] = "critical"
    assert list(validator.iter_errors(log))
