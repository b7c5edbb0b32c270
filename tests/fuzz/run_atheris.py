"""The coverage-guided harness: one fuzz target under atheris (libFuzzer).

    python -m tests.fuzz.run_atheris TARGET [CORPUS_DIR ...] [-max_total_time=60 ...]

Every libFuzzer flag is accepted.  tracemark (and Pillow, for the image target) is instrumented so
libFuzzer sees which branches each input reached; the target function is the one the hypothesis
harness calls.  ``tests/fuzz/run_all.py`` seeds the corpus and runs every target.
"""

from __future__ import annotations

import importlib
import sys
from typing import Any


def main(argv: list[str]) -> None:
    if len(argv) < 2 or argv[1].startswith("-"):
        raise SystemExit("usage: python -m tests.fuzz.run_atheris TARGET [CORPUS_DIR ...] [libFuzzer flags]")
    try:
        atheris: Any = importlib.import_module("atheris")
    except ImportError:
        raise SystemExit("atheris is not installed: pip install 'atheris>=2.3' (Linux)") from None
    with atheris.instrument_imports(include=["tracemark", "PIL"]):
        targets = importlib.import_module("tests.fuzz._targets")
    target = targets.TARGETS[argv[1]]

    def one_input(data: bytes) -> None:
        target.run(data)

    atheris.Setup([argv[0], *argv[2:]], one_input)
    atheris.Fuzz()


if __name__ == "__main__":
    main(sys.argv)
