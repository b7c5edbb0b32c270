"""Watermark red team at full N: every text attack on native (ours) beside KGW (the anchor), and the image attacks.

Text: ``--samples`` marked and unmarked completions of ``--tokens`` tokens from the reference model
per scheme, every scrubbing attack at every strength, local regeneration, the emoji attack at
generation time, and watermark stealing from M = 10, 100, 1,000 marked samples (``--spoof-texts``
forged texts each).  KGW (``lefthash``, context width 1: transformers' default) is the anchor: the
same attacks against it in the same process, reported as the ratio of TPRs, show what the native
scheme's design buys (and where it does not).  Image: ``--images`` synthetic pictures per cell under
every image attack, and the averaging attack with N = 10, 100, 1,000 marked pictures.

Parts run in the order given (default: native, kgw, summary); one per process runs them side by side:

    .venv/bin/python bench/bench_redteam.py --part native [--samples 500 --spoof 10,100,1000 --spoof-texts 500]
    .venv/bin/python bench/bench_redteam.py --part kgw
    .venv/bin/python bench/bench_redteam.py --part image [--images 200 --averaging 10,100,1000]
    .venv/bin/python bench/bench_redteam.py --part summary

Results: ``redteam_text_<scheme>.json`` and ``redteam_image.json`` (schema ``tracemark.redteam.watermark/v1``
plus the run's settings), and with ``--part summary`` ``redteam.json``: the targets and the native/KGW ratios.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

from _common import results_dir, temporary_home, write_result
from tracemark.keys import Keyring
from tracemark.redteam import (
    TEXT_ATTACKS,
    TextRedTeam,
    TextRedTeamOptions,
    WatermarkReport,
    watermark_html,
    watermark_table,
)
from tracemark.text import new_text_key, reference_model_dir


def _progress(stage: str, done: int, total: int) -> None:
    if done in (0, total) or done % 64 == 0:
        print(f"{time.strftime('%H:%M:%S')} {stage} {done}/{total}", flush=True)


def _counts(value: str) -> tuple[int, ...]:
    return tuple(int(v) for v in value.split(",") if v)


def _finish(name: str, report: WatermarkReport, settings: dict[str, Any], html: str | None) -> None:
    print(watermark_table(report), flush=True)
    write_result(name, {"settings": settings, "report": report.to_json()})
    if html:
        Path(html).write_text(watermark_html(report))


def run_text(scheme: str, args: argparse.Namespace) -> None:
    temporary_home()
    keyring = Keyring()
    keyring.create()
    key = new_text_key(keyring, scheme, reference_model_dir())
    attacks = tuple(TEXT_ATTACKS) if args.attacks == "all" else tuple(a for a in args.attacks.split(",") if a)
    options = TextRedTeamOptions(samples=args.samples, tokens=args.tokens, spoof_samples=_counts(args.spoof),
                                 spoof_texts=args.spoof_texts, threads=args.threads, attacks=attacks,
                                 regeneration=not args.no_regeneration, emoji_generation=args.emoji_samples > 0,
                                 emoji_samples=args.emoji_samples, variants=not args.no_variants)  # fmt: skip
    report = TextRedTeam(reference_model_dir(), options, _progress).run([key])
    _finish(f"redteam_text_{scheme}{args.tag}", report, {**vars(args), "part": scheme}, args.html)


def run_image(args: argparse.Namespace) -> None:
    from tracemark.media import MediaKey
    from tracemark.redteam import IMAGE_ATTACKS, ImageRedTeam, ImageRedTeamOptions

    attacks = (
        tuple(IMAGE_ATTACKS) if args.image_attacks == "all" else tuple(a for a in args.image_attacks.split(",") if a)
    )
    options = ImageRedTeamOptions(images=args.images, averaging=_counts(args.averaging), size=args.size,
                                  averaging_trials=args.averaging_trials, attacks=attacks)  # fmt: skip
    report = ImageRedTeam(MediaKey.from_secret(os.urandom(32)), options, _progress).run()
    _finish(f"redteam_image{args.tag}", report, {**vars(args), "part": "image"}, args.html)


def summary() -> None:
    """Targets of every part and the native/KGW TPR ratio per attack and strength."""
    directory = results_dir()
    loaded = {p.stem: json.loads(p.read_text()) for p in sorted(directory.glob("redteam_*.json"))}
    parts = {name: part for name, part in loaded.items() if "report" in part}
    if not parts:
        sys.exit(f"no redteam_*.json in {directory}: run the parts first")
    targets = [t | {"part": name} for name, part in parts.items() for t in part["report"]["targets"]]
    ratios = []
    native = [c for name, p in parts.items() if name.startswith("redteam_text_native") for c in p["report"]["cells"]]
    kgw = [c for name, p in parts.items() if name.startswith("redteam_text_kgw") for c in p["report"]["cells"]]
    if native and kgw:
        anchor = {(c["attack"], c["strength"]): c for c in kgw}
        for cell in native:
            other = anchor.get((cell["attack"], cell["strength"]))
            if other is None:
                continue
            ours, theirs = cell["tpr"]["value"], other["tpr"]["value"]
            ratios.append({"attack": cell["attack"], "strength": cell["strength"], "native_tpr": ours,
                           "kgw_tpr": theirs, "ratio": None if not theirs else round(ours / theirs, 3)})  # fmt: skip
    write_result("redteam", {"parts": sorted(parts), "targets": targets, "native_over_kgw": ratios})
    for target in targets:
        print(f"{target['met']!s:5} {target['id']}: {target['measured']}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--part",
        nargs="+",
        default=["native", "kgw", "summary"],
        choices=["native", "kgw", "synthid", "image", "summary"],
        help="parts to run, in order",
    )
    parser.add_argument("--samples", type=int, default=500)
    parser.add_argument("--tokens", type=int, default=200)
    parser.add_argument("--spoof", default="10,100,1000")
    parser.add_argument("--spoof-texts", type=int, default=500, help="forged texts per M (the issue's N: 500)")
    parser.add_argument("--images", type=int, default=200)
    parser.add_argument("--averaging", default="10,100,1000")
    parser.add_argument("--averaging-trials", type=int, default=20)
    parser.add_argument("--size", type=int, default=320, help="side of the synthetic pictures (pixels)")
    parser.add_argument("--image-attacks", default="all", help="comma-separated image attacks, 'all' or '' (none)")
    parser.add_argument("--html", help="also write the HTML report here")
    parser.add_argument("--attacks", default="all", help="comma-separated text attacks, 'all' or '' (none)")
    parser.add_argument("--no-regeneration", action="store_true")
    parser.add_argument("--no-variants", action="store_true", help="score the canonical text only (before #12)")
    parser.add_argument("--emoji-samples", type=int, default=200, help="generations per emoji strength (0: skip)")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (default 1)")
    parser.add_argument("--tag", default="", help="suffix of the result file (parts of one scheme run apart)")
    args = parser.parse_args()
    for part in args.part:
        if part == "summary":
            summary()
        elif part == "image":
            run_image(args)
        else:
            run_text(part, args)


if __name__ == "__main__":
    main()
