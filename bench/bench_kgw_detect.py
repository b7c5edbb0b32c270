"""Detection throughput of the kgw scheme against transformers' WatermarkDetector, on the same texts.

Texts of 200 tokens, lefthash with transformers' defaults (ratio 0.25, key 15485863), one
thread, V = 32000, 50257 and 128256, two kinds of token stream:

* ``uniform``: every token equally likely, as a random-weight model emits them; the worst
  case for caching (almost every previous token is new);
* ``zipf``: token ranks drawn from Zipf(1.1) over a random order of the vocabulary, the
  repetition profile of natural text (about 7,000 distinct tokens in 40,000 at V = 32000).

tracemark is measured in three states: ``cold_text`` (``score()`` text after text, starting
from an empty cache that fills as texts go by), ``cold_batch`` (one ``score_batch()`` over
all texts, empty cache) and ``warm`` (every green set these texts need is cached, as in a
long-running detector; ``warm_cache()`` builds them for the whole vocabulary once per key,
timed separately at V = 32000).  ``detect_batch_warm`` adds the exact p-values and
de-duplication of ``tracemark.text.detect_batch``.  transformers' detector gets no help from
its cache (its ``lru_cache`` is keyed by fresh tensors), so one pass over a subset of the
same texts measures it; its green counts on that subset are checked equal to ours.

    .venv/bin/python bench/bench_kgw_detect.py [--fraction 1.0]
"""

from __future__ import annotations

import argparse
import os
import time
from collections.abc import Callable
from typing import Any

os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np
from numpy.typing import NDArray

from _common import write_result
from tracemark.text import detect_batch
from tracemark.text._schemes.kgw import KGWScheme

LENGTH = 200
#: Texts scored by tracemark / by transformers per vocabulary (transformers is ~10^4 times slower warm).
TEXTS = {32000: 300, 50257: 200, 128256: 100}
ANCHOR_TEXTS = {32000: 24, 50257: 12, 128256: 5}
ZIPF_EXPONENT = 1.1


def seconds(action: Callable[[], Any], runs: int = 1) -> float:
    best = float("inf")
    for _ in range(runs):
        started = time.perf_counter()
        action()
        best = min(best, time.perf_counter() - started)
    return best


def make_texts(kind: str, vocab: int, count: int, rng: np.random.Generator) -> list[NDArray[np.int64]]:
    if kind == "uniform":
        return [rng.integers(0, vocab, LENGTH) for _ in range(count)]
    order = rng.permutation(vocab)
    texts = []
    for _ in range(count):
        ranks = rng.zipf(ZIPF_EXPONENT, 4 * LENGTH)
        ranks = ranks[ranks <= vocab][:LENGTH]
        while ranks.shape[0] < LENGTH:
            more = rng.zipf(ZIPF_EXPONENT, LENGTH)
            ranks = np.concatenate([ranks, more[more <= vocab]])[:LENGTH]
        texts.append(order[ranks - 1].astype(np.int64))
    return texts


def transformers_pass(vocab: int, texts: list[NDArray[np.int64]]) -> tuple[float, NDArray[np.float64]]:
    import torch
    from transformers import GPT2Config, WatermarkDetector, WatermarkingConfig

    torch.set_num_threads(1)
    # transformers' detector needs a BOS id; V - 1 never starts these texts
    config = GPT2Config(vocab_size=vocab, bos_token_id=vocab - 1, eos_token_id=vocab - 1)
    detector: Any = WatermarkDetector(config, "cpu", WatermarkingConfig())
    batch = torch.tensor(np.stack(texts))
    started = time.perf_counter()
    output = detector(batch, return_dict=True)
    elapsed = time.perf_counter() - started
    return elapsed, np.asarray(output.num_green_tokens)


def measure(vocab: int, kind: str, rng: np.random.Generator, fraction: float = 1.0) -> dict[str, Any]:
    key = KGWScheme.from_transformers_config({}, vocab_size=vocab, tokenizer_sha256="0" * 64)
    scheme = KGWScheme(key)
    cache = scheme.green_cache
    texts = make_texts(kind, vocab, max(2, round(TEXTS[vocab] * fraction)), rng)
    for text in texts:
        text[0] = text[0] % (vocab - 1)
    tokens = len(texts) * LENGTH
    anchor = texts[: max(2, round(ANCHOR_TEXTS[vocab] * fraction))]
    anchor_seconds, anchor_green = transformers_pass(vocab, anchor)
    anchor_rate = len(anchor) * LENGTH / anchor_seconds

    cache.clear()
    cold_text = seconds(lambda: [scheme.score(t) for t in texts])
    cold_built, cold_followed = cache.bitsets_built, cache.tokens_followed
    cache.clear()
    cold_batch = seconds(lambda: scheme.score_batch(texts))
    ours_green = [int(scheme.score(t).hits.sum()) for t in anchor]
    if ours_green != anchor_green.astype(int).tolist():
        raise AssertionError("green counts differ from transformers'")

    cache.clear()
    scheme.warm_cache(np.concatenate([t[:-1] for t in texts]))
    warm = seconds(lambda: [scheme.score(t) for t in texts], runs=3)
    verdicts = seconds(lambda: detect_batch(texts, key), runs=3)
    distinct_previous = len(np.unique(np.concatenate([t[:-1] for t in texts])))
    row = {
        "vocab_size": vocab,
        "stream": kind,
        "texts": len(texts),
        "tokens_per_text": LENGTH,
        "distinct_previous_tokens": distinct_previous,
        "transformers_texts": len(anchor),
        "transformers_tokens_per_s": round(anchor_rate),
        "cold_text_tokens_per_s": round(tokens / cold_text),
        "cold_text_green_sets_built": cold_built,
        "cold_text_tokens_followed": cold_followed,
        "cold_batch_tokens_per_s": round(tokens / cold_batch),
        "warm_tokens_per_s": round(tokens / warm),
        "detect_batch_warm_tokens_per_s": round(tokens / verdicts),
        "ratio_cold_text": round(tokens / cold_text / anchor_rate, 1),
        "ratio_cold_batch": round(tokens / cold_batch / anchor_rate, 1),
        "ratio_warm": round(tokens / warm / anchor_rate, 1),
        "ratio_detect_batch_warm": round(tokens / verdicts / anchor_rate, 1),
    }
    print(row, flush=True)
    return row


def main() -> None:
    import torch

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--fraction", type=float, default=1.0, help="texts (both sides) times this, for bounded runs")
    args = parser.parse_args()
    torch.set_num_threads(1)
    rng = np.random.default_rng(2026)
    rows = [measure(vocab, kind, rng, args.fraction) for vocab in TEXTS for kind in ("uniform", "zipf")]
    scheme = KGWScheme(KGWScheme.from_transformers_config({}, vocab_size=32000, tokenizer_sha256="0" * 64))
    scheme.green_cache.clear()
    warm_all = seconds(scheme.warm_cache)
    warm_up = {
        "vocab_size": 32000,
        "green_sets": len(scheme.green_cache),
        "seconds": round(warm_all, 1),
        "memory_mib": round(len(scheme.green_cache) * scheme.green_cache.row_bytes / 2**20),
    }
    print({"warm_cache_whole_vocabulary": warm_up})
    print(
        write_result(
            "kgw_detect",
            {
                "threads": 1,
                "fraction_of_texts": args.fraction,
                "scheme": "kgw lefthash, transformers defaults (greenlist_ratio 0.25, hashing_key 15485863)",
                "rows": rows,
                "warm_cache_whole_vocabulary": warm_up,
            },
        )
    )


if __name__ == "__main__":
    main()
