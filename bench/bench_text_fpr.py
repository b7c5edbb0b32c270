"""False-positive rates of every text scheme on unmarked prose and source code.

Scores at least one million windows of unmarked text (Python's reference topics and
docstrings, and the standard library's source), tokenised with the reference model's
tokenizer, under many independent keys per scheme.  For each level alpha the observed
share of windows with p <= alpha must lie within (or below) its 95 % Clopper–Pearson
interval, and no window may reach 1e-6.  Also reports what counting repeated n-grams
(no de-duplication, transformers' default) would have given for KGW on source code.

    .venv/bin/python bench/bench_text_fpr.py [--keys 24] [--window 200]
"""

from __future__ import annotations

import argparse
import json
import time
from typing import Any

import numpy as np

from _common import RESULTS, reference_model, temporary_home, write_result
from tracemark.keys import Keyring
from tracemark.text import SCHEME_NAMES, TextTokenizer, new_text_key
from tracemark.text._calibrate import false_positive_rates, window_p_values
from tracemark.text._corpora import CORPORA

ALPHAS = (1e-2, 1e-3, 1e-4, 1e-6)
SCHEME_PARAMS: dict[str, dict[str, Any]] = {
    "native": {},
    "kgw": {"seeding_scheme": "lefthash", "context_width": 1},
    "synthid": {},
}


def tokenise_corpus(tokenizer: TextTokenizer, name: str) -> np.ndarray:
    parts = [tokenizer.encode(text).ids for text in CORPORA[name]()]
    return np.concatenate(parts)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--keys", type=int, default=24, help="independent keys per scheme")
    parser.add_argument("--window", type=int, default=200, help="tokens per window")
    parser.add_argument("--schemes", nargs="*", default=list(SCHEME_NAMES))
    parser.add_argument(
        "--keep-other-schemes", action="store_true", help="keep earlier results of schemes not rerun (same settings)"
    )
    args = parser.parse_args()
    temporary_home()
    keyring = Keyring()
    keyring.create()
    model = reference_model()
    tokenizer = TextTokenizer(model)
    corpora = {name: tokenise_corpus(tokenizer, name) for name in CORPORA}
    results: dict[str, Any] = {"window_tokens": args.window, "keys_per_scheme": args.keys, "schemes": {}}
    previous = RESULTS / "text_fpr.json"
    if args.keep_other_schemes and previous.is_file():
        earlier = json.loads(previous.read_text())
        if (earlier.get("window_tokens"), earlier.get("keys_per_scheme")) == (args.window, args.keys):
            results["schemes"] = earlier.get("schemes", {})
    results["corpus_tokens"] = {name: int(ids.shape[0]) for name, ids in corpora.items()}
    for scheme in args.schemes:
        started = time.perf_counter()
        per_corpus: dict[str, Any] = {}
        all_p: list[np.ndarray] = []
        for name, ids in corpora.items():
            p_values = []
            for _ in range(args.keys):
                key = new_text_key(keyring, scheme, model, params=SCHEME_PARAMS[scheme])
                p_values.append(window_p_values(key, ids, args.window))
            joined = np.concatenate(p_values)
            all_p.append(joined)
            per_corpus[name] = [rate.__dict__ for rate in false_positive_rates(joined, ALPHAS)]
        if scheme == "kgw":
            # what counting repeated n-grams (transformers' default) gives on source code
            key = new_text_key(keyring, scheme, model, params=SCHEME_PARAMS[scheme])
            counted = window_p_values(key, corpora["code"], args.window, deduplicate=False)
            per_corpus["code_without_dedup_one_key"] = [r.__dict__ for r in false_positive_rates(counted, ALPHAS)]
        combined = np.concatenate(all_p)
        rates = false_positive_rates(combined, ALPHAS)
        results["schemes"][scheme] = {
            "params": SCHEME_PARAMS[scheme],
            "windows": int(combined.shape[0]),
            "rates": [rate.__dict__ | {"within_nominal": rate.within_nominal} for rate in rates],
            "per_corpus": per_corpus,
            "seconds": round(time.perf_counter() - started, 1),
        }
        write_result("text_fpr", results)  # after each scheme, so a long run keeps what it measured
        print(scheme, int(combined.shape[0]), "windows")
        for rate in rates:
            print(f"  alpha {rate.alpha:g}: {rate.false_positives} ({rate.rate:.2e}), "
                  f"95% CI [{rate.interval_low:.2e}, {rate.interval_high:.2e}] ok={rate.within_nominal}")  # fmt: skip
    print(write_result("text_fpr", results))  # once more with every scheme


if __name__ == "__main__":
    main()
