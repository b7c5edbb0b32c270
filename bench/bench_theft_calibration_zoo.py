"""Calibration of the radioactivity tests on the zoo's clean students, over 1,000 wrong keys.

A clean student (trained on the teacher's *unmarked* answers, 0 % watermarked) is the suspect a
false accusation would hit; ``base`` (never shown marked text) is checked too.  For each clean model
the product's null check re-runs the test with ``--keys`` wrong keys on the same data:

* closed mode on the transcript ``bench_theft_power.py`` saved for it (its own width's key and
  budget: 25k tokens for width 1, 100k for width 2), statistics ``weighted`` and ``distinct``;
* open mode: the student reads ``--read-budget`` held-out tokens (25k: a mass cell colours every
  top-64 candidate of every context under each of the 1,000 keys), statistics ``mass`` and ``top1``.

The goal (issue #4): in every cell the number of wrong keys flagged at 0.05, 0.01 and 0.001
lies in the two-sided 99 % binomial band of its level (``bench_theft.summarise``).

    .venv/bin/python bench/bench_theft_calibration_zoo.py [--zoo DIR] [--keys 1000]
"""

from __future__ import annotations

import argparse
import time
from typing import Any

from _common import write_result
from bench_theft import summarise
from bench_theft_power import CLOSED_BUDGET, CachedReader
from bench_theft_zoo import add_zoo_argument, load_zoo, single_thread
from tracemark.theft import HFModel, RadioactivityConfig, TheftVerdict, Transcript
from tracemark.theft import radioactivity_open as open_test

# analysis re-scores a transcript at other budgets and statistics: the verdict without the
# pre-registration check (a product re-run with other settings is refused or exploratory)
from tracemark.theft._closed import closed_verdict

CLEAN = ("student-w1-0pct-1ep", "student-w2-0pct-1ep", "student-w1-0pct-3ep", "student-w2-0pct-3ep", "base")


def checked(cell: dict[str, Any], verdict: TheftVerdict) -> dict[str, Any]:
    """A cell whose null check did not run (nothing to score) counts as outside its band, never as passed."""
    if not cell["levels"]:
        cell["all_inside_band"] = False
        cell["missing"] = f"no null check: {'; '.join(verdict.reasons) or 'no tuples'}"
    return cell


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_zoo_argument(parser)
    parser.add_argument("--keys", type=int, default=1000)
    parser.add_argument("--read-budget", type=int, default=25_000)
    parser.add_argument(
        "--shrink", type=float, default=1.0, help="every budget times this (< 1 for bounded runs; as in the power run)"
    )
    args = parser.parse_args()
    single_thread()
    zoo = load_zoo(args.zoo)
    cells: dict[str, Any] = {}
    for name in CLEAN:
        if name not in zoo.manifest["models"]:
            print(f"{name}: not in the zoo, skipped")
            continue
        width = zoo.width_of(name) or 1
        key = zoo.keys[width]
        transcript = Transcript.from_jsonl(zoo.transcript_path(f"{name}-w{width}-T1.0").read_bytes())
        for statistic in ("weighted", "distinct"):
            budget = round(CLOSED_BUDGET[width] * args.shrink)
            config = RadioactivityConfig(budget_tokens=budget, statistic=statistic, null_keys=args.keys)
            began = time.perf_counter()
            verdict = closed_verdict(transcript, [key], zoo.tokenizer, config)
            cell = f"closed/{name}/w{width}/{statistic}"
            cells[cell] = checked(summarise(verdict, args.keys, time.perf_counter() - began), verdict)
            print(cell, cells[cell]["levels"], cells[cell]["ks_uniformity_p_one_sided"], flush=True)
        reader = CachedReader(HFModel(zoo.model_dir(name)))
        for statistic in ("mass", "top1"):
            budget = round(args.read_budget * args.shrink)
            config = RadioactivityConfig(budget_tokens=budget, statistic=statistic, null_keys=args.keys, top_k=64)
            began = time.perf_counter()
            verdict = open_test(reader, [key], zoo.read_texts(), zoo.tokenizer, config)
            cell = f"open/{name}/w{width}/{statistic}"
            cells[cell] = checked(summarise(verdict, args.keys, time.perf_counter() - began), verdict)
            print(cell, cells[cell]["levels"], cells[cell]["ks_uniformity_p_one_sided"], flush=True)
    inside = all(c["all_inside_band"] for c in cells.values())
    print(f"every cell inside its 99% band: {inside} (goal) -> {'MET' if inside else 'MISSED'}")
    path = write_result(
        "theft_calibration_zoo",
        {
            "description": __doc__.split("\n\n")[0],
            "wrong_keys": args.keys,
            "read_budget_tokens": round(args.read_budget * args.shrink),
            "shrink": args.shrink,
            "cells": cells,
            "all_cells_inside_band": inside,
            "any_cell_above_band": any(c["any_above_band"] for c in cells.values()),
        },
        zoo_scale=zoo.scale,
    )
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
