"""Peak memory and time of one detection of a long text, now and before #23, in the same run (#23).

Builds texts of 1, 4 and 16 MB from the standard library's prose and source, and runs
``detect_watermark`` (windows on, as the CLI does) on each in a fresh process, recording its peak
resident memory (``ru_maxrss``) and wall time.  The anchor is tracemark at commit ``BEFORE`` (the
tree before #23, unpacked with ``git archive`` into a temporary folder), run on the same texts with
the same key in the same way.

    .venv/bin/python bench/bench_text_memory.py [--sizes-mb 1 4 16]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from _common import REPO, reference_model, temporary_home, write_result

sys.path.insert(0, str(REPO))
from tests.support.corpora import python_prose, python_source

BEFORE = "72a3321"
_CHILD = """
import json, resource, sys, time
from tracemark.keys import Keyring
from tracemark.text import TextTokenizer, detect_watermark
tokenizer = TextTokenizer(sys.argv[2])
key = Keyring().get(sys.argv[3])
text = open(sys.argv[1], encoding="utf-8").read()
base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
started = time.perf_counter()
verdict = detect_watermark(text, key, tokenizer, max_chars=len(text))
seconds = time.perf_counter() - started
size = len(json.dumps(verdict.to_json()))
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(json.dumps({"peak_mb": peak / 1024, "before_call_mb": base / 1024, "seconds": seconds,
                  "tokens": verdict.tokens_total, "verdict_json_bytes": size}))
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


def run(src: Path, text_file: Path, model: Path, key_id: str) -> dict[str, Any]:
    env = {"PYTHONPATH": str(src), "PATH": "/usr/bin:/bin"}
    import os

    env["TRACEMARK_HOME"] = os.environ["TRACEMARK_HOME"]
    out = subprocess.run([sys.executable, "-c", _CHILD, str(text_file), str(model), key_id],
                         check=True, capture_output=True, text=True, env=env)  # fmt: skip
    result: dict[str, Any] = json.loads(out.stdout.strip().splitlines()[-1])
    return {k: round(v, 2) if isinstance(v, float) else v for k, v in result.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--sizes-mb", type=float, nargs="*", default=[1, 4, 16])
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
    for size in args.sizes_mb:
        text_file = work / f"text-{size}.txt"
        text_file.write_text(corpus(int(size * 1_000_000)), encoding="utf-8")
        row = {
            "after": run(REPO / "src", text_file, model, key.key_id),
            "before": run(before_src / "src", text_file, model, key.key_id),
        }
        results["sizes"][f"{size:g} MB"] = row
        print(f"{size:g} MB", row)
    print(write_result("text_memory", results))


if __name__ == "__main__":
    main()
