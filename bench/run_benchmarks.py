"""Run every benchmark in order: at bounded settings (``make bench``) or at the published ones (``make bench-full``).

Quick mode (the default, ``make bench``) runs every benchmark at a bounded size (the arguments in
``BENCHMARKS``) and writes its results to ``bench/results/quick/``, so the published measurements in
``bench/results/`` are never overwritten by smaller runs.  The zoo benchmarks run on a ``small`` model
zoo (``scripts/build_theft_zoo.py --scale small``), built first when the zoo folder holds none.

Full mode (``--full``, ``make bench-full``) runs every benchmark at its documented settings, writes to
``bench/results/`` and needs a ``full`` zoo (built first when absent: about 85 minutes on one core).

Every ``bench_*.py`` is either listed in ``BENCHMARKS`` or named in ``HELPERS``: one that is not yet
listed still runs (with its own, published settings, before the zoo benchmarks), and ``--list``, which
``tests/unit/test_bench.py`` runs, fails until it is listed.

The zoo folder is ``--zoo``, else ``$TRACEMARK_ZOO``, else ``bench/.zoo`` (gitignored).  A failing
benchmark does not stop the run: every benchmark runs, the summary lists each one's wall time and
status, and the exit status is 1 when any failed.  The summary is also written to
``<results>/bench_run.json`` (``bench_run_partial.json`` with ``--only``); the zoo is recorded by its
scale, never its path.

    .venv/bin/python bench/run_benchmarks.py [--full] [--only bench_tlog.py ...] [--zoo DIR] [--list]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from _common import REPO, RESULTS, RESULTS_ENV, write_result
from bench_theft_zoo import BUILD_SCRIPT, default_zoo, scale_of

BENCH = REPO / "bench"
QUICK_RESULTS = RESULTS / "quick"
#: The zoo each mode builds when the zoo folder holds none.
ZOO_SCALE = {"quick": "small", "full": "full"}


@dataclass(frozen=True)
class Benchmark:
    """One benchmark script and its arguments in each mode (``zoo``: it takes ``--zoo``)."""

    script: str
    quick: tuple[str, ...] = ()
    full: tuple[str, ...] = ()
    zoo: bool = False

    def arguments(self, mode: str) -> tuple[str, ...]:
        return self.quick if mode == "quick" else self.full


#: Every benchmark, in the order they run (a benchmark that reads another's output comes after it).
BENCHMARKS = (
    Benchmark(
        "bench_tlog.py", quick=("--entries", "100000", "--big", "1000000", "--compare", "20000", "--samples", "500")
    ),
    Benchmark(
        "bench_service.py",
        quick=("--workers", "1", "--connections", "8", "--duration", "3", "--warmup", "1", "--entries", "10000"),
    ),
    Benchmark("bench_log_postgres.py", quick=("--seconds", "3", "--writers", "1", "2")),  # needs PostgreSQL
    Benchmark("bench_log_http.py", quick=("--duration", "3")),
    Benchmark("bench_gateway.py", quick=("--clients", "1", "8", "--duration", "3", "--tokens", "32")),
    Benchmark("bench_scan.py", quick=("--documents", "2000")),  # in .bench-venv-scale, made on first use
    Benchmark("bench_native_detect.py"),
    Benchmark("bench_kgw_detect.py", quick=("--fraction", "0.25")),
    Benchmark("bench_synthid_detect.py"),
    Benchmark("bench_processors_kgw.py"),
    Benchmark("bench_processors_synthid.py"),
    Benchmark("bench_text_fpr.py", quick=("--keys", "2")),
    Benchmark("bench_text_fpr_code.py", quick=("--files", "500", "--keys", "10")),
    Benchmark("bench_text_power.py", quick=("--texts", "8")),
    Benchmark("bench_text_spans.py", quick=("--texts", "8")),
    Benchmark("bench_text_robustness.py", quick=("--texts", "8", "--human", "50")),
    Benchmark("bench_text_memory.py", quick=("--sizes-mb", "1", "--shuffled-sizes-mb", "1")),
    Benchmark("bench_text_quality.py", quick=("--texts", "4", "--tokens", "60")),
    Benchmark("bench_media.py", quick=("--quick",)),  # nine pictures of bench/media_corpus.json
    Benchmark("bench_media_memory.py", quick=("--side", "3000")),
    Benchmark(
        "bench_redteam.py",
        quick=("--part", "native", "summary", "--samples", "50", "--spoof", "10,50", "--spoof-texts", "20"),
    ),
    Benchmark("bench_redteam_image.py", quick=("--images", "5", "--averaging", "10", "--averaging-trials", "3")),
    Benchmark("bench_redteam_probe.py"),
    Benchmark(
        "bench_redteam_spoof.py",
        quick=("--pool", "100", "--genuine", "20", "--unmarked", "20", "--spoof", "10,100", "--spoof-texts", "20"),
    ),
    Benchmark("bench_redteam_variants_fpr.py", quick=("--keys", "2", "--texts-per-key", "50")),
    Benchmark("bench_agents_pins.py"),
    Benchmark("bench_agents_agentdojo.py", quick=("--quick",)),  # agentdojo + invariant-ai in .bench-venv-agentdojo
    Benchmark("bench_supply_scan.py", quick=("--small", "200", "--megabytes", "20", "--repeats", "3", "--rounds", "1")),
    Benchmark("bench_supply_signing.py", quick=("--megabytes", "20", "--repeats", "1")),
    Benchmark("bench_electron.py", quick=("--jobs", "2")),
    Benchmark("bench_electron_fixtures.py"),  # reads the fixtures bench_electron.py installs
    Benchmark("bench_electron_integrity.py", quick=("--trials", "5")),
    Benchmark("bench_electron_real.py"),  # npm-packs caprine and electron-api-demos into bench/.node-apps
    Benchmark("bench_electron_scale.py", quick=("--skip-anchor",)),
    Benchmark(
        "bench_theft.py", quick=("--keys", "100", "--kgw-keys", "5", "--budget", "10000", "--read-budget", "4000")
    ),
    Benchmark("bench_theft_identity.py", quick=("--reps", "5", "--prompts", "10")),
    Benchmark("bench_theft_zoo.py", zoo=True),
    Benchmark("bench_theft_weights.py", zoo=True),
    Benchmark("bench_theft_power.py", quick=("--shrink", "0.25"), zoo=True),  # saves the transcripts the next read
    Benchmark("bench_theft_calibration_zoo.py", quick=("--shrink", "0.25", "--keys", "200"), zoo=True),
    Benchmark("bench_theft_robustness.py", quick=("--shrink", "0.25"), zoo=True),
    Benchmark("bench_theft_identity_zoo.py", quick=("--reps", "2", "--same-reps", "4"), zoo=True),
    Benchmark("bench_theft_identity_logprobs.py", zoo=True),
    Benchmark("bench_theft_grid.py", zoo=True),  # reads theft_power.json
    Benchmark("bench_theft_mixes.py", quick=("all", "--shrink", "0.25"), full=("all",)),  # trains its own students
)
#: ``bench_*.py`` files that are not benchmarks of their own.
HELPERS = {
    "bench_media_anchor.py": "the anchor side of bench_media.py, run in its own environment",
    "bench_media_attacks.py": "attacks and metrics shared by bench_media.py and its anchor",
}


def unregistered() -> list[str]:
    """``bench_*.py`` files that are neither in ``BENCHMARKS`` nor in ``HELPERS`` (a new benchmark must be added)."""
    known = {b.script for b in BENCHMARKS} | set(HELPERS)
    return sorted(p.name for p in BENCH.glob("bench_*.py") if p.name not in known)


def ensure_zoo(zoo: Path, mode: str, env: dict[str, str]) -> dict[str, Any]:
    """Build the zoo when the folder holds none, complete a partial one; returns what was done."""
    manifest_path = zoo / "manifest.json"
    if manifest_path.is_file():
        manifest = json.loads(manifest_path.read_text())
        scale = scale_of(manifest)
        if mode == "full" and scale != "full":
            raise SystemExit(
                f"bench-full needs a full zoo, and {zoo} holds a {scale} one: set TRACEMARK_ZOO (or --zoo) to another "
                "folder, where a full zoo is built (about 85 minutes), or to an existing full zoo"
            )
        if manifest.get("complete"):
            print(f"== zoo: {zoo} ({scale}, complete)", flush=True)
            return {"zoo_scale": scale, "built": False, "seconds": 0.0}
        command = ["--out", str(zoo), "--scale", scale, "--resume"]
    else:
        scale = ZOO_SCALE[mode]
        command = ["--out", str(zoo), "--scale", scale]
    print(f"== zoo: building a {scale} zoo in {zoo}", flush=True)
    began = time.perf_counter()
    subprocess.run([sys.executable, str(BUILD_SCRIPT), *command], check=True, env=env, cwd=REPO)
    return {"zoo_scale": scale, "built": True, "seconds": round(time.perf_counter() - began, 1)}


def environment(mode: str) -> dict[str, str]:
    """The benchmarks' environment: one thread, offline Hugging Face, quick results out of bench/results/."""
    env = dict(os.environ)
    env.setdefault("OMP_NUM_THREADS", "1")
    env.setdefault("HF_HUB_OFFLINE", "1")
    if mode == "quick":
        env.setdefault(RESULTS_ENV, str(QUICK_RESULTS))
    if RESULTS_ENV in env:
        os.environ[RESULTS_ENV] = env[RESULTS_ENV]  # this run's own summary goes there too
    return env


def run_all(
    selected: list[Benchmark], mode: str, zoo: Path, env: dict[str, str]
) -> tuple[dict[str, Any] | None, list[dict[str, Any]]]:
    """Run ``selected`` in order (the zoo is made ready before the first zoo benchmark); their steps."""
    zoo_step: dict[str, Any] | None = None
    steps: list[dict[str, Any]] = []
    for benchmark in selected:
        arguments = list(benchmark.arguments(mode))
        recorded = arguments + (["--zoo", "ZOO"] if benchmark.zoo else [])  # the zoo's path is never recorded
        if benchmark.zoo:
            if zoo_step is None:
                try:
                    zoo_step = ensure_zoo(zoo, mode, env)
                except subprocess.CalledProcessError as error:
                    zoo_step = {"zoo_scale": None, "built": False, "failed": f"exit status {error.returncode}"}
            if zoo_step.get("failed"):
                steps.append({"script": benchmark.script, "arguments": recorded, "status": "skipped: no zoo"})
                continue
            arguments += ["--zoo", str(zoo)]
        print(f"== {benchmark.script} {' '.join(arguments)}", flush=True)
        started = time.perf_counter()
        done = subprocess.run([sys.executable, str(BENCH / benchmark.script), *arguments], env=env, cwd=REPO)
        seconds = round(time.perf_counter() - started, 1)
        status = "ok" if done.returncode == 0 else f"failed (exit status {done.returncode})"
        steps.append({"script": benchmark.script, "arguments": recorded, "seconds": seconds, "status": status})
        print(f"== {benchmark.script}: {status} after {seconds:.0f} s", flush=True)
    return zoo_step, steps


def print_summary(zoo_step: dict[str, Any] | None, steps: list[dict[str, Any]], total: float, mode: str) -> None:
    print(f"\n{'benchmark':36s} {'seconds':>8s}  status")
    if zoo_step is not None:
        print(f"{'(zoo: ' + str(zoo_step.get('zoo_scale')) + ')':36s} {zoo_step.get('seconds', 0):8.0f}  "
              f"{'built' if zoo_step.get('built') else zoo_step.get('failed', 'present')}")  # fmt: skip
    for step in steps:
        print(f"{step['script']:36s} {step.get('seconds', 0):8.0f}  {step['status']}")
    print(f"{'total':36s} {total:8.0f}  ({total / 60:.0f} min, {mode} mode)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--full", action="store_true", help="the published settings and a full zoo (hours)")
    parser.add_argument("--only", nargs="+", metavar="SCRIPT", help="run these benchmarks only (file names)")
    parser.add_argument("--zoo", type=Path, default=default_zoo(), help=f"the model zoo (default: {default_zoo()})")
    parser.add_argument("--list", action="store_true", help="print the benchmarks and their arguments, run nothing")
    args = parser.parse_args()
    mode = "full" if args.full else "quick"
    # a benchmark nobody has listed yet still runs, with its own defaults, before the zoo benchmarks
    extra = [Benchmark(script) for script in unregistered()]
    first_zoo = next(i for i, b in enumerate(BENCHMARKS) if b.zoo)
    everything = [*BENCHMARKS[:first_zoo], *extra, *BENCHMARKS[first_zoo:]]
    selected = [b for b in everything if not args.only or b.script in args.only]
    unknown = set(args.only or ()) - {b.script for b in everything}
    if unknown:
        raise SystemExit(f"not a benchmark: {', '.join(sorted(unknown))}")
    if args.list:
        for benchmark in selected:
            zoo_note = " --zoo DIR" if benchmark.zoo else ""
            note = "  # not in BENCHMARKS: runs with its defaults" if benchmark in extra else ""
            print(f"{benchmark.script} {' '.join(benchmark.arguments(mode))}{zoo_note}".rstrip() + note)
        if extra:
            raise SystemExit(f"add to BENCHMARKS (or HELPERS) in {Path(__file__).name}: {', '.join(unregistered())}")
        return
    for benchmark in extra:
        print(f"warning: {benchmark.script} is not in BENCHMARKS: it runs with its own settings", flush=True)
    env = environment(mode)
    began = time.perf_counter()
    zoo_step, steps = run_all(selected, mode, args.zoo.resolve(), env)
    total = round(time.perf_counter() - began, 1)
    print_summary(zoo_step, steps, total, mode)
    failed = [s["script"] for s in steps if s["status"] != "ok"]
    path = write_result(
        "bench_run" if not args.only else "bench_run_partial",  # a partial run never replaces a whole run's summary
        {
            "description": "one run of bench/run_benchmarks.py: each benchmark's arguments, wall time and status",
            "mode": mode,
            "omp_num_threads": env["OMP_NUM_THREADS"],
            "zoo": zoo_step,
            "steps": steps,
            "total_seconds": total,
            "failed": failed,
        },
    )
    print(f"wrote {path}")
    if failed:
        raise SystemExit(f"{len(failed)} benchmark(s) failed: {', '.join(failed)}")


if __name__ == "__main__":
    main()
