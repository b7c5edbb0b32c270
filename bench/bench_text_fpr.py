"""False-positive rates of every text scheme on unmarked prose and source code.

Scores about one million windows of unmarked text (Python's reference topics and docstrings,
and the standard library's source), tokenised with the reference model's tokenizer, under many
independent keys per scheme (one fresh key per corpus and key index).

**Criterion.** A level alpha *passes* only when the one-sided 95 % Clopper–Pearson upper bound
of the observed rate is at or below alpha, so a level fails when the data cannot show the rate
is that low, not only when it is too high.  Windows scored under one key are not independent:
they share units (the same indentation trigram, the same ``self.``), which one key colours the
same way in every window, so one key's count spreads far more than a binomial count (on code
70 to 90 times the binomial variance at 1e-2).  The bounds are therefore computed on an
effective sample, windows and false positives divided by the design effect (the variance of
the per-key count over its expectation, at least 1; Kish 1965), measured from the keys
themselves.  Each level reports ``status``: ``pass``, ``excess`` (the lower bound is above
alpha) or ``not demonstrated`` (too few effective windows either way), and the exact one-sided
binomial p-value of "rate <= alpha" on the raw counts for reference.

Next to each count stands the number an exactly calibrated detector expects on these very
windows (the sum of each window's exact test size, below alpha because the binomial test is
discrete).  ``by_key`` gives observed/expected with a 95 % interval from the spread across keys
(each key and corpus pair is one independent cluster).  Also reports what counting repeated
n-grams (no de-duplication, transformers' default) would have given for KGW on source code.
``bench/bench_text_fpr_code.py`` explains the spread across keys.

    .venv/bin/python bench/bench_text_fpr.py [--keys 50] [--window 200]
    .venv/bin/python bench/bench_text_fpr.py --schemes native-w1 native-w2 --name text_fpr_keys   # #22 item 4
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from typing import Any

import numpy as np
from scipy import stats

from _common import REPO, reference_model, results_dir, temporary_home, write_result
from tracemark.text import SCHEME_NAMES, TextTokenizer, load_scheme

sys.path.insert(0, str(REPO))
from tests.support.calibrate import (
    RateAtLevel,
    design_effect,
    exact_sizes,
    false_positive_rates,
    fresh_text_key,
    window_p_values,
    window_tests,
)
from tests.support.corpora import CORPORA

ALPHAS = (1e-2, 1e-3, 1e-4, 1e-6)
SCHEME_PARAMS: dict[str, dict[str, Any]] = {
    "native": {},
    # the key-choice comparison of #22 (item 4): each context width named explicitly, whatever the default is
    "native-w1": {"context_width": 1},
    "native-w2": {"context_width": 2},
    "kgw": {"seeding_scheme": "lefthash", "context_width": 1},
    "synthid": {},
}
CRITERION = (
    "pass: one-sided 95 % Clopper-Pearson upper bound of the rate <= alpha, on windows / design effect "
    "(design effect = variance / expectation of the per-key count, at least 1); excess: the lower bound > alpha"
)

Cluster = tuple[np.ndarray, np.ndarray]


def tokenise_corpus(tokenizer: TextTokenizer, name: str) -> np.ndarray:
    parts = [tokenizer.encode(text).ids for text in CORPORA[name]()]
    return np.concatenate(parts)


def design_effects(groups: list[list[Cluster]], probability: float) -> list[float]:
    """Per level: the variance of the pooled count over its expectation (at least 1).

    Clusters of one group (one corpus) are alike; the pooled variance is the sum of each
    group's per-cluster variance, so groups of different sizes do not inflate it.
    """
    effects = []
    for alpha in ALPHAS:
        variance = mean = 0.0
        for group in groups:
            counts = [float(np.count_nonzero(p <= alpha)) for p, _ in group]
            expected = [float(exact_sizes(t, probability, alpha).sum()) for _, t in group]
            effect = design_effect(counts, expected)
            variance += effect * float(np.sum(expected))
            mean += float(np.sum(expected))
        effects.append(variance / mean if mean > 0 else 1.0)
    return effects


def rates(groups: list[list[Cluster]], probability: float) -> list[dict[str, Any]]:
    """Pooled rates of the clusters at every level, with the criterion's verdict and the exact expectation."""
    clusters = [cluster for group in groups for cluster in group]
    p_values = np.concatenate([p for p, _ in clusters])
    trials = np.concatenate([t for _, t in clusters])
    rows = []
    for rate in false_positive_rates(p_values, ALPHAS, design_effects(groups, probability)):
        rows.append(with_expectation(rate, trials, probability))
    return rows


def with_expectation(rate: RateAtLevel, trials: np.ndarray, probability: float) -> dict[str, Any]:
    expected = float(exact_sizes(trials, probability, rate.alpha).sum())
    return rate.to_json() | {
        "expected_if_exact": round(expected, 3),
        "observed_over_expected": round(rate.false_positives / expected, 3) if expected else None,
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


def by_key(clusters: list[Cluster], probability: float) -> list[dict[str, Any]]:
    """Per level: observed/expected with an interval over (key, corpus) clusters."""
    rows = []
    for alpha in ALPHAS:
        observed = np.array([np.count_nonzero(p <= alpha) for p, _ in clusters], dtype=np.float64)
        expected = np.array([exact_sizes(t, probability, alpha).sum() for _, t in clusters], dtype=np.float64)
        ratio, ratio_low, ratio_high = clustered(observed, expected)
        rows.append({
            "alpha": alpha, "clusters": len(clusters), "observed_over_expected": ratio,
            "observed_over_expected_low": ratio_low, "observed_over_expected_high": ratio_high,
            "per_key_rate_max": float((observed / np.array([p.shape[0] for p, _ in clusters])).max()),
        })  # fmt: skip
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--keys", type=int, default=50, help="independent keys per scheme and corpus")
    parser.add_argument("--window", type=int, default=200, help="tokens per window")
    parser.add_argument("--schemes", nargs="*", default=list(SCHEME_NAMES), choices=list(SCHEME_PARAMS))
    parser.add_argument("--name", default="text_fpr", help="results file name (without .json)")
    parser.add_argument(
        "--keep-other-schemes", action="store_true", help="keep earlier results of schemes not rerun (same settings)"
    )
    args = parser.parse_args()
    temporary_home()
    model = reference_model()
    tokenizer = TextTokenizer(model)
    corpora = {name: tokenise_corpus(tokenizer, name) for name in CORPORA}
    results: dict[str, Any] = {
        "window_tokens": args.window,
        "keys_per_scheme": args.keys,
        "criterion": CRITERION,
        "schemes": {},
    }
    previous = results_dir() / f"{args.name}.json"
    if args.keep_other_schemes and previous.is_file():
        earlier = json.loads(previous.read_text())
        same = (earlier.get("window_tokens"), earlier.get("keys_per_scheme"), earlier.get("criterion"))
        if same == (args.window, args.keys, CRITERION):
            results["schemes"] = earlier.get("schemes", {})
    results["corpus_tokens"] = {name: int(ids.shape[0]) for name, ids in corpora.items()}
    for scheme in args.schemes:
        started = time.perf_counter()
        per_corpus: dict[str, Any] = {}
        groups: list[list[Cluster]] = []
        probability = 0.0
        for name, ids in corpora.items():
            group = []
            for _ in range(args.keys):
                key = fresh_text_key(scheme.split("-")[0], model, SCHEME_PARAMS[scheme])
                probability = load_scheme(key).success_probability
                group.append(window_tests(key, ids, args.window))
            groups.append(group)
            per_corpus[name] = rates([group], probability)
        clusters = [cluster for group in groups for cluster in group]
        if scheme == "kgw":
            # what counting repeated n-grams (transformers' default) gives on source code
            key = fresh_text_key(scheme, model, SCHEME_PARAMS[scheme])
            counted = window_p_values(key, corpora["code"], args.window, deduplicate=False)
            per_corpus["code_without_dedup_one_key"] = [r.to_json() for r in false_positive_rates(counted, ALPHAS)]
        rows = rates(groups, probability)
        results["schemes"][scheme] = {
            "params": SCHEME_PARAMS[scheme],
            "windows": int(sum(p.shape[0] for p, _ in clusters)),
            "rates": rows,
            "levels_passed": [row["alpha"] for row in rows if row["passes"]],
            "by_key": by_key(clusters, probability),
            "per_corpus": per_corpus,
            "seconds": round(time.perf_counter() - started, 1),
        }
        write_result(args.name, results)  # after each scheme, so a long run keeps what it measured
        print(scheme, results["schemes"][scheme]["windows"], "windows")
        for row in rows:
            print(f"  alpha {row['alpha']:g}: {row['false_positives']} ({row['rate']:.2e}), expected if exact "
                  f"{row['expected_if_exact']}, design effect {row['design_effect']:.1f}, upper bound "
                  f"{row['upper_bound_95']:.2e}: {row['status']}")  # fmt: skip
    print(write_result(args.name, results))  # once more with every scheme


if __name__ == "__main__":
    main()
