"""Detection throughput of the native scheme, with transformers' KGW detector as the yardstick.

Scores 10,000 texts of 200 tokens per vocabulary size with ``detect_batch`` (exact
p-value, de-duplicated, one verdict per text) on one thread, and runs transformers'
``WatermarkDetector`` (KGW lefthash, its defaults) on a subset of the same texts in the
same process.  Reports tokens per second and their quotient.  The two are different
algorithms (AES trigram green list against KGW's seeded permutation), so the quotient
says what detection costs a user of each, not how well either is implemented; the
like-for-like comparison is ``bench_kgw_detect.py``.

    .venv/bin/python bench/bench_native_detect.py
"""

from __future__ import annotations

import os
import time

os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np

from _common import write_result
from tracemark.text import detect_batch
from tracemark.text._schemes.native import NativeScheme

VOCABS = (32000, 50257, 128256)
TEXTS, LENGTH, ANCHOR_TEXTS = 10_000, 200, 100
ANCHOR = "transformers WatermarkDetector, KGW lefthash: a different algorithm (like for like: kgw_detect.json)"


def best_of(runs: int, action: object) -> float:
    assert callable(action)
    timings = []
    for _ in range(runs):
        started = time.perf_counter()
        action()
        timings.append(time.perf_counter() - started)
    return min(timings)


def transformers_rate(vocab: int, texts: list[np.ndarray]) -> float:
    import torch
    from transformers import GPT2Config, WatermarkDetector, WatermarkingConfig

    torch.set_num_threads(1)
    detector = WatermarkDetector(GPT2Config(vocab_size=vocab), "cpu", WatermarkingConfig())
    batch = torch.tensor(np.stack(texts))
    seconds = best_of(2, lambda: detector(batch))  # type: ignore[arg-type]
    return len(texts) * LENGTH / seconds


def main() -> None:
    rng = np.random.default_rng(2026)
    rows = []
    for vocab in VOCABS:
        key = NativeScheme.new_key(secret_source=lambda label: os.urandom(32), vocab_size=vocab,
                                   tokenizer_sha256="0" * 64)  # fmt: skip
        texts = [rng.integers(0, vocab, LENGTH) for _ in range(TEXTS)]
        seconds = best_of(7, lambda: detect_batch(texts, key))  # noqa: B023
        ours = TEXTS * LENGTH / seconds
        anchor = transformers_rate(vocab, texts[:ANCHOR_TEXTS])
        rows.append({"vocab_size": vocab, "native_tokens_per_s": round(ours),
                     "transformers_kgw_tokens_per_s": round(anchor),
                     "native_over_transformers_kgw": round(ours / anchor, 1), "texts": TEXTS,
                     "anchor_texts": ANCHOR_TEXTS, "tokens_per_text": LENGTH})  # fmt: skip
        print(rows[-1])
    print(write_result("native_detect", {"threads": 1, "rows": rows, "anchor": ANCHOR}))


if __name__ == "__main__":
    main()
