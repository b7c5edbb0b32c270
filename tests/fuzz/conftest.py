"""Writes how many examples each fuzz target ran to ``$TRACEMARK_FUZZ_STATS`` (for ``run_all.py``)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from tests.fuzz._harness import EXECUTIONS


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    destination = os.environ.get("TRACEMARK_FUZZ_STATS")
    if destination:
        Path(destination).write_text(json.dumps(dict(EXECUTIONS), sort_keys=True))
