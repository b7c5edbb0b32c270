"""The official SARIF 2.1.0 JSON schema as a test oracle.

The schema (``sarif-2.1.0-rtm.5.json`` from ``@microsoft/jest-sarif``) is npm-installed into
``bench/.node-sarif/`` (gitignored) by ``make test`` and ``bench/bench_electron.py``;
``TRACEMARK_SARIF_SCHEMA`` can name another copy.  Without it the tests that need it skip (fail in CI).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import jsonschema  # type: ignore[import-untyped]

from tests.conftest import require_oracle

REPO = Path(__file__).resolve().parents[2]
SARIF_SCHEMA = Path(
    os.environ.get(
        "TRACEMARK_SARIF_SCHEMA",
        REPO / "bench" / ".node-sarif" / "node_modules" / "@microsoft" / "jest-sarif" / "lib" / "schemas"
        / "sarif-2.1.0-rtm.5.json",
    )
)  # fmt: skip


def sarif_validator() -> Any:
    """A validator of the SARIF 2.1.0 schema (the test skips, or fails in CI, when the schema is missing)."""
    require_oracle(SARIF_SCHEMA.is_file(), "the SARIF 2.1.0 schema")
    schema = json.loads(SARIF_SCHEMA.read_text())
    return jsonschema.validators.validator_for(schema)(schema)


def schema_errors(validator: Any, log: object) -> list[Any]:
    """The schema's complaints about ``log``, in a stable order (empty when it is valid)."""
    return sorted(validator.iter_errors(log), key=str)
