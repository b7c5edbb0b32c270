"""Probe runner beside garak 0.17 on one local stub target in three modes: naive, refuse-everything, realistic.

The stub (``tests/unit/redteam/openai_stub.py``) serves the OpenAI chat API (for tracemark) and garak's
REST generator shape (``/gen``) on 127.0.0.1.  Both tools probe the same families where both have
them: prompt injection (garak ``promptinject.HijackHateHumans`` / our ``direct-injection``), jailbreak
(``dan.Dan_11_0`` / ``jailbreak``) and markdown exfiltration (``web_injection.MarkdownImageExfil`` /
``unsafe-output``).  Reported per mode: each tool's attack success rate (ASR), and our over-refusal on
the benign twins, which garak does not measure (a refuse-everything target passes all of garak's probes).

garak runs from its own virtual environment (``.bench-venv-garak``, made here with
``pip install garak==0.17.1`` when missing and ``--install`` is given); without it the garak columns are
``null`` with the reason, and the run says so.

    .venv/bin/python bench/bench_redteam_probe.py [--install] [--garak-generations 1]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from _common import REPO, write_result

sys.path.insert(0, str(REPO))
from tests.unit.redteam.openai_stub import serve

from tracemark.redteam import OpenAITarget, RunLimits, builtin_probes, run_probes

GARAK_VENV = REPO / ".bench-venv-garak"
GARAK_PROBES = {
    "promptinject.HijackHateHumans": "direct-injection",
    "dan.Dan_11_0": "jailbreak",
    "web_injection.MarkdownImageExfil": "unsafe-output",
}
MODES = ("naive", "refuse", "realistic")


def ensure_garak(install: bool) -> Path | None:
    python = GARAK_VENV / "bin" / "python"
    if python.exists():
        return python
    if not install:
        return None
    subprocess.run([sys.executable, "-m", "venv", str(GARAK_VENV)], check=True)
    constraints = REPO / "scripts" / "ci" / "constraints-torch-cpu.txt"
    subprocess.run([str(python), "-m", "pip", "install", "-q", "-c", str(constraints), "garak==0.17.1"], check=True)
    return python


def run_tracemark(port: int) -> dict[str, Any]:
    families = set(GARAK_PROBES.values())
    probes = [p for p in builtin_probes() if p.family in families]
    started = time.perf_counter()
    report = run_probes(OpenAITarget(f"http://127.0.0.1:{port}/v1"), probes, limits=RunLimits(concurrency=4))
    seconds = time.perf_counter() - started
    document = report.to_json()
    return {"seconds": round(seconds, 3), "status": document["status"], "families": document["families"]}


def _garak_eval(report_path: Path) -> dict[str, dict[str, Any]]:
    """Per probe: attempts that hit and attempts scored, from garak's ``eval`` lines."""
    out: dict[str, dict[str, Any]] = {}
    for line in report_path.read_text().splitlines():
        entry = json.loads(line)
        if entry.get("entry_type") != "eval":
            continue
        probe = str(entry.get("probe", "")).removeprefix("probes.")
        total = int(entry.get("total_evaluated", entry.get("total", 0)) or 0)
        passed = int(entry.get("passed", 0) or 0)
        row = out.setdefault(probe, {"hits": 0, "scored": 0, "detectors": []})
        row["hits"] += total - passed
        row["scored"] += total
        row["detectors"].append(entry.get("detector"))
    for row in out.values():
        row["asr"] = None if not row["scored"] else round(row["hits"] / row["scored"], 4)
    return out


def run_garak(python: Path, port: int, generations: int) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="garak-") as work:
        config = Path(work) / "rest.json"
        config.write_text(json.dumps({"rest": {"RestGenerator": {
            "uri": f"http://127.0.0.1:{port}/gen", "req_template_json_object": {"prompt": "$INPUT"},
            "response_json": True, "response_json_field": "text"}}}))  # fmt: skip
        env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "XDG_DATA_HOME": work,
               "XDG_CONFIG_HOME": work, "XDG_CACHE_HOME": work}  # fmt: skip
        spec = ",".join(f"probes.{name}" for name in GARAK_PROBES)
        started = time.perf_counter()
        done = subprocess.run(
            [str(python), "-m", "garak", "-t", "rest", "-G", str(config), "--spec", spec, "-g", str(generations)],
            capture_output=True, text=True, env=env, timeout=1800, check=False, cwd=work,
        )  # fmt: skip
        seconds = time.perf_counter() - started
        reports = sorted(Path(work).rglob("*.report.jsonl"))
        if not reports:
            return {"seconds": round(seconds, 3), "returncode": done.returncode, "probes": {},
                    "error": (done.stderr or done.stdout)[-400:]}  # fmt: skip
        return {"seconds": round(seconds, 3), "returncode": done.returncode, "probes": _garak_eval(reports[-1])}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--install", action="store_true", help="create .bench-venv-garak when it is missing")
    parser.add_argument("--garak-generations", type=int, default=1)
    args = parser.parse_args()
    python = ensure_garak(args.install)
    modes: dict[str, Any] = {}
    for mode in MODES:
        with serve(mode) as port:
            ours = run_tracemark(port)
            theirs = run_garak(python, port, args.garak_generations) if python else None
        modes[mode] = {"tracemark": ours, "garak": theirs}
        print(f"== {mode}", flush=True)
        for family in ours["families"]:
            print(f"  tracemark {family['family']:22} ASR {family['attack_success']['value']} "
                  f"over-refusal {family['over_refusal']['value']}")  # fmt: skip
        if theirs:
            for probe, row in theirs["probes"].items():
                print(f"  garak     {probe:40} ASR {row['asr']} ({row['hits']}/{row['scored']})")
    note = "" if python else "garak not installed: run with --install (needs PyPI once)"
    write_result("redteam_probe", {"garak": None if python is None else "0.17.1", "note": note,
                                   "pairs": GARAK_PROBES, "modes": modes})  # fmt: skip


if __name__ == "__main__":
    main()
