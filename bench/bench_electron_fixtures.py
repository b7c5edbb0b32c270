"""Agreement with Electronegativity's own test fixtures, per check (research goal E1).

Electronegativity's npm package ships its fixtures as ``test/checks/AtomicChecks/<CHECK>_<n>_<count>.<ext>``:
one file, and the number of findings its check must report on it.  Each fixture is audited alone
(copied into an empty folder) and the findings of the rules that cover the check (``ELECTRONEGATIVITY``
in ``tests/support/electron.py``, read off the check classes) are counted; a fixture agrees when the counts are equal.
Checks that only mark code for manual review (PRELOAD, LIMIT_NAVIGATION_JS, PERMISSION_REQUEST_HANDLER_JS,
NODE_INTEGRATION_ATTACH_EVENT, CSP_JS/HTML presence), AUXCLICK, AFFINITY and the upgrade checks
are outside the overlap.  The fixtures come from the package ``bench_electron.py`` installs (run it
first); nothing from them is committed.

    .venv/bin/python bench/bench_electron_fixtures.py
"""

from __future__ import annotations

import re
import shutil
import sys
import tempfile
from collections import defaultdict
from pathlib import Path
from typing import Any

from _common import REPO, write_result

sys.path.insert(0, str(REPO))
from tests.support.electron import ELECTRONEGATIVITY

from tracemark.electron import audit

FIXTURES = (
    REPO
    / "bench"
    / ".node-electronegativity"
    / "node_modules"
    / "@doyensec"
    / "electronegativity"
    / "test"
    / "checks"
    / "AtomicChecks"
)
OVERLAP = (
    "NODE_INTEGRATION_JS_CHECK",
    "NODE_INTEGRATION_HTML_CHECK",
    "CONTEXT_ISOLATION_JS_CHECK",
    "SANDBOX_JS_CHECK",
    "WEB_SECURITY_JS_CHECK",
    "WEB_SECURITY_HTML_CHECK",
    "INSECURE_CONTENT_JS_CHECK",
    "INSECURE_CONTENT_HTML_CHECK",
    "EXPERIMENTAL_FEATURES_JS_CHECK",
    "EXPERIMENTAL_FEATURES_HTML_CHECK",
    "BLINK_FEATURES_JS_CHECK",
    "BLINK_FEATURES_HTML_CHECK",
    "ALLOWPOPUPS_HTML_CHECK",
    "OPEN_EXTERNAL_JS_CHECK",
    "DANGEROUS_FUNCTIONS_JS_CHECK",
    "HTTP_RESOURCES_JS_CHECK",
    "HTTP_RESOURCES_HTML_CHECK",
    "CERTIFICATE_ERROR_EVENT_JS_CHECK",
    "CERTIFICATE_VERIFY_PROC_JS_CHECK",
    "CUSTOM_ARGUMENTS_JS_CHECK",
    "SECURITY_WARNINGS_DISABLED_JS_CHECK",
    "REMOTE_MODULE_JS_CHECK",
    "PROTOCOL_HANDLER_JS_CHECK",
)
_NAME = re.compile(r"^(?P<check>[A-Z_]+?)_(?P<n>\d+)_(?P<count>\d+)\.(?P<ext>\w+)$")


def main() -> None:
    if not FIXTURES.is_dir():
        raise SystemExit(f"{FIXTURES} is missing: run bench/bench_electron.py first (it installs Electronegativity)")
    rules_for: dict[str, set[str]] = defaultdict(set)
    for rule, checks in ELECTRONEGATIVITY.items():
        for check in checks:
            rules_for[check].add(rule)
    per_check: dict[str, dict[str, Any]] = {}
    total = agree = 0
    for fixture in sorted(FIXTURES.iterdir()):
        match = _NAME.match(fixture.name)
        if match is None or match["check"] not in OVERLAP:
            continue
        check, expected = match["check"], int(match["count"])
        with tempfile.TemporaryDirectory() as folder:
            shutil.copy(fixture, Path(folder) / fixture.name)
            report = audit(folder)
        ours = sum(
            1
            for f in report.findings
            if f.rule_id in rules_for[check] and f.location is not None and f.location.path == fixture.name
        )
        entry = per_check.setdefault(check, {"fixtures": 0, "agree": 0, "deviations": []})
        entry["fixtures"] += 1
        total += 1
        if ours == expected:
            entry["agree"] += 1
            agree += 1
        else:
            entry["deviations"].append({"fixture": fixture.name, "expected": expected, "ours": ours})
    for check, entry in per_check.items():
        print(
            f"{check:40s} {entry['agree']:3d}/{entry['fixtures']:<3d} "
            + " ".join(f"{d['fixture']}:{d['ours']}" for d in entry["deviations"])
        )
    print(f"agreement: {agree}/{total} = {agree / total:.3f}")
    path = write_result(
        "electron_fixtures",
        {"fixtures": total, "agree": agree, "agreement": round(agree / total, 4), "per_check": per_check},
    )
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
