"""The side-by-side grid: every method asked about every zoo model, each judged against every question.

Three questions with known answers in the zoo:

* Q1 "was it trained on our watermarked outputs?": true for students with a watermarked share > 0;
* Q2 "is it derived from the teacher's weights?": true for the teacher and its derived variants;
* Q3 "is it exactly the teacher?": true for the teacher only.

Four methods: radioactivity (closed mode, read from ``bench/results/theft_power.json``: run
``bench_theft_power.py`` first), weight provenance (``weight_provenance`` against the teacher,
its defaults), identity from samples (``identify`` against the teacher: 100 held-out prompts x 16
samples x 8 tokens, 999 permutations, alpha 0.05; a rejection means "not the teacher") and
identity from log-probabilities (``identify_logprobs`` against the teacher, its defaults, the same
100 prompts read once).  Each method's
positive answer is compared with the truth of every question: a method should agree with its
own question only (radioactivity is blind to weight theft, weight provenance to distillation,
identity to both: it only sees "not exactly the teacher").

    .venv/bin/python bench/bench_theft_grid.py [--zoo DIR] [--skip-identify]
"""

from __future__ import annotations

import argparse
import json
import time
from typing import Any

from _common import results_dir, write_result
from bench_theft_identity_zoo import SAMPLES, TOKENS, draw_pool, run
from bench_theft_weights import DERIVED
from bench_theft_zoo import Zoo, add_zoo_argument, load_zoo, single_thread
from tracemark.theft import HFModel, identify_logprobs, load_weights, weight_provenance

QUESTIONS = ("Q1 distilled from our watermarked outputs", "Q2 derived from our weights", "Q3 exactly our model")


def truth(zoo: Zoo, name: str) -> tuple[bool, bool, bool]:
    card = zoo.manifest["models"][name]
    return (
        float(card.get("watermarked_share") or 0.0) > 0.0,
        name == "teacher" or name in DERIVED,
        name == "teacher",
    )


def agreement_with_truth(zoo: Zoo, rows: dict[str, Any]) -> dict[str, dict[str, float]]:
    """Per method and question: the share of models where the method's positive answer is the question's truth.

    The identity methods' answer is read as "is the teacher" (not rejected).
    """
    agreement: dict[str, dict[str, float]] = {}
    for method in ("radioactivity", "weights", "identify_not_teacher", "logprobs_not_teacher"):
        scored = {n: r for n, r in rows.items() if r["positive"].get(method) is not None}
        if not scored:
            continue
        agreement[method] = {}
        for q_index, question in enumerate(QUESTIONS):
            hits = 0
            for name, r in scored.items():
                said = r["positive"][method]
                said = not said if method.endswith("_not_teacher") else said  # identity answers "is the teacher"
                hits += said == truth(zoo, name)[q_index]
            agreement[method][question] = hits / len(scored)
    return agreement


def markdown(rows: dict[str, Any], agreement: dict[str, dict[str, float]]) -> str:
    """The grid and the agreement as Markdown tables."""
    lines = ["| model | truth Q1/Q2/Q3 | radioactivity (closed p) | weights (score, p) | identify vs teacher (p) "
             "| logprobs vs teacher (log10 p) |", "|---|---|---|---|---|---|"]  # fmt: skip
    for name, r in rows.items():
        t = "/".join("yes" if v else "no" for v in r["truth"].values())
        if r["radioactivity_p"] is None:
            radio_cell = "n/a"
        else:
            radio_cell = f"{'EVIDENCE' if r['positive']['radioactivity'] else 'no'} ({r['radioactivity_p']:.2g})"
        derived = "DERIVED" if r["positive"]["weights"] else "no"
        weight_cell = f"{derived} ({r['weights_score']:.3f}, {r['weights_p']:.3g})"
        if "identify_p" not in r:
            ident = "n/a"
        else:
            said = "not teacher" if r["positive"]["identify_not_teacher"] else "CONSISTENT"
            ident = f"{said} ({r['identify_p']:.3g})"
        exact_said = "not teacher" if r["positive"]["logprobs_not_teacher"] else "CONSISTENT"
        exact_cell = f"{exact_said} ({r['logprobs_log10_p']:.1f})"
        lines.append(f"| {name} | {t} | {radio_cell} | {weight_cell} | {ident} | {exact_cell} |")
    lines += ["", "| method | agrees with Q1 | agrees with Q2 | agrees with Q3 |", "|---|---|---|---|"]
    for method, row in agreement.items():
        lines.append(f"| {method} | " + " | ".join(f"{row[q]:.2f}" for q in QUESTIONS) + " |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_zoo_argument(parser)
    parser.add_argument("--skip-identify", action="store_true")
    args = parser.parse_args()
    single_thread()
    zoo = load_zoo(args.zoo)
    power = json.loads((results_dir(zoo.scale) / "theft_power.json").read_text())["models"]
    reference = load_weights(zoo.model_dir("teacher"))
    prompts = list(dict.fromkeys(zoo.prompts(200)))[:100]  # distinct prompts
    teacher_pool = None if args.skip_identify else draw_pool(zoo, "teacher", 1.0, prompts, 2 * SAMPLES, 9_000_000)
    teacher = HFModel(zoo.model_dir("teacher"))

    def tokenize(text: str) -> list[int]:
        return [int(t) for t in zoo.tokenizer.encode(text).ids]

    rows: dict[str, Any] = {}
    for index, name in enumerate(zoo.names()):
        began = time.perf_counter()
        radio = power.get(name, {}).get("closed", {}).get("weighted", {})
        weights = weight_provenance(load_weights(zoo.model_dir(name)), reference)
        answers: dict[str, Any] = {
            "radioactivity": radio.get("decision", "not measured") == "evidence" if radio else None,
            "weights": weights.decision == "evidence",
        }
        detail: dict[str, Any] = {"radioactivity_p": radio.get("p_value"), "weights_score": weights.statistic["value"],
                                  "weights_p": weights.p_value}  # fmt: skip
        if teacher_pool is not None:
            if name == "teacher":
                endpoint = teacher_pool.slice(SAMPLES, SAMPLES)
            else:
                endpoint = draw_pool(zoo, name, 1.0, prompts, SAMPLES, 9_100_000 + 1000 * index)
            p = run(endpoint, teacher_pool.slice(0, SAMPLES), prompts, zoo, seed=index)
            answers["identify_not_teacher"] = p <= 0.05
            detail["identify_p"] = p
        exact = identify_logprobs(HFModel(zoo.model_dir(name)), {"teacher": teacher}, prompts, tokenize)
        answers["logprobs_not_teacher"] = exact.decision == "evidence"
        detail["logprobs_log10_p"] = exact.log10_p_value
        rows[name] = {"truth": dict(zip(QUESTIONS, truth(zoo, name), strict=True)), "positive": answers, **detail,
                      "seconds": round(time.perf_counter() - began, 1)}  # fmt: skip
        print(name, answers, {k: v for k, v in detail.items()}, flush=True)
    agreement = agreement_with_truth(zoo, rows)
    table = markdown(rows, agreement)
    print(table)
    path = write_result(
        "theft_grid",
        {"description": __doc__.split("\n\n")[0], "questions": QUESTIONS,
         "identify": {"prompts": 100, "samples_per_prompt": SAMPLES, "completion_tokens": TOKENS},
         "rows": rows, "agreement": agreement, "markdown": table},
        zoo_scale=zoo.scale,
    )  # fmt: skip
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
