"""Helpers shared by the benchmarks: result files, temporary keyrings, the reference model."""

from __future__ import annotations

import json
import os
import platform
import tempfile
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "bench" / "results"


def write_result(name: str, payload: dict[str, Any]) -> Path:
    """Write ``bench/results/<name>.json`` with the machine and time recorded."""
    RESULTS.mkdir(parents=True, exist_ok=True)
    document = {
        "benchmark": name,
        "recorded_at": datetime.now(UTC).replace(microsecond=0).isoformat(),
        "machine": {"python": platform.python_version(), "cpu_count": os.cpu_count(), "platform": platform.platform()},
        **payload,
    }
    path = RESULTS / f"{name}.json"
    path.write_text(json.dumps(document, indent=2, sort_keys=True) + "\n")
    return path


def temporary_home() -> Path:
    """Point TRACEMARK_HOME at a fresh directory so benchmarks never touch the user's keys."""
    home = Path(tempfile.mkdtemp(prefix="tracemark-bench-"))
    os.environ["TRACEMARK_HOME"] = str(home)
    return home


def reference_model() -> Path:
    """The bundled reference model directory (``TRACEMARK_REFERENCE_MODEL`` overrides it)."""
    from tracemark.text import reference_model_dir

    return reference_model_dir()
