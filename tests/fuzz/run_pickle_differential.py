"""The longer differential run: the pickle analyser against the C unpickler, for as long as you give it.

    python -m tests.fuzz.run_pickle_differential --seconds 300            # seeded random streams
    python -m tests.fuzz.run_pickle_differential --atheris CORPUS_DIR -max_total_time=300

The first form needs nothing beyond the test dependencies: it draws generated and mutated streams
(``tests.fuzz._pickle_differential.streams``) with one seed per batch until the time is up.  The
second runs libFuzzer (atheris) over instrumented tracemark, seeded with the same streams, so that
coverage guides the mutations.  Both feed every stream to the sandboxed loader and stop with the
stream written to ``build/fuzz/pickle-differential/`` when the analyser is more lenient than the
loader; ``make test`` runs a fixed-seed slice of the same check
(``tests/unit/supply/test_pickle_differential.py``).
"""

from __future__ import annotations

import argparse
import hashlib
import importlib
import sys
import time
from pathlib import Path
from typing import Any

OUT = Path(__file__).resolve().parents[2] / "build" / "fuzz" / "pickle-differential"


def _keep(stream: bytes, why: str) -> Path:
    OUT.mkdir(parents=True, exist_ok=True)
    path = OUT / f"crash-{hashlib.sha256(stream).hexdigest()[:16]}.pkl"
    path.write_bytes(stream)
    path.with_suffix(".txt").write_text(why + "\n")
    return path


def random_run(seconds: float, seed: int) -> int:
    # Imported here, not at the top: under atheris tracemark must be imported inside instrument_imports.
    from tests.fuzz._pickle_differential import Loader, disagreement, streams

    deadline = time.monotonic() + seconds
    checked = 0
    with Loader() as loader:
        while time.monotonic() < deadline:
            for stream in streams(seed, 500):
                why = disagreement(stream, loader.load(stream))
                checked += 1
                if why is not None:
                    print(f"after {checked} streams: {why}; kept {_keep(stream, why)}", file=sys.stderr)
                    return 1
            seed += 1
    print(f"{checked} streams, seeds up to {seed}: the analyser was never more lenient than the loader")
    return 0


def atheris_run(argv: list[str]) -> None:
    try:
        atheris: Any = importlib.import_module("atheris")
    except ImportError:
        raise SystemExit("atheris is not installed: pip install 'atheris>=2.3' (Linux)") from None
    with atheris.instrument_imports(include=["tracemark"]):
        module = importlib.import_module("tests.fuzz._pickle_differential")
    corpus = [arg for arg in argv if not arg.startswith("-")]
    for folder in corpus:
        Path(folder).mkdir(parents=True, exist_ok=True)
        for index, stream in enumerate(module.streams(20, 200)):
            (Path(folder) / f"seed-{index:03d}").write_bytes(stream)
    loader = module.Loader()

    def one_input(data: bytes) -> None:
        why = module.disagreement(data, loader.load(data))
        if why is not None:
            _keep(data, why)
            raise AssertionError(why)

    atheris.Setup([sys.argv[0], *argv], one_input)
    atheris.Fuzz()


def main(argv: list[str]) -> int:
    if argv and argv[0] == "--atheris":
        atheris_run(argv[1:])
        return 0
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args(argv)
    return random_run(args.seconds, args.seed)


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
