"""Calibration of the radioactivity tests over many wrong keys, on text and a model that never saw them.

Closed mode: a transcript built from unmarked human text (Python's reference topics and
docstrings as "prose", the standard library's source as "code", the repetitive hard case),
each document split into a prompt (its first 200 characters) and a response, cut at a
pre-registered budget of reference-tokenizer tokens.  Open mode: the bundled reference model
reads unmarked prose.  For every scheme and statistic the product's own null check runs
``--keys`` wrong keys (``--kgw-keys`` for KGW, whose keys are slow to colour) on the same data;
this script records how many are flagged at 0.05 / 0.01 / 0.001, the two-sided 99 % binomial
band each count must fall in, and the one-sided KS test of the (mid-)p-values against uniform.
The goal: every count inside its band.  Power on distilled students and the identity / weight
goals need the model zoo and are not measured here.

    .venv/bin/python bench/bench_theft.py [--keys 1000] [--budget 25000]
"""

from __future__ import annotations

import argparse
import sys
import time
from typing import Any

from scipy import stats

from _common import REPO, reference_model, temporary_home, write_result
from tracemark.keys import Keyring, TextKey
from tracemark.text import TextTokenizer, new_text_key
from tracemark.theft import (
    Exchange,
    HFModel,
    RadioactivityConfig,
    TheftVerdict,
    Transcript,
    radioactivity_from_transcript,
    radioactivity_open,
)

sys.path.insert(0, str(REPO))
from tests.support.corpora import CORPORA

SCHEMES: dict[str, tuple[str, dict[str, Any]]] = {
    "native-w1": ("native", {"context_width": 1}),
    "native-w2": ("native", {"context_width": 2}),
    "kgw-lefthash-w1": ("kgw", {"seeding_scheme": "lefthash", "context_width": 1}),
}


def transcript_from(corpus: str, limit_chars: int) -> Transcript:
    exchanges = []
    for index, text in enumerate(CORPORA[corpus](limit_chars)):
        if len(text) < 400:
            continue
        exchanges.append(Exchange(prompt=text[:200], response=text[200:], seed=index))
    return Transcript(suspect=f"unmarked {corpus}", budget_tokens=0, max_new_tokens=0, exchanges=tuple(exchanges))


def summarise(verdict: TheftVerdict, keys: int, seconds: float) -> dict[str, Any]:
    data = verdict.to_json()  # plain JSON: the verdict's own members are read-only JSON unions
    check: dict[str, Any] = data["null_check"] or {}
    counts: dict[str, Any] = data["counts"]
    levels = {}
    inside = True
    for level, row in check.get("levels", {}).items():
        low = int(stats.binom.ppf(0.005, keys, float(level)))
        high = int(stats.binom.ppf(0.995, keys, float(level)))
        ok = low <= row["flagged"] <= high
        inside = inside and ok
        levels[level] = {
            "flagged": row["flagged"],
            "expected": row["expected"],
            "band_99": [low, high],
            "inside": ok,
            "above_band": row["flagged"] > high,  # the dangerous direction: more false accusations than alpha
        }
    return {
        "wrong_keys": keys,
        "levels": levels,
        "all_inside_band": inside,
        "any_above_band": any(v["above_band"] for v in levels.values()),
        "ks_uniformity_p_one_sided": check.get("ks_uniformity_p"),
        "tuples": counts.get("distinct_tuples", counts.get("scored_tuples")),
        "tokens": counts.get("response_tokens", counts.get("read_tokens")),
        "true_key_decision": verdict.decision,
        "true_key_p_value": verdict.p_value,
        "seconds": round(seconds, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--keys", type=int, default=1000, help="wrong keys per native-scheme cell")
    parser.add_argument(
        "--kgw-keys", type=int, default=100, help="wrong keys per KGW cell (a KGW key shuffles one list per seed)"
    )
    parser.add_argument("--budget", type=int, default=25_000, help="closed-mode response tokens")
    parser.add_argument("--read-budget", type=int, default=10_000, help="open-mode read tokens")
    args = parser.parse_args()
    home = temporary_home()
    keyring = Keyring(home)
    keyring.create()
    model_dir = reference_model()
    tokenizer = TextTokenizer(model_dir)
    keys: dict[str, TextKey] = {
        name: new_text_key(keyring, scheme, model_dir, params=params) for name, (scheme, params) in SCHEMES.items()
    }
    cells: dict[str, Any] = {}
    for corpus in ("prose", "code"):
        transcript = transcript_from(corpus, limit_chars=40 * args.budget)
        for name, key in keys.items():
            count = args.kgw_keys if key.scheme == "kgw" else args.keys
            for statistic in ("weighted", "distinct"):
                config = RadioactivityConfig(budget_tokens=args.budget, statistic=statistic, null_keys=count)
                began = time.perf_counter()
                verdict = radioactivity_from_transcript(transcript, [key], tokenizer, config)
                cell = f"closed/{corpus}/{name}/{statistic}"
                cells[cell] = summarise(verdict, count, time.perf_counter() - began)
                print(cell, cells[cell]["levels"], cells[cell]["ks_uniformity_p_one_sided"], flush=True)
    reader = HFModel(model_dir)
    texts = [t for t in CORPORA["prose"](limit_chars=8 * args.read_budget) if len(t) > 200]
    for name in ("native-w1", "kgw-lefthash-w1"):
        count = args.kgw_keys if keys[name].scheme == "kgw" else args.keys
        for statistic in ("mass", "top1"):
            config = RadioactivityConfig(budget_tokens=args.read_budget, statistic=statistic, null_keys=count, top_k=16)
            began = time.perf_counter()
            verdict = radioactivity_open(reader, [keys[name]], texts, tokenizer, config)
            cell = f"open/reference-model/{name}/{statistic}"
            cells[cell] = summarise(verdict, count, time.perf_counter() - began)
            print(cell, cells[cell]["levels"], cells[cell]["ks_uniformity_p_one_sided"], flush=True)
    path = write_result(
        "theft_calibration",
        {
            "description": __doc__.split("\n\n")[0],
            "budget_tokens": args.budget,
            "read_budget_tokens": args.read_budget,
            "cells": cells,
            "all_cells_inside_band": all(c["all_inside_band"] for c in cells.values()),
            "any_cell_above_band": any(c["any_above_band"] for c in cells.values()),
        },
    )
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
