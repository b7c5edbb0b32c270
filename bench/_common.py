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
#: The published measurements, at each benchmark's documented settings (``make bench-full``).
RESULTS = REPO / "bench" / "results"
#: Set to another folder (``make bench`` sets ``bench/results/quick``) so that runs at bounded
#: settings never overwrite the published measurements.
RESULTS_ENV = "TRACEMARK_BENCH_RESULTS"


def results_dir(zoo_scale: str | None = None) -> Path:
    """Where results are written and read: ``$TRACEMARK_BENCH_RESULTS`` or ``bench/results``.

    A zoo benchmark names the scale of the zoo it ran on: only a ``full`` zoo writes into the
    published folder itself; any other scale goes to ``bench/results/zoo-<scale>/``.
    """
    override = os.environ.get(RESULTS_ENV)
    directory = Path(override).resolve() if override else RESULTS
    if zoo_scale is not None and zoo_scale != "full" and directory == RESULTS:
        directory = RESULTS / f"zoo-{zoo_scale}"
    return directory


def write_result(name: str, payload: dict[str, Any], *, zoo_scale: str | None = None) -> Path:
    """Write ``<results_dir>/<name>.json`` with the machine and time (and the zoo's scale) recorded."""
    directory = results_dir(zoo_scale)
    directory.mkdir(parents=True, exist_ok=True)
    document = {
        "benchmark": name,
        "recorded_at": datetime.now(UTC).replace(microsecond=0).isoformat(),
        "machine": {"python": platform.python_version(), "cpu_count": os.cpu_count(), "platform": platform.platform()},
        **({"zoo_scale": zoo_scale} if zoo_scale is not None else {}),
        **payload,
    }
    path = directory / f"{name}.json"
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
