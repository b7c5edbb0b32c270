"""HTTP appends to the service's log, before and after the publishing rhythm, side by side in one run.

1. Set-up (not timed): a fresh ``TRACEMARK_HOME`` with a keyring and an API token.
2. For each mode, a fresh database and ``tracemark service run`` (one worker, uvicorn) on a free
   loopback port, started with ``TRACEMARK_SERVICE_CHECKPOINT_INTERVAL``:

   * ``per_batch`` (interval 0): every request signs a checkpoint covering its batch itself,
     the behaviour before the rhythm (review §2: 42-144 acknowledged appends/s, 919
     checkpoints for 2,503 entries);
   * ``interval_1s``: one thread publishes at most one checkpoint per second; each request
     waits for the checkpoint covering its entry and answers with the receipt (the default);
   * ``interval_250ms``: the same with a checkpoint at most every 250 ms;
   * ``interval_1s_64_connections``: the 1 s rhythm with 64 waiting clients instead of ``--connections``;
   * ``interval_1s_nowait``: the 1 s rhythm, clients append with ``?wait=false`` and get
     a promise (index, leaf hash, size) as soon as the entry is durable.

   A client that waits sees about one interval of latency, so ``--connections`` waiting
   clients append at most ``connections / interval`` times a second: throughput then comes
   from more concurrent clients, or from not waiting.

3. Load: ``--connections`` threads in this process, each with one keep-alive connection,
   ``POST /v1/log/entries`` with unique records in a closed loop for ``--duration`` seconds.
   An append counts when it is answered 200 (durable; with its receipt unless ``wait=false``).
4. Afterwards: the entries and stored checkpoints, read from the database; a sample of the
   receipts verified offline.

    .venv/bin/python bench/bench_log_http.py [--connections 8] [--duration 20]
"""

from __future__ import annotations

import argparse
import hashlib
import http.client
import json
import os
import sqlite3
import sys
import threading
import time
from pathlib import Path
from typing import Any

from _common import ServiceProcess, temporary_home, write_result

#: mode -> (checkpoint interval in seconds, whether clients wait for the receipt, connections or None for --connections)
MODES: dict[str, tuple[float, bool, int | None]] = {
    "per_batch": (0.0, True, None), "interval_1s": (1.0, True, None), "interval_250ms": (0.25, True, None),
    "interval_1s_64_connections": (1.0, True, 64), "interval_1s_nowait": (1.0, False, None),
}  # fmt: skip


def _record(client: int, n: int) -> bytes:
    return json.dumps({
        "content_sha256": hashlib.sha256(f"client {client} record {n}".encode()).hexdigest(),
        "kind": "text", "key_id": "tm-native-0123456789abcdef", "model_id": "bench/model@1",
        "time": "2026-08-02T12:00:00Z",
    }).encode()  # fmt: skip


def _load(port: int, token: str, connections: int, duration: float, wait: bool) -> dict[str, Any]:
    path = "/v1/log/entries" + ("" if wait else "?wait=false")
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
    latencies: list[list[float]] = [[] for _ in range(connections)]
    errors = [0] * connections
    samples: list[str] = []
    stop = time.monotonic() + duration

    def client(number: int) -> None:
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
        n = 0
        while time.monotonic() < stop:
            started = time.perf_counter()
            connection.request("POST", path, body=_record(number, n), headers=headers)
            response = connection.getresponse()
            body = response.read()
            n += 1
            if response.status != 200:
                errors[number] += 1
                if errors[number] == 1:
                    print(f"client {number}: HTTP {response.status}: {body[:200]!r}", file=sys.stderr)
                continue
            latencies[number].append(time.perf_counter() - started)
            if wait and (n == 1 or n % 97 == 0):
                samples.append(json.loads(body)["receipt"])
        connection.close()

    threads = [threading.Thread(target=client, args=(k,)) for k in range(connections)]
    began = time.monotonic()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    elapsed = time.monotonic() - began
    flat = sorted(t for per in latencies for t in per)

    def quantile(q: float) -> float:
        return round(1000 * flat[min(len(flat) - 1, int(q * len(flat)))], 1) if flat else 0.0

    return {"acknowledged": len(flat), "errors": sum(errors), "seconds": round(elapsed, 2),
            "appends_per_s": round(len(flat) / elapsed, 1), "p50_ms": quantile(0.5), "p99_ms": quantile(0.99),
            "receipt_samples": samples}  # fmt: skip


def _measure(home: Path, token: str, mode: str, connections: int, duration: float) -> dict[str, Any]:
    from tracemark.tlog import TransparencyLog, verify_receipt

    interval, wait, fixed = MODES[mode]
    connections = fixed or connections
    database = home / f"{mode}.sqlite3"
    before = os.getloadavg()[0]
    options = ["--db", str(database), "--checkpoint-interval", str(interval)]
    with ServiceProcess(home, options, ready="/v1/log/checkpoint") as service:
        result = _load(service.port, token, connections, duration, wait)
        time.sleep(interval + 0.5)  # let the last publication land before counting
    samples = result.pop("receipt_samples")
    with sqlite3.connect(database) as db:
        entries = db.execute("SELECT COUNT(*) FROM tlog_entries").fetchone()[0]
        checkpoints = db.execute("SELECT COUNT(*) FROM tlog_checkpoints WHERE size > 0").fetchone()[0]
    with TransparencyLog.open(database) as log:
        if log.verifier is None:
            raise SystemExit("the log has no key")
        for receipt in samples:
            verify_receipt(receipt, log.verifier)
    return {**result, "connections": connections, "checkpoint_interval_s": interval, "wait_for_receipt": wait,
            "entries": entries,
            "checkpoints": checkpoints, "checkpoints_per_entry": round(checkpoints / max(entries, 1), 4),
            "receipts_verified": len(samples), "load_average_before": round(before, 2),
            "load_average_after": round(os.getloadavg()[0], 2)}  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--connections", type=int, default=8)
    parser.add_argument("--duration", type=float, default=20.0)
    parser.add_argument("--modes", default=",".join(MODES), help=f"comma-separated, of {', '.join(MODES)}")
    args = parser.parse_args()
    home = temporary_home()
    from tracemark.keys import Keyring, ensure_log_key, mint_api_token

    keyring = Keyring()
    keyring.create()
    ensure_log_key(keyring)
    token = mint_api_token(keyring, label="bench")
    modes = {}
    for mode in args.modes.split(","):
        modes[mode] = _measure(home, token, mode, args.connections, args.duration)
        print(mode, json.dumps(modes[mode]), flush=True)
    payload = {"connections": args.connections, "duration_s": args.duration, "workers": 1,
               "command": "tracemark service run --no-preload (one worker) with TRACEMARK_SERVICE_CHECKPOINT_INTERVAL",
               "modes": modes}  # fmt: skip
    print(write_result("log_http", payload))


if __name__ == "__main__":
    main()
