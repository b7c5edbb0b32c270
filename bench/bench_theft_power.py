"""Radioactivity power on the model zoo: is every student flagged in proportion to the watermarked data it saw?

Pre-registered before any zoo p-value was seen (fixed in this file, not chosen afterwards):

* closed mode: the suspect (``BatchedHFModel``: plain sampling at temperature 1, 128 new tokens)
  answers 16-token prompts from held-out documents until its responses hold the budget of tokens:
  **25,000 for width-1 keys, 100,000 for width-2 keys**; primary statistic ``weighted``
  (each distinct tuple counted min(times emitted, 16) times, exact null), ``distinct`` reported too;
* open mode: the suspect reads **50,000** held-out tokens (documents disjoint from the prompts);
  primary statistic ``mass`` (green probability mass in its top-64, exact integer-weight null),
  ``top1`` reported too (the reads are cached, so both statistics see the same probabilities);
* every verdict carries the product's own null check (100 wrong keys on the same data) and alpha 1e-3.

A student is asked with the key of its own context width; every other zoo model (teacher,
derived variants, independent models) with the width-1 key at the width-1 budget, for the
side-by-side grid.  Transcripts are saved under ``<zoo>/transcripts`` for the calibration and
robustness benchmarks.  Goals (issue #4): width-1 fully distilled student p < 1e-20 closed at
<= 25k tokens and p < 1e-50 open; width-2 fully distilled student p < 1e-3 at <= 100k tokens;
the 0 % students must give no evidence; the 5 and 10 % mixes are reported as they stand.

    .venv/bin/python bench/bench_theft_power.py [--zoo DIR] [--only student-w1-100pct-1ep ...]
"""

from __future__ import annotations

import argparse
import json
import time
from typing import Any

import numpy as np
from numpy.typing import NDArray

from _common import results_dir, write_result
from bench_theft_zoo import BatchedHFModel, Zoo, add_zoo_argument, load_zoo, single_thread
from tracemark.theft import HFModel, RadioactivityConfig, TheftVerdict, radioactivity
from tracemark.theft import radioactivity_open as open_test

# analysis re-scores a transcript at other budgets and statistics: the verdict without the
# pre-registration check (a product re-run with other settings is refused or exploratory)
from tracemark.theft._closed import closed_verdict

CLOSED_BUDGET = {1: 25_000, 2: 100_000}
READ_BUDGET = 50_000
NULL_KEYS = 100
PREREGISTERED = {
    "closed_budget_tokens": CLOSED_BUDGET,
    "read_budget_tokens": READ_BUDGET,
    "closed_statistic": "weighted",
    "open_statistic": "mass",
    "alpha": 1e-3,
    "null_keys": NULL_KEYS,
    "temperature": 1.0,
    "max_new_tokens": 128,
}
GOALS = {
    ("closed", 1, 1.0): 1e-20,
    ("open", 1, 1.0): 1e-50,
    ("closed", 2, 1.0): 1e-3,
}


class CachedReader:
    """A ``NextTokenModel`` that remembers each read, so two open-mode statistics see the same probabilities."""

    def __init__(self, inner: HFModel) -> None:
        self.inner = inner
        self.model_dir = inner.model_dir
        self.cache: dict[bytes, tuple[NDArray[np.int64], NDArray[np.float64]]] = {}

    @property
    def name(self) -> str:
        return self.inner.name

    def top_tokens(self, token_ids: NDArray[np.int64], k: int) -> tuple[NDArray[np.int64], NDArray[np.float64]]:
        tag = np.asarray(token_ids, dtype=np.int64).tobytes() + k.to_bytes(4, "little")
        if tag not in self.cache:
            self.cache[tag] = self.inner.top_tokens(token_ids, k)
        return self.cache[tag]


def fmt(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.3g}"


def row(verdict: TheftVerdict, seconds: float) -> dict[str, Any]:
    data = verdict.to_json()  # plain JSON: the verdict's own members are read-only JSON unions
    check: dict[str, Any] = data["null_check"] or {}
    effect: dict[str, Any] = data["effect"]
    return {
        "decision": verdict.decision,
        "p_value": verdict.p_value,
        "log10_p_value": verdict.log10_p_value,
        "p_value_method": verdict.p_value_method,
        "statistic": data["statistic"].get("name"),
        "effect": effect.get("estimate"),
        "rate": effect.get("rate"),
        "ci": [effect.get("ci_low"), effect.get("ci_high")],
        "counts": data["counts"],
        "null_check_passed": check.get("passed"),
        "null_check_flagged_at_0.05": check.get("levels", {}).get("0.05", {}).get("flagged"),
        "reasons": list(verdict.reasons),
        "seconds": round(seconds, 1),
    }


def closed_cells(zoo: Zoo, name: str, width: int, seed: int, shrink: float) -> dict[str, Any]:
    budget = round(CLOSED_BUDGET[width] * shrink)
    prompts = zoo.prompts(budget // 48)
    key = zoo.keys[width]
    config = RadioactivityConfig(budget_tokens=budget, statistic="weighted", null_keys=NULL_KEYS)
    began = time.perf_counter()
    suspect = BatchedHFModel(zoo.model_dir(name), prompts)
    verdict, transcript = radioactivity(suspect, [key], prompts, zoo.tokenizer, config, max_new_tokens=128, seed=seed)
    generated = time.perf_counter() - began
    zoo.transcript_path(f"{name}-w{width}-T1.0").write_bytes(transcript.to_jsonl())
    out: dict[str, Any] = {"weighted": row(verdict, generated)}
    began = time.perf_counter()
    distinct = RadioactivityConfig(budget_tokens=budget, statistic="distinct", null_keys=NULL_KEYS)
    out["distinct"] = row(closed_verdict(transcript, [key], zoo.tokenizer, distinct),
                          time.perf_counter() - began)  # fmt: skip
    out["budget_tokens"] = budget
    out["generation_seconds"] = round(generated, 1)
    return out


def open_cells(zoo: Zoo, name: str, width: int, shrink: float) -> dict[str, Any]:
    reader = CachedReader(HFModel(zoo.model_dir(name)))
    budget = round(READ_BUDGET * shrink)
    out: dict[str, Any] = {"read_budget_tokens": budget}
    for statistic in ("mass", "top1"):
        config = RadioactivityConfig(budget_tokens=budget, statistic=statistic, null_keys=NULL_KEYS, top_k=64)
        began = time.perf_counter()
        verdict = open_test(reader, [zoo.keys[width]], zoo.read_texts(), zoo.tokenizer, config)
        out[statistic] = row(verdict, time.perf_counter() - began)
    return out


def goal_line(mode: str, width: int, share: float | None, p: float | None) -> str:
    goal = GOALS.get((mode, width, share)) if share is not None else None
    if p is None:
        return "not measured"
    if share == 0.0:
        return f"goal: no evidence (p > 1e-3) -> {'MET' if p > 1e-3 else 'MISSED'}"
    if goal is None:
        return "goal: report"
    return f"goal: p < {goal:.0e} -> {'MET' if p is not None and p < goal else 'MISSED'}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_zoo_argument(parser)
    parser.add_argument("--only", nargs="*", help="model names (default: every model, students first)")
    parser.add_argument("--output", default="theft_power", help="results file name (bench/results/<name>.json)")
    parser.add_argument("--no-open", action="store_true", help="closed mode only (the grid's non-student models)")
    parser.add_argument("--shrink", type=float, default=1.0, help="budgets times this (< 1 only to check the script)")
    args = parser.parse_args()
    single_thread()
    zoo = load_zoo(args.zoo)
    names = args.only or zoo.names("student") + [n for n in zoo.names() if n not in zoo.names("student")]
    previous = results_dir(zoo.scale) / f"{args.output}.json"
    models: dict[str, Any] = json.loads(previous.read_text())["models"] if args.only and previous.exists() else {}
    for name in names:
        if name not in zoo.manifest["models"]:
            print(f"{name}: not in this zoo, skipped", flush=True)
            continue
        card = zoo.manifest["models"][name]
        width = zoo.width_of(name) or 1
        share = card.get("watermarked_share")
        result: dict[str, Any] = {"role": card.get("role"), "context_width": width, "watermarked_share": share,
                                  "epochs": card.get("epochs"), "key_id": zoo.keys[width].key_id}  # fmt: skip
        seed = 1_000_000 + 10_000 * sorted(zoo.names()).index(name)  # fixed per model, whatever --only says
        result["closed"] = closed_cells(zoo, name, width, seed=seed, shrink=args.shrink)
        skipped = {"decision": "not measured", "p_value": None}
        no_open = {"mass": skipped, "top1": skipped, "skipped": "--no-open"}
        result["open"] = no_open if args.no_open else open_cells(zoo, name, width, args.shrink)
        p_closed, p_open = result["closed"]["weighted"]["p_value"], result["open"]["mass"]["p_value"]
        result["goal_closed"] = goal_line("closed", width, share, p_closed)
        result["goal_open"] = goal_line("open", width, share, p_open)
        models[name] = result
        closed, opened = result["closed"], result["open"]
        print(
            f"{name:34s} closed {closed['weighted']['decision']:12s} p={fmt(p_closed)} "
            f"(rate {fmt(closed['weighted']['rate'])}, distinct p={fmt(closed['distinct']['p_value'])})"
            f" [{result['goal_closed']}] | open {opened['mass']['decision']} p={fmt(p_open)} "
            f"(top1 p={fmt(opened['top1']['p_value'])}) [{result['goal_open']}]",
            flush=True,
        )
        write_result(
            args.output,
            {
                "description": __doc__.split("\n\n")[0],
                "preregistered": {**PREREGISTERED, "shrink": args.shrink},
                "goals": {f"{m}/w{w}/{s:.0%}": g for (m, w, s), g in GOALS.items()},
                "models": models,
            },
            zoo_scale=zoo.scale,
        )
    print(f"wrote {results_dir(zoo.scale) / args.output}.json")


if __name__ == "__main__":
    main()
