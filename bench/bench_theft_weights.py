"""Weight provenance on the model zoo: are derived variants separated from independent models?

The reference is the zoo's teacher.  Derived: ``teacher-finetuned`` (+100 steps on other data),
``teacher-pruned`` (30 % smallest weights of every block matrix zeroed), ``teacher-permuted``
(neurons and heads relabelled) and ``teacher-int8``.  Independent: ``base`` (other seed, other
data), ``independent-a``/``-b`` (other seeds, the teacher's own data), ``independent-c`` (other
seed, data B), and every student (all trained from ``base``: a distilled student is *not* derived
from the teacher's weights, and the weight test must say so).  ``weight_provenance`` runs with its
defaults (128 probe tokens, 999 token permutations, alpha 0.01, similarity lines 0.3 and 0.8).  The
goal (issue #4): AUROC >= 0.99 between the two groups on the score, with the permutation p-values
reported.  The 0.8 ``evidence`` line was set after measuring the 16 models in ``SEEN_FOR_LINE``;
every other model is reported apart as held out from that choice.

    .venv/bin/python bench/bench_theft_weights.py [--zoo DIR]
"""

from __future__ import annotations

import argparse
import time
from dataclasses import asdict
from typing import Any

from _common import write_result
from bench_theft_zoo import add_zoo_argument, load_zoo
from tracemark.theft import WeightConfig, load_weights, weight_provenance

DERIVED = ("teacher-finetuned", "teacher-pruned", "teacher-permuted", "teacher-int8")
GOAL_AUROC = 0.99
#: The models measured when the 0.8 evidence line was chosen (every other zoo model is held out).
SEEN_FOR_LINE = frozenset(("base", "student-w1-0pct-1ep", "student-w1-100pct-1ep", "student-w1-100pct-3ep",
                           "student-w1-100pct-arch3x96-1ep", "student-w1-10pct-1ep", "student-w1-5pct-1ep",
                           "student-w2-0pct-1ep", "student-w2-100pct-1ep", "student-w2-100pct-3ep",
                           "student-w2-10pct-1ep", "student-w2-5pct-1ep", "teacher-finetuned", "teacher-int8",
                           "teacher-permuted", "teacher-pruned"))  # fmt: skip


def auroc(positives: list[float], negatives: list[float]) -> float:
    """Probability that a derived model scores above an independent one (ties count half)."""
    wins = sum((p > n) + 0.5 * (p == n) for p in positives for n in negatives)
    return wins / (len(positives) * len(negatives))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_zoo_argument(parser)
    args = parser.parse_args()
    zoo = load_zoo(args.zoo)
    reference = load_weights(zoo.model_dir("teacher"))
    config = WeightConfig()
    rows: dict[str, Any] = {}
    for name in zoo.names():
        if name == "teacher":
            continue
        group = "derived" if name in DERIVED else "independent"
        began = time.perf_counter()
        verdict = weight_provenance(load_weights(zoo.model_dir(name)), reference, config, suspect_name=name,
                                    reference_name="teacher")  # fmt: skip
        rows[name] = {
            "group": group,
            "score": verdict.statistic["value"],
            "p_value": verdict.p_value,
            "decision": verdict.decision,
            "null_q99": verdict.effect.get("null_q99"),
            "per_invariant": {d["invariant"]: d["cosine"] for d in verdict.details},
            "reasons": list(verdict.reasons),
            "seconds": round(time.perf_counter() - began, 2),
        }
        correct = (verdict.decision == "evidence") == (group == "derived")
        rows[name]["correct_decision"] = correct
        rows[name]["held_out_from_line"] = name not in SEEN_FOR_LINE
        print(f"{name:34s} {group:12s} score {rows[name]['score']:+.4f} p={verdict.p_value:.3g} "
              f"{verdict.decision:12s} {'ok' if correct else 'WRONG'}", flush=True)  # fmt: skip
    derived = [r["score"] for r in rows.values() if r["group"] == "derived"]
    independent = [r["score"] for r in rows.values() if r["group"] == "independent"]
    area = auroc(derived, independent)
    print(f"AUROC {area:.4f} (goal >= {GOAL_AUROC}) -> {'MET' if area >= GOAL_AUROC else 'MISSED'}; "
          f"lowest derived {min(derived):.4f}, highest independent {max(independent):.4f}")  # fmt: skip
    path = write_result(
        "theft_weights",
        {
            "description": __doc__.split("\n\n")[0],
            "config": asdict(config),
            "auroc": area,
            "goal_auroc": GOAL_AUROC,
            "goal_met": area >= GOAL_AUROC,
            "lowest_derived_score": min(derived),
            "highest_independent_score": max(independent),
            "decisions_correct": sum(r["correct_decision"] for r in rows.values()),
            "held_out": {
                "models": sorted(n for n, r in rows.items() if r["held_out_from_line"]),
                "decisions_correct": sum(r["correct_decision"] for r in rows.values() if r["held_out_from_line"]),
                "highest_independent_score": max(
                    (r["score"] for r in rows.values() if r["held_out_from_line"] and r["group"] == "independent"),
                    default=None,
                ),
            },
            "models": rows,
        },
        zoo_scale=zoo.scale,
    )
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
