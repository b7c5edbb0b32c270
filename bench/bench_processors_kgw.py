"""Cost of the kgw logits processor per generated token, against transformers' WatermarkLogitsProcessor.

Batch of 8 sequences, one thread, V = 32000 and 128256; lefthash (context width 1) and
selfhash (context widths 1 and 2).  Both processors see the same ``input_ids`` and
``scores`` at every step (random logits), their outputs are checked equal, and each call
is timed.  The next tokens are either sampled from the biased logits (``sampled``: the
previous tokens are uniformly spread, the worst case for tracemark's cache of green sets,
which starts empty) or drawn with the Zipf(1.1) rank profile of natural text (``zipf``).
Reported: milliseconds per generated token per sequence, i.e. call time / 8.

    .venv/bin/python bench/bench_processors_kgw.py
"""

from __future__ import annotations

import os
import time
from typing import Any

os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np
import torch
from transformers.generation.logits_process import WatermarkLogitsProcessor

from _common import write_result
from tracemark.text import logits_processor
from tracemark.text._schemes.kgw import KGWScheme

BATCH = 8
PROMPT = 8
CASES = [
    # (seeding scheme, context width, vocabulary, generated tokens, next-token stream)
    ("lefthash", 1, 32000, 96, "sampled"),
    ("lefthash", 1, 32000, 96, "zipf"),
    ("lefthash", 1, 128256, 96, "sampled"),
    ("lefthash", 1, 128256, 96, "zipf"),
    ("selfhash", 1, 32000, 32, "sampled"),
    ("selfhash", 2, 32000, 32, "sampled"),
    ("selfhash", 1, 128256, 16, "sampled"),
]


def zipf_tokens(vocab: int, count: int, rng: np.random.Generator) -> torch.Tensor:
    ranks = rng.zipf(1.1, 8 * count)
    ranks = ranks[ranks <= vocab][:count]
    return torch.from_numpy(np.asarray(ranks - 1, dtype=np.int64)).view(-1, 1)


def measure(seeding: str, width: int, vocab: int, steps: int, stream: str) -> dict[str, Any]:
    settings = {"seeding_scheme": seeding, "context_width": width}
    scheme = KGWScheme(KGWScheme.from_transformers_config(settings, vocab_size=vocab, tokenizer_sha256="0" * 64))
    scheme.green_cache.clear()
    ours = logits_processor(scheme)
    theirs: Any = WatermarkLogitsProcessor(vocab_size=vocab, device="cpu", **scheme.watermarking_config_kwargs())
    generator = torch.Generator().manual_seed(vocab + width)
    rng = np.random.default_rng(vocab + width)
    input_ids = torch.randint(0, vocab, (BATCH, PROMPT), generator=generator)
    ours(input_ids, torch.zeros(BATCH, vocab))  # builds the selfhash table outside the timing, as theirs does
    scheme.green_cache.clear()
    ours_seconds = theirs_seconds = 0.0
    for _ in range(steps):
        scores = 3.0 * torch.randn(BATCH, vocab, generator=generator)
        started = time.perf_counter()
        ours_out = ours(input_ids, scores)
        ours_seconds += time.perf_counter() - started
        started = time.perf_counter()
        theirs_out = theirs(input_ids, scores)
        theirs_seconds += time.perf_counter() - started
        if not torch.equal(ours_out, theirs_out):
            raise AssertionError("the processors disagree")
        if stream == "zipf":
            following = zipf_tokens(vocab, BATCH, rng)
        else:
            following = torch.multinomial(torch.softmax(ours_out, dim=-1), 1, generator=generator)
        input_ids = torch.cat([input_ids, following], dim=1)
    per_token = BATCH * steps
    row = {
        "seeding_scheme": seeding,
        "context_width": width,
        "vocab_size": vocab,
        "batch": BATCH,
        "generated_tokens": steps,
        "next_tokens": stream,
        "tracemark_ms_per_token_per_seq": round(1000 * ours_seconds / per_token, 4),
        "transformers_ms_per_token_per_seq": round(1000 * theirs_seconds / per_token, 4),
        "speedup": round(theirs_seconds / ours_seconds, 1),
        "green_sets_built": scheme.green_cache.bitsets_built,
        "tokens_followed": scheme.green_cache.tokens_followed,
    }
    print(row, flush=True)
    return row


def main() -> None:
    torch.set_num_threads(1)
    rows = [measure(*case) for case in CASES]
    print(
        write_result(
            "processors_kgw",
            {
                "threads": 1,
                "note": "random logits; green-set cache empty at the start of every row",
                "rows": rows,
            },
        )
    )


if __name__ == "__main__":
    main()
