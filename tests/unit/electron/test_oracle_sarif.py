"""SARIF output validated against the official SARIF 2.1.0 JSON schema.

The schema comes from ``tests/support/sarif.py`` (``@microsoft/jest-sarif``'s ``sarif-2.1.0-rtm.5.json``,
or the file ``TRACEMARK_SARIF_SCHEMA`` names).  Without it the tests skip.
"""

from __future__ import annotations

import json

from tests.support.sarif import sarif_validator, schema_errors
from tests.unit.electron._corpus import CORPUS, audit_target, corpus_apps
from tracemark.electron import audit, to_sarif


def test_every_corpus_report_is_valid_sarif() -> None:
    validator = sarif_validator()
    apps = corpus_apps()
    assert (CORPUS / "vulnerable_notes_app_13") in apps
    for app in apps:
        log = json.loads(json.dumps(to_sarif(audit(audit_target(app)))))
        errors = schema_errors(validator, log)
        assert errors == [], f"{app.name}: {errors[0].message if errors else ''}"
    broken = to_sarif(audit(CORPUS / "vulnerable_notes_app_13"))
    broken["runs"][0]["results"][0]["level"] = "critical"  # not a SARIF level
    assert list(validator.iter_errors(broken))
