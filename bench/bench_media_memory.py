"""Peak memory and CPU of marking and verifying one large picture, beside the full-size path they replaced.

Each measurement runs in its own Python process and reports that process's peak resident set size
(``resource.getrusage(RUSAGE_SELF).ru_maxrss``) and its CPU time, so one measurement's memory never
counts in another's.  The pictures: a flat PNG and a textured JPEG of ``--side`` x ``--side`` pixels
(7000: 49 MP, near the 50 MP limit), made here.  Cases:

* ``mark`` / ``verify``: ``tracemark media mark`` and ``media verify`` as a user runs them (marking
  computes the mark on a copy reduced to ``MARK_WORK_PIXELS``; verification decodes reduced);
* ``mark-full-size`` (the anchor, what ``mark`` did before #21): the same command with the budget taken
  away, so the mark is computed on the whole picture;
* ``verify-full-size`` (the anchor, what ``verify`` did before the reduced decode): the same command
  detecting on the whole decoded canvas;
* ``baseline``: ``media verify`` of a 512 x 512 picture (the process's own footprint: imports, c2pa).

    nice -n 10 .venv/bin/python bench/bench_media_memory.py [--side 7000]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from _common import REPO, temporary_home, write_result

_REPORT = """
import json, resource, time
{body}
usage = resource.getrusage(resource.RUSAGE_SELF)
print(json.dumps({{"peak_rss_mb": usage.ru_maxrss / 1024.0, "cpu_s": usage.ru_utime + usage.ru_stime}}))
"""

_CLI = """
from tracemark.media import _provenance
{setup}
from tracemark.cli._main import main
status = main({argv!r})
if status not in (0, 1):
    raise SystemExit(f"tracemark exited {{status}}")
"""
#: The anchors: the same CLI with the budget taken away (marking on the whole picture, detection on the
#: whole decoded canvas), which is what ``mark`` did before #21 and ``verify`` before the reduced decode.
_FULL_SIZE = {
    "mark": "_provenance.MARK_WORK_PIXELS = 10**12",
    "verify": "_provenance.DETECT_SIDE = None",
}


def _measure(body: str) -> dict[str, float]:
    completed = subprocess.run(
        [sys.executable, "-c", _REPORT.format(body=body)], capture_output=True, text=True, check=False, cwd=REPO
    )
    if completed.returncode != 0:
        raise SystemExit(f"measurement failed:\n{completed.stderr[-2000:]}")
    result: dict[str, float] = json.loads(completed.stdout.strip().splitlines()[-1])
    return result


def _pictures(folder: Path, side: int) -> dict[str, Path]:
    """The pictures, made in a child process: Linux carries a parent's resident size into a child's
    ``ru_maxrss`` across fork and exec, so the parent must stay small for the children's peaks to be theirs."""
    subprocess.run(
        [sys.executable, __file__, "--make-pictures", str(folder), "--side", str(side)], check=True, cwd=REPO
    )
    return {"flat": folder / "flat.png", "textured": folder / "textured.jpg", "small": folder / "small.png"}


def _make_pictures(folder: Path, side: int) -> None:
    flat = folder / "flat.png"
    Image.new("RGB", (side, side), (120, 130, 140)).save(flat)
    rng = np.random.default_rng(7)
    coarse = rng.integers(0, 256, (side // 64, side // 64, 3), dtype=np.uint8)
    textured = np.asarray(Image.fromarray(coarse).resize((side, side), Image.Resampling.BICUBIC)).copy()
    for top in range(0, side, 512):
        band = textured[top : top + 512].astype(np.int16) + rng.integers(-8, 9, textured[top : top + 512].shape)
        textured[top : top + 512] = np.clip(band, 0, 255).astype(np.uint8)
    photo = folder / "textured.jpg"
    Image.fromarray(textured).save(photo, quality=92)
    Image.fromarray(textured[:512, :512]).save(folder / "small.png")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--side", type=int, default=7000)
    parser.add_argument("--make-pictures", metavar="DIR", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.make_pictures:
        _make_pictures(Path(args.make_pictures), args.side)
        return 0
    home = temporary_home()
    subprocess.run([sys.executable, "-m", "tracemark", "keys", "init"], check=True, capture_output=True)
    with tempfile.TemporaryDirectory(prefix="tracemark-media-memory-") as directory:
        folder = Path(directory)
        pictures = _pictures(folder, args.side)
        rows: dict[str, Any] = {
            "baseline": _measure(_CLI.format(setup="", argv=["media", "verify", str(pictures["small"]), "--no-search"]))
        }
        for name in ("flat", "textured"):
            source = str(pictures[name])
            marked = str(folder / f"{name}-marked.{'png' if name == 'flat' else 'jpg'}")  # a noisy 49 MP PNG: > 64 MiB
            anchor = str(folder / f"{name}-anchor.{'png' if name == 'flat' else 'jpg'}")
            row: dict[str, Any] = {
                "bytes": pictures[name].stat().st_size,
                "mark": _measure(_CLI.format(setup="", argv=["media", "mark", source, marked, "--no-log"])),
                "mark-full-size": _measure(
                    _CLI.format(setup=_FULL_SIZE["mark"], argv=["media", "mark", source, anchor, "--no-log"])
                ),
                "verify": _measure(_CLI.format(setup="", argv=["media", "verify", marked])),
                "verify-full-size": _measure(_CLI.format(setup=_FULL_SIZE["verify"], argv=["media", "verify", marked])),
            }
            for verb in ("mark", "verify"):
                row[f"{verb}_memory_ratio"] = row[verb]["peak_rss_mb"] / row[f"{verb}-full-size"]["peak_rss_mb"]
            rows[name] = row
            print(name, json.dumps(row, indent=1), flush=True)
    path = write_result(
        "media_memory",
        {"side": args.side, "pixels": args.side * args.side, "tracemark_home": str(home), "results": rows},
    )
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
