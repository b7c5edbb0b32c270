"""Model signing: every mutation refused, and the cost of signing and verifying a 200 MB folder.

1. Mutations of a signed folder (added, changed at 150 MB, deleted, renamed, a file dropped
   into ``.git/``, a symlink, a wrong key, an edited DSSE payload, an edited signature) are
   each verified by tracemark and by the ``model_signing`` library itself (default
   configuration, and with ``ignore_unsigned_files`` as its CLI flag offers).
2. Sign and verify times on the 200 MB folder (median of 3), tracemark's policy wrapper
   against ``model_signing`` called directly: the wrapper's coverage check should cost
   little beside hashing.

The folder is generated into a temporary directory (never committed).

    .venv/bin/python bench/bench_supply_signing.py
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import shutil
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from _common import write_result
from tracemark.errors import ModelSignatureError
from tracemark.supply import sign_model, verify_model

GOAL_S_PER_200MB = 0.5


def write_keys(folder: Path, name: str) -> tuple[Path, Path]:
    folder.mkdir(parents=True, exist_ok=True)
    key = ec.generate_private_key(ec.SECP256R1())
    private, public = folder / f"{name}.pem", folder / f"{name}.pub"
    private.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    public.write_bytes(
        key.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    )
    return private, public


def make_model(folder: Path, megabytes: int) -> None:
    folder.mkdir(parents=True)
    rng = os.urandom
    with open(folder / "model.safetensors", "wb") as handle:
        for _ in range(megabytes):
            handle.write(rng(1 << 20))
    (folder / "config.json").write_text('{"model_type": "gpt2"}')
    (folder / "tokenizer.json").write_text("{}")
    (folder / "README.md").write_text("# model\n")


def library_verify(model: Path, signature: Path, public: Path, *, ignore_unsigned: bool) -> bool:
    import model_signing

    config = model_signing.verifying.Config().use_elliptic_key_verifier(public_key=public)  # type: ignore[no-untyped-call]
    config.set_ignore_unsigned_files(ignore_unsigned)
    try:
        config.verify(model, signature)
    except Exception:
        return False
    return True


def ours_verify(model: Path, signature: Path, public: Path) -> bool:
    try:
        verify_model(model, signature, public_key=public)
    except ModelSignatureError:
        return False
    return True


def flip_byte(path: Path, offset: int) -> None:
    with open(path, "r+b") as handle:
        handle.seek(offset)
        byte = handle.read(1)
        handle.seek(offset)
        handle.write(bytes([byte[0] ^ 1]))


def edit_envelope(signature: Path, part: str) -> None:
    bundle = json.loads(signature.read_text())
    envelope = bundle["dsseEnvelope"]
    if part == "payload":
        statement = json.loads(base64.b64decode(envelope["payload"]))
        statement["predicate"]["resources"][0]["digest"] = "00" * 32
        envelope["payload"] = base64.b64encode(json.dumps(statement).encode()).decode()
    else:
        raw = bytearray(base64.b64decode(envelope["signatures"][0]["sig"]))
        raw[-1] ^= 1
        envelope["signatures"][0]["sig"] = base64.b64encode(bytes(raw)).decode()
    signature.write_text(json.dumps(bundle))


def mutations(base: Path, megabytes: int) -> dict[str, Any]:
    private, public = write_keys(base, "signer")
    _, other_public = write_keys(base, "other")
    pristine = base / "pristine"
    make_model(pristine, megabytes)
    signature = base / "pristine.sig"
    sign_model(pristine, signature, private_key=private)
    offset = min(150, megabytes - 1) << 20

    def add_file(m: Path, s: Path) -> Path:
        (m / "evil.pkl").write_bytes(b"\x80\x02.")
        return public

    def change_byte(m: Path, s: Path) -> Path:
        flip_byte(m / "model.safetensors", offset)
        return public

    def delete_file(m: Path, s: Path) -> Path:
        (m / "README.md").unlink()
        return public

    def rename_file(m: Path, s: Path) -> Path:
        (m / "README.md").rename(m / "README.txt")
        return public

    def drop_into_git(m: Path, s: Path) -> Path:
        (m / ".git").mkdir()
        (m / ".git" / "x.pkl").write_bytes(b"x")
        return public

    def add_symlink(m: Path, s: Path) -> Path:
        (m / "link").symlink_to("config.json")
        return public

    def wrong_key(m: Path, s: Path) -> Path:
        return other_public

    def edit_payload(m: Path, s: Path) -> Path:
        edit_envelope(s, "payload")
        return public

    def edit_signature(m: Path, s: Path) -> Path:
        edit_envelope(s, "signature")
        return public

    cases: dict[str, Callable[[Path, Path], Path]] = {
        "added file": add_file,
        "changed byte at 150 MB": change_byte,
        "deleted file": delete_file,
        "renamed file": rename_file,
        "file dropped into .git/": drop_into_git,
        "symlink added": add_symlink,
        "wrong key": wrong_key,
        "edited DSSE payload": edit_payload,
        "edited signature": edit_signature,
    }
    results = {}
    for name, mutate in cases.items():
        model = base / "work"
        shutil.rmtree(model, ignore_errors=True)
        shutil.copytree(pristine, model, symlinks=True)
        sig = base / "work.sig"
        shutil.copy(signature, sig)
        key = mutate(model, sig)
        results[name] = {
            "tracemark_rejects": not ours_verify(model, sig, key),
            "model_signing_rejects": not library_verify(model, sig, key, ignore_unsigned=False),
            "model_signing_ignore_unsigned_rejects": not library_verify(model, sig, key, ignore_unsigned=True),
        }
    return results


def timings(base: Path, megabytes: int, repeats: int) -> dict[str, Any]:
    import model_signing

    private, public = write_keys(base, "timing")
    model = base / "timed"
    make_model(model, megabytes)
    signature = base / "timed.sig"

    def measure(action: Callable[[], object]) -> float:
        times = []
        for _ in range(repeats):
            start = time.perf_counter()
            action()
            times.append(time.perf_counter() - start)
        return statistics.median(times)

    def library_sign() -> None:
        model_signing.signing.Config().use_elliptic_key_signer(private_key=private).sign(model, base / "lib.sig")  # type: ignore[no-untyped-call]

    def library_verify_only() -> None:
        model_signing.verifying.Config().use_elliptic_key_verifier(public_key=public).verify(model, base / "lib.sig")  # type: ignore[no-untyped-call]

    ours_sign = measure(lambda: sign_model(model, signature, private_key=private))
    ours_verify_s = measure(lambda: verify_model(model, signature, public_key=public))
    lib_sign = measure(library_sign)
    lib_verify = measure(library_verify_only)
    return {
        "megabytes": megabytes,
        "tracemark_sign_s": round(ours_sign, 3),
        "tracemark_verify_s": round(ours_verify_s, 3),
        "model_signing_sign_s": round(lib_sign, 3),
        "model_signing_verify_s": round(lib_verify, 3),
        "verify_overhead_ratio": round(ours_verify_s / lib_verify, 3),
        "goal_s": GOAL_S_PER_200MB,
        "goal_met": max(ours_sign, ours_verify_s) <= GOAL_S_PER_200MB,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--megabytes", type=int, default=200)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="tracemark-bench-") as scratch:
        base = Path(scratch)
        print("mutations ...", flush=True)
        mutation_results = mutations(base / "m", args.megabytes)
        print("timings ...", flush=True)
        timing = timings(base / "t", args.megabytes, args.repeats)
    all_rejected = all(r["tracemark_rejects"] for r in mutation_results.values())
    path = write_result(
        "supply_signing",
        {"mutations": mutation_results, "all_mutations_rejected": all_rejected, "timings": timing},
    )
    print(f"{'mutation':<28}{'tracemark':>12}{'model_signing':>15}{'ignore_unsigned':>17}")
    for name, row in mutation_results.items():
        cells = [row["tracemark_rejects"], row["model_signing_rejects"], row["model_signing_ignore_unsigned_rejects"]]
        print(
            f"{name:<28}"
            + "".join(f"{'rejects' if c else 'ACCEPTS':>{w}}" for c, w in zip(cells, (12, 15, 17), strict=True))
        )
    print(json.dumps(timing, indent=2))
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
