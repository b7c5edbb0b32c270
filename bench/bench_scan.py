"""Corpus scan throughput: in-process against Ray Data with 1 and 2 workers, on the same corpus in one run.

Builds a JSONL corpus of documents of about 200 tokens of the reference model's tokenizer
(random token ids decoded to text, a tenth of them marked by mimicked sampling, as in the
tests; decoding and re-tokenising random ids does not give the same ids back, so fewer than a
tenth stay detectable, which costs the scan nothing; past 20,000 documents the texts repeat under
new ids), then times ``scan_corpus`` end to end
(read, canonicalise, tokenise, test, write) three ways: in-process (one core), and on a
local Ray with 1 and with 2 workers.  Ray is started before the clock (a cluster is running
already when one scans); the workers' start, each loading the tokenizer and key, is inside it.
Every mode must give the same rows.  The same Ray scans of 100 documents measure Ray's fixed cost
per scan; the rates after subtracting it are recorded beside the end-to-end ones.

    .venv/bin/python bench/bench_scan.py [--documents 100000]

A scan's fixed cost (the actors' start) is a few seconds, so the default corpus is one an
in-process scan needs about a minute for: the size where ``--ray`` starts to be worth it.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("RAYON_NUM_THREADS", "1")

import numpy as np

from _common import reference_model, temporary_home, write_result
from tracemark.keys import Keyring
from tracemark.text import ScanOptions, TextTokenizer, load_scheme, new_text_key, scan_corpus
from tracemark.text._schemes.native import NativeScheme

LENGTH = 200


def marked_ids(scheme: NativeScheme, rng: np.random.Generator) -> list[int]:
    """Mimicked generation: among 8 candidates prefer a green one (tests/unit/text/test_native.py)."""
    sequence = [int(t) for t in rng.integers(0, scheme.vocab_size, 2)]
    for _ in range(LENGTH):
        candidates = rng.integers(0, scheme.vocab_size, 8)
        green = scheme.green(np.array([[sequence[-2], sequence[-1], c] for c in candidates]))
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


def rows_by_id(path: Path) -> dict[str, dict[str, object]]:
    return {row["id"]: row for row in map(json.loads, path.read_text().splitlines())}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--documents", type=int, default=100_000)
    parser.add_argument("--batch-size", type=int, default=512)
    args = parser.parse_args()

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

    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, configure_logging=False)
    modes = [("in-process", None), ("ray, 1 worker", 1), ("ray, 2 workers", 2)]
    results: list[dict[str, Any]] = []
    reference: dict[str, dict[str, object]] | None = None
    for name, workers in modes:
        out = work / f"{name.replace(' ', '_').replace(',', '')}.jsonl"
        options = ScanOptions(batch_size=args.batch_size, ray=workers is not None, workers=workers)
        started = time.perf_counter()
        summary = scan_corpus([corpus], key, tokenizer, out, options)
        seconds = time.perf_counter() - started
        rows = rows_by_id(out)
        if reference is None:
            reference = rows
        assert rows == reference, f"{name} gives other rows than in-process"
        rate = round(summary.tokens_total / seconds)
        results.append({"mode": name, "workers": workers, "seconds": round(seconds, 3),
                        "tokens": summary.tokens_total, "marked": summary.marked, "tokens_per_s": rate})  # fmt: skip
        print(f"{name}: {summary.tokens_total / seconds:,.0f} tokens/s ({seconds:.2f} s)")
    # The fixed cost of a Ray scan (actors' start, Ray Data's executor): the same scan of 100 documents.
    small = work / "small.jsonl"
    small.write_text("".join(corpus.read_text().splitlines(keepends=True)[:100]))
    fixed = {}
    for workers in (1, 2):
        started = time.perf_counter()
        scan_corpus([small], key, tokenizer, work / f"small-{workers}.jsonl", ScanOptions(ray=True, workers=workers))
        fixed[workers] = time.perf_counter() - started
    for entry in results[1:]:
        workers = int(entry["workers"])
        steady = float(entry["seconds"]) - fixed[workers]
        entry["fixed_seconds_100_documents"] = round(fixed[workers], 3)
        entry["tokens_per_s_after_start"] = round(int(entry["tokens"]) / steady)
    ray.shutdown()
    base = results[0]["tokens_per_s"]
    one, two = results[1]["tokens_per_s"], results[2]["tokens_per_s"]
    assert isinstance(base, int)
    assert isinstance(one, int)
    assert isinstance(two, int)
    payload = {
        "documents": args.documents,
        "tokens_per_document": LENGTH,
        "marked_documents": marked,
        "batch_size": args.batch_size,
        "tokenizer": "models/reference",
        "scheme": "native",
        "modes": results,
        "speedup_ray_2_workers_over_in_process": round(two / base, 3),
        "overhead_ray_1_worker": round(1 - one / base, 3),
        "goals": {"ray_2_workers_over_in_process": ">= 1.8", "overhead_ray_1_worker": "<= 0.10"},
        "speedup_ray_2_workers_after_start": round(int(results[2]["tokens_per_s_after_start"]) / base, 3),
        "overhead_ray_1_worker_after_start": round(1 - int(results[1]["tokens_per_s_after_start"]) / base, 3),
        "load_average_at_end": [round(x, 2) for x in os.getloadavg()],
        "note": "end to end (read, canonicalise, tokenise, test, write); Ray started before the clock, "
        "workers' start inside it; the machine's cores are shared with other work",
    }
    path = write_result("scan", payload)
    print(json.dumps(payload, indent=2))
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
