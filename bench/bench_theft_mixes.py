"""Radioactivity on new students trained on 0-100 % watermarked data, closed and open mode, and its calibration.

Issue #22 (part A).  Everything here is new: fresh native keys, students no other benchmark has seen,
and budgets and rules fixed in this file before the students' first p-value.

``build`` (about an hour on one busy core): the bundled reference model is the teacher.  It answers
16-token prompts cut from held-out Python prose and docstrings with a fresh width-1 key and with a fresh
width-2 key (the product's default width).  A base model (GPT-2, 2 layers, width 128) is pre-trained on
human text; each student starts from it and trains two epochs on a stream of ``STREAM_TOKENS`` tokens
in which a share of 0, 5, 10, 25 or 100 % is the teacher's marked prompt + answer rows and the rest
human text (width 1: every share, the goals' cells first; width 2: 100 %).  ``build-second-size``
adds a smaller size (1 layer, width 64) with the width-1 and width-2 100 % cells.

``measure``: per student, with the key of its width, the suspect asked the service's logged prompts
(``PROMPTS``: the prompts the teacher answered with that key, all of them, whichever the student saw;
then held-out prompts of the same kind), sampled at temperature 1,

* closed mode, the round-one test (``weighted``, fixed 25,000-token budget, alpha 1e-3) as the anchor;
* closed mode, sequential (``SequentialPlan``: looks at 25k, 50k and 100k tokens, power-family
  spending with rho 0.5, half of alpha at 25k, total alpha 1e-3; the run stops at the first look that
  crosses);
* open mode (``mass``, 25,000 read tokens, alpha 1e-3);

and the wrong-key calibration: 1,000 wrong keys per clean student transcript at every look budget.
``--prompts heldout`` re-runs round one's prompts (held-out prompts only) for the comparison.

    nice -n 10 .venv/bin/python bench/bench_theft_mixes.py build --dir /tmp/tm-mixes
    nice -n 10 .venv/bin/python bench/bench_theft_mixes.py measure --dir /tmp/tm-mixes
"""

from __future__ import annotations

import argparse
import hashlib
import importlib.util
import json
import os
import sys
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from _common import REPO, write_result

BUILD = REPO / "scripts" / "build_theft_zoo.py"
REFERENCE = REPO / "models" / "reference"
SEED = 22_000
CORPUS_CHARS = 4_000_000
STREAM_TOKENS = 96_000
ANSWER_TOKENS = 112
PROMPT_TOKENS = 16
BASE_STEPS = 150
EPOCHS = 2
SHARES = (0.0, 0.05, 0.10, 0.25, 1.0)
#: The order ``build`` trains the width-1 mixes in (the cells the goals name first).
FIRST_SIZE_SHARES = (0.0, 0.25, 0.10, 0.05, 1.0)
#: (name, layers, width) of the students ``build`` trains (every width-1 mix, the width-2 100 % cell).
FIRST_SIZE = ("2x128", 2, 128)
#: What ``build-second-size`` trains instead (see :func:`build_second_size`).
SECOND_SIZE = ("1x64", 1, 64)
SECOND_SIZE_ONLY = ((1, 1.0), (2, 1.0))
SECOND_SIZE_CORPUS_CHARS = 1_000_000
FIXED_BUDGET = 25_000
LOOKS = (25_000, 50_000, 100_000)
#: Alpha spending over the looks (power family): rho 0.5 spends half of alpha at the first look (25k), so
#: the plan keeps what the fixed 25k test finds; then 0.207 at 50k and 0.293 at 100k.
RHO = 0.5
#: Closed mode's prompts (see :func:`query_prompts`) and the suspect's sampling temperature.
PROMPTS = "logged"
TEMPERATURE = 1.0
READ_BUDGET = 25_000
ALPHA = 1e-3
SUGGESTIVE = 0.05
NULL_KEYS = 100
CALIBRATION_KEYS = 1_000
OUTPUT = "theft_mixes"


def _zoo_module() -> Any:
    spec = importlib.util.spec_from_file_location("build_theft_zoo", BUILD)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["build_theft_zoo"] = module
    spec.loader.exec_module(module)
    return module


def student_name(size: str, width: int, share: float) -> str:
    return f"mix-{size}-w{width}-{round(share * 100):03d}pct"


def build(out: Path) -> None:
    import torch

    from tracemark.keys import Keyring
    from tracemark.text import TextTokenizer, new_text_key

    torch.set_num_threads(1)
    zoo = _zoo_module()
    began = time.perf_counter()
    out.mkdir(parents=True, exist_ok=True)
    manifest: dict[str, Any] = {"seed": SEED, "stages": {}, "models": {}}

    def stage(name: str) -> None:
        manifest["stages"][name] = round(time.perf_counter() - began, 1)
        (out / "manifest.json").write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n")
        print(f"{time.perf_counter() - began:7.1f}s {name}", flush=True)

    documents = zoo.corpus(CORPUS_CHARS)
    human, heldout = documents[0::2], documents[1::2]
    tokenizer = TextTokenizer(REFERENCE)
    scale = zoo.Scale(CORPUS_CHARS, 0, BASE_STEPS, 0, 0, 0, 0, PROMPT_TOKENS, ANSWER_TOKENS, 16, 128, 128, 2, 0)
    candidates = zoo.training_prompts(tokenizer, heldout[: len(heldout) // 2], scale)
    rng = np.random.default_rng(SEED)
    order = rng.permutation(len(candidates))
    per_key = STREAM_TOKENS // (PROMPT_TOKENS + ANSWER_TOKENS) + 1
    marked_prompts = {1: [candidates[i] for i in order[:per_key]],
                      2: [candidates[i] for i in order[per_key : 2 * per_key]]}  # fmt: skip
    (out / "heldout.json").write_text(json.dumps({"documents": heldout}))
    human_stream = zoo.token_stream(human, 0)
    manifest["corpus"] = {"human_tokens": int(human_stream.shape[0]), "heldout_documents": len(heldout)}
    stage("corpus")
    keyring = Keyring(out / "keyring")
    keyring.create()
    keys = {w: new_text_key(keyring, "native", REFERENCE, params={"context_width": w}, label=f"mix-w{w}")
            for w in (1, 2)}  # fmt: skip
    manifest["keys"] = {f"w{w}": k.key_id for w, k in keys.items()}
    size, layers, width_dim = FIRST_SIZE
    size_scale = replace(scale, layers=layers, width=width_dim)
    base: Any = None
    # width 1 first (answers, base, every mix), then width 2: the mixes can be measured while the rest builds
    for key_width in (1, 2):
        key = keys[key_width]
        answers = zoo.answers(REFERENCE, marked_prompts[key_width], key, scale, SEED + key_width)
        rows = [tokenizer.encode(p).ids.tolist() + a for p, a in zip(marked_prompts[key_width], answers, strict=True)]
        (out / f"marked-w{key_width}.json").write_text(json.dumps({"prompts": marked_prompts[key_width],
                                                                     "answers": answers}))  # fmt: skip
        stage(f"marked_answers_w{key_width}")
        if base is None:
            base = zoo.new_model(size_scale, SEED + 1)
            trainer = zoo.Trainer(base, human_stream, size_scale, SEED + 2, lr=1e-3)
            loss = trainer.run(BASE_STEPS)
            zoo.save(base, out / f"base-{size}", {"role": "base", "loss": loss})
            stage(f"base_{size}")
        for share in FIRST_SIZE_SHARES if key_width == 1 else (1.0,):
            stream = _mixed_stream(rows, human_stream, share, np.random.default_rng(SEED + 3))
            student = zoo.new_model(size_scale, SEED + 1)
            student.load_state_dict(base.state_dict())
            trainer = zoo.Trainer(student, stream, size_scale, SEED + 4, lr=1e-3)
            loss = trainer.run(EPOCHS * trainer.epoch_steps())
            name = student_name(size, key_width, share)
            card = {"role": "student", "size": size, "context_width": key_width, "watermarked_share": share,
                    "key_id": key.key_id, "stream_tokens": int(stream.shape[0]), "epochs": EPOCHS,
                    "steps": trainer.steps, "loss": loss}  # fmt: skip
            zoo.save(student, out / name, card)
            manifest["models"][name] = card
            stage(name)


def build_second_size(out: Path) -> None:
    """The second student size, from the first build's keys and marked answers (a smaller base, two cells).

    The first build's own second size (3 layers, width 96, four cells) did not fit the time this
    machine's load left; this is what replaced it: ``SECOND_SIZE`` with ``SECOND_SIZE_ONLY`` cells.
    It can run alongside ``build`` once that has written the keys and the width-1 answers.
    """
    import torch

    from tracemark.keys import Keyring
    from tracemark.text import TextTokenizer

    torch.set_num_threads(1)
    zoo = _zoo_module()
    began = time.perf_counter()
    manifest = json.loads((out / "manifest.json").read_text())
    keyring = Keyring(out / "keyring")
    keys = {int(k[1:]): keyring.get(v) for k, v in manifest["keys"].items()}
    tokenizer = TextTokenizer(REFERENCE)
    documents = zoo.corpus(SECOND_SIZE_CORPUS_CHARS)  # a prefix of the first build's corpus: the same human split
    human_stream = zoo.token_stream(documents[0::2], 0)
    size, layers, width_dim = SECOND_SIZE
    scale = zoo.Scale(CORPUS_CHARS, 0, BASE_STEPS, 0, 0, 0, 0, PROMPT_TOKENS, ANSWER_TOKENS, 16, 128, width_dim,
                      layers, 0)  # fmt: skip
    base = zoo.new_model(scale, SEED + 1)
    trainer = zoo.Trainer(base, human_stream, scale, SEED + 2, lr=1e-3)
    trainer.run(BASE_STEPS)
    second: dict[str, Any] = {"stages": {f"base_{size}": round(time.perf_counter() - began, 1)}, "models": {}}
    for key_width, share in SECOND_SIZE_ONLY:
        path = out / f"marked-w{key_width}.json"
        while not path.exists():  # run alongside ``build``: its width-2 answers come after the width-1 mixes
            time.sleep(30)
        marked = json.loads(path.read_text())
        rows = [tokenizer.encode(p).ids.tolist() + a for p, a in zip(marked["prompts"], marked["answers"], strict=True)]
        stream = _mixed_stream(rows, human_stream, share, np.random.default_rng(SEED + 3))
        student = zoo.new_model(scale, SEED + 1)
        student.load_state_dict(base.state_dict())
        trainer = zoo.Trainer(student, stream, scale, SEED + 4, lr=1e-3)
        loss = trainer.run(EPOCHS * trainer.epoch_steps())
        name = student_name(size, key_width, share)
        card = {"role": "student", "size": size, "context_width": key_width, "watermarked_share": share,
                "key_id": keys[key_width].key_id, "stream_tokens": int(stream.shape[0]), "epochs": EPOCHS,
                "steps": trainer.steps, "loss": loss}  # fmt: skip
        zoo.save(student, out / name, card)
        second["models"][name] = card
        second["stages"][name] = round(time.perf_counter() - began, 1)
        (out / "manifest-second.json").write_text(json.dumps(second, indent=2, sort_keys=True) + "\n")
        print(f"{time.perf_counter() - began:7.1f}s {name}", flush=True)


def _mixed_stream(marked_rows: list[list[int]], human: Any, share: float, rng: np.random.Generator) -> Any:
    """``STREAM_TOKENS`` tokens: ``share`` of them marked rows (prompt + answer + end), the rest human text."""
    marked: list[int] = []
    for row in marked_rows:
        if len(marked) >= share * STREAM_TOKENS:
            break
        marked += [*row, 0]
    rest = STREAM_TOKENS - len(marked)
    start = int(rng.integers(0, human.shape[0] - rest)) if rest > 0 else 0
    # the trainer samples random windows, so the order of the two parts does not matter
    return np.concatenate([np.asarray(marked, np.int64), np.asarray(human[start : start + max(rest, 0)], np.int64)])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "stage", nargs="?", default="all", choices=("all", "build", "build-second-size", "measure", "merge")
    )
    parser.add_argument("--output", default=OUTPUT, help="results name; parallel measure runs write theft_mixes-<x>")
    parser.add_argument("--dir", type=Path, default=Path(os.environ.get("TRACEMARK_MIXES", "/tmp/tm-mixes")))
    parser.add_argument("--only", nargs="*")
    parser.add_argument("--shrink", type=float, default=1.0, help="budgets and keys times this (< 1: script check)")
    parser.add_argument("--prompts", choices=("logged", "heldout"), default=PROMPTS, help="exploration only")
    parser.add_argument("--temperature", type=float, default=TEMPERATURE, help="exploration only")
    args = parser.parse_args()
    for stage in ("build", "build-second-size", "measure", "merge") if args.stage == "all" else (args.stage,):
        run_stage(stage, args)


def run_stage(stage: str, args: argparse.Namespace) -> None:
    if stage == "build":
        build(args.dir)
    elif stage == "build-second-size":
        build_second_size(args.dir)
    elif stage == "merge":
        merge()
    else:
        if args.shrink != 1.0:
            global LOOKS, FIXED_BUDGET, READ_BUDGET, CALIBRATION_KEYS
            LOOKS = tuple(round(b * args.shrink) for b in LOOKS)
            FIXED_BUDGET, READ_BUDGET = round(FIXED_BUDGET * args.shrink), round(READ_BUDGET * args.shrink)
            CALIBRATION_KEYS = max(20, round(CALIBRATION_KEYS * args.shrink))
        global PROMPTS, TEMPERATURE
        PROMPTS, TEMPERATURE = args.prompts, args.temperature
        measure(args.dir, args.only, args.output)


def _prompt_pools(directory: Path) -> tuple[list[str], list[str]]:
    """Query prompts (the marked answers' prompt distribution, never a marked prompt) and open-mode read text."""
    from tracemark.text import TextTokenizer

    zoo = _zoo_module()
    heldout = json.loads((directory / "heldout.json").read_text())["documents"]
    tokenizer = TextTokenizer(REFERENCE)
    scale = zoo.Scale(CORPUS_CHARS, 0, 0, 0, 0, 0, 0, PROMPT_TOKENS, ANSWER_TOKENS, 16, 128, 128, 2, 0)
    candidates = zoo.training_prompts(tokenizer, heldout[: len(heldout) // 2], scale)
    order = np.random.default_rng(SEED).permutation(len(candidates))
    per_key = STREAM_TOKENS // (PROMPT_TOKENS + ANSWER_TOKENS) + 1
    pool = [candidates[i] for i in order[2 * per_key :]]
    # then windows half-way between those (offset 64 tokens), so that students with short answers still
    # reach the last look; the first prompts, and so every look they reach, are the same as before
    marked = {candidates[i] for i in order[: 2 * per_key]}
    extra = []
    for document in heldout[: len(heldout) // 2]:
        ids = tokenizer.encode(document).ids
        for start in range(64, len(ids) - PROMPT_TOKENS, 128):
            text = tokenizer.decode([int(t) for t in ids[start : start + PROMPT_TOKENS]])
            if text.strip() and len(tokenizer.encode(text).ids) == PROMPT_TOKENS and text not in marked:
                extra.append(text)
    shuffled = np.random.default_rng(SEED + 5).permutation(len(extra))
    return pool + [extra[i] for i in shuffled], heldout[len(heldout) // 2 :]


def logged_prompts(directory: Path, width: int) -> list[str]:
    """The prompts the provider's service answered with the key of ``width`` (its log), in a fixed shuffle.

    They are human text (the customers' questions, never the marked answers), so they do not depend
    on the key: the closed-mode null stays exact and the wrong keys score the same transcript.  The
    log holds every row the teacher answered, not only the ones a student trained on (a 25 % student
    saw a quarter of them, a 5 % student a twentieth).
    """
    logged = json.loads((directory / f"marked-w{width}.json").read_text())["prompts"]
    order = np.random.default_rng(SEED + 6).permutation(len(logged))
    return [logged[i] for i in order]


def query_prompts(directory: Path, width: int, source: str) -> list[str]:
    """Closed mode's prompts: ``heldout`` (round one: the marked answers' prompt distribution, never a
    logged prompt) or ``logged`` (the service's logged prompts first, then the held-out pool)."""
    pool, _ = _prompt_pools(directory)
    if source == "heldout":
        return pool
    logged = logged_prompts(directory, width)
    seen = set(logged)
    return logged + [p for p in pool if p not in seen]


def _verdict_row(verdict: Any, budget: int) -> dict[str, Any]:
    """The verdict's figures, and the budget at which its observed effect would decide at alpha.

    ``budget_needed_tokens`` is :func:`~tracemark.theft._verdict.recommended_budget` applied whatever the
    decision (the verdict itself gives one only in the suggestive band); None where p >= 0.5.
    """
    from tracemark.theft._verdict import recommended_budget

    data = verdict.to_json()
    check = data["null_check"] or {}
    p = verdict.p_value
    return {
        "decision": verdict.decision,
        "p_value": p,
        "log10_p_value": verdict.log10_p_value,
        "effect": data["effect"].get("estimate"),
        "counts": data["counts"],
        "looks": data["statistic"].get("looks"),
        "null_check_passed": check.get("passed"),
        "reasons": list(verdict.reasons),
        "budget_needed_tokens": recommended_budget(p, ALPHA, budget) if p is not None and p > ALPHA else None,
    }


def _wrong_key_p_values(transcript: Any, key: Any, tokenizer: Any, budget: int, count: int) -> dict[str, Any]:
    """Per wrong key, the closed-mode p-value at ``budget`` under both statistics (same keys at every budget)."""
    from tracemark.text import load_scheme
    from tracemark.theft._closed import _closed_sequences, _hits_under, _score_rows, _tuple_table
    from tracemark.theft._radioactivity import TupleStatistic, wrong_keys

    sequences = _closed_sequences(transcript, tokenizer, budget)
    scheme = load_scheme(key)
    units, _ = _score_rows(scheme, sequences)
    table = _tuple_table(scheme, sequences, units)
    keys = wrong_keys(key, count, f"bench-theft-mixes/{key.key_id}")
    hits = [_hits_under(load_scheme(k), table, sequences) for k in keys]
    out: dict[str, Any] = {"response_tokens": sequences.response_tokens, "distinct_tuples": int(table.units.shape[0])}
    for name in ("weighted", "distinct"):
        weights = np.ones(table.units.shape[0]) if name == "distinct" else np.minimum(table.counts, 16).astype(float)
        statistic = TupleStatistic(name, weights, scheme.trials_per_unit, scheme.success_probability)
        values = np.array([statistic.value(h) for h in hits])
        p_values, _ = statistic.null_p_values(values)
        out[name] = p_values
    return out


def _calibration(per_budget: dict[int, dict[str, Any]], count: int) -> dict[str, Any]:
    """False positives among ``count`` wrong keys: per budget (fixed test) and for the sequential plan."""
    from scipy import stats

    from tracemark.theft import SequentialPlan

    shares = SequentialPlan(LOOKS, rho=RHO).shares()
    table: dict[str, Any] = {}
    for name in ("weighted", "distinct"):
        rows: dict[str, Any] = {}
        for level in (0.05, 0.01, 0.001):
            limit = int(stats.binom.ppf(0.999, count, level))
            fixed = {str(b): int(np.count_nonzero(per_budget[b][name] <= level)) for b in per_budget}
            crossed = np.zeros(count, dtype=bool)
            for index, budget in enumerate(LOOKS):
                if budget in per_budget:
                    crossed |= per_budget[budget][name] <= level * shares[index]
            rows[str(level)] = {"fixed_budget_flagged": fixed, "sequential_flagged": int(crossed.sum()),
                                "expected": count * level, "upper_limit_99.9": limit}  # fmt: skip
        ks = {str(b): float(stats.kstest(per_budget[b][name], "uniform", alternative="greater").pvalue)
              for b in per_budget}  # fmt: skip
        table[name] = {"levels": rows, "ks_p_value_greater": ks}
    return table


def merge() -> None:
    """Fold the parallel runs' ``theft_mixes-*.json`` into ``theft_mixes.json`` (students and calibration)."""
    parts = sorted((REPO / "bench" / "results").glob(f"{OUTPUT}-*.json"))
    merged: dict[str, Any] = {}
    for path in parts:
        data = json.loads(path.read_text())
        if not merged:
            merged = {k: v for k, v in data.items() if k not in ("benchmark", "recorded_at", "machine")}
        merged["students"] = {**merged.get("students", {}), **data["students"]}
        merged["calibration"] = {**merged.get("calibration", {}), **data["calibration"]}
    merged["parts"] = [p.name for p in parts]
    write_result(OUTPUT, merged)
    for path in parts:
        path.unlink()


def measure(directory: Path, only: list[str] | None, output: str) -> None:
    import torch

    from bench_theft_power import CachedReader
    from bench_theft_zoo import BatchedHFModel
    from tracemark.keys import Keyring
    from tracemark.text import TextTokenizer
    from tracemark.theft import (
        HFModel,
        RadioactivityConfig,
        SequentialPlan,
        radioactivity_open,
        radioactivity_sequential,
    )
    from tracemark.theft._closed import closed_verdict

    torch.set_num_threads(1)
    manifest = json.loads((directory / "manifest.json").read_text())
    if (directory / "manifest-second.json").exists():
        second = json.loads((directory / "manifest-second.json").read_text())
        manifest["models"].update(second["models"])
        manifest["stages"].update(second["stages"])
    keyring = Keyring(directory / "keyring")
    keys = {int(k[1:]): keyring.get(v) for k, v in manifest["keys"].items()}
    tokenizer = TextTokenizer(REFERENCE)
    _, read_texts = _prompt_pools(directory)
    plan = SequentialPlan(LOOKS, rho=RHO)
    previous = Path(REPO / "bench" / "results" / f"{output}.json")
    results: dict[str, Any] = json.loads(previous.read_text()).get("students", {}) if previous.exists() else {}
    calibration: dict[str, Any] = json.loads(previous.read_text()).get("calibration", {}) if previous.exists() else {}
    names = only or list(manifest["models"])
    for name in names:
        card = manifest["models"][name]
        width, share = card["context_width"], card["watermarked_share"]
        key = keys[width]
        seed = SEED + int.from_bytes(hashlib.sha256(name.encode()).digest()[:3], "big")  # fixed per student
        began = time.perf_counter()
        prompts = query_prompts(directory, width, PROMPTS)
        suspect = BatchedHFModel(directory / name, prompts, temperature=TEMPERATURE)
        config = RadioactivityConfig(budget_tokens=LOOKS[-1], alpha=ALPHA, suggestive=SUGGESTIVE, null_keys=NULL_KEYS)
        sequential, transcript = radioactivity_sequential(suspect, [key], prompts, tokenizer, config, plan,
                                                          max_new_tokens=128, seed=seed)  # fmt: skip
        seconds = time.perf_counter() - began
        (directory / f"{name}.transcript.jsonl").write_bytes(transcript.to_jsonl())
        # the round-one test on the same answers: weighted, a fixed 25,000-token budget, no suggestive band
        fixed = closed_verdict(transcript, [key], tokenizer, RadioactivityConfig(budget_tokens=FIXED_BUDGET,
                               alpha=ALPHA, suggestive=None, null_keys=NULL_KEYS))  # fmt: skip
        began = time.perf_counter()
        reader = CachedReader(HFModel(directory / name))
        open_config = RadioactivityConfig(budget_tokens=READ_BUDGET, statistic="mass", alpha=ALPHA,
                                          suggestive=SUGGESTIVE, null_keys=NULL_KEYS, top_k=64)  # fmt: skip
        opened = radioactivity_open(reader, [key], read_texts, tokenizer, open_config)
        row = {**{k: card[k] for k in ("size", "context_width", "watermarked_share", "loss", "stream_tokens")},
               "key_id": key.key_id, "closed_fixed_25k": _verdict_row(fixed, FIXED_BUDGET),
               "closed_sequential": _verdict_row(sequential, LOOKS[-1]), "open_mass": _verdict_row(opened, READ_BUDGET),
               "closed_seconds": round(seconds, 1), "open_seconds": round(time.perf_counter() - began, 1)}  # fmt: skip
        results[name] = row
        print(f"{name:26s} fixed-25k {fixed.decision:12s} p={fixed.p_value:.3g} | sequential "
              f"{sequential.decision:12s} p={sequential.p_value:.3g} stop {sequential.counts.get('stopped')} at "
              f"{sequential.counts.get('response_tokens')} | open {opened.decision} p={opened.p_value:.3g}",
              flush=True)  # fmt: skip
        if share == 0.0:
            per_budget = {b: _wrong_key_p_values(transcript, key, tokenizer, b, CALIBRATION_KEYS) for b in LOOKS}
            calibration[name] = {
                "wrong_keys": CALIBRATION_KEYS,
                "budgets": {
                    str(b): {k: v for k, v in per_budget[b].items() if k in ("response_tokens", "distinct_tuples")}
                    for b in per_budget
                },
                "table": _calibration(per_budget, CALIBRATION_KEYS),
            }
            print(json.dumps(calibration[name]["table"]["weighted"]["levels"]), flush=True)
        write_result(output, {
            "description": __doc__.split("\n\n")[0],
            "preregistered": {"fixed_budget": FIXED_BUDGET, "looks": list(LOOKS), "rho": plan.rho, "alpha": ALPHA,
                              "prompts": PROMPTS, "temperature": TEMPERATURE,
                              "suggestive": SUGGESTIVE, "read_budget": READ_BUDGET, "null_keys": NULL_KEYS,
                              "calibration_keys": CALIBRATION_KEYS, "stream_tokens": STREAM_TOKENS,
                              "epochs": EPOCHS},
            "build_seconds": manifest.get("stages"),
            "students": results,
            "calibration": calibration,
        })  # fmt: skip


if __name__ == "__main__":
    main()
