"""Peak memory and time of one detection of a long text: streamed now, in memory before, in the same run (#23).

Builds texts of 4, 16 and 50 MB from the standard library's prose and source and detects each in
a fresh process, recording its peak resident memory (``VmHWM`` of the process image: ``ru_maxrss``
keeps the benchmark's own peak across the exec: it set the earlier runs' before-the-call figures) and wall time:

* ``streamed``: this tree's ``detect_watermark_stream`` on the open file, as ``tracemark text
  detect`` runs it (pieces of 256 k characters, windows on);
* ``in_memory``: the anchor, tracemark at commit ``BEFORE`` (the tree before streaming, unpacked
  with ``git archive`` into a temporary folder), reading the whole text and calling
  ``detect_watermark`` as the CLI did; run up to ``--in-memory-up-to-mb`` (its peak grows by about
  170 bytes per token: 50 MB would need about 9 GB).

Where both ran, the verdicts' p-value, tokens scored and hits are compared (``same_verdict``).

Two kinds of text: ``corpus`` (prose and source one after the other, repeating once the standard
library's text runs out, so distinct units stop growing: the common case of long inputs with
boilerplate) and ``shuffled`` (the same words in a seeded random order, so nearly every trigram
is new: the worst case for the set of distinct units, ``--shuffled-sizes-mb``).

    .venv/bin/python bench/bench_text_memory.py [--sizes-mb 4 16 50] [--shuffled-sizes-mb 4 50]
        [--in-memory-up-to-mb 16]
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

from _common import REPO, reference_model, temporary_home, write_result

sys.path.insert(0, str(REPO))
from tests.support.corpora import python_prose, python_source

BEFORE = "45aed91"
_CHILD = """
import json, sys, time
from tracemark.keys import Keyring
from tracemark.text import TextTokenizer
def status(field):  # VmHWM: this process image's peak (ru_maxrss keeps the forked parent's across exec)
    for line in open("/proc/self/status"):
        if line.startswith(field + ":"):
            return int(line.split()[1])
tokenizer = TextTokenizer(sys.argv[2])
key = Keyring().get(sys.argv[3])
base = status("VmHWM")
started = time.perf_counter()
if sys.argv[4] == "streamed":
    from tracemark.text import detect_watermark_stream
    with open(sys.argv[1], "rb") as source:
        verdict = detect_watermark_stream(source, key, tokenizer, max_chars=1 << 31)
else:
    from tracemark.text import detect_watermark
    text = open(sys.argv[1], encoding="utf-8").read()
    verdict = detect_watermark(text, key, tokenizer, max_chars=len(text))
seconds = time.perf_counter() - started
size = len(json.dumps(verdict.to_json()))
peak = status("VmHWM")
print(json.dumps({"peak_mb": peak / 1024, "before_call_mb": base / 1024, "seconds": seconds,
                  "tokens": verdict.tokens_total, "tokens_scored": verdict.tokens_scored, "hits": verdict.hits,
                  "p_value": verdict.p_value, "marked": verdict.marked, "verdict_json_bytes": size}))
"""


def corpus(chars: int) -> str:
    parts: list[str] = []
    total = 0
    while total < chars:
        for source in (python_prose(), python_source()):
            for doc in source:
                parts.append(doc)
                total += len(doc) + 1
                if total >= chars:
                    return "\n".join(parts)[:chars]
    return "\n".join(parts)[:chars]


def run(src: Path, text_file: Path, model: Path, key_id: str, mode: str) -> dict[str, Any]:
    env = {"PYTHONPATH": str(src), "PATH": "/usr/bin:/bin"}
    import os

    env["TRACEMARK_HOME"] = os.environ["TRACEMARK_HOME"]
    out = subprocess.run([sys.executable, "-c", _CHILD, str(text_file), str(model), key_id, mode],
                         check=True, capture_output=True, text=True, env=env)  # fmt: skip
    result: dict[str, Any] = json.loads(out.stdout.strip().splitlines()[-1])
    return {k: round(v, 2) if isinstance(v, float) and k != "p_value" else v for k, v in result.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--sizes-mb", type=float, nargs="*", default=[4, 16, 50])
    parser.add_argument("--shuffled-sizes-mb", type=float, nargs="*", default=[4, 50])
    parser.add_argument("--in-memory-up-to-mb", type=float, default=16)
    args = parser.parse_args()
    temporary_home()
    from tracemark.keys import Keyring
    from tracemark.text import new_text_key

    keyring = Keyring()
    keyring.create()
    model = reference_model()
    key = new_text_key(keyring, "native", model)
    work = Path(tempfile.mkdtemp(prefix="tracemark-memory-"))
    before_src = work / "before"
    before_src.mkdir()
    archive = subprocess.run(["git", "-C", str(REPO), "archive", BEFORE, "src"], check=True, capture_output=True)
    subprocess.run(["tar", "-x", "-C", str(before_src)], input=archive.stdout, check=True)
    results: dict[str, Any] = {"before_commit": BEFORE, "sizes": {}}
    runs = [("corpus", size) for size in args.sizes_mb] + [("shuffled", size) for size in args.shuffled_sizes_mb]
    for kind, size in runs:
        text_file = work / f"text-{kind}-{size}.txt"
        text = corpus(int(size * 1_000_000))
        if kind == "shuffled":
            words = text.split()
            np.random.default_rng(2026).shuffle(words)
            text = " ".join(words)
        text_file.write_text(text, encoding="utf-8")
        del text
        row: dict[str, Any] = {"streamed": run(REPO / "src", text_file, model, key.key_id, "streamed")}
        if size <= args.in_memory_up_to_mb:
            row["in_memory"] = run(before_src / "src", text_file, model, key.key_id, "in_memory")
            row["same_verdict"] = all(row["streamed"][k] == row["in_memory"][k]
                                      for k in ("p_value", "tokens", "tokens_scored", "hits", "marked"))  # fmt: skip
        streamed = row["streamed"]
        streamed["bytes_per_token_above_start"] = round(
            (streamed["peak_mb"] - streamed["before_call_mb"]) * 2**20 / streamed["tokens"], 1
        )
        name = f"{size:g} MB" if kind == "corpus" else f"{size:g} MB shuffled"
        results["sizes"][name] = row
        print(name, row, flush=True)
    print(write_result("text_memory", results))


if __name__ == "__main__":
    main()
