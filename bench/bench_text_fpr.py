"""False-positive rates of every text scheme on unmarked prose and source code.

Scores at least one million windows of unmarked text (Python's reference topics and
docstrings, and the standard library's source), tokenised with the reference model's
tokenizer, under many independent keys per scheme.  For each level alpha the observed
share of windows with p <= alpha must lie within (or below) its 95 % Clopper–Pearson
interval.  Next to each count stands the number an exactly calibrated detector expects on
these very windows (the sum of each window's exact test size, below alpha because the
binomial test is discrete) and the Poisson probability of seeing at least the observed
count: at 1e-6 and a million windows about one hit is expected, so "no hit" is a coin
flip for an exact test and the comparison with the expectation is the meaningful one.
Also reports what counting repeated n-grams (no de-duplication, transformers' default)
would have given for KGW on source code.

    .venv/bin/python bench/bench_text_fpr.py [--keys 24] [--window 200]
"""

from __future__ import annotations

import argparse
import json
import time
from typing import Any

import numpy as np
from scipy import stats

from _common import RESULTS, reference_model, temporary_home, write_result
from tracemark.keys import Keyring
from tracemark.text import SCHEME_NAMES, TextTokenizer, load_scheme, new_text_key
from tracemark.text._calibrate import RateAtLevel, exact_sizes, false_positive_rates, window_p_values, window_tests
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


def with_expectation(rate: RateAtLevel, trials: np.ndarray, probability: float) -> dict[str, Any]:
    expected = float(exact_sizes(trials, probability, rate.alpha).sum())
    at_least = float(stats.poisson.sf(rate.false_positives - 1, expected)) if rate.false_positives else 1.0
    return rate.__dict__ | {
        "within_nominal": rate.within_nominal,
        "expected_if_exact": round(expected, 3),
        "poisson_p_at_least_observed": at_least,
    }


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
        all_trials: list[np.ndarray] = []
        probability = 0.0
        for name, ids in corpora.items():
            p_values, trials = [], []
            for _ in range(args.keys):
                key = new_text_key(keyring, scheme, model, params=SCHEME_PARAMS[scheme])
                probability = load_scheme(key).success_probability
                window_p, window_trials = window_tests(key, ids, args.window)
                p_values.append(window_p)
                trials.append(window_trials)
            joined, joined_trials = np.concatenate(p_values), np.concatenate(trials)
            all_p.append(joined)
            all_trials.append(joined_trials)
            per_corpus[name] = [
                with_expectation(rate, joined_trials, probability) for rate in false_positive_rates(joined, ALPHAS)
            ]
        if scheme == "kgw":
            # what counting repeated n-grams (transformers' default) gives on source code
            key = new_text_key(keyring, scheme, model, params=SCHEME_PARAMS[scheme])
            counted = window_p_values(key, corpora["code"], args.window, deduplicate=False)
            per_corpus["code_without_dedup_one_key"] = [r.__dict__ for r in false_positive_rates(counted, ALPHAS)]
        combined, combined_trials = np.concatenate(all_p), np.concatenate(all_trials)
        rates = false_positive_rates(combined, ALPHAS)
        results["schemes"][scheme] = {
            "params": SCHEME_PARAMS[scheme],
            "windows": int(combined.shape[0]),
            "rates": [with_expectation(rate, combined_trials, probability) for rate in rates],
            "per_corpus": per_corpus,
            "seconds": round(time.perf_counter() - started, 1),
        }
        write_result("text_fpr", results)  # after each scheme, so a long run keeps what it measured
        print(scheme, int(combined.shape[0]), "windows")
        for row in results["schemes"][scheme]["rates"]:
            print(f"  alpha {row['alpha']:g}: {row['false_positives']} ({row['rate']:.2e}), "
                  f"95% CI [{row['interval_low']:.2e}, {row['interval_high']:.2e}] ok={row['within_nominal']}, "
                  f"expected if exact {row['expected_if_exact']}")  # fmt: skip
    print(write_result("text_fpr", results))  # once more with every scheme


if __name__ == "__main__":
    main()
