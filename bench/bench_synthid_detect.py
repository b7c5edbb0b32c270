"""SynthID detection throughput: tracemark vs transformers' g-value + mask path, one thread, same process.

transformers has no SynthID p-value; its detection path is ``compute_g_values`` plus
``compute_context_repetition_mask`` and ``compute_eos_token_mask`` (then a Bayesian or
mean-score detector).  That path, followed by the mean score and an exact binomial tail,
is the yardstick.  tracemark is measured four ways on the same texts: ``score()`` alone
(hashing and g-values), ``score()`` with the weighted-mean statistic, the full
``detect_tokens`` verdict (de-duplication, exact binomial p-value, weighted mean with its
exact-or-bounded p-value), and ``detect_batch`` (the whole-text columns of all texts in one
pass: de-duplication and exact binomial p-values; a row's weighted mean on demand).  The
script first checks that both paths see identical g-values.

In the same process and on the same tokens, the KGW path (lefthash with transformers'
defaults) is measured too (#23 asked for SynthID "near the KGW path"): tracemark's
``detect_batch`` with an empty green-set cache (``cold``) and with the cache warmed on these
texts (``warm``, a long-running detector), and transformers' ``WatermarkDetector`` on a subset
(green counts checked equal).  ``ratio_synthid_*_over_kgw_*`` compares the two batch paths.

    .venv/bin/python bench/bench_synthid_detect.py
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from typing import Any

os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np
import torch
from transformers.generation.logits_process import SynthIDTextWatermarkLogitsProcessor

from _common import write_result
from tracemark._stats import binomial_upper_tail
from tracemark.keys import make_text_key
from tracemark.text import detect_batch, detect_tokens
from tracemark.text._schemes.kgw import KGWScheme
from tracemark.text._schemes.synthid import SynthIDScheme

VOCAB, TEXTS, LENGTH, ANCHOR_TEXTS = 32000, 2000, 200, 500
#: Texts transformers' KGW WatermarkDetector scores (it is ~10^3 times slower than the batch path).
KGW_ANCHOR_TEXTS = 40


def best_of(runs: int, action: Callable[[], Any]) -> float:
    timings = []
    for _ in range(runs):
        started = time.perf_counter()
        action()
        timings.append(time.perf_counter() - started)
    return min(timings)


def main() -> None:
    torch.set_num_threads(1)
    rng = np.random.default_rng(2026)
    keys = [int(k) for k in rng.integers(0, 1 << 31, 30)]
    texts = rng.integers(0, VOCAB, (TEXTS, LENGTH))
    texts[:, 0] %= VOCAB - 1  # V - 1 is the BOS id transformers' KGW detector is given: never a first token
    theirs: Any = SynthIDTextWatermarkLogitsProcessor(ngram_len=5, keys=keys, sampling_table_size=1 << 16,
                                                 sampling_table_seed=0, context_history_size=1024,
                                                 device=torch.device("cpu"))  # fmt: skip
    anchor_batch = torch.tensor(texts[:ANCHOR_TEXTS])

    def transformers_path() -> list[float]:
        g = theirs.compute_g_values(anchor_batch)
        mask = (
            theirs.compute_context_repetition_mask(anchor_batch)
            * theirs.compute_eos_token_mask(anchor_batch, VOCAB - 1)[:, 4:]
        )
        hits = (g * mask[:, :, None]).sum(dim=(1, 2)).tolist()
        trials = (mask.sum(dim=1) * len(keys)).tolist()
        return [binomial_upper_tail(int(h), int(t), 0.5).p_value for h, t in zip(hits, trials, strict=True)]

    rows: dict[str, Any] = {}
    for version in ("0.2.1", "sha256"):
        key = make_text_key(scheme="synthid", scheme_version=version, params={}, vocab_size=VOCAB,
                            tokenizer_sha256="0" * 64, secret={"keys": keys})  # fmt: skip
        scheme = SynthIDScheme(key)
        if version == "0.2.1":
            expected = theirs.compute_g_values(anchor_batch[:50]).numpy()
            for row in range(50):
                layer_values = scheme.score(texts[row]).layer_values
                assert layer_values is not None
                assert np.array_equal(layer_values, expected[row])
        score_s = best_of(3, lambda: [scheme.score(t) for t in texts])  # noqa: B023
        stats_s = best_of(3, lambda: [scheme.extra_statistics(scheme.score(t)) for t in texts])  # noqa: B023
        verdict_s = best_of(2, lambda: [detect_tokens(t, key, scan_windows=False) for t in texts])  # noqa: B023
        batch_s = best_of(3, lambda: detect_batch(list(texts), key))  # noqa: B023
        one_long = rng.integers(0, VOCAB, 1_000_000)
        long_s = best_of(3, lambda: scheme.score(one_long))  # noqa: B023
        tag = version.replace(".", "_")
        rows[f"tracemark_{tag}_score_tokens_per_s"] = round(TEXTS * LENGTH / score_s)
        rows[f"tracemark_{tag}_score_plus_weighted_tokens_per_s"] = round(TEXTS * LENGTH / stats_s)
        rows[f"tracemark_{tag}_detect_tokens_verdict_tokens_per_s"] = round(TEXTS * LENGTH / verdict_s)
        rows[f"tracemark_{tag}_detect_batch_tokens_per_s"] = round(TEXTS * LENGTH / batch_s)
        rows[f"tracemark_{tag}_score_one_1M_token_text_tokens_per_s"] = round(1_000_000 / long_s)

    rows.update(kgw_rows(texts))
    anchor_s = best_of(2, transformers_path)
    rows["transformers_g_values_masks_binomial_tokens_per_s"] = round(ANCHOR_TEXTS * LENGTH / anchor_s)
    anchor = rows["transformers_g_values_masks_binomial_tokens_per_s"]
    rows["ratio_score_0_2_1"] = round(rows["tracemark_0_2_1_score_tokens_per_s"] / anchor, 1)
    rows["ratio_verdict_0_2_1"] = round(rows["tracemark_0_2_1_detect_tokens_verdict_tokens_per_s"] / anchor, 1)
    rows["ratio_verdict_sha256"] = round(rows["tracemark_sha256_detect_tokens_verdict_tokens_per_s"] / anchor, 1)
    rows["ratio_detect_batch_0_2_1"] = round(rows["tracemark_0_2_1_detect_batch_tokens_per_s"] / anchor, 1)
    rows["ratio_detect_batch_sha256"] = round(rows["tracemark_sha256_detect_batch_tokens_per_s"] / anchor, 1)
    for tag in ("0_2_1", "sha256"):
        for state in ("cold", "warm"):
            rows[f"ratio_synthid_{tag}_over_kgw_{state}"] = round(
                rows[f"tracemark_{tag}_detect_batch_tokens_per_s"] / rows[f"kgw_detect_batch_{state}_tokens_per_s"], 2
            )
    rows["ratio_kgw_detect_batch_warm_over_transformers_kgw"] = round(
        rows["kgw_detect_batch_warm_tokens_per_s"] / rows["transformers_kgw_detector_tokens_per_s"], 1
    )
    for name, value in rows.items():
        print(f"{name}: {value}")
    print(write_result("synthid_detect", {
        "threads": 1, "vocab_size": VOCAB, "texts": TEXTS, "anchor_texts": ANCHOR_TEXTS, "tokens_per_text": LENGTH,
        "depth": 30, "ngram_len": 5, "kgw": "lefthash, transformers' defaults (ratio 0.25, key 15485863)",
        "kgw_anchor_texts": KGW_ANCHOR_TEXTS, "results": rows,
    }))  # fmt: skip


def kgw_rows(texts: Any) -> dict[str, int]:
    """KGW lefthash (transformers' defaults) on the same tokens: tracemark's batch path and transformers' detector."""
    from transformers import GPT2Config, WatermarkDetector, WatermarkingConfig

    key = KGWScheme.from_transformers_config({}, vocab_size=VOCAB, tokenizer_sha256="0" * 64)
    scheme = KGWScheme(key)
    sequences = list(texts)
    scheme.green_cache.clear()
    started = time.perf_counter()
    detect_batch(sequences, key)
    cold_s = time.perf_counter() - started
    scheme.warm_cache(np.concatenate([t[:-1] for t in sequences]))
    warm_s = best_of(3, lambda: detect_batch(sequences, key))
    config = GPT2Config(vocab_size=VOCAB, bos_token_id=VOCAB - 1, eos_token_id=VOCAB - 1)
    detector: Any = WatermarkDetector(config, "cpu", WatermarkingConfig())
    anchor = torch.tensor(np.stack(sequences[:KGW_ANCHOR_TEXTS]))
    started = time.perf_counter()
    output = detector(anchor, return_dict=True)
    anchor_s = time.perf_counter() - started
    ours = [int(scheme.score(t).hits.sum()) for t in sequences[:KGW_ANCHOR_TEXTS]]
    if ours != np.asarray(output.num_green_tokens).astype(int).tolist():
        raise AssertionError("KGW green counts differ from transformers'")
    tokens = len(sequences) * LENGTH
    return {
        "kgw_detect_batch_cold_tokens_per_s": round(tokens / cold_s),
        "kgw_detect_batch_warm_tokens_per_s": round(tokens / warm_s),
        "transformers_kgw_detector_tokens_per_s": round(KGW_ANCHOR_TEXTS * LENGTH / anchor_s),
    }


if __name__ == "__main__":
    main()
