"""Corpus scan throughput: in-process against Ray Data with 1 and 2 workers, on the same corpus in one run.

Builds a JSONL corpus of documents of about 200 tokens of the reference model's tokenizer
(random token ids decoded to text, a tenth of them marked by mimicked sampling, as in the
tests; decoding and re-tokenising random ids does not give the same ids back, so fewer than a
tenth stay detectable, which costs the scan nothing; past 20,000 documents the texts repeat under
new ids), then times ``scan_corpus`` end to end
(read, canonicalise, tokenise, test, write) three ways: in-process (one core, in a fresh process as
the CLI runs it: Ray never imported there and none of this benchmark's objects on its heap, both of
which slowed the scan by about 8 % when it ran in this process), and on a local Ray with 1 and with 2
workers.  Ray is started before the clock (a cluster is running
already when one scans); the workers' start, each loading the tokenizer and key, is inside it.
Ray Data's cluster-wide actors (its statistics and autoscaling coordinator, detached: a running
cluster has them after its first Ray Data job) are started before the clock too, by a one-row job.
Every mode must write the same results file, byte for byte.  The same Ray scans of 100 documents
measure Ray's fixed cost per scan; the rates after subtracting it are recorded beside the end-to-end
ones.  Where the CPU goes is read per process from /proc (this process and every process under it:
Ray's raylet, GCS and workers), sampled every 0.1 s; CPU seconds do not depend on what else the
machine runs, so they are the figures to compare on a shared machine.

    .venv/bin/python bench/bench_scan.py [--documents 100000]

It runs in ``.bench-venv-scale`` (created on first use: ``pip install -e '.[scale]'``, what a scan
user installs), re-executing itself there; ``--here`` runs in the calling interpreter instead.  The
environment matters: every Ray process imports Ray, and in an environment where jsonschema's
format checkers are installed (the dev venv: ``cyclonedx-python-lib[json-validation]`` of the
``supply`` extra pulls ``rfc3987_syntax``) ``import ray`` costs 1.8 s of CPU instead of 0.45 s.

A scan's fixed cost (the actors' start) is a few seconds, so the default corpus is one an
in-process scan needs about a minute for: the size where ``--ray`` starts to be worth it.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("RAYON_NUM_THREADS", "1")

import numpy as np

from _common import reference_model, temporary_home, write_result
from tracemark.keys import Keyring
from tracemark.text import ScanOptions, TextTokenizer, load_scheme, new_text_key, scan_corpus
from tracemark.text._scan_ray import configure_data_context
from tracemark.text._schemes.native import NativeScheme

LENGTH = 200
REPO = Path(__file__).resolve().parents[1]
VENV = REPO / ".bench-venv-scale"


def in_scale_environment(argv: list[str]) -> None:
    """Re-execute this benchmark in ``.bench-venv-scale`` (made here if missing) unless already there."""
    python = VENV / "bin" / "python"
    if Path(sys.prefix).resolve() == VENV.resolve():
        return
    if not python.exists():
        subprocess.run([sys.executable, "-m", "venv", str(VENV)], check=True)
        subprocess.run([str(python), "-m", "pip", "install", "-q", "-e", f"{REPO}[scale]"], check=True)
    os.execv(str(python), [str(python), str(Path(__file__).resolve()), *argv])


def marked_ids(scheme: NativeScheme, rng: np.random.Generator) -> list[int]:
    """Mimicked generation: among 8 candidates prefer a green one (tests/unit/text/test_native.py)."""
    width = scheme.context_width
    sequence = [int(t) for t in rng.integers(0, scheme.vocab_size, width)]
    for _ in range(LENGTH):
        candidates = rng.integers(0, scheme.vocab_size, 8)
        green = scheme.green(np.array([[*sequence[len(sequence) - width :], c] for c in candidates]))
        pick = candidates[int(np.argmax(green))] if green.any() and rng.random() < 0.8 else candidates[0]
        sequence.append(int(pick))
    return sequence


#: Distinct texts generated; a larger corpus repeats them under new ids (scanning does not cache).
POOL = 20_000


def build_corpus(path: Path, documents: int, scheme: NativeScheme, tokenizer: TextTokenizer) -> int:
    rng = np.random.default_rng(2026)
    pool: list[str] = []
    for i in range(min(documents, POOL)):
        ids = marked_ids(scheme, rng) if i % 10 == 0 else rng.integers(0, scheme.vocab_size, LENGTH).tolist()
        pool.append(tokenizer.decode(ids))
    with path.open("w") as handle:
        for i in range(documents):
            handle.write(json.dumps({"id": f"d{i}", "text": pool[i % len(pool)]}) + "\n")
    return sum(1 for i in range(documents) if i % len(pool) % 10 == 0)


_TICK = os.sysconf("SC_CLK_TCK")


def _proc_stat(pid: int) -> tuple[int, float, float] | None:
    """(parent, own CPU seconds, CPU seconds of reaped children) of a process, from /proc/PID/stat."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = stat[stat.rfind(")") + 2 :].split()
    return int(fields[1]), (int(fields[11]) + int(fields[12])) / _TICK, (int(fields[13]) + int(fields[14])) / _TICK


def _name(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


def _children(pid: int) -> list[int]:
    found: list[int] = []
    try:
        for task in os.listdir(f"/proc/{pid}/task"):
            found.extend(int(c) for c in Path(f"/proc/{pid}/task/{task}/children").read_text().split())
    except OSError:
        pass
    return found


class ProcessCpu:
    """CPU seconds of this process and all its descendants, by kind, between start() and stop().

    Walks the process tree (``/proc/PID/task/TID/children``) every ``interval`` seconds (2 s: at 0.2 s
    the walk over Ray's processes cost 4 s of CPU a run, taken from the scan workers on two cores); the
    sampling thread's own CPU is left out of the driver's figure."""

    KINDS = ("driver", "scan workers", "Ray Data actors", "other Ray processes", "exited, after their last sample")

    def __init__(self, interval: float = 2.0) -> None:
        self.interval = interval
        self.seen: dict[int, tuple[str, float, float]] = {}  # pid -> (name, own, reaped children)
        self.base: dict[int, tuple[float, float]] = {}
        self.sampler_cpu = 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _sample(self) -> set[int]:
        live, todo = set(), [os.getpid()]
        while todo:
            pid = todo.pop()
            stat = _proc_stat(pid)
            if stat is None:
                continue
            live.add(pid)
            todo.extend(_children(pid))
            name = _name(pid) or (self.seen[pid][0] if pid in self.seen else "")  # Ray renames its workers
            self.seen[pid] = (name, stat[1], stat[2])
        return live

    def _run(self) -> None:
        started = time.thread_time()
        while not self._stop.wait(self.interval):
            self._sample()
        self.sampler_cpu = time.thread_time() - started

    def start(self) -> ProcessCpu:
        self._sample()
        self.base = {pid: (own, reaped) for pid, (_, own, reaped) in self.seen.items()}
        self._thread.start()
        return self

    def stop(self) -> dict[str, float]:
        self._stop.set()
        self._thread.join()
        live = self._sample()
        kinds = dict.fromkeys(self.KINDS, 0.0)
        reaped_total = seen_exited = 0.0
        for pid, (name, own, reaped) in self.seen.items():
            base_own, base_reaped = self.base.get(pid, (0.0, 0.0))
            used = own - base_own
            if pid == os.getpid():
                kind = "driver"
                used -= self.sampler_cpu
            elif IN_PROCESS_CHILD in name:
                kind = "driver"  # the in-process scan, in a fresh process of its own
            elif "_ScanWorker" in name:
                kind = "scan workers"
            elif any(
                actor in name for actor in ("_StatsActor", "_AutoscalingCoordinatorActor", "ActorLocationTracker")
            ):
                kind = "Ray Data actors"
            else:
                kind = "other Ray processes"
            kinds[kind] += used
            if pid in live:
                reaped_total += reaped - base_reaped
            else:
                seen_exited += used
        # processes that exited were reaped by a parent still running: what they used after our last look
        kinds["exited, after their last sample"] = max(0.0, reaped_total - seen_exited)
        result = {kind: round(seconds, 2) for kind, seconds in kinds.items()}
        result["total"] = round(sum(kinds.values()), 2)
        result["sampler, left out"] = round(self.sampler_cpu, 2)
        return result


def import_ray_cpu() -> float:
    """CPU seconds that `import ray` costs a fresh Python process (every Ray worker pays it)."""
    code = "import time; t = time.process_time(); import ray; print(time.process_time() - t)"
    return round(
        float(subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout), 2
    )


def add_fixed_costs(results: list[dict[str, Any]], corpus: Path, work: Path, key: Any, tokenizer: Any) -> None:
    """The fixed cost of a Ray scan (actors' start, the engine's set-up): the same scan of 100 documents."""
    small = work / "small.jsonl"
    with corpus.open() as handle:
        small.write_text("".join(next(handle) for _ in range(100)))
    baseline = results[0]
    for entry in results:
        if entry["workers"] is None:
            continue
        workers, engine = int(entry["workers"]), str(entry["engine"])
        cpu = ProcessCpu().start()
        started = time.perf_counter()
        options = ScanOptions(ray=True, workers=workers, ray_engine=engine)
        scan_corpus([small], key, tokenizer, work / f"small-{engine}-{workers}.jsonl", options)
        fixed = time.perf_counter() - started
        entry["fixed_seconds_100_documents"] = round(fixed, 3)
        entry["fixed_cpu_seconds_100_documents"] = cpu.stop()
        entry["cpu_over_in_process"] = round(entry["cpu_seconds"]["total"] / baseline["cpu_seconds"]["total"], 3)
        entry["tokens_per_s_after_start"] = round(int(entry["tokens"]) / (float(entry["seconds"]) - fixed))


def rfc3987_importable() -> bool:
    """Whether ``rfc3987_syntax`` imports here (then every ``import ray`` builds its grammar)."""
    try:
        importlib.import_module("rfc3987_syntax")
    except ImportError:
        return False
    return True


_SPIN = (
    "import time; t = time.process_time(); x = 0\n"
    "for i in range(40_000_000): x += i * i\n"
    "print(time.process_time() - t)"
)


def two_core_anchor() -> dict[str, float]:
    """What two cores give any two CPU-bound processes here: one pure-Python loop alone, then two at once.

    ``speedup`` is twice the work in the time the pair took over the time one took: the ceiling for
    two scan workers whatever Ray does (on a VM two vCPUs may share a physical core's units)."""
    started = time.perf_counter()
    alone = float(subprocess.run([sys.executable, "-c", _SPIN], capture_output=True, text=True, check=True).stdout)
    one = time.perf_counter() - started
    started = time.perf_counter()
    pair = [subprocess.Popen([sys.executable, "-c", _SPIN], stdout=subprocess.PIPE, text=True) for _ in range(2)]
    both = [float(p.communicate()[0]) for p in pair]
    two = time.perf_counter() - started
    return {
        "cpu_seconds_alone": round(alone, 2),
        "cpu_seconds_each_of_two": round(sum(both) / 2, 2),
        "seconds_alone": round(one, 2),
        "seconds_two": round(two, 2),
        "speedup": round(2 * one / two, 3),
    }


IN_PROCESS_CHILD = "--in-process-child"


def in_process_child(corpus: str, out: str, batch: str, key_file: str, model: str) -> None:
    """The in-process scan as a user runs it: a fresh process, Ray never imported, nothing else on its heap.
    Prints its time and CPU for the scan alone (start-up and the tokenizer's load left out, as for Ray
    the cluster's start is)."""
    from tracemark.keys import TextKey

    key = TextKey.from_json(Path(key_file).read_bytes())
    tokenizer = TextTokenizer(Path(model))
    before = time.process_time()
    started = time.perf_counter()
    summary = scan_corpus([Path(corpus)], key, tokenizer, Path(out), ScanOptions(batch_size=int(batch)))
    seconds = time.perf_counter() - started
    print(json.dumps({"seconds": seconds, "cpu_before": before, "tokens": summary.tokens_total,
                      "marked": summary.marked}), flush=True)  # fmt: skip
    sys.stdin.read()  # until the benchmark has read this process's CPU


def _in_process(corpus: Path, out: Path, key: Any, tokenizer: Any, batch: int) -> subprocess.Popen[str]:
    """An in-process scan in a fresh process; it answers one JSON line, then waits for its stdin to close
    (so its CPU is read while it still runs)."""
    key_file = out.with_suffix(".key.json")
    key_file.write_bytes(key.to_json())
    command = [sys.executable, str(Path(__file__).resolve()), IN_PROCESS_CHILD, str(corpus), str(out), str(batch),
               str(key_file), str(tokenizer.model_dir)]  # fmt: skip
    return subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)


def _scan_mode(
    name: str, engine: str | None, workers: int | None, corpus: Path, out: Path, key: Any, tokenizer: Any, batch: int
) -> tuple[dict[str, Any], bytes]:
    cpu = ProcessCpu().start()
    if workers is None:
        child = _in_process(corpus, out, key, tokenizer, batch)
        assert child.stdout is not None
        assert child.stdin is not None
        line = child.stdout.readline()
        used = cpu.stop()
        out.with_suffix(".key.json").unlink()  # the key's secret: gone whether the scan worked or not
        child.stdin.close()
        if child.wait() != 0 or not line:
            raise SystemExit(f"{name}: the in-process scan failed")
        answer = json.loads(line)
        seconds, tokens, marked = float(answer["seconds"]), int(answer["tokens"]), int(answer["marked"])
        start_cpu = float(answer["cpu_before"])  # the child's imports and tokenizer load
        used["driver"] = round(used["driver"] - start_cpu, 2)
        used["total"] = round(used["total"] - start_cpu, 2)
    else:
        options = ScanOptions(batch_size=batch, ray=True, workers=workers, ray_engine=engine or "actors")
        started = time.perf_counter()
        summary = scan_corpus([corpus], key, tokenizer, out, options)
        seconds = time.perf_counter() - started
        used = cpu.stop()
        tokens, marked = summary.tokens_total, summary.marked
    rate = round(tokens / seconds)
    print(f"{name}: {rate:,} tokens/s ({seconds:.2f} s); CPU s: {used}", flush=True)
    entry = {"mode": name, "engine": engine, "workers": workers, "seconds": round(seconds, 3),
             "tokens": tokens, "marked": marked, "tokens_per_s": rate, "cpu_seconds": used,
             "load_average_after": [round(x, 2) for x in os.getloadavg()]}  # fmt: skip
    return entry, out.read_bytes()


def goal_ratios(results: list[dict[str, Any]], engine: str, again: dict[str, Any]) -> dict[str, float]:
    """The two goals' ratios for one engine: wall clock (tokens/s) and CPU seconds (all processes).

    The baseline is the faster of the two in-process runs (first and last), so drift of the machine
    during the run never flatters Ray.
    """
    base = max(results[0], again, key=lambda entry: float(entry["tokens_per_s"]))
    one = next(r for r in results if r["engine"] == engine and r["workers"] == 1)
    two = next(r for r in results if r["engine"] == engine and r["workers"] == 2)
    base_cpu = float(base["cpu_seconds"]["total"])
    return {
        "speedup_2_workers": round(two["tokens_per_s"] / base["tokens_per_s"], 3),
        "overhead_1_worker": round(1 - one["tokens_per_s"] / base["tokens_per_s"], 3),
        # what two workers could reach if both cores ran only this scan: 2 x in-process CPU / Ray's CPU
        "speedup_2_workers_cpu_bound": round(2 * base_cpu / float(two["cpu_seconds"]["total"]), 3),
        # the single worker's own CPU (it is the critical path) over the in-process driver's
        "overhead_1_worker_cpu": round(
            float(one["cpu_seconds"]["scan workers"]) / float(base["cpu_seconds"]["driver"]) - 1, 3
        ),
        "speedup_2_workers_after_start": round(int(two["tokens_per_s_after_start"]) / base["tokens_per_s"], 3),
        "overhead_1_worker_after_start": round(1 - int(one["tokens_per_s_after_start"]) / base["tokens_per_s"], 3),
    }


def summary_line(ratios: dict[str, float], engine: str, load: list[float]) -> str:
    speedup, overhead = ratios["speedup_2_workers"], ratios["overhead_1_worker"]
    return (
        f"GOALS ({engine}): 2 workers {speedup:.2f}x in-process "
        f"(goal >= 1.8: {'met' if speedup >= 1.8 else 'MISSED'}); "
        f"1 worker overhead {overhead * 100:.1f} % (goal <= 10 %: {'met' if overhead <= 0.10 else 'MISSED'}); "
        f"by CPU seconds: 2 workers at most {ratios['speedup_2_workers_cpu_bound']:.2f}x, "
        f"1 worker {ratios['overhead_1_worker_cpu'] * 100:+.1f} %; "
        f"load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}"
    )


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == IN_PROCESS_CHILD:
        in_process_child(*sys.argv[2:7])
        return
    parser = argparse.ArgumentParser()
    parser.add_argument("--documents", type=int, default=100_000)
    parser.add_argument("--batch-size", type=int, default=512)
    parser.add_argument("--engines", default="actors,data", help="Ray engines to compare (the first is the headline)")
    parser.add_argument("--here", action="store_true", help="run in this interpreter, not in .bench-venv-scale")
    args = parser.parse_args()
    if not args.here:
        in_scale_environment(sys.argv[1:])
    engines = [e for e in args.engines.split(",") if e]

    import ray  # type: ignore[import-not-found,unused-ignore]

    temporary_home()
    keyring = Keyring()
    keyring.create()
    model = reference_model()
    key = new_text_key(keyring, "native", model)
    tokenizer = TextTokenizer(model)
    scheme = load_scheme(key)
    assert isinstance(scheme, NativeScheme)
    work = Path(tempfile.mkdtemp(prefix="tracemark-scan-bench-"))
    corpus = work / "corpus.jsonl"
    marked = build_corpus(corpus, args.documents, scheme, tokenizer)

    anchor = two_core_anchor()
    print(f"two processes at once: {anchor}")
    for attempt in (1, 2, 3):  # on a loaded machine Ray's raylet can time out starting
        try:
            ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, configure_logging=False)
            break
        except Exception:
            ray.shutdown()
            if attempt == 3:
                raise
    if "data" in engines:
        import ray.data  # type: ignore[import-not-found,unused-ignore]

        configure_data_context(ray)
        ray.data.range(1).materialize()  # Ray Data's detached cluster actors, as on a cluster that has run a job
    modes: list[tuple[str, str | None, int | None]] = [("in-process", None, None)]
    modes += [(f"ray {engine}, {w} worker{'s' * (w > 1)}", engine, w) for engine in engines for w in (1, 2)]
    modes.append(("in-process again", None, None))  # how far the machine drifted during the run
    results: list[dict[str, Any]] = []
    reference: bytes | None = None
    for name, engine, workers in modes:
        out = work / f"{name.replace(' ', '_').replace(',', '')}.jsonl"
        entry, rows = _scan_mode(name, engine, workers, corpus, out, key, tokenizer, args.batch_size)
        reference = reference or rows
        assert rows == reference, f"{name} writes another results file than in-process"
        results.append(entry)
    again = results.pop()
    add_fixed_costs(results, corpus, work, key, tokenizer)
    ray.shutdown()
    load = [round(x, 2) for x in os.getloadavg()]
    ratios = {engine: goal_ratios(results, engine, again) for engine in engines}
    headline = ratios[engines[0]]
    payload = {
        "documents": args.documents,
        "tokens_per_document": LENGTH,
        "marked_documents": marked,
        "batch_size": args.batch_size,
        "tokenizer": "models/reference",
        "scheme": "native",
        "context_width": scheme.context_width,
        "modes": results,
        "in_process_again": again,
        "in_process_drift": round(again["tokens_per_s"] / results[0]["tokens_per_s"] - 1, 3),
        "engine": engines[0],
        "speedup_ray_2_workers_over_in_process": headline["speedup_2_workers"],
        "overhead_ray_1_worker": headline["overhead_1_worker"],
        "goals": {"ray_2_workers_over_in_process": ">= 1.8", "overhead_ray_1_worker": "<= 0.10"},
        "ratios_by_engine": ratios,
        "load_average_at_end": load,
        "two_processes_anchor": anchor,
        "environment": os.path.relpath(sys.prefix, REPO),
        "import_ray_cpu_seconds": import_ray_cpu(),
        "rfc3987_syntax_importable": rfc3987_importable(),
        "note": "end to end (read, canonicalise, tokenise, test, write); Ray (and, for the data engine, Ray "
        "Data's cluster actors) started before the clock, the scan workers' start inside it and not subtracted "
        "from the headline (the *_after_start ratios subtract a 100-document scan's time); cpu_seconds: per "
        "process from /proc, this process and all under it (in-process: the scan's own fresh process, its "
        "start-up left out, plus Ray idling beside it); "
        "*_cpu ratios: speedup_2_workers_cpu_bound = 2 x in-process CPU / two-worker CPU (all processes), "
        "overhead_1_worker_cpu = the single worker's CPU over the in-process driver's, both independent of "
        "other load; in_process_drift: the in-process scan run again last, against the first; "
        "the ratios use the faster of the two in-process runs as their baseline; "
        "rfc3987_syntax (jsonschema's format-nongpl extra, pulled into the dev venv by cyclonedx, not by "
        "tracemark[scale]) makes `import ray`, which every Ray process runs, cost about 1.4 s more CPU; "
        "the benchmark runs in .bench-venv-scale (tracemark[scale] alone)",
    }
    path = write_result("scan", payload)
    print(json.dumps(payload, indent=2))
    print(f"wrote {path}")
    for engine in engines:
        print(summary_line(ratios[engine], engine, load))


if __name__ == "__main__":
    main()
