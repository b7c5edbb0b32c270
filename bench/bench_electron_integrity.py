"""Fuses and ASAR integrity: exactness on all 256 fuse wires, tamper detection, and reading speed.

1. Fuses: each of the 2^8 on/off combinations is written into a synthetic 64 MiB executable (the
   wire at a random offset, seeded) and read back; the result must equal what was written.
2. ASAR tampering: an archive of 12 files (1 KiB to 9 MiB, 4 MiB integrity blocks) is tampered
   in three ways, each at many seeded positions, and must be detected every time:
   header (a file and its recorded hashes swapped consistently: only the pinned header hash
   catches it), block (one byte flipped in file data), file (a file replaced, its old hashes kept).
3. Speed: time to read the fuse wire of the 64 MiB executable and to check the whole archive.

    .venv/bin/python bench/bench_electron_integrity.py [--trials 100]
"""

from __future__ import annotations

import argparse
import hashlib
import itertools
import random
import struct
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from _common import REPO, write_result

sys.path.insert(0, str(REPO))
from tests.support.electron import pack_asar
from tests.unit.electron._packaged import header_of, swap_file_keep_hashes, swap_file_with_hashes

from tracemark.electron import FuseState, check_integrity, encode_fuse_wire, open_asar, read_fuses

EXECUTABLE_BYTES = 64 * 1024 * 1024


def fuses(scratch: Path, rng: random.Random) -> dict[str, Any]:
    exact = 0
    combinations = list(itertools.product((FuseState.DISABLED, FuseState.ENABLED), repeat=8))
    path = scratch / "electron"
    path.write_bytes(rng.randbytes(1024) * (EXECUTABLE_BYTES // 1024))
    timings = []
    for states in combinations:
        wire = encode_fuse_wire(list(states))
        offset = rng.randrange(0, EXECUTABLE_BYTES - len(wire))
        with path.open("r+b") as handle:
            handle.seek(offset)
            saved = handle.read(len(wire))
            handle.seek(offset)
            handle.write(wire)
        start = time.perf_counter()
        read = read_fuses(path)
        timings.append(time.perf_counter() - start)
        if read is not None and [state for _, state in read.states] == list(states) and read.offset == offset:
            exact += 1
        with path.open("r+b") as handle:
            handle.seek(offset)
            handle.write(saved)
    timings.sort()
    return {
        "combinations": len(combinations),
        "exact": exact,
        "read_ms_64MiB_median": round(timings[len(timings) // 2] * 1e3, 2),
    }


def tampering(scratch: Path, rng: random.Random, trials: int) -> dict[str, Any]:
    files = {
        f"file{i:02d}.js": rng.randbytes(rng.choice((1024, 70_000, 1024 * 1024, 9 * 1024 * 1024 + 7)))
        for i in range(12)
    }
    archive = pack_asar(files)
    recorded = hashlib.sha256(header_of(archive).encode()).hexdigest()
    path = scratch / "app.asar"
    path.write_bytes(archive)
    start = time.perf_counter()
    clean = check_integrity(open_asar(path), recorded)
    check_seconds = time.perf_counter() - start
    data_start = 8 + struct.unpack_from("<I", archive, 4)[0]
    detected = {"header": 0, "block": 0, "file": 0}
    names = sorted(files)
    for _ in range(trials):
        name = rng.choice(names)
        replacement = rng.randbytes(rng.randrange(1, 4096))
        path.write_bytes(swap_file_with_hashes(archive, name, replacement))
        detected["header"] += any(p.kind == "header" for p in check_integrity(open_asar(path), recorded))
        position = data_start + rng.randrange(0, len(archive) - data_start)
        flipped = bytearray(archive)
        flipped[position] ^= 1 << rng.randrange(8)
        path.write_bytes(flipped)
        detected["block"] += any(p.kind == "block" for p in check_integrity(open_asar(path), recorded))
        path.write_bytes(swap_file_keep_hashes(archive, name, replacement))
        problems = check_integrity(open_asar(path), recorded)
        detected["file"] += any(p.kind == "file" and p.path == name for p in problems)
    return {
        "archive_bytes": len(archive),
        "clean_archive_problems": len(clean),
        "full_check_seconds": round(check_seconds, 3),
        "trials_per_kind": trials,
        "detected": detected,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--trials", type=int, default=100)
    args = parser.parse_args()
    rng = random.Random(20261127)
    with tempfile.TemporaryDirectory() as folder:
        scratch = Path(folder)
        fuse_result = fuses(scratch, rng)
        print(
            f"fuses: {fuse_result['exact']}/{fuse_result['combinations']} exact, "
            f"{fuse_result['read_ms_64MiB_median']} ms to read a 64 MiB executable"
        )
        asar_result = tampering(scratch, rng, args.trials)
        print(
            f"asar: {asar_result['detected']} of {args.trials} each; clean archive problems "
            f"{asar_result['clean_archive_problems']}; full check {asar_result['full_check_seconds']} s "
            f"for {asar_result['archive_bytes'] / 2**20:.0f} MiB"
        )
    path = write_result("electron_integrity", {"fuses": fuse_result, "asar": asar_result})
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
