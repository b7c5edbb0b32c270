"""The HTTP service under load from a second process on loopback: detection and inclusion proofs.

1. Set-up (not timed): a fresh ``TRACEMARK_HOME`` with a native text key for the reference
   model's tokenizer (detection needs only ``tokenizer.json`` and ``config.json``, so the
   benchmark runs before the model's weights exist), and a log of ``--entries`` provenance
   records with a signed checkpoint.
2. The service: ``tracemark service run --workers N`` (uvicorn; httptools and uvloop when
   installed) on 127.0.0.1, a subprocess, measured with one and with two workers.  Detection
   is CPU-bound Python and numpy under the GIL, so one process uses at most one core: two
   workers are what two idle cores need (the load generator, wrk, is event-driven C and needs
   little); one worker is what a machine whose second core is busy with other jobs can use.
   The service's CPU time per request is recorded too, since the wall-clock figures of a
   shared machine depend on what else runs.
3. Load: ``wrk`` (Debian's package) with a Lua script that replays prepared requests, one
   thread, a fixed number of keep-alive connections (closed loop), ``--duration`` seconds
   per measurement after a warm-up; without wrk, a Python asyncio load generator in a
   second process does the same (bounded by duration and a request cap).
4. Scenarios: ``POST /v1/text/detect`` on 200-token texts (default request: no
   ``explain``), the same with ``explain`` (what the web page asks for), and
   ``GET /v1/log/proof/inclusion`` at random indices.  Each at every ``--connections``.

Goal: at least 500 detect requests per second with p99 under 50 ms (at 8 connections, the
better worker count).  The machine's load average is recorded before and after each
measurement (the development machine is shared), and ``detect_capacity_two_idle_cores_rps``
estimates what two idle cores sustain from the CPU time per request (server and wrk).

    .venv/bin/python bench/bench_service.py [--workers 1,2] [--connections 4,8,16] [--duration 10]
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import importlib.util
import json
import os
import random
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from _common import REPO, ServiceProcess, reference_model, write_result

GOAL_DETECT_RPS = 500
GOAL_DETECT_P99_MS = 50.0
GOAL_CONNECTIONS = 8
TEXT_TOKENS = 200

_WRK_SCRIPT = r"""
local requests = {}
for line in io.lines(os.getenv("TM_REQUESTS")) do
  local method, path, body = line:match("^(%u+)\t([^\t]+)\t(.*)$")
  if body == "" then
    requests[#requests + 1] = wrk.format(method, path)
  else
    requests[#requests + 1] = wrk.format(method, path, {["Content-Type"] = "application/json"}, body)
  end
end
local position = 0
request = function()
  position = position % #requests + 1
  return requests[position]
end
done = function(summary, latency, _)
  io.write(string.format(
    'TM-RESULT {"requests":%d,"duration_s":%.6f,"errors_status":%d,"errors_socket":%d,' ..
    '"p50_ms":%.3f,"p90_ms":%.3f,"p99_ms":%.3f,"max_ms":%.3f,"mean_ms":%.3f}\n',
    summary.requests, summary.duration / 1e6, summary.errors.status,
    summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.timeout,
    latency:percentile(50) / 1e3, latency:percentile(90) / 1e3, latency:percentile(99) / 1e3,
    latency.max / 1e3, latency.mean / 1e3))
end
"""


# -- set-up ------------------------------------------------------------------------------------


def _model_dir(work: Path) -> Path:
    """The reference model if complete enough to detect with, else its tokenizer plus a config.json."""
    reference = reference_model()
    if (reference / "config.json").is_file() and (reference / "tokenizer.json").is_file():
        return reference
    from tokenizers import Tokenizer

    tokenizer_json = reference / "tokenizer.json"
    if not tokenizer_json.is_file():
        raise SystemExit(f"no tokenizer at {tokenizer_json}: build the reference model first")
    folder = work / "reference-tokenizer"
    folder.mkdir()
    shutil.copy(tokenizer_json, folder / "tokenizer.json")
    vocab = Tokenizer.from_file(str(tokenizer_json)).get_vocab_size()
    (folder / "config.json").write_text(json.dumps({"vocab_size": vocab}))
    return folder


def _texts(model_dir: Path, count: int = 64) -> list[str]:
    """Texts of exactly 200 tokens: windows of the repository's documentation, decoded."""
    from tracemark.text import TextTokenizer

    tokenizer = TextTokenizer(model_dir)
    corpus = "\n\n".join(p.read_text(encoding="utf-8") for p in sorted((REPO / "docs").glob("*.md")))
    ids = [int(i) for i in tokenizer.encode(corpus).ids]
    texts: list[str] = []
    for start in range(0, len(ids) - TEXT_TOKENS, TEXT_TOKENS // 2):
        text = tokenizer.decode(ids[start : start + TEXT_TOKENS])
        if text.strip() and tokenizer.encode(text).ids.shape[0] == TEXT_TOKENS:
            texts.append(text)
        if len(texts) == count:
            break
    if not texts:
        raise SystemExit("could not cut 200-token texts from docs/")
    return texts


def _prepare(home: Path, model_dir: Path, database: Path, entries: int) -> None:
    from tracemark.keys import Keyring, ensure_log_key
    from tracemark.text import new_text_key
    from tracemark.tlog import ProvenanceRecord, TransparencyLog

    keyring = Keyring(home)
    keyring.create()
    new_text_key(keyring, "native", model_dir, make_default=True)
    signer = ensure_log_key(keyring)
    with TransparencyLog.open(database, signer=signer, synchronous="OFF") as log:
        batch = 20_000
        for low in range(0, entries, batch):
            log.append_many([
                ProvenanceRecord.create(content_sha256=hashlib.sha256(i.to_bytes(8, "big")).hexdigest(), kind="text",
                                        key_id="tm-native-0123456789abcdef", model_id="bench/model@1",
                                        time="2026-08-02T12:00:00Z")
                for i in range(low, min(entries, low + batch))
            ])  # fmt: skip
        log.checkpoint()


def _request_lines(scenario: str, texts: list[str], entries: int) -> list[str]:
    """``METHOD<TAB>PATH<TAB>BODY`` lines (JSON never holds a raw tab)."""
    if scenario == "detect":
        return [f"POST\t/v1/text/detect\t{json.dumps({'text': t})}" for t in texts]
    if scenario == "detect_explain":
        return [f"POST\t/v1/text/detect\t{json.dumps({'text': t, 'explain': True})}" for t in texts]
    if scenario == "inclusion_proof":
        chooser = random.Random(7)
        return [f"GET\t/v1/log/proof/inclusion?index={chooser.randrange(entries)}\t" for _ in range(4096)]
    raise ValueError(scenario)


# -- the service -------------------------------------------------------------------------------


def _process_tree_cpu(root: int) -> float:
    """CPU seconds (user + system) used so far by process ``root`` and its live descendants (Linux /proc)."""
    parents: dict[int, int] = {}
    times: dict[int, float] = {}
    tick = os.sysconf("SC_CLK_TCK")
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        parents[int(entry.name)] = int(fields[1])
        times[int(entry.name)] = (int(fields[11]) + int(fields[12])) / tick
    tree, frontier = {root}, [root]
    while frontier:
        parent = frontier.pop()
        children = [pid for pid, ppid in parents.items() if ppid == parent and pid not in tree]
        tree.update(children)
        frontier.extend(children)
    return sum(times.get(pid, 0.0) for pid in tree)


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


# -- load generators ---------------------------------------------------------------------------


def _run_wrk(url: str, requests_file: Path, script: Path, connections: int, duration: float) -> dict[str, Any]:
    command = ["wrk", "-t1", f"-c{connections}", f"-d{duration:g}s", "--timeout", "10s", "-s", str(script), url]
    done = subprocess.run(command, env={**os.environ, "TM_REQUESTS": str(requests_file)}, capture_output=True,
                          text=True, timeout=duration + 60, check=True)  # fmt: skip
    line = next(line for line in done.stdout.splitlines() if line.startswith("TM-RESULT "))
    result: dict[str, Any] = json.loads(line.removeprefix("TM-RESULT "))
    return result


async def _python_load(port: int, lines: list[str], connections: int, duration: float, cap: int) -> dict[str, Any]:
    """Closed-loop load over keep-alive connections; the same figures as the wrk script."""
    requests = []
    for line in lines:
        method, path, body = line.split("\t", 2)
        data = body.encode()
        head = f"{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: {len(data)}\r\n"
        head += "Content-Type: application/json\r\n\r\n" if data else "\r\n"
        requests.append(head.encode() + data)
    latencies: list[float] = []
    errors = {"status": 0, "socket": 0}
    loop = asyncio.get_running_loop()
    deadline = loop.time() + duration

    async def connection(offset: int) -> None:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        position = offset
        try:
            while loop.time() < deadline and len(latencies) < cap:
                started = time.perf_counter()
                writer.write(requests[position % len(requests)])
                position += connections
                head = await reader.readuntil(b"\r\n\r\n")
                length = 0
                for header in head.split(b"\r\n")[1:]:
                    name, _, value = header.partition(b":")
                    if name.strip().lower() == b"content-length":
                        length = int(value)
                await reader.readexactly(length)
                latencies.append(time.perf_counter() - started)
                if head[9:12] != b"200":
                    errors["status"] += 1
        except (OSError, asyncio.IncompleteReadError):
            errors["socket"] += 1
        finally:
            writer.close()

    started = loop.time()
    await asyncio.gather(*(connection(k) for k in range(connections)))
    elapsed = loop.time() - started
    ordered = sorted(latencies) or [0.0]

    def at(q: float) -> float:
        return round(ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1e3, 3)

    return {"requests": len(latencies), "duration_s": round(elapsed, 6), "errors_status": errors["status"],
            "errors_socket": errors["socket"], "p50_ms": at(0.50), "p90_ms": at(0.90), "p99_ms": at(0.99),
            "max_ms": round(ordered[-1] * 1e3, 3),
            "mean_ms": round(sum(ordered) / len(ordered) * 1e3, 3)}  # fmt: skip


def _run_python(port: int, requests_file: Path, connections: int, duration: float) -> dict[str, Any]:
    """The Python load generator, in a second process like wrk."""
    command = [sys.executable, __file__, "--load-port", str(port), "--load-requests", str(requests_file),
               "--connections", str(connections), "--duration", str(duration)]  # fmt: skip
    done = subprocess.run(command, capture_output=True, text=True, timeout=duration + 60, check=True)
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


# -- main --------------------------------------------------------------------------------------


def _load_average() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


def _goals(results: list[dict[str, Any]]) -> dict[str, Any]:
    """The detect scenario's goals, judged on its best run at ``GOAL_CONNECTIONS`` connections."""
    headline = [r for r in results if r["scenario"] == "detect" and r["connections"] == GOAL_CONNECTIONS]
    best = max(headline, key=lambda r: r["requests_per_s"]) if headline else None
    goals: dict[str, Any] = {
        "detect_requests_per_s": {"goal": GOAL_DETECT_RPS, "result": best and best["requests_per_s"],
                                  "met": bool(best and best["requests_per_s"] >= GOAL_DETECT_RPS)},
        "detect_p99_ms": {"goal": GOAL_DETECT_P99_MS, "result": best and best["p99_ms"],
                          "met": bool(best and best["p99_ms"] < GOAL_DETECT_P99_MS)},
        "measured_at": {"scenario": "detect", "connections": GOAL_CONNECTIONS, "workers": best and best["workers"]},
    }  # fmt: skip
    if best:
        # What two otherwise idle cores would sustain: CPU per request, server and load generator together.
        cost = best["server_cpu_ms_per_request"] + best["load_generator_cpu_ms_per_request"]
        goals["detect_capacity_two_idle_cores_rps"] = round(2000.0 / cost, 1) if cost else None
    return goals


def _arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--workers", default="1,2", help="comma-separated worker counts to measure (default 1,2)")
    parser.add_argument("--connections", default="4,8,16", help="comma-separated connection counts")
    parser.add_argument("--duration", type=float, default=10.0, help="seconds per measurement")
    parser.add_argument("--warmup", type=float, default=2.0, help="seconds of warm-up before each scenario")
    parser.add_argument("--entries", type=int, default=100_000, help="log entries for the proof scenario")
    parser.add_argument("--scenarios", default="detect,detect_explain,inclusion_proof")
    parser.add_argument("--generator", choices=["auto", "wrk", "python"], default="auto")
    parser.add_argument("--name", default="service", help="result file: bench/results/<name>.json")
    parser.add_argument("--load-port", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--load-requests", help=argparse.SUPPRESS)
    return parser.parse_args()


def main() -> int:
    args = _arguments()
    if args.load_port is not None:  # the Python load generator's own process
        lines = Path(args.load_requests).read_text().splitlines()
        result = asyncio.run(_python_load(args.load_port, lines, int(args.connections), args.duration, 2_000_000))
        print(json.dumps(result))
        return 0

    generator = args.generator
    if generator == "auto":
        generator = "wrk" if shutil.which("wrk") else "python"
    connections = [int(c) for c in args.connections.split(",")]
    worker_counts = [int(w) for w in args.workers.split(",")]
    scenarios = args.scenarios.split(",")
    work = Path(tempfile.mkdtemp(prefix="tracemark-bench-service-"))
    try:
        home, database = work / "home", work / "home" / "tracemark.sqlite3"
        model_dir = _model_dir(work)
        texts = _texts(model_dir)
        prepared = time.perf_counter()
        _prepare(home, model_dir, database, args.entries)
        print(f"set-up: {args.entries} log entries in {time.perf_counter() - prepared:.1f} s; {len(texts)} texts")
        script = work / "replay.lua"
        script.write_text(_WRK_SCRIPT)
        files = {}
        for scenario in scenarios:
            files[scenario] = work / f"{scenario}.tsv"
            files[scenario].write_text("\n".join(_request_lines(scenario, texts, args.entries)) + "\n")

        def measure(service: ServiceProcess, scenario: str, conns: int, duration: float) -> dict[str, Any]:
            if generator == "wrk":
                return _run_wrk(service.url, files[scenario], script, conns, duration)
            return _run_python(service.port, files[scenario], conns, duration)

        results = []
        load_before = _load_average()
        for workers in worker_counts:
            options = ["--model", str(model_dir), "--db", str(database), "--workers", str(workers)]
            with ServiceProcess(home, options) as service:
                for scenario in scenarios:
                    measure(service, scenario, max(connections), args.warmup)
                    for conns in connections:
                        server_before, generator_before = _process_tree_cpu(service.process.pid), _children_cpu()
                        raw = measure(service, scenario, conns, args.duration)
                        server_cpu = _process_tree_cpu(service.process.pid) - server_before
                        generator_cpu = _children_cpu() - generator_before
                        per_request = 1e3 / max(1, raw["requests"])
                        row = {"scenario": scenario, "workers": workers, "connections": conns,
                               "requests_per_s": round(raw["requests"] / raw["duration_s"], 1), **raw,
                               "server_cpu_ms_per_request": round(server_cpu * per_request, 3),
                               "load_generator_cpu_ms_per_request": round(generator_cpu * per_request, 3),
                               "load_average": _load_average()}  # fmt: skip
                        results.append(row)
                        print(f"{scenario:16s} workers {workers} connections {conns:3d}: "
                              f"{row['requests_per_s']:8.1f} req/s  p50 {raw['p50_ms']:7.2f} ms  "
                              f"p99 {raw['p99_ms']:7.2f} ms  server CPU {row['server_cpu_ms_per_request']:.2f} ms/req  "
                              f"errors {raw['errors_status'] + raw['errors_socket']}")  # fmt: skip
        load_after = _load_average()
    finally:
        shutil.rmtree(work, ignore_errors=True)

    goals = _goals(results)
    installed = {name: importlib.util.find_spec(name) is not None for name in ("httptools", "uvloop", "orjson")}
    path = write_result(args.name, {
        "load_generator": generator, "duration_s": args.duration, "warmup_s": args.warmup,
        "text_tokens": TEXT_TOKENS, "texts": len(texts), "log_entries": args.entries, "model": model_dir.name,
        "server": {"uvicorn_http": "httptools" if installed["httptools"] else "h11",
                   "event_loop": "uvloop" if installed["uvloop"] else "asyncio",
                   "json": "orjson" if installed["orjson"] else "json"},
        "load_average_before": load_before, "load_average_after": load_after,
        "results": results, "goals": goals,
    })  # fmt: skip
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
