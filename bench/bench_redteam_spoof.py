"""Watermark stealing against the native scheme at M = 10, 100, 1,000, and the product's known-output check.

Stage ``generate``: per context width (``--context-width 2,1``: today's default key and the width-1 key),
one fresh native key; ``--pool`` marked completions (the outputs the attacker steals from, and that the
provider has logged), ``--genuine`` further marked completions (genuine texts whose attribution the
check must keep), ``--unmarked`` unmarked ones; then ``--spoof-texts`` forged texts per M (500 by
default, the issue's N: 0/500 bounds the success rate below 0.76 %, Wilson).  The token ids and the keyring stay in
``--work``/w<W> for the second stage.

Stage ``check``, through the product path: the provider's outputs indexed by
:class:`tracemark.text.KnownOutputIndex` in a SQLite database (as ``tracemark text index add`` and the
service do), every text tested by ``detect_watermark`` and then :func:`tracemark.text.attribute`; spoof
success is a forged text the verdict calls ours (marked and attributed).  Genuine texts, as generated and
with 10 % of their words deleted, in the index (a complete log) and outside it (outputs the index never
saw).  Beside: the exact in-memory index (``tracemark.redteam.KnownOutputIndex``), the index's bytes
per output, and CPU seconds per check beside plain detection in the same run.

    nice -n 10 .venv/bin/python bench/bench_redteam_spoof.py --stage generate check

``scrub`` runs every scrubbing attack on the pool's first ``--scrub-samples`` texts (result
``redteam_text_native_scrub<N>_v12.json``).  ``forge`` alone forges from a saved pool (``generate``
runs it too); it may run beside ``generate`` once ``pool.json`` is written.

Results: ``redteam_text_native_spoof_known_outputs_w<W>.json`` (``redteam_text_native_spoof1000.json``:
the run before the product index, with the exact index only).
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
from tracemark.keys import Keyring, TextKey
from tracemark.redteam import TEXT_ATTACKS, TextRedTeam, TextRedTeamOptions
from tracemark.redteam._intervals import rate
from tracemark.redteam._results import rate_json
from tracemark.redteam._text_redteam import STEALING_BOOST
from tracemark.text import (
    ASSEMBLED,
    DEFAULT_ALPHA,
    KnownOutputIndex,
    TextTokenizer,
    attribute,
    detect_watermark,
    load_scheme,
    new_text_key,
    reference_model_dir,
    verifier_ids,
)

DEFAULT_WORK = "/tmp/tracemark-redteam-spoof"


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
    params = {"context_width": args.width}
    key = new_text_key(keyring, "native", reference_model_dir(), params=params, make_default=True)
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


def _delete_words(text: str, share: float, seed: int) -> str:
    """A lightly edited genuine text: each word deleted with probability ``share``."""
    rng = np.random.default_rng(seed)
    return " ".join(word for word in text.split(" ") if rng.random() >= share)


def _build_index(database: Path, key: TextKey, outputs: list[str], tokenizer: TextTokenizer) -> float:
    """Index ``outputs`` in a fresh SQLite database as a provider adds them (in batches); CPU seconds taken."""
    database.unlink(missing_ok=True)
    begun = time.process_time()
    with KnownOutputIndex.open(database, key, create=True) as index:
        for low in range(0, len(outputs), 256):
            index.add_texts(outputs[low : low + 256], tokenizer)
    return time.process_time() - begun


def _published(work: Path, name: str, tokenizer: TextTokenizer) -> list[str]:
    """The saved generations as published: decoded text (the verifier canonicalises and tokenises it)."""
    path = work / f"{name}.json"
    return [tokenizer.decode(ids) for ids in _load(path)] if path.exists() else []


def _corpora(
    args: argparse.Namespace, work: Path, tokenizer: TextTokenizer
) -> tuple[list[str], list[str], list[str], list[str]]:
    """The provider's other outputs, the genuine texts, those with 10 % of words deleted, the unmarked texts."""
    pool, genuine = _published(work, "pool", tokenizer), _published(work, "genuine", tokenizer)
    if args.genuine_from_pool:  # genuine texts: the pool's last outputs (logged, never stolen: M stays below)
        pool, genuine = pool[: -args.genuine_from_pool], pool[-args.genuine_from_pool :]
    edited = [_delete_words(text, 0.10, seed=number) for number, text in enumerate(genuine)]
    return pool, genuine, edited, _published(work, "unmarked", tokenizer)


def check(args: argparse.Namespace, work: Path) -> None:
    """Spoof success and genuine attribution through the product path: the provider's outputs indexed by
    :class:`tracemark.text.KnownOutputIndex` in a SQLite database (as ``tracemark text index add`` and the
    service do), every text tested by ``detect_watermark`` and then :func:`tracemark.text.attribute`."""
    from tracemark.redteam import KnownOutputIndex as ExactIndex

    os.environ["TRACEMARK_HOME"] = str(work / "home")
    key = Keyring().default("text")
    width = load_scheme(key).context_width
    tokenizer = TextTokenizer(reference_model_dir())
    timings_path = work / "timings.json"
    timings = json.loads(timings_path.read_text()) if timings_path.exists() else {}

    def texts(name: str) -> list[str]:
        return _published(work, name, tokenizer)

    pool, genuine, edited, unmarked = _corpora(args, work, tokenizer)
    databases = {"in_log": work / "known-outputs.sqlite3", "not_in_log": work / "known-outputs-pool.sqlite3"}
    built = {"in_log": _build_index(databases["in_log"], key, [*pool, *genuine], tokenizer),
             "not_in_log": _build_index(databases["not_in_log"], key, pool, tokenizer)}  # fmt: skip
    exact = ExactIndex.build(key, [verifier_ids(text, tokenizer) for text in [*pool, *genuine]])
    cpu = {"detect_s": 0.0, "check_s": 0.0, "checks": 0, "detections": 0}

    def judge(index: KnownOutputIndex, batch: list[str]) -> dict[str, Any]:
        """Detector verdicts, then the attribution of each marked text (the product's two steps)."""
        marked = ours = assembled = exact_ours = 0
        novel: list[float] = []
        for text in batch:
            begun = time.process_time()
            verdict = detect_watermark(text, key, tokenizer, alpha=DEFAULT_ALPHA)
            cpu["detect_s"] += time.process_time() - begun
            cpu["detections"] += 1
            if not verdict.marked:
                continue
            marked += 1
            variant = verdict.canonicalization.get("variant")
            begun = time.process_time()
            result = attribute(True, variant if isinstance(variant, str) else None, text, tokenizer, index,
                               alpha=DEFAULT_ALPHA)  # fmt: skip
            cpu["check_s"] += time.process_time() - begun
            cpu["checks"] += 1
            assert result.check is not None
            novel.append(result.check.log10_p_value_novel or -300.0)
            ours += result.ours
            assembled += result.status == ASSEMBLED
            exact_ours += not exact.check(verifier_ids(text, tokenizer), alpha=DEFAULT_ALPHA).assembled
        return {
            "texts": len(batch),
            "detector_marked": _rate(marked, len(batch)),
            "attributed_ours": _rate(ours, len(batch)),
            "flagged_assembled": assembled,
            "attributed_by_exact_index": _rate(exact_ours, len(batch)),
            "median_log10_p_novel_of_marked": statistics.median(novel) if novel else None,
        }

    rows: list[dict[str, Any]] = []
    with KnownOutputIndex.open(databases["in_log"], key) as index:
        description = dict(index.describe())
        for m in args.spoof:
            if not (work / f"forged{m}.json").exists():
                print(f"no forged texts for M={m} in {work}: skipped", flush=True)
                continue
            forged = texts(f"forged{m}")
            meta = json.loads((work / f"forged{m}.meta.json").read_text())
            timings[f"forge_{m}_s"] = meta["forge_s"]
            judged = judge(index, forged)
            rows.append({"stolen_samples": m, "contexts_learned": meta["learned"],
                         "median_perplexity": meta["ppl"],
                         "spoof_success_detector_only": judged["detector_marked"],
                         "spoof_success_with_known_output_check": judged["attributed_ours"], **judged})  # fmt: skip
        genuine_rows = {"in_log": judge(index, genuine), "in_log_10pct_words_deleted": judge(index, edited)}
        unmarked_row = judge(index, unmarked) if unmarked else None
    with KnownOutputIndex.open(databases["not_in_log"], key) as index:
        genuine_rows["not_in_log"] = judge(index, genuine)
        genuine_rows["not_in_log_10pct_words_deleted"] = judge(index, edited)
    file_bytes = databases["in_log"].stat().st_size
    logged = len(pool) + len(genuine)
    payload = {
        "settings": {**{k: v for k, v in vars(args).items() if k not in ("stage", "context_width")},
                     "context_width": width, "boost": STEALING_BOOST, "alpha": DEFAULT_ALPHA, "scheme": "native",
                     "model": str(reference_model_dir()), "key_id": key.key_id},
        "timings": timings | {"index_build_cpu_s": built},
        "index": description | {"sqlite_file_bytes": file_bytes, "sqlite_file_bytes_per_output": file_bytes / logged,
                                "exact_index_bytes": exact.describe()["bytes"]},
        "cost": {"detect_cpu_s_per_text": cpu["detect_s"] / max(1, cpu["detections"]),
                 "check_cpu_s_per_marked_text": cpu["check_s"] / max(1, cpu["checks"]),
                 "detections": cpu["detections"], "checks": cpu["checks"]},
        "spoofing": rows,
        "genuine": genuine_rows,
        "unmarked": unmarked_row,
    }  # fmt: skip
    print(json.dumps(payload, indent=2), flush=True)
    write_result(f"redteam_text_native_spoof_known_outputs_w{width}", payload)


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
    parser.add_argument(
        "--work", help="token ids and keyring between stages, in <work>/w<W> (default: /tmp/tracemark-redteam-spoof)"
    )
    parser.add_argument(
        "--context-width",
        type=lambda v: [int(x) for x in v.split(",")],
        default=[2, 1],
        help="the native key's context widths, each run in its own work folder (default 2,1)",
    )
    parser.add_argument("--pool", type=int, default=1000)
    parser.add_argument("--genuine", type=int, default=200)
    parser.add_argument("--unmarked", type=int, default=200)
    parser.add_argument("--tokens", type=int, default=200)
    parser.add_argument("--spoof", type=lambda v: [int(x) for x in v.split(",")], default=[10, 100, 1000])
    parser.add_argument(
        "--spoof-texts", type=int, default=500, help="forged texts per M (0 of 500: Wilson high 0.76 %)"
    )
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--genuine-from-pool", type=int, default=0,
                        help="check stage: take the genuine texts from the pool's last N outputs instead of "
                             "genuine.json (they are logged and never stolen while M <= pool - N)")  # fmt: skip
    parser.add_argument("--scrub-samples", type=int, default=500, help="marked texts of the pool the scrub stage uses")
    parser.add_argument("--unmarked-file", help="unmarked token ids (JSON) for the scrub stage")
    parser.add_argument("--attacks", default="all", help="scrub stage: comma-separated text attacks or 'all'")
    parser.add_argument("--tag", default="", help="scrub stage: suffix of the result file")
    parser.add_argument("--no-variants", action="store_true", help="scrub stage: canonical text only (before #12)")
    args = parser.parse_args()
    for width in args.context_width:
        if width not in (1, 2):
            parser.error("--context-width: the native scheme has widths 1 and 2")
        args.width = width
        # one width with --work: that folder itself (as before widths were a list); else a sub-folder per width
        work = (
            Path(args.work)
            if args.work and len(args.context_width) == 1
            else Path(args.work or DEFAULT_WORK) / f"w{width}"
        )
        work.mkdir(parents=True, exist_ok=True)
        for stage in args.stage:
            {"generate": generate, "forge": forge, "check": check, "scrub": scrub}[stage](args, work)


if __name__ == "__main__":
    main()
