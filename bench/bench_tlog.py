"""Transparency log: durable batched appends on SQLite, and inclusion-proof latency at 10^6 and 10^7.

1. Appends: 10^6 provenance records appended durably (SQLite WAL, ``synchronous=FULL``: every
   batch is fsynced before it is acknowledged) in batches of 1,024.  Records are built and
   validated inside the timed loop.  Batches of 256 (Tessera's default) and 4,096, and the
   threaded :class:`BatchingAppender`, are measured on fewer records for comparison.
2. Proofs: time to produce an inclusion proof from the SQLite node store (``O(log n)`` reads
   in one round trip per table) and to verify it (RFC 9162 §2.1.3.2), p50/p99 over random
   indices, at 10^6 (the log from step 1) and at 10^7.  The 10^7 tree is built with the
   bulk path: the same integration code fed raw 8-byte entries in 100,000-entry
   transactions with ``synchronous=OFF`` (no record validation, no fsync).
3. Anchor: the same proofs verified by sigstore-python's Merkle verifier, as a ratio
   (skipped when sigstore is not installed).

    .venv/bin/python bench/bench_tlog.py [--entries 1000000] [--big 10000000] [--samples 2000]
"""

from __future__ import annotations

import argparse
import hashlib
import importlib
import os
import random
import shutil
import statistics
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from _common import write_result
from tracemark.tlog import BatchingAppender, NoteSigner, ProvenanceRecord, TransparencyLog, verify_receipt
from tracemark.tlog.merkle import verify_inclusion

GOAL_APPENDS_PER_S = 20_000
GOAL_P99_MS = 2.0


def make_record(i: int) -> ProvenanceRecord:
    return ProvenanceRecord(
        content_sha256=hashlib.sha256(i.to_bytes(8, "big")).hexdigest(),
        kind="text",  # type: ignore[arg-type]
        key_id="tm-native-0123456789abcdef",
        model_id="example/model@1",
        time="2026-08-02T12:00:00Z",
    )


def percentiles(samples: Sequence[float]) -> dict[str, float]:
    ordered = sorted(samples)

    def at(q: float) -> float:
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))]

    return {
        "p50_ms": round(at(0.50) * 1e3, 4),
        "p99_ms": round(at(0.99) * 1e3, 4),
        "mean_ms": round(statistics.fmean(ordered) * 1e3, 4),
        "max_ms": round(ordered[-1] * 1e3, 4),
    }


def timed_appends(path: Path, signer: NoteSigner, count: int, batch: int, start: int = 0) -> dict[str, Any]:
    with TransparencyLog.open(path, signer=signer) as log:
        began, cpu = time.perf_counter(), time.process_time()
        for low in range(start, start + count, batch):
            log.append_many([make_record(i) for i in range(low, min(start + count, low + batch))])
        elapsed, cpu = time.perf_counter() - began, time.process_time() - cpu
    return {
        "entries": count,
        "batch": batch,
        "seconds": round(elapsed, 2),
        "appends_per_s": round(count / elapsed),
        "cpu_seconds": round(cpu, 2),
        "appends_per_cpu_s": round(count / cpu),
    }


def timed_batcher(path: Path, signer: NoteSigner, count: int, threads: int) -> dict[str, Any]:
    with TransparencyLog.open(path, signer=signer) as log:
        per_thread = count // threads

        def produce(offset: int) -> None:
            futures = [appender.submit(make_record(offset + i)) for i in range(per_thread)]
            for future in futures:
                future.result()

        began = time.perf_counter()
        with BatchingAppender(log) as appender:
            workers = [threading.Thread(target=produce, args=(10**9 * (t + 1),)) for t in range(threads)]
            for worker in workers:
                worker.start()
            for worker in workers:
                worker.join()
        elapsed = time.perf_counter() - began
    total = per_thread * threads
    return {
        "entries": total,
        "threads": threads,
        "max_batch": appender.max_batch,
        "max_delay_s": appender.max_delay,
        "seconds": round(elapsed, 2),
        "appends_per_s": round(total / elapsed),
    }


def bulk_build(path: Path, signer: NoteSigner, count: int, chunk: int = 100_000) -> dict[str, Any]:
    began = time.perf_counter()
    with TransparencyLog.open(path, signer=signer, synchronous="OFF") as log:
        for low in range(log.size, count, chunk):
            log.append_entries([i.to_bytes(8, "big") for i in range(low, min(count, low + chunk))])
    return {"entries": count, "seconds": round(time.perf_counter() - began, 1), "synchronous": "OFF"}


def sigstore_verifier() -> Callable[[int, int, bytes, Sequence[bytes], bytes], None] | None:
    try:
        oracle: Any = importlib.import_module("sigstore._internal.merkle")  # test-only anchor
    except ImportError:
        return None

    def verify(index: int, size: int, leaf: bytes, proof: Sequence[bytes], root: bytes) -> None:
        inner, border = oracle._decomp_inclusion_proof(index, size)
        if len(proof) != inner + border:
            raise ValueError("wrong proof length")
        hashes = list(proof)
        chained = oracle._chain_border_right(oracle._chain_inner(leaf, hashes[:inner], index), hashes[inner:])
        if chained != root:
            raise ValueError("root mismatch")

    return verify


def proof_latency(path: Path, samples: int, seed: int) -> dict[str, Any]:
    rng = random.Random(seed)
    anchor = sigstore_verifier()
    with TransparencyLog.open(path) as log:
        size = log.size
        for index in rng.sample(range(size), 100):  # warm the page cache the way a running service would be
            log.inclusion_proof(index)
        produce: list[float] = []
        verify: list[float] = []
        produce_cpu: list[float] = []
        verify_cpu: list[float] = []
        anchored: list[float] = []
        reads = 0
        for index in (rng.randrange(size) for _ in range(samples)):
            c0, t0 = time.thread_time(), time.perf_counter()
            proof = log.inclusion_proof(index)
            c1, t1 = time.thread_time(), time.perf_counter()
            verify_inclusion(proof.index, proof.tree_size, proof.leaf_hash, proof.hashes, proof.root_hash)
            c2, t2 = time.thread_time(), time.perf_counter()
            produce.append(t1 - t0)
            verify.append(t2 - t1)
            produce_cpu.append(c1 - c0)
            verify_cpu.append(c2 - c1)
            reads = max(reads, len(proof.hashes))
            if anchor is not None:
                t3 = time.perf_counter()
                anchor(index, size, proof.leaf_hash, proof.hashes, proof.root_hash)  # sigstore's own code path
                anchored.append(time.perf_counter() - t3)
    result: dict[str, Any] = {
        "tree_size": size,
        "samples": samples,
        "proof_hashes_max": reads,
        "produce": percentiles(produce),
        "verify": percentiles(verify),
        "produce_cpu_time": percentiles(produce_cpu),
        "verify_cpu_time": percentiles(verify_cpu),
    }
    if anchored:
        result["verify_sigstore"] = percentiles(anchored)
        result["verify_speed_ratio_vs_sigstore"] = round(statistics.median(anchored) / statistics.median(verify), 2)
    return result


def receipt_latency(path: Path, signer: NoteSigner, samples: int, seed: int) -> dict[str, Any]:
    rng = random.Random(seed)
    issue: list[float] = []
    check: list[float] = []
    with TransparencyLog.open(path, signer=signer) as log:
        log.checkpoint()
        size = log.size
        for index in (rng.randrange(size) for _ in range(samples)):
            t0 = time.perf_counter()
            text = log.receipt(index).to_text()
            t1 = time.perf_counter()
            verify_receipt(text, signer.verifier)
            check.append(time.perf_counter() - t1)
            issue.append(t1 - t0)
    return {"tree_size": size, "samples": samples, "issue": percentiles(issue), "verify_offline": percentiles(check)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--entries", type=int, default=1_000_000, help="records appended durably (default 10^6)")
    parser.add_argument("--big", type=int, default=10_000_000, help="size of the bulk-built tree (default 10^7)")
    parser.add_argument("--compare", type=int, default=200_000, help="records per comparison run")
    parser.add_argument("--samples", type=int, default=2000, help="proofs timed per tree size")
    parser.add_argument("--workdir", help="where the databases go (default: a temporary directory, removed)")
    args = parser.parse_args()
    workdir = Path(args.workdir) if args.workdir else Path(tempfile.mkdtemp(prefix="tracemark-bench-tlog-"))
    workdir.mkdir(parents=True, exist_ok=True)
    signer = NoteSigner.generate("bench.tracemark.invalid/log")
    load_before = os.getloadavg()
    results: dict[str, Any] = {"goals": {"appends_per_s": GOAL_APPENDS_PER_S, "proof_p99_ms": GOAL_P99_MS}}
    try:
        main_db = workdir / "main.sqlite3"
        print(f"appending {args.entries:,} records durably in batches of 1,024 …", flush=True)
        results["append"] = timed_appends(main_db, signer, args.entries, 1024)
        print(f"  {results['append']}", flush=True)
        comparisons = []
        for batch in (256, 4096):
            db = workdir / f"batch{batch}.sqlite3"
            comparisons.append(timed_appends(db, signer, args.compare, batch))
            print(f"  {comparisons[-1]}", flush=True)
        results["append_batch_sizes"] = comparisons
        results["append_batching_appender"] = timed_batcher(workdir / "batcher.sqlite3", signer, args.compare, 8)
        print(f"  {results['append_batching_appender']}", flush=True)
        for name in ("batch256", "batch4096", "batcher"):
            for suffix in ("", "-wal", "-shm"):
                (workdir / f"{name}.sqlite3{suffix}").unlink(missing_ok=True)

        print(f"proof latency at {args.entries:,} …", flush=True)
        results["proofs_main"] = proof_latency(main_db, args.samples, seed=1)
        results["receipts_main"] = receipt_latency(main_db, signer, min(args.samples, 1000), seed=2)
        print(f"  {results['proofs_main']}\n  {results['receipts_main']}", flush=True)

        if args.big:
            big_db = workdir / "big.sqlite3"
            print(f"bulk-building a {args.big:,}-leaf tree …", flush=True)
            results["bulk_build"] = bulk_build(big_db, signer, args.big)
            results["bulk_build"]["database_bytes"] = big_db.stat().st_size
            print(f"  {results['bulk_build']}", flush=True)
            results["proofs_big"] = proof_latency(big_db, args.samples, seed=3)
            print(f"  {results['proofs_big']}", flush=True)
    finally:
        if not args.workdir:
            shutil.rmtree(workdir, ignore_errors=True)
    results["load_average"] = {
        "before": [round(x, 2) for x in load_before],
        "after": [round(x, 2) for x in os.getloadavg()],
    }
    proof_keys = [key for key in ("proofs_main", "proofs_big") if key in results]
    results["goals_met"] = {
        "appends_per_s": results["append"]["appends_per_s"] >= GOAL_APPENDS_PER_S,
        "appends_per_cpu_s": results["append"]["appends_per_cpu_s"] >= GOAL_APPENDS_PER_S,
        "proof_p99_ms": all(
            results[key]["produce"]["p99_ms"] < GOAL_P99_MS and results[key]["verify"]["p99_ms"] < GOAL_P99_MS
            for key in proof_keys
        ),
        "proof_p99_ms_cpu_time": all(
            results[key]["produce_cpu_time"]["p99_ms"] < GOAL_P99_MS
            and results[key]["verify_cpu_time"]["p99_ms"] < GOAL_P99_MS
            for key in proof_keys
        ),
    }
    path = write_result("tlog", results)
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
