"""Watermark stealing against the native scheme at M = 10, 100, 1,000, and the known-output spoof check.

Stage ``generate``: one fresh native key; ``--pool`` marked completions (the outputs the attacker
steals from, and that the provider has logged), ``--genuine`` further marked completions (genuine
texts whose attribution the spoof check must keep), ``--unmarked`` unmarked ones; then
``--spoof-texts`` forged texts per M.  The token ids and the keyring stay in ``--work`` for the
second stage.

Stage ``check``: the detector's verdict on every forged and genuine text, then the known-output
check (:class:`tracemark.redteam.KnownOutputIndex` over the provider's marked outputs): its spoof
success and its cost to genuine texts, with the genuine texts inside the provider's log (a complete
log) and outside it (outputs the index never saw).

    nice -n 10 .venv/bin/python bench/bench_redteam_spoof.py --stage generate check

``scrub`` runs every scrubbing attack on the pool's first ``--scrub-samples`` texts (result
``redteam_text_native_scrub<N>_v12.json``).  ``forge`` alone forges from a saved pool (``generate``
runs it too); it may run beside ``generate``
once ``pool.json`` is written.

Result: ``redteam_text_native_spoof1000.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time
from pathlib import Path
from typing import Any

import numpy as np

from _common import write_result
from tracemark.keys import Keyring
from tracemark.redteam import TEXT_ATTACKS, TextRedTeam, TextRedTeamOptions
from tracemark.redteam._intervals import rate
from tracemark.redteam._results import rate_json
from tracemark.redteam._text_redteam import STEALING_BOOST, _Detector
from tracemark.text import DEFAULT_ALPHA, TextTokenizer, new_text_key, reference_model_dir


def _progress(stage: str, done: int, total: int) -> None:
    if done in (0, total) or done % 64 == 0:
        print(f"{time.strftime('%H:%M:%S')} {stage} {done}/{total}", flush=True)


def _save(path: Path, batch: list[list[int]]) -> None:
    path.write_text(json.dumps(batch))


def _load(path: Path) -> list[list[int]]:
    return [list(map(int, row)) for row in json.loads(path.read_text())]


def generate(args: argparse.Namespace, work: Path) -> None:
    os.environ["TRACEMARK_HOME"] = str(work / "home")
    keyring = Keyring()
    keyring.create()
    key = new_text_key(keyring, "native", reference_model_dir(), make_default=True)
    options = TextRedTeamOptions(samples=args.unmarked, tokens=args.tokens, threads=args.threads)
    team = TextRedTeam(reference_model_dir(), options, _progress)
    started = time.monotonic()
    pool = team._generate("marked pool", args.pool, seed=options.seed, key=key)
    _save(work / "pool.json", pool)
    genuine = team._generate("genuine marked", args.genuine, seed=options.seed + 5000, key=key)
    _save(work / "genuine.json", genuine)
    _save(work / "unmarked.json", team.unmarked())
    timings = {"generation_s": time.monotonic() - started,
               "genuine_ppl": statistics.median(team.model.perplexity(genuine))}  # fmt: skip
    (work / "timings.json").write_text(json.dumps(timings))
    forge(args, work, team)


def forge(args: argparse.Namespace, work: Path, team: TextRedTeam | None = None) -> None:
    """Forged texts for each M from the saved pool (a stage of its own, so it can run beside ``generate``)."""
    os.environ["TRACEMARK_HOME"] = str(work / "home")
    key = Keyring().default("text")
    if team is None:
        options = TextRedTeamOptions(samples=args.unmarked, tokens=args.tokens, threads=args.threads)
        team = TextRedTeam(reference_model_dir(), options, _progress)
    pool = _load(work / "pool.json")
    for m in args.spoof:
        begun = time.monotonic()
        forged, learned = team.forge(key, pool[:m], args.spoof_texts)
        _save(work / f"forged{m}.json", forged)
        meta = {"forge_s": time.monotonic() - begun, "learned": learned,
                "ppl": statistics.median(team.model.perplexity(forged))}  # fmt: skip
        (work / f"forged{m}.meta.json").write_text(json.dumps(meta))


def _rate(k: int, n: int) -> dict[str, Any]:
    return dict(rate_json(rate(k, n)))


def check(args: argparse.Namespace, work: Path) -> None:
    from tracemark.redteam import KnownOutputIndex

    os.environ["TRACEMARK_HOME"] = str(work / "home")
    key = Keyring().default("text")
    tokenizer = TextTokenizer(reference_model_dir())
    detector = _Detector(key, tokenizer, DEFAULT_ALPHA)
    threshold = float(np.log10(DEFAULT_ALPHA))
    timings_path = work / "timings.json"
    timings = json.loads(timings_path.read_text()) if timings_path.exists() else {}

    def published(name: str) -> list[list[int]]:
        """The saved generations as the verifier sees them: decoded, canonicalised and tokenised again."""
        if not (work / f"{name}.json").exists():
            return []
        return [detector.ids(tokenizer.decode(ids)).tolist() for ids in _load(work / f"{name}.json")]

    pool, genuine, unmarked = published("pool"), published("genuine"), published("unmarked")

    def detect(batch: list[list[int]]) -> list[float]:
        return detector.log10_p_ids([np.asarray(r, dtype=np.int64) for r in batch])

    genuine_p = detect(genuine)
    unmarked_p = detect(unmarked) if unmarked else []
    started = time.monotonic()
    complete = KnownOutputIndex.build(key, [*pool, *genuine])  # the provider logged every marked output
    partial = KnownOutputIndex.build(key, pool)  # the genuine texts are outputs the index never saw
    index_s = time.monotonic() - started
    rows: list[dict[str, Any]] = []

    def judged(index: KnownOutputIndex, batch: list[list[int]], p: list[float]) -> tuple[int, int, list[float]]:
        attributed = flagged = 0
        novel: list[float] = []
        for ids, value in zip(batch, p, strict=True):
            if value > threshold:
                continue
            result = index.check(np.asarray(ids, dtype=np.int64), alpha=DEFAULT_ALPHA)
            novel.append(result.log10_p_novel)
            if result.assembled:
                flagged += 1
            else:
                attributed += 1
        return attributed, flagged, novel

    for m in args.spoof:
        forged = published(f"forged{m}")
        meta = json.loads((work / f"forged{m}.meta.json").read_text())
        timings[f"forge_{m}_s"] = meta["forge_s"]
        forged_p = detect(forged)
        accepted = sum(v <= threshold for v in forged_p)
        still, flagged, novel = judged(complete, forged, forged_p)
        rows.append({
            "stolen_samples": m, "forged_texts": len(forged), "contexts_learned": meta["learned"],
            "median_perplexity": meta["ppl"],
            "detector_accepts": _rate(accepted, len(forged)),
            "accepted_after_known_output_check": _rate(still, len(forged)),
            "flagged_assembled": flagged,
            "median_log10_p_forged": statistics.median(forged_p),
            "median_log10_p_novel_of_accepted": statistics.median(novel) if novel else None,
        })  # fmt: skip
    genuine_detected = sum(v <= threshold for v in genuine_p)
    costs = {}
    for name, index in (("in_log", complete), ("not_in_log", partial)):
        kept, flagged, novel = judged(index, genuine, genuine_p)
        costs[name] = {
            "detected": _rate(genuine_detected, len(genuine)),
            "attributed_after_check": _rate(kept, len(genuine)),
            "flagged_assembled": flagged,
            "median_log10_p_novel": statistics.median(novel) if novel else None,
        }
    payload = {
        "settings": {**{k: v for k, v in vars(args).items() if k != "stage"}, "boost": STEALING_BOOST,
                     "alpha": DEFAULT_ALPHA, "scheme": "native", "model": str(reference_model_dir())},
        "timings": timings | {"index_s": index_s},
        "index": complete.describe(),
        "unmarked_fpr": _rate(sum(v <= threshold for v in unmarked_p), len(unmarked_p)) if unmarked else None,
        "spoofing": rows,
        "genuine": costs,
    }  # fmt: skip
    print(json.dumps(payload, indent=2))
    write_result("redteam_text_native_spoof1000", payload)


def scrub(args: argparse.Namespace, work: Path) -> None:
    """Every scrubbing attack on the first ``--scrub-samples`` texts of the pool and the saved unmarked texts
    (``--unmarked-file``, else the run's own), scored as the product does (case and whitespace variants on)."""
    from bench_redteam import _finish

    os.environ["TRACEMARK_HOME"] = str(work / "home")
    key = Keyring().default("text")
    attacks = tuple(TEXT_ATTACKS) if args.attacks == "all" else tuple(a for a in args.attacks.split(",") if a)
    options = TextRedTeamOptions(samples=args.scrub_samples, tokens=args.tokens, threads=args.threads,
                                 attacks=attacks, variants=not args.no_variants)  # fmt: skip
    team = TextRedTeam(reference_model_dir(), options, _progress)
    marked = _load(work / "pool.json")[: args.scrub_samples]
    unmarked = _load(Path(args.unmarked_file) if args.unmarked_file else work / "unmarked.json")
    report = team.scrub_report(key, marked, unmarked)
    _finish(f"redteam_text_native_scrub{len(marked)}_v12{args.tag}", report, {**vars(args), "part": "scrub"}, None)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--stage", nargs="+", default=["generate", "check"], choices=["generate", "forge", "check", "scrub"]
    )
    parser.add_argument("--work", default="/tmp/tracemark-redteam-spoof", help="token ids and keyring between stages")
    parser.add_argument("--pool", type=int, default=1000)
    parser.add_argument("--genuine", type=int, default=200)
    parser.add_argument("--unmarked", type=int, default=200)
    parser.add_argument("--tokens", type=int, default=200)
    parser.add_argument("--spoof", type=lambda v: [int(x) for x in v.split(",")], default=[10, 100, 1000])
    parser.add_argument("--spoof-texts", type=int, default=200)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--scrub-samples", type=int, default=500, help="marked texts of the pool the scrub stage uses")
    parser.add_argument("--unmarked-file", help="unmarked token ids (JSON) for the scrub stage")
    parser.add_argument("--attacks", default="all", help="scrub stage: comma-separated text attacks or 'all'")
    parser.add_argument("--tag", default="", help="scrub stage: suffix of the result file")
    parser.add_argument("--no-variants", action="store_true", help="scrub stage: canonical text only (before #12)")
    args = parser.parse_args()
    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    for stage in args.stage:
        {"generate": generate, "forge": forge, "check": check, "scrub": scrub}[stage](args, work)


if __name__ == "__main__":
    main()
