"""Span finding: how much of a marked passage inside human text the reported spans cover, and how far
their boundaries are from the passage's (#23).

Generates marked text with the bundled reference model for each scheme, then, at the token level (the
ids the model produced, so re-tokenisation does not blur the true boundaries), puts the first ``L``
marked tokens (L = 50, 100, 200, 400) between 300-700 tokens of human prose on either side and runs
detection.  For every detected passage it records the coverage (share of the passage's tokens inside
a reported span), the precision (share of the spans' tokens inside the passage) and the boundary error
in tokens of the span with the smallest p-value (start and end separately).  The anchor is tracemark's
earlier span rule (the densest significant dyadic windows, merged), computed in the same run on the
same windows; a third row is fully marked 200-token texts, whose spans should cover all of it.

    .venv/bin/python bench/bench_text_spans.py [--texts 32] [--schemes native kgw synthid]
"""

from __future__ import annotations

import argparse
import sys
import time
from typing import Any

import numpy as np
from numpy.typing import NDArray

from _common import REPO, text_bench_setup, write_result
from bench_text_power import generate_long
from tracemark._stats import binomial_upper_tail_array
from tracemark.keys import TextKey
from tracemark.text import WatermarkedGenerator, detect_tokens, load_scheme, new_text_key
from tracemark.text._detect import first_occurrences

sys.path.insert(0, str(REPO))

ALPHA = 1e-6
LENGTHS = (50, 100, 200, 400)
SCHEMES: dict[str, dict[str, Any]] = {"native": {}, "kgw": {}, "synthid": {}}
Window = tuple[int, int, int, float, float]


def legacy_window_scan(
    hits: NDArray[np.int64], trials_per_unit: int, probability: float, alpha: float
) -> tuple[int, list[tuple[int, int, int, float, float]]]:
    """Every significant dyadic window (and the best), as ``detect._window_scan`` returned them before streaming.

    Returns the number of windows tested and the windows ``(start, end, hits, p, p_corrected)``
    that are significant at ``alpha`` after correction, plus always the best one.
    """
    n = hits.shape[0]
    if n < 2 * 32:
        return 0, []
    cumulative = np.concatenate([[0], np.cumsum(hits)])
    starts_all: list[NDArray[np.int64]] = []
    ends_all: list[NDArray[np.int64]] = []
    size = 32
    while size < n:
        starts = np.arange(0, n - size + 1, size // 2, dtype=np.int64)
        if starts[-1] != n - size:
            starts = np.append(starts, n - size)
        starts_all.append(starts)
        ends_all.append(starts + size)
        size *= 2
    starts_v = np.concatenate(starts_all)
    ends_v = np.concatenate(ends_all)
    window_hits = cumulative[ends_v] - cumulative[starts_v]
    trials = (ends_v - starts_v) * trials_per_unit
    p_raw = binomial_upper_tail_array(window_hits, trials, probability)
    tested = int(starts_v.shape[0])
    p_corrected = np.minimum(1.0, p_raw * tested)
    significant = set(np.nonzero(p_corrected <= alpha)[0].tolist())
    significant.add(int(np.argmin(p_raw)))  # the best window always comes back (it sets the p-value)
    out = [
        (int(starts_v[i]), int(ends_v[i]), int(window_hits[i]), float(p_raw[i]), float(p_corrected[i]))
        for i in sorted(significant)
    ]
    return tested, out


def densest_window_spans(windows: list[Window]) -> list[tuple[int, int]]:
    """tracemark's span rule before #23: densest significant windows first, non-overlapping, touching ones merged."""
    by_density = sorted(windows, key=lambda w: (-(w[2] / (w[1] - w[0])), w[1] - w[0], w[0]))
    chosen: list[Window] = []
    for window in by_density:
        if all(window[1] <= c[0] or window[0] >= c[1] for c in chosen):
            chosen.append(window)
    merged: list[tuple[int, int]] = []
    for start, end, *_ in sorted(chosen):
        if merged and start <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(merged[-1][1], end))
        else:
            merged.append((start, end))
    return merged


def legacy_spans(ids: NDArray[np.int64], key: TextKey) -> list[tuple[int, int]]:
    """Token ranges the earlier rule reported (whole text when too short for windows)."""
    scheme = load_scheme(key)
    units = scheme.score(ids)
    keep = first_occurrences(units.unit_keys, key.vocab_size)
    hits, positions = units.hits[keep], units.positions[keep]
    tested, windows = legacy_window_scan(hits, scheme.trials_per_unit, scheme.success_probability, ALPHA)
    if not tested:
        return [(int(positions[0]), int(positions[-1]) + 1)] if hits.shape[0] else []
    significant = [w for w in windows if w[4] <= ALPHA]
    return [(int(positions[s]), int(positions[e - 1]) + 1) for s, e in densest_window_spans(significant)]


def measure(spans: list[tuple[int, int]], start: int, end: int) -> dict[str, float]:
    inside = sum(max(0, min(e, end) - max(s, start)) for s, e in spans)
    total = sum(e - s for s, e in spans)
    return {"coverage": inside / (end - start), "precision": inside / total if total else 0.0}


def summarise(rows: list[dict[str, float]], detected: int, trials: int) -> dict[str, float]:
    out: dict[str, float] = {"detected": detected / trials}
    if rows:
        for name in rows[0]:
            values = np.array([r[name] for r in rows])
            out[f"{name}_median"] = round(float(np.median(values)), 3)
            if name.endswith("error"):
                out[f"{name}_p90"] = round(float(np.percentile(values, 90)), 1)
    return out


def passages(key: TextKey, marked: list[list[int]], human: list[int], length: int) -> dict[str, Any]:
    rows: dict[str, list[dict[str, float]]] = {"after": [], "before": []}
    detected = 0
    for index, tokens in enumerate(marked):
        rng = np.random.default_rng(7919 * length + index)
        left, right = int(rng.integers(300, 700)), int(rng.integers(300, 700))
        offset = int(rng.integers(0, len(human) - left - right))
        ids = np.array(human[offset : offset + left] + tokens[:length] + human[offset + left : offset + left + right])
        verdict = detect_tokens(ids, key, alpha=ALPHA)
        if not verdict.marked:
            continue
        detected += 1
        start, end = left, left + length
        new = [(s.start_token, s.end_token) for s in verdict.spans]
        best = min(verdict.spans, key=lambda s: s.p_value)
        old = legacy_spans(ids, key)
        old_best = max(old, key=lambda s: measure([s], start, end)["coverage"]) if old else (0, 0)
        for name, spans, (b_start, b_end) in (
            ("after", new, (best.start_token, best.end_token)),
            ("before", old, old_best),
        ):
            rows[name].append(
                {**measure(spans, start, end), "start_error": abs(b_start - start), "end_error": abs(b_end - end)}
            )
    return {name: summarise(r, detected, len(marked)) for name, r in rows.items()}


def fully_marked(key: TextKey, marked: list[list[int]]) -> dict[str, float]:
    after, before = [], []
    for tokens in marked:
        ids = np.array(tokens[:200])
        verdict = detect_tokens(ids, key, alpha=ALPHA)
        if verdict.marked:
            after.append(measure([(s.start_token, s.end_token) for s in verdict.spans], 0, 200)["coverage"])
            before.append(measure(legacy_spans(ids, key), 0, 200)["coverage"])
    return {
        "detected": len(after) / len(marked),
        "coverage_median_after": round(float(np.median(after)), 3) if after else 0.0,
        "coverage_median_before": round(float(np.median(before)), 3) if before else 0.0,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--texts", type=int, default=32, help="marked texts per scheme")
    parser.add_argument("--schemes", nargs="*", default=list(SCHEMES))
    args = parser.parse_args()
    keyring, model, tokenizer, prose, prompts = text_bench_setup(args.texts, seed=51)
    human = tokenizer.encode(" ".join(prose[:400])).ids.tolist()
    results: dict[str, Any] = {"alpha": ALPHA, "texts": args.texts, "lengths": LENGTHS, "schemes": {}}
    for scheme in args.schemes:
        key = new_text_key(keyring, scheme, model, params=SCHEMES[scheme])
        generator = WatermarkedGenerator(model, key)
        marked: list[list[int]] = []
        for start in range(0, len(prompts), 16):
            batch = generate_long(generator, prompts[start : start + 16], max(LENGTHS), seed=start)
            marked += [list(g.token_ids) for g in batch]
        started = time.perf_counter()
        table = {str(n): passages(key, marked, human, n) for n in LENGTHS}
        entry = {"passage_in_human_text": table, "fully_marked_200": fully_marked(key, marked)}
        entry["seconds"] = round(time.perf_counter() - started, 1)
        results["schemes"][scheme] = entry
        print(scheme, entry["fully_marked_200"])
        for n, row in table.items():
            print(f"  L={n:>3} after {row['after']}\n        before {row['before']}")
    print(write_result("text_spans", results))


if __name__ == "__main__":
    main()
