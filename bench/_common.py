"""Helpers shared by the benchmarks: result files, temporary keyrings, the reference model."""

from __future__ import annotations

import json
import os
import platform
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
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


def text_bench_setup(texts: int, seed: int) -> tuple[Any, Path, Any, list[str], list[str]]:
    """The text benchmarks' start: a fresh keyring, the reference model and its tokenizer, the human
    prose documents of over 400 characters, and ``texts`` prompts (a document's first 8 words) drawn
    with ``seed``: ``(keyring, model, tokenizer, prose, prompts)``."""
    import numpy as np
    from tests.support.corpora import python_prose

    from tracemark.keys import Keyring
    from tracemark.text import TextTokenizer

    temporary_home()
    keyring = Keyring()
    keyring.create()
    model = reference_model()
    prose = [doc for doc in python_prose() if len(doc) > 400]
    picks = np.random.default_rng(seed).choice(len(prose), texts, replace=False)
    prompts = [" ".join(prose[int(i)].split()[:8]) for i in picks]
    return keyring, model, TextTokenizer(model), prose, prompts


def free_port() -> int:
    """A loopback port nobody listens on now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port


class ServiceProcess:
    """``tracemark service run`` in a subprocess on a free loopback port, started on enter, stopped on exit.

    One load generator on one address measures throughput, not the per-client rate limits, so they are off.
    """

    def __init__(self, home: Path, options: list[str], *, ready: str = "/v1/health", env: dict[str, str] | None = None):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.ready = ready
        environment = {**os.environ, "TRACEMARK_HOME": str(home), "TOKENIZERS_PARALLELISM": "false",
                       "TRACEMARK_SERVICE_RATE_LIMIT_PER_SECOND": "0", "TRACEMARK_SERVICE_HEAVY_RATE_PER_SECOND": "0",
                       **(env or {})}  # fmt: skip
        command = [
            sys.executable,
            "-m",
            "tracemark",
            "service",
            "run",
            "--port",
            str(self.port),
            "--no-preload",
            *options,
        ]
        self.log = (home / f"service-{self.port}.log").open("w")
        self.process = subprocess.Popen(command, env=environment, stdout=self.log, stderr=subprocess.STDOUT)

    def __enter__(self) -> ServiceProcess:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise SystemExit(f"the service exited: see {self.log.name}")
            try:
                with urllib.request.urlopen(self.url + self.ready, timeout=2) as response:
                    if response.status == 200:
                        return self
            except OSError:
                time.sleep(0.3)
        raise SystemExit("the service did not start within 120 s")

    def __exit__(self, *exc: object) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        self.log.close()
