"""Gateway throughput: marked, logged completions per second with batching, beside one request at a time.

1. Set-up (not timed): a fresh ``TRACEMARK_HOME`` with a keyring, a ``native`` text key on the
   reference model as the default, and an API token.
2. Two ``tracemark service run`` processes (one worker each, a database each) on free loopback
   ports, up at the same time, with the token quota off and ``TRACEMARK_GATEWAY_TORCH_THREADS``
   (``--torch-threads``):

   * ``one_at_a_time``: ``TRACEMARK_GATEWAY_MAX_BATCH=1``: the engine decodes one request, then the
     next (the anchor: what serving without batching gives, through the same routes, log and HTTP);
   * ``batched``: ``TRACEMARK_GATEWAY_MAX_BATCH=16`` with the default wait budget (20 ms).

   Both keep the log's checkpoint rhythm at ``--checkpoint-interval`` (default 0: each append
   batch signs its own checkpoint, so that the receipt wait does not dominate the latency).
3. Load: for each client count in ``--clients`` (1, 4, 8, 16), first against one, then against the
   other (back to back, so both figures of a ratio see the same load from other work), that many threads,
   each with one keep-alive connection, ``POST /v1/completions`` (``max_tokens`` =
   ``--tokens``, ``ignore_eos``, a distinct prompt per request) in a closed loop for
   ``--duration`` seconds after a warm-up request each.  Tokens count from each answer's
   ``usage.completion_tokens``; every answer must be 200 with a receipt.
4. Checks: a sample of receipts verified offline with the log's key; a sample of texts detected
   with the key (p-values reported).

The headline is ``speedup_at_8``: batched tokens/s at 8 clients over one-at-a-time tokens/s at 8
clients, in the same run (goal >= 4).

    .venv/bin/python bench/bench_gateway.py [--clients 1 4 8 16] [--duration 20] [--tokens 64]
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import sys
import threading
import time
import urllib.request
from pathlib import Path
from typing import Any

from _common import ServiceProcess, reference_model, temporary_home, write_result

PROMPTS = ("The json module", "A list comprehension", "The logging package", "To open a file", "The socket module",
           "Regular expressions", "The datetime module", "A dictionary maps")  # fmt: skip
MODES = {"one_at_a_time": 1, "batched": 16}


def _load(port: int, token: str, model: str, clients: int, duration: float, tokens: int) -> dict[str, Any]:
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
    produced = [0] * clients
    answered = [0] * clients
    errors = [0] * clients
    latencies: list[float] = []
    samples: list[tuple[str, str]] = []
    lock = threading.Lock()
    warmed = threading.Barrier(clients + 1)  # every client made its warm-up request
    go = threading.Barrier(clients + 1)  # the end of the measured window is set
    stop = [0.0]

    connections: dict[int, http.client.HTTPConnection] = {}

    def request(number: int, n: int) -> dict[str, Any] | None:
        prompt = f"{PROMPTS[(number + n) % len(PROMPTS)]} {n}"
        body = json.dumps({"model": model, "prompt": prompt, "max_tokens": tokens, "ignore_eos": True})
        for attempt in range(2):  # uvicorn closes a keep-alive connection idle for 5 s: reconnect once
            connection = connections.setdefault(number, http.client.HTTPConnection("127.0.0.1", port, timeout=600))
            try:
                connection.request("POST", "/v1/completions", body=body, headers=headers)
                response = connection.getresponse()
                raw = response.read()
                break
            except (ConnectionError, http.client.HTTPException):
                connections.pop(number).close()
                if attempt:
                    raise
        if response.status != 200:
            errors[number] += 1
            print(f"client {number}: HTTP {response.status}: {raw[:200]!r}", file=sys.stderr)
            return None
        answer: dict[str, Any] = json.loads(raw)
        return answer

    def client(number: int) -> None:
        request(number, -1)  # warm-up: not counted
        warmed.wait()
        go.wait()
        n = 0
        while time.monotonic() < stop[0]:
            began = time.perf_counter()
            answer = request(number, n)
            n += 1
            if answer is None:
                continue
            produced[number] += answer["usage"]["completion_tokens"]
            answered[number] += 1
            receipt = answer["tracemark"]["receipts"][0]["receipt"]
            with lock:
                latencies.append(time.perf_counter() - began)
                if n == 1 and len(samples) < 8:
                    samples.append((answer["choices"][0]["text"], receipt))
        connections.pop(number).close()

    threads = [threading.Thread(target=client, args=(k,)) for k in range(clients)]
    for thread in threads:
        thread.start()
    warmed.wait()
    began = time.monotonic()
    stop[0] = began + duration
    go.wait()
    for thread in threads:
        thread.join()
    elapsed = time.monotonic() - began
    latencies.sort()
    return {"clients": clients, "seconds": round(elapsed, 2), "completions": sum(answered), "errors": sum(errors),
            "tokens": sum(produced), "tokens_per_s": round(sum(produced) / elapsed, 1),
            "p50_latency_s": round(latencies[len(latencies) // 2], 3) if latencies else None,
            "samples": samples}  # fmt: skip


def _check(home: Path, database: Path, samples: list[tuple[str, str]]) -> dict[str, Any]:
    from tracemark.keys import Keyring
    from tracemark.text import TextTokenizer, detect_watermark, select_text_key
    from tracemark.tlog import TransparencyLog, verify_receipt

    tokenizer = TextTokenizer(reference_model())
    key = select_text_key(Keyring(home), tokenizer)
    with TransparencyLog.open(database) as log:
        if log.verifier is None:
            raise SystemExit("the log has no key")
        for text, receipt in samples:
            verified = verify_receipt(receipt, log.verifier)
            if verified.record is None or not verified.record.matches_content(text.encode()):
                raise SystemExit("a receipt does not record the text it came with")
    p_values = [detect_watermark(text, key, tokenizer).p_value for text, _ in samples]
    return {"receipts_verified": len(samples), "detection_p_values": [float(f"{p:.3g}") for p in p_values]}


def _service(home: Path, mode: str, args: argparse.Namespace) -> ServiceProcess:
    env = {"TRACEMARK_GATEWAY_MAX_BATCH": str(MODES[mode]), "TRACEMARK_GATEWAY_TOKENS_PER_MINUTE": "0",
           "TRACEMARK_GATEWAY_TORCH_THREADS": str(args.torch_threads)}  # fmt: skip
    options = ["--db", str(home / f"{mode}.sqlite3"), "--checkpoint-interval", str(args.checkpoint_interval),
               "--model", str(reference_model())]  # fmt: skip
    return ServiceProcess(home, options, env=env)


def _measure(home: Path, token: str, args: argparse.Namespace) -> dict[str, Any]:
    """Both services up at once; for each client count, one-at-a-time then batched back to back, so that
    the two figures of a ratio see the same load from the machine's other work."""
    runs: dict[str, list[dict[str, Any]]] = {mode: [] for mode in MODES}
    samples: dict[str, list[tuple[str, str]]] = {mode: [] for mode in MODES}
    with _service(home, "one_at_a_time", args) as sequential, _service(home, "batched", args) as batched:
        services = {"one_at_a_time": sequential, "batched": batched}
        model = _get_json(batched.url + "/v1/models")["data"][0]["id"]
        for clients in args.clients:
            for mode, service in services.items():
                before = os.getloadavg()[0]
                result = _load(service.port, token, model, clients, args.duration, args.tokens)
                samples[mode].extend(result.pop("samples"))
                result["load_average_before"] = round(before, 2)
                runs[mode].append(result)
                print(mode, json.dumps(result), flush=True)
    return {mode: {"max_batch": MODES[mode], "runs": runs[mode],
                   **_check(home, home / f"{mode}.sqlite3", samples[mode][:8])} for mode in MODES}  # fmt: skip


def _get_json(url: str) -> dict[str, Any]:
    with urllib.request.urlopen(url, timeout=60) as response:
        payload: dict[str, Any] = json.loads(response.read())
    return payload


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clients", type=int, nargs="+", default=[1, 4, 8, 16])
    parser.add_argument("--duration", type=float, default=20.0, help="seconds of load per client count")
    parser.add_argument("--tokens", type=int, default=64, help="max_tokens of each request")
    parser.add_argument("--torch-threads", type=int, default=1)
    parser.add_argument("--checkpoint-interval", type=float, default=0.0)
    args = parser.parse_args()
    home = temporary_home()
    from tracemark.keys import Keyring, ensure_log_key, mint_api_token
    from tracemark.text import new_text_key

    keyring = Keyring()
    keyring.create()
    ensure_log_key(keyring)
    new_text_key(keyring, "native", reference_model(), make_default=True)
    token = mint_api_token(keyring, label="bench")
    modes = _measure(home, token, args)
    baseline = {run["clients"]: run["tokens_per_s"] for run in modes["one_at_a_time"]["runs"]}
    speedups = {str(run["clients"]): round(run["tokens_per_s"] / baseline[run["clients"]], 2)
                for run in modes["batched"]["runs"] if baseline.get(run["clients"])}  # fmt: skip
    payload = {"model": "models/reference (GPT-2, 4 layers, 192 wide, vocabulary 8,192)", "scheme": "native",
               "clients": args.clients, "duration_s": args.duration, "max_tokens": args.tokens,
               "torch_threads": args.torch_threads, "checkpoint_interval_s": args.checkpoint_interval,
               "command": "tracemark service run (one worker), POST /v1/completions, non-streamed",
               "modes": modes, "speedup_vs_one_at_a_time": speedups, "speedup_at_8": speedups.get("8"),
               "goal": "speedup_at_8 >= 4"}  # fmt: skip
    print(json.dumps({"speedup_vs_one_at_a_time": speedups}))
    print(write_result("gateway", payload))


if __name__ == "__main__":
    main()
