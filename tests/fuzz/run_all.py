"""Run every fuzz target under both harnesses and record executions, time and coverage.

    python -m tests.fuzz.run_all [--seconds 60] [--targets pickle,receipt] [--scale 1] [--no-hypothesis]

For each target: the coverage-guided run (atheris, ``--seconds`` each, from a corpus seeded with
the target's valid inputs and its regression inputs, kept in ``build/fuzz/corpus/<target>`` between
runs unless ``--fresh``), then
the bounded property-based run (the hypothesis test ``make test`` runs, ``--scale`` times as many
examples).  Coverage is measured with coverage.py on the target's own modules: for atheris by
replaying the corpus it ended with, for hypothesis during the run.  libFuzzer's ``cov`` (edges)
and ``ft`` (features) are recorded as printed.  The summary goes to ``bench/results/fuzz.json``
(or ``$TRACEMARK_BENCH_RESULTS/fuzz.json``); a crash leaves its input in
``build/fuzz/artifacts/<target>/`` and makes the exit status 1.
"""

from __future__ import annotations

import argparse
import hashlib
import importlib
import importlib.metadata
import json
import os
import platform
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from tests.fuzz._catalog import CATALOG

REPO = Path(__file__).resolve().parents[2]
WORK = REPO / "build" / "fuzz"
REGRESSIONS = Path(__file__).resolve().parent / "regressions"
RESULTS_ENV = "TRACEMARK_BENCH_RESULTS"
PROPERTY_TESTS = "tests/fuzz/test_fuzz_targets.py"

_STATUS = re.compile(r"^#(\d+)\s+(?:INITED|NEW|REDUCE|pulse|DONE)\s+cov: (\d+) ft: (\d+)(?: corp: (\d+)/)?", re.M)
_STAT = re.compile(r"^stat::(\w+):\s+(\d+)", re.M)


def _scope_files(scope: tuple[str, ...]) -> dict[str, list[str] | None]:
    """Source file (relative to the repository) -> functions measured in it (None: the whole module).

    Found without importing anything: coverage must start before the parsers are imported.
    """
    files: dict[str, list[str] | None] = {}
    for entry in scope:
        module, _, functions = entry.partition(":")
        files[f"src/{module.replace('.', '/')}.py"] = functions.split(",") if functions else None
    return files


def _measure(scope: tuple[str, ...], work: Callable[[], None]) -> dict[str, Any] | None:
    """Run ``work`` under coverage.py (branch mode); line and branch coverage of ``scope``, or None without it."""
    try:
        coverage: Any = importlib.import_module("coverage")
    except ImportError:
        work()
        return None
    files = _scope_files(scope)
    measured = coverage.Coverage(branch=True, include=[str(REPO / f) for f in files], data_file=None)
    measured.start()
    try:
        work()
    finally:
        measured.stop()
    with tempfile.TemporaryDirectory() as folder:
        report = Path(folder) / "coverage.json"
        measured.json_report(outfile=str(report))
        reported = json.loads(report.read_text())["files"]
    totals = {"covered_lines": 0, "num_statements": 0, "covered_branches": 0, "num_branches": 0}
    for path, functions in files.items():
        data = reported.get(path)
        if data is None:
            raise SystemExit(f"coverage has no data for {path}: is the scope in _catalog.py right?")
        if functions is None:
            summaries = [data["summary"]]
        else:
            unknown = set(functions) - set(data["functions"])
            if unknown:
                raise SystemExit(f"{path} has no functions {sorted(unknown)}: update _catalog.py")
            summaries = [data["functions"][name]["summary"] for name in functions]
        for summary in summaries:
            for key in totals:
                totals[key] += summary[key]
    possible = totals["num_statements"] + totals["num_branches"]
    reached = totals["covered_lines"] + totals["covered_branches"]
    return {
        "scope": list(scope),
        "lines": f"{totals['covered_lines']}/{totals['num_statements']}",
        "branches": f"{totals['covered_branches']}/{totals['num_branches']}",
        "percent": round(100 * reached / possible, 1) if possible else None,
    }


# --- child processes: replay a corpus, or run the property test, under coverage --------------------


def _replay(name: str, corpus: Path) -> dict[str, Any]:
    files = sorted(p for p in corpus.iterdir() if p.is_file())

    def work() -> None:
        targets = importlib.import_module("tests.fuzz._targets")
        for path in files:
            targets.TARGETS[name].run(path.read_bytes())

    return {"units": len(files), "coverage": _measure(CATALOG[name].scope, work)}


def _hypothesis(name: str, scale: float) -> dict[str, Any]:
    import pytest

    os.environ["TRACEMARK_FUZZ_SCALE"] = str(scale)
    with tempfile.TemporaryDirectory() as folder:
        stats = Path(folder) / "stats.json"
        os.environ["TRACEMARK_FUZZ_STATS"] = str(stats)
        test = f"{PROPERTY_TESTS}::test_{name.replace('-', '_')}"
        outcome: list[int] = []

        def work() -> None:
            outcome.append(int(pytest.main(["-q", "-p", "no:cacheprovider", "--no-header", test])))

        started = time.perf_counter()
        coverage = _measure(CATALOG[name].scope, work)
        wall = time.perf_counter() - started
        executions = json.loads(stats.read_text()).get(name, 0) if stats.exists() else 0
    return {"examples": executions, "wall_seconds": round(wall, 1), "passed": outcome == [0], "coverage": coverage}


# --- the parent: one target at a time ------------------------------------------------------------


def _seed_corpus(name: str, corpus: Path, max_len: int) -> int:
    from tests.fuzz._seeds import SEEDS

    corpus.mkdir(parents=True, exist_ok=True)
    inputs = [seed[:max_len] for seed in SEEDS[name]()]
    regressions = REGRESSIONS / name
    if regressions.is_dir():
        inputs += [path.read_bytes() for path in sorted(regressions.iterdir()) if path.is_file()]
    for data in inputs:
        (corpus / f"seed-{hashlib.sha1(data).hexdigest()}").write_bytes(data)
    return len(inputs)


def _atheris(name: str, seconds: int, max_len: int, fresh: bool) -> dict[str, Any]:
    corpus = WORK / "corpus" / name
    if fresh:
        shutil.rmtree(corpus, ignore_errors=True)
    kept = len(list(corpus.iterdir())) if corpus.is_dir() else 0
    artifacts = WORK / "artifacts" / name
    logs = WORK / "logs"
    artifacts.mkdir(parents=True, exist_ok=True)
    logs.mkdir(parents=True, exist_ok=True)
    seeds = _seed_corpus(name, corpus, max_len)
    before = {p.name for p in artifacts.iterdir()}
    command = [
        sys.executable, "-m", "tests.fuzz.run_atheris", name, str(corpus),
        f"-max_total_time={seconds}", f"-max_len={max_len}", "-timeout=20", "-rss_limit_mb=4096",
        "-print_final_stats=1", f"-artifact_prefix={artifacts}/",
    ]  # fmt: skip
    started = time.perf_counter()
    log = logs / f"{name}.log"
    with log.open("w") as handle:
        finished = subprocess.run(command, cwd=REPO, stdout=handle, stderr=subprocess.STDOUT, check=False)
    wall = time.perf_counter() - started
    text = log.read_text(errors="replace")
    statuses = _STATUS.findall(text)
    stats = {key: int(value) for key, value in _STAT.findall(text)}
    crashes = sorted(str(artifacts / n) for n in {p.name for p in artifacts.iterdir()} - before)
    replay = _child(["--replay", name, str(corpus)])
    return {
        "seeds": seeds,
        "corpus_units_kept_from_earlier_runs": kept,
        "executions": stats.get("number_of_executed_units", int(statuses[-1][0]) if statuses else 0),
        "wall_seconds": round(wall, 1),
        "exec_per_second": stats.get("average_exec_per_sec"),
        "cov": int(statuses[-1][1]) if statuses else None,
        "ft": int(statuses[-1][2]) if statuses else None,
        "corpus_units": replay["units"],
        "new_units": stats.get("new_units_added"),
        "peak_rss_mb": stats.get("peak_rss_mb"),
        "exit_status": finished.returncode,
        "crashes": crashes,
        "log": str(log.relative_to(REPO)),
        "coverage": replay["coverage"],
    }


def _child(arguments: list[str]) -> dict[str, Any]:
    """Run this script in a fresh process (coverage must see every module imported) and read its JSON."""
    with tempfile.TemporaryDirectory() as folder:
        out = Path(folder) / "out.json"
        command = [sys.executable, "-m", "tests.fuzz.run_all", *arguments, "--child-out", str(out)]
        subprocess.run(command, cwd=REPO, check=False, stdout=subprocess.DEVNULL if "--replay" in arguments else None)
        if not out.exists():
            return {"units": 0, "coverage": None, "error": "the child process wrote no result"}
        result: dict[str, Any] = json.loads(out.read_text())
        return result


def _version(package: str) -> str | None:
    try:
        return importlib.metadata.version(package)
    except importlib.metadata.PackageNotFoundError:
        return None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=int, default=int(os.environ.get("FUZZ_SECONDS", "60")))
    parser.add_argument("--targets", default=os.environ.get("FUZZ_TARGETS", ""), help="comma-separated (default: all)")
    parser.add_argument("--scale", type=float, default=1.0, help="multiplies each property test's examples")
    parser.add_argument("--fresh", action="store_true", help="start each corpus from the seeds alone")
    parser.add_argument("--no-atheris", action="store_true")
    parser.add_argument("--no-hypothesis", action="store_true")
    parser.add_argument("--replay", nargs=2, metavar=("TARGET", "CORPUS"), help=argparse.SUPPRESS)
    parser.add_argument("--hypothesis", metavar="TARGET", help=argparse.SUPPRESS)
    parser.add_argument("--child-out", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)

    if args.replay or args.hypothesis:
        if args.replay:
            result = _replay(args.replay[0], Path(args.replay[1]))
        else:
            result = _hypothesis(args.hypothesis, args.scale)
        Path(args.child_out).write_text(json.dumps(result))
        return 0

    from tests.fuzz._targets import TARGETS

    names = [n for n in args.targets.split(",") if n] or list(TARGETS)
    unknown = set(names) - set(TARGETS)
    if unknown:
        parser.error(f"unknown targets: {', '.join(sorted(unknown))} (known: {', '.join(TARGETS)})")
    if not args.no_atheris and _version("atheris") is None:
        hint = "pip install --group fuzz (Linux x86_64, CPython < 3.14), or run with --no-atheris"
        print(f"atheris is not installed: {hint}", file=sys.stderr)
        return 5
    summary: dict[str, Any] = {}
    failed = False
    for name in names:
        entry: dict[str, Any] = {"scope": list(TARGETS[name].scope)}
        if not args.no_atheris:
            print(f"== {name}: atheris for {args.seconds} s", flush=True)
            entry["atheris"] = _atheris(name, args.seconds, TARGETS[name].max_len, args.fresh)
            failed |= bool(entry["atheris"]["crashes"]) or entry["atheris"]["exit_status"] != 0
        if not args.no_hypothesis:
            print(f"== {name}: hypothesis, {args.scale:g} x {TARGETS[name].examples} examples", flush=True)
            entry["hypothesis"] = _child(["--hypothesis", name, "--scale", str(args.scale)])
            failed |= not entry["hypothesis"].get("passed", False)
        summary[name] = entry
        print(json.dumps(entry, indent=2), flush=True)
    document = {
        "benchmark": "fuzz",
        "recorded_at": datetime.now(UTC).replace(microsecond=0).isoformat(),
        "machine": {"python": platform.python_version(), "cpu_count": os.cpu_count(), "platform": platform.platform()},
        "tools": {name: _version(name) for name in ("atheris", "hypothesis", "coverage")},
        "settings": {
            "atheris_seconds_per_target": None if args.no_atheris else args.seconds,
            "atheris_fresh_corpus": args.fresh,
            "hypothesis_scale": None if args.no_hypothesis else args.scale,
        },
        "targets": summary,
    }
    override = os.environ.get(RESULTS_ENV)
    directory = Path(override) if override else REPO / "bench" / "results"
    directory.mkdir(parents=True, exist_ok=True)
    out = directory / "fuzz.json"
    if out.exists() and len(names) < len(TARGETS):
        # A partial run updates its targets and keeps the others' last figures.
        previous = json.loads(out.read_text()).get("targets", {})
        document["targets"] = {**previous, **summary}
    out.write_text(json.dumps(document, indent=2, sort_keys=True) + "\n")
    print(f"wrote {out}")
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
