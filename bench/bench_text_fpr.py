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

Windows that share units (the same trigram of indentation in every window of source code)
are coloured together under one key, so the false-positive count of one key is far more
variable than a binomial count (about ten times the Poisson spread on code).  The
binomial interval over all windows is therefore too narrow; ``by_key`` gives the rate and
the observed/expected ratio with 95 % intervals from the spread across keys (each key and
corpus pair is one independent cluster), which is the interval the goal is judged by.
Also reports what counting repeated n-grams (no de-duplication, transformers' default)
would have given for KGW on source code.

    .venv/bin/python bench/bench_text_fpr.py [--keys 24] [--window 200]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from typing import Any

import numpy as np
from scipy import stats

from _common import REPO, RESULTS, reference_model, temporary_home, write_result
from tracemark.keys import Keyring
from tracemark.text import SCHEME_NAMES, TextTokenizer, load_scheme, new_text_key

sys.path.insert(0, str(REPO))
from tests.support.calibrate import RateAtLevel, exact_sizes, false_positive_rates, window_p_values, window_tests
from tests.support.corpora import CORPORA

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


def clustered(counts: np.ndarray, denominators: np.ndarray) -> tuple[float, float, float]:
    """Ratio estimate sum(counts)/sum(denominators) with a 95 % interval from the spread across clusters."""
    total = float(denominators.sum())
    ratio = float(counts.sum()) / total
    residuals = counts - ratio * denominators
    k = counts.shape[0]
    se = float(np.sqrt(k / (k - 1) * np.sum(residuals**2))) / total
    half = float(stats.t.ppf(0.975, k - 1)) * se
    return ratio, max(0.0, ratio - half), ratio + half


def by_key(clusters: list[tuple[np.ndarray, np.ndarray]], probability: float) -> list[dict[str, Any]]:
    """Per level: rate and observed/expected with intervals over (key, corpus) clusters."""
    rows = []
    windows = np.array([p.shape[0] for p, _ in clusters], dtype=np.float64)
    for alpha in ALPHAS:
        observed = np.array([np.count_nonzero(p <= alpha) for p, _ in clusters], dtype=np.float64)
        expected = np.array([exact_sizes(t, probability, alpha).sum() for _, t in clusters], dtype=np.float64)
        rate, rate_low, rate_high = clustered(observed, windows)
        ratio, ratio_low, ratio_high = clustered(observed, expected)
        rows.append({
            "alpha": alpha, "clusters": len(clusters), "rate": rate, "rate_low": rate_low, "rate_high": rate_high,
            "within_nominal": rate_low <= alpha, "observed_over_expected": ratio,
            "observed_over_expected_low": ratio_low, "observed_over_expected_high": ratio_high,
        })  # fmt: skip
    return rows


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
        clusters: list[tuple[np.ndarray, np.ndarray]] = []
        probability = 0.0
        for name, ids in corpora.items():
            p_values, trials = [], []
            for _ in range(args.keys):
                key = new_text_key(keyring, scheme, model, params=SCHEME_PARAMS[scheme])
                probability = load_scheme(key).success_probability
                window_p, window_trials = window_tests(key, ids, args.window)
                clusters.append((window_p, window_trials))
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
            "by_key": by_key(clusters, probability),
            "per_corpus": per_corpus,
            "seconds": round(time.perf_counter() - started, 1),
        }
        write_result("text_fpr", results)  # after each scheme, so a long run keeps what it measured
        print(scheme, int(combined.shape[0]), "windows")
        for row in results["schemes"][scheme]["rates"]:
            print(f"  alpha {row['alpha']:g}: {row['false_positives']} ({row['rate']:.2e}), "
                  f"95% CI [{row['interval_low']:.2e}, {row['interval_high']:.2e}] ok={row['within_nominal']}, "
                  f"expected if exact {row['expected_if_exact']}")  # fmt: skip
        for row in results["schemes"][scheme]["by_key"]:
            print(f"  by key, alpha {row['alpha']:g}: rate {row['rate']:.2e} [{row['rate_low']:.2e}, "
                  f"{row['rate_high']:.2e}], observed/expected {row['observed_over_expected']:.2f} "
                  f"[{row['observed_over_expected_low']:.2f}, {row['observed_over_expected_high']:.2f}]")  # fmt: skip
    print(write_result("text_fpr", results))  # once more with every scheme


if __name__ == "__main__":
    main()
