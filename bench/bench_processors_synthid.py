"""Generation overhead of the SynthID processor: tracemark's top-k tournament vs transformers' processor.

Batch 8, V = 32,000, one thread, same process.  Each step feeds both processors the same
random logits and the same growing ``input_ids``; transformers' processor runs after
``TemperatureLogitsWarper`` and ``TopKLogitsWarper(40)`` as in ``generate()``, tracemark's
processor does temperature and top-k itself.  Before timing, the script checks that the
two give the same distribution at every step and that tracemark's g-values for the top-k
candidates equal transformers' (``_compute_keys`` + ``sample_g_values``).  Reported in
milliseconds per token per sequence (time per call / batch).

    .venv/bin/python bench/bench_processors_synthid.py
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from typing import Any

os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np
import torch
from transformers.generation.logits_process import (
    SynthIDTextWatermarkLogitsProcessor,
    TemperatureLogitsWarper,
    TopKLogitsWarper,
)

from _common import write_result
from tracemark.keys import make_text_key
from tracemark.text._hf_synthid import SynthIDLogitsProcessor
from tracemark.text._schemes.synthid import SynthIDScheme

BATCH, VOCAB, TOP_K, PROMPT = 8, 32000, 40, 32
CHECK_STEPS, OURS_STEPS, THEIRS_STEPS = 6, 300, 8


def make_scheme(keys: list[int], version: str) -> SynthIDScheme:
    key = make_text_key(scheme="synthid", scheme_version=version, params={"top_k": TOP_K}, vocab_size=VOCAB,
                        tokenizer_sha256="0" * 64, secret={"keys": keys})  # fmt: skip
    return SynthIDScheme(key)


def make_theirs(keys: list[int]) -> Any:
    return SynthIDTextWatermarkLogitsProcessor(ngram_len=5, keys=keys, sampling_table_size=1 << 16,
                                               sampling_table_seed=0, context_history_size=1024,
                                               device=torch.device("cpu"))  # fmt: skip


def per_token_ms(step: Callable[[torch.Tensor, torch.Tensor], torch.Tensor], steps: int, seed: int) -> float:
    """Mean milliseconds per token per sequence over ``steps`` calls on a growing random sequence."""
    rng = np.random.default_rng(seed)
    ids = torch.tensor(rng.integers(0, VOCAB, (BATCH, PROMPT)))
    logits = [torch.tensor(rng.normal(0.0, 3.0, (BATCH, VOCAB)), dtype=torch.float32) for _ in range(4)]
    step(ids, logits[0])  # warm-up (tables, state)
    elapsed = 0.0
    for i in range(steps):
        started = time.perf_counter()
        step(ids, logits[i % 4])
        elapsed += time.perf_counter() - started
        ids = torch.cat([ids, torch.tensor(rng.integers(0, VOCAB, (BATCH, 1)))], dim=1)
    return 1000.0 * elapsed / steps / BATCH


def check_identical(keys: list[int]) -> dict[str, Any]:
    """Same distribution and same top-k g-values as transformers, step after step."""
    scheme = make_scheme(keys, "0.2.1")
    ours = SynthIDLogitsProcessor(scheme)
    theirs = make_theirs(keys)
    temperature, top_k = TemperatureLogitsWarper(1.0), TopKLogitsWarper(TOP_K)
    rng = np.random.default_rng(1)
    ids = torch.tensor(rng.integers(0, VOCAB, (BATCH, PROMPT)))
    theirs._init_state(BATCH)
    theirs.state.context = ids[:, -5:-1].clone()
    worst, candidates_checked = 0.0, 0
    for _ in range(CHECK_STEPS):
        logits = torch.tensor(rng.normal(0.0, 3.0, (BATCH, VOCAB)), dtype=torch.float32)
        mine = torch.softmax(ours(ids, logits), dim=-1)
        reference = torch.softmax(theirs(ids, top_k(ids, temperature(ids, logits))), dim=-1)
        worst = max(worst, float((mine - reference).abs().max()))
        top = torch.topk(logits, TOP_K, dim=-1).indices
        layer_keys, _ = theirs._compute_keys(ids[:, -4:], top)
        expected = theirs.sample_g_values(layer_keys).numpy()
        assert np.array_equal(scheme.candidate_g_values(ids[:, -4:].numpy(), top.numpy()), expected)
        candidates_checked += expected.shape[0] * expected.shape[1]
        ids = torch.cat([ids, torch.multinomial(mine, 1)], dim=1)
    assert worst < 1e-5, worst
    return {"steps": CHECK_STEPS, "max_abs_probability_difference": worst, "candidates_g_checked": candidates_checked}


def main() -> None:
    torch.set_num_threads(1)
    keys = [int(k) for k in np.random.default_rng(0).integers(0, 1 << 31, 30)]
    identical = check_identical(keys)
    print("identical:", identical)

    scheme = make_scheme(keys, "0.2.1")
    ours = SynthIDLogitsProcessor(scheme)
    ours_ms = per_token_ms(lambda ids, logits: ours(ids, logits), OURS_STEPS, 2)
    sha_processor = SynthIDLogitsProcessor(make_scheme(keys, "sha256"))
    sha_ms = per_token_ms(lambda ids, logits: sha_processor(ids, logits), OURS_STEPS, 2)
    topk_ms = per_token_ms(lambda ids, logits: torch.topk(logits, TOP_K, dim=-1).values, OURS_STEPS, 2)
    warp = TopKLogitsWarper(TOP_K)
    warp_ms = per_token_ms(lambda ids, logits: warp(ids, logits), OURS_STEPS, 2)

    theirs = make_theirs(keys)
    theirs_ms = per_token_ms(lambda ids, logits: theirs(ids, logits), THEIRS_STEPS, 2)
    pipeline = make_theirs(keys)
    pipeline_ms = per_token_ms(lambda ids, logits: pipeline(ids, warp(ids, logits)), THEIRS_STEPS, 2)

    rows = {
        "transformers_synthid_processor_ms": round(theirs_ms, 3),
        "transformers_topk_warper_plus_synthid_ms": round(pipeline_ms, 3),
        "tracemark_synthid_0_2_1_ms": round(ours_ms, 4),
        "tracemark_synthid_sha256_ms": round(sha_ms, 4),
        "torch_topk_alone_ms": round(topk_ms, 4),
        "transformers_topk_warper_alone_ms": round(warp_ms, 4),
        "tracemark_minus_topk_ms": round(ours_ms - topk_ms, 4),
        "speedup_vs_transformers_processor": round(theirs_ms / ours_ms, 1),
        "speedup_vs_transformers_topk_plus_processor": round(pipeline_ms / ours_ms, 1),
    }
    for name, value in rows.items():
        print(f"{name}: {value}")
    print(write_result("synthid_processor", {
        "threads": 1, "batch": BATCH, "vocab_size": VOCAB, "top_k": TOP_K, "depth": 30, "ngram_len": 5,
        "unit": "ms per token per sequence", "steps": {"tracemark": OURS_STEPS, "transformers": THEIRS_STEPS},
        "identical_to_transformers": identical, "results": rows,
    }))  # fmt: skip


if __name__ == "__main__":
    main()
