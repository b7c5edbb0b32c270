"""Radioactivity budget curves and robustness on the model zoo.

Pre-registered (fixed here before any zoo result was seen), closed mode, statistic ``weighted``:

* **budget curve**: the transcripts ``bench_theft_power.py`` saved, cut at a fixed grid of budgets
  (width 1: 1k, 2k, 4k, 8k, 16k, 25k tokens; width 2: 6.25k, 12.5k, 25k, 50k, 100k).  The
  "tokens needed for p = 1e-3" is the smallest grid budget that reaches it: a description of
  one transcript's nested prefixes, not a test of its own (picking the budget afterwards would
  be p-hacking; the power benchmark's fixed budget is the test);
* **token substitution**: the attacker replaces 10 % or 30 % of the suspect's output tokens with
  uniformly random tokens (seeded) before we see them; tested at 95 % of the pre-registered
  budget (edits change the token count, and a budget the edited text cannot reach would only
  make the verdict inconclusive);
* **temperature**: the suspect sampled at 0.7 and 1.3 (fresh transcripts at the full budget);
* **another architecture**: ``student-w1-100pct-arch3x96-1ep`` (3 layers, width 96, distilled for
  one epoch) is in the budget curve and the substitution cells.

    .venv/bin/python bench/bench_theft_robustness.py [--zoo DIR] [--skip-temperature-w2]
"""

from __future__ import annotations

import argparse
import time
from typing import Any

from _common import results_dir, write_result
from bench_theft_power import CLOSED_BUDGET, NULL_KEYS, fmt, row
from bench_theft_zoo import BatchedHFModel, Zoo, add_zoo_argument, load_zoo, single_thread, substitute
from tracemark.theft import RadioactivityConfig, Transcript, radioactivity

# analysis re-scores a transcript at other budgets and statistics: the verdict without the
# pre-registration check (a product re-run with other settings is refused or exploratory)
from tracemark.theft._closed import closed_verdict

GRID = {1: (1_000, 2_000, 4_000, 8_000, 16_000, 25_000), 2: (6_250, 12_500, 25_000, 50_000, 100_000)}
TARGET = 1e-3
CURVE = (
    "student-w1-100pct-1ep",
    "student-w1-100pct-3ep",
    "student-w1-10pct-1ep",
    "student-w1-10pct-3ep",
    "student-w1-100pct-arch3x96-1ep",
    "student-w2-100pct-1ep",
    "student-w2-100pct-3ep",
    "student-w2-10pct-1ep",
    "student-w2-10pct-3ep",
)
SUBSTITUTION = ("student-w1-100pct-1ep", "student-w1-100pct-3ep", "student-w1-100pct-arch3x96-1ep",
                "student-w2-100pct-3ep")  # fmt: skip
RATES = (0.10, 0.30)
TEMPERATURES = (0.7, 1.3)
TEMPERATURE_MODELS = ("student-w1-100pct-1ep", "student-w1-100pct-3ep", "student-w2-100pct-3ep")


def saved(zoo: Zoo, name: str) -> tuple[int, Transcript | None]:
    """The model's context width and the temperature-1 transcript ``bench_theft_power.py`` saved for it."""
    if name not in zoo.manifest["models"]:
        return 1, None
    width = zoo.width_of(name) or 1
    path = zoo.transcript_path(f"{name}-w{width}-T1.0")
    return width, Transcript.from_jsonl(path.read_bytes()) if path.exists() else None


def config(budget: int) -> RadioactivityConfig:
    return RadioactivityConfig(budget_tokens=budget, statistic="weighted", null_keys=NULL_KEYS)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_zoo_argument(parser)
    parser.add_argument("--skip-temperature-w2", action="store_true", help="no fresh 100k-token w2 transcripts")
    parser.add_argument(
        "--shrink", type=float, default=1.0, help="every budget times this (< 1 for bounded runs; as in the power run)"
    )
    args = parser.parse_args()
    single_thread()
    zoo = load_zoo(args.zoo)
    grid = {width: tuple(round(b * args.shrink) for b in budgets) for width, budgets in GRID.items()}
    closed_budget = {width: round(b * args.shrink) for width, b in CLOSED_BUDGET.items()}
    out: dict[str, Any] = {"budget_curve": {}, "substitution": {}, "temperature": {}}

    def record() -> None:
        description = __doc__.split("\n\n")[0]
        payload = {"description": description, "grid": grid, "shrink": args.shrink, "target_p": TARGET, **out}
        write_result("theft_robustness", payload, zoo_scale=zoo.scale)

    for name in CURVE:
        width, transcript = saved(zoo, name)
        if transcript is None:
            out["budget_curve"][name] = {"missing": "no saved transcript (run bench_theft_power.py first)"}
            continue
        points: list[dict[str, Any]] = []
        for budget in grid[width]:
            verdict = closed_verdict(transcript, [zoo.keys[width]], zoo.tokenizer, config(budget))
            points.append({"budget_tokens": budget, "p_value": verdict.p_value, "decision": verdict.decision,
                           "rate": verdict.effect.get("rate"),
                           "distinct_tuples": verdict.counts.get("distinct_tuples")})  # fmt: skip
        reached = [p["budget_tokens"] for p in points if p["p_value"] is not None and p["p_value"] <= TARGET]
        out["budget_curve"][name] = {"points": points, "tokens_to_target": min(reached) if reached else None}
        print(name, "tokens to 1e-3:", out["budget_curve"][name]["tokens_to_target"],
              [(p["budget_tokens"], fmt(p["p_value"])) for p in points], flush=True)  # fmt: skip
    record()
    for name in SUBSTITUTION:
        width, transcript = saved(zoo, name)
        if transcript is None:
            out["substitution"][name] = {"missing": "no saved transcript"}
            continue
        cells = {}
        for rate in RATES:
            edited = substitute(transcript, zoo.tokenizer, rate, seed=round(rate * 1000))
            budget = round(0.95 * closed_budget[width])
            began = time.perf_counter()
            verdict = closed_verdict(edited, [zoo.keys[width]], zoo.tokenizer, config(budget))
            cells[f"{rate:.0%}"] = row(verdict, time.perf_counter() - began)
            print(name, f"substitution {rate:.0%}", verdict.decision, fmt(verdict.p_value), flush=True)
        out["substitution"][name] = cells
    record()
    for index, name in enumerate(TEMPERATURE_MODELS):
        width = (zoo.width_of(name) or 1) if name in zoo.manifest["models"] else 1
        if name not in zoo.manifest["models"] or (width == 2 and args.skip_temperature_w2):
            out["temperature"][name] = {"missing": "model absent or skipped (--skip-temperature-w2)"}
            continue
        cells = {}
        for temperature in TEMPERATURES:
            budget = closed_budget[width]
            prompts = zoo.prompts(budget // 48)
            began = time.perf_counter()
            suspect = BatchedHFModel(zoo.model_dir(name), prompts, temperature=temperature)
            verdict, transcript = radioactivity(suspect, [zoo.keys[width]], prompts, zoo.tokenizer, config(budget),
                                                max_new_tokens=128, seed=5_000_000 + 1000 * index)  # fmt: skip
            zoo.transcript_path(f"{name}-w{width}-T{temperature}").write_bytes(transcript.to_jsonl())
            cells[f"T{temperature}"] = row(verdict, time.perf_counter() - began)
            print(name, f"temperature {temperature}", verdict.decision, fmt(verdict.p_value), flush=True)
            out["temperature"][name] = cells
            record()
    record()
    print(f"wrote {results_dir(zoo.scale) / 'theft_robustness.json'}")


if __name__ == "__main__":
    main()
