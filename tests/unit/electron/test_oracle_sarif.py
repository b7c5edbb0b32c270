"""SARIF output validated against the official SARIF 2.1.0 JSON schema.

The schema comes from ``@microsoft/jest-sarif`` (``sarif-2.1.0-rtm.5.json``), which
``bench/bench_electron.py`` npm-installs into ``bench/.node-sarif/`` (gitignored); a folder holding
the schema can also be named by ``TRACEMARK_SARIF_SCHEMA``.  Without it the tests skip.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import jsonschema  # type: ignore[import-untyped]
import pytest

from tests.conftest import require_oracle
from tests.unit.electron._corpus import CORPUS, audit_target, corpus_apps
from tracemark.electron import audit, to_sarif

REPO = Path(__file__).resolve().parents[3]
SCHEMA = Path(
    os.environ.get(
        "TRACEMARK_SARIF_SCHEMA",
        REPO
        / "bench"
        / ".node-sarif"
        / "node_modules"
        / "@microsoft"
        / "jest-sarif"
        / "lib"
        / "schemas"
        / "sarif-2.1.0-rtm.5.json",
    )
)


@pytest.fixture(autouse=True)
def _schema_installed() -> None:
    require_oracle(SCHEMA.is_file(), "the SARIF 2.1.0 schema")


def test_every_corpus_report_is_valid_sarif() -> None:
    schema = json.loads(SCHEMA.read_text())
    validator_class = jsonschema.validators.validator_for(schema)
    validator = validator_class(schema)
    apps = corpus_apps()
    assert (CORPUS / "vulnerable_notes_app_13") in apps
    for app in apps:
        log = json.loads(json.dumps(to_sarif(audit(audit_target(app)))))
        errors = sorted(validator.iter_errors(log), key=str)
        assert errors == [], f"{app.name}: {errors[0].message if errors else ''}"
    broken = to_sarif(audit(CORPUS / "vulnerable_notes_app_13"))
    broken["runs"][0]["results"][0]["level"] = "critical"  # not a SARIF level
    assert list(validator.iter_errors(broken))
