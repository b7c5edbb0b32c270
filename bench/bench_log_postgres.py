"""Transparency log on PostgreSQL: durable appends/s with 1, 2 and 4 writer processes on one log.

Each writer process is one "service instance": its own ``TransparencyLog`` on the same
PostgreSQL schema, appending batches of provenance records (built and validated inside the
timed loop) for a fixed time; an append counts once ``append_many`` returned, i.e. once its
transaction committed with ``synchronous_commit = on`` (WAL flushed).  The processes start
together on a barrier; the aggregate rate is all acknowledged entries over the wall time from
the barrier to the last writer's end.  SQLite's single-writer rate (WAL, ``synchronous=FULL``)
is measured in the same run with the same batches.  Afterwards every PostgreSQL log is
checked: its size equals the acknowledged entries (no gap, no duplicate) and its integrity
holds.  CPU time is recorded per 1,000 entries, for the writers and for the local PostgreSQL
server's processes (read from /proc), so the figures say what bounds the scaling on this
machine: with the server on the same cores, 1 writer plus its share of the server already
uses about one core.

    .venv/bin/python bench/bench_log_postgres.py [--url postgresql://postgres@127.0.0.1:5432/test]
        [--seconds 10] [--batch 1024 64] [--writers 1 2 4]
"""

from __future__ import annotations

import argparse
import hashlib
import multiprocessing
import os
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

from _common import write_result
from tracemark.tlog import NoteSigner, ProvenanceRecord, TransparencyLog

GOAL_APPENDS_PER_S = 10_000


def server_cpu_seconds() -> float | None:
    """CPU seconds used so far by the processes named ``postgres`` on this machine (None without /proc)."""
    total, found = 0, False
    try:
        pids = [name for name in os.listdir("/proc") if name.isdigit()]
    except OSError:
        return None
    for pid in pids:
        try:
            stat = Path(f"/proc/{pid}/stat").read_text()
        except OSError:
            continue
        if stat[stat.index("(") + 1 : stat.rindex(")")].startswith("postgres"):
            fields = stat[stat.rindex(")") + 2 :].split()
            total += int(fields[11]) + int(fields[12])  # utime, stime in clock ticks
            found = True
    return total / os.sysconf("SC_CLK_TCK") if found else None


def make_record(writer: int, i: int) -> ProvenanceRecord:
    return ProvenanceRecord(
        content_sha256=hashlib.sha256(f"{writer}:{i}".encode()).hexdigest(),
        kind="text",  # type: ignore[arg-type]
        key_id="tm-native-0123456789abcdef",
        model_id="example/model@1",
        time="2026-08-02T12:00:00Z",
    )


def writer_process(
    location: str, skey: str, writer: int, batch: int, seconds: float, barriers: Any, results: Any
) -> None:
    barrier, finished = barriers
    with TransparencyLog.open(location, signer=NoteSigner.from_skey(skey)) as log:
        log.append(make_record(writer, -1))  # connect and warm up before the clock starts
        barrier.wait()
        cpu_began = time.process_time()
        began = time.perf_counter()
        done, seq, latencies = 0, 0, []
        while time.perf_counter() - began < seconds:
            start = time.perf_counter()
            log.append_many([make_record(writer, seq + i) for i in range(batch)])
            latencies.append(time.perf_counter() - start)
            seq += batch
            done += batch
        results.put((writer, done + 1, time.perf_counter(), sorted(latencies), time.process_time() - cpu_began))
        finished.wait()  # keep the connection (and its server process) until the server's CPU is read


def run_writers(location: str, signer: NoteSigner, writers: int, batch: int, seconds: float) -> dict[str, Any]:
    context = multiprocessing.get_context("spawn")
    barrier, finished_barrier = context.Barrier(writers + 1), context.Barrier(writers + 1)
    results = context.Queue()
    processes = [
        context.Process(
            target=writer_process,
            args=(location, signer.skey, w, batch, seconds, (barrier, finished_barrier), results),
        )
        for w in range(writers)
    ]
    for process in processes:
        process.start()
    barrier.wait()
    began = time.perf_counter()
    server_began = server_cpu_seconds()
    finished = [results.get(timeout=seconds + 300) for _ in processes]
    server_ended = server_cpu_seconds()
    finished_barrier.wait()
    for process in processes:
        process.join()
        assert process.exitcode == 0, f"writer exited with {process.exitcode}"
    elapsed = max(end for _, _, end, _, _ in finished) - began
    total = sum(done for _, done, _, _, _ in finished)
    timed = total - writers  # the warm-up appends happened before the clock
    latencies = sorted(latency for _, _, _, own, _ in finished for latency in own)
    writer_cpu = sum(cpu for *_, cpu in finished)
    server_cpu = None if server_began is None or server_ended is None else server_ended - server_began
    with TransparencyLog.open(location, signer=signer) as log:
        size = log.size
        assert size == total, f"log holds {size} entries, writers acknowledged {total}"
        if size <= 400_000:
            log.verify_integrity()
    return {
        "writers": writers,
        "batch": batch,
        "entries": timed,
        "seconds": round(elapsed, 2),
        "appends_per_s": round(timed / elapsed),
        "batch_latency_p50_ms": round(latencies[len(latencies) // 2] * 1e3, 2),
        "batch_latency_p99_ms": round(latencies[min(len(latencies) - 1, int(0.99 * len(latencies)))] * 1e3, 2),
        "log_size_equals_acknowledged": size == total,
        "writer_cpu_ms_per_1k_entries": round(writer_cpu / timed * 1e6, 2),
        "server_cpu_ms_per_1k_entries": None if server_cpu is None else round(server_cpu / timed * 1e6, 2),
        "cores_busy": round((writer_cpu + (server_cpu or 0.0)) / elapsed, 2),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--url", default="postgresql://postgres@127.0.0.1:5432/test")
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--batch", type=int, nargs="+", default=[1024, 64], help="batch sizes (each a full run)")
    parser.add_argument("--writers", type=int, nargs="+", default=[1, 2, 4])
    args = parser.parse_args()
    import psycopg

    signer = NoteSigner.generate("bench.example/tracemark-postgres")
    runs: list[dict[str, Any]] = []
    sqlite_runs: list[dict[str, Any]] = []
    for batch in args.batch:
        with tempfile.TemporaryDirectory(prefix="tracemark-bench-") as scratch:
            sqlite = run_writers(str(Path(scratch) / "log.sqlite3"), signer, 1, batch, args.seconds)
            sqlite["store"] = "sqlite"
            print(sqlite, flush=True)
            sqlite_runs.append(sqlite)
        for writers in args.writers:
            schema = f"tlog_bench_{uuid.uuid4().hex[:10]}"
            try:
                result = run_writers(f"{args.url}?schema={schema}", signer, writers, batch, args.seconds)
            finally:
                with psycopg.connect(args.url, autocommit=True) as db:
                    db.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
            result["store"] = "postgresql"
            print(result, flush=True)
            runs.append(result)
    with psycopg.connect(args.url, autocommit=True) as db:
        settings = {
            name: str(db.execute(f"SHOW {name}").fetchone()[0])  # type: ignore[index]
            for name in ("server_version", "synchronous_commit", "fsync", "wal_sync_method", "shared_buffers")
        }
    best = max(run["appends_per_s"] for run in runs)
    single = {run["batch"]: run["appends_per_s"] for run in runs if run["writers"] == 1}
    scaling = {
        f"batch {run['batch']}, {run['writers']} writers over 1": round(run["appends_per_s"] / single[run["batch"]], 2)
        for run in runs
        if run["writers"] > 1 and run["batch"] in single
    }
    path = write_result(
        "log_postgres",
        {
            "settings": {"seconds": args.seconds, "batches": args.batch, "cpu_count": os.cpu_count()},
            "postgres": settings,
            "sqlite_single_writer": sqlite_runs,
            "postgres_writers": runs,
            "goal_appends_per_s": GOAL_APPENDS_PER_S,
            "best_aggregate_appends_per_s": best,
            "scaling": scaling,
            "load_average_at_end": list(os.getloadavg()),
            "meets_goal": best >= GOAL_APPENDS_PER_S,
        },
    )
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
