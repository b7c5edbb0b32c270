"""Article 12 logging evidence: the log's checkpoints over the period, consistency proofs between them
and witness cosignatures, exported as a folder an auditor verifies offline with ``tracemark tlog audit``.
"""

from __future__ import annotations

import itertools
import shlex
from dataclasses import dataclass
from datetime import UTC, datetime

from tracemark.comply._evidence import EvidenceFolder
from tracemark.comply._report import Evidence
from tracemark.errors import TlogError
from tracemark.keys import Keyring, ensure_witness_key, tracemark_home
from tracemark.tlog import (
    ConsistencyProof,
    NoteVerifier,
    StoredCheckpoint,
    TransparencyLog,
    Witness,
    b64encode,
    verify_checkpoint,
)

#: Most checkpoints a bundle carries; a longer history is thinned evenly, keeping the first and the last.
MAX_BUNDLED_CHECKPOINTS = 64


@dataclass(frozen=True)
class BundledCheckpoint:
    """One checkpoint in the bundle: its size, file, cosigning witnesses and when the log signed it."""

    size: int
    file: str
    witnesses: tuple[str, ...]
    signed_at: str


@dataclass(frozen=True)
class LogBundle:
    """What the exported bundle holds and what checking it here found (``problems`` empty when all held)."""

    origin: str
    log_vkey: str
    witness_vkey: str | None
    tree_size: int
    checkpoints: tuple[BundledCheckpoint, ...]
    proofs_verified: int
    integrity_checked: bool
    problems: tuple[str, ...]
    audit_commands: tuple[str, ...]
    evidence: tuple[Evidence, ...]


def cosign_latest(log: TransparencyLog, keyring: Keyring) -> str | None:
    """Sign a checkpoint of the current tree and have the local witness cosign it; the witness's vkey."""
    latest = log.checkpoint()
    if log.origin is None or log.verifier is None:
        return None
    cosigner = ensure_witness_key(keyring)
    witness = Witness(cosigner, tracemark_home() / "witness" / "state.json", {log.origin: [log.verifier]})
    previous = witness.latest(log.origin)
    old_size = previous.size if previous is not None else 0
    size = latest.checkpoint.size
    if old_size < size or previous is None:
        proof = log.consistency_proof(old_size, size).hashes
        signatures = witness.add_checkpoint(old_size, proof, latest.note)
        log.add_cosignatures(size, signatures)
    return cosigner.vkey


def _thinned(stored: list[StoredCheckpoint]) -> list[StoredCheckpoint]:
    chosen = list(stored)
    if len(chosen) <= MAX_BUNDLED_CHECKPOINTS:
        return chosen
    step = (len(chosen) - 1) / (MAX_BUNDLED_CHECKPOINTS - 1)
    return [chosen[round(i * step)] for i in range(MAX_BUNDLED_CHECKPOINTS)]


def export_log_bundle(log: TransparencyLog, evidence: EvidenceFolder, witness_vkey: str | None) -> LogBundle:
    """Write the log's checkpoints, the consistency proofs between consecutive ones and the keys under ``log/``."""
    if log.verifier is None or log.origin is None:
        raise TlogError("the log has no key: run 'tracemark keys init'")
    verifier = log.verifier
    witnesses = [NoteVerifier.from_vkey(witness_vkey)] if witness_vkey else []
    files = [evidence.write_text("log/log.vkey", verifier.vkey + "\n", "the log's verifier key (C2SP signed-note)")]
    if witness_vkey:
        files.append(evidence.write_text("log/witness.vkey", witness_vkey + "\n", "the witness's cosignature key"))
    problems: list[str] = []
    bundled: list[BundledCheckpoint] = []
    chosen = _thinned(log.store.checkpoints())
    for stored in chosen:
        name = f"log/checkpoint-{stored.size:012d}.note"
        files.append(evidence.write_text(name, stored.note, f"signed checkpoint of size {stored.size}"))
        try:
            checked = verify_checkpoint(stored.note, verifier, origin=log.origin, witnesses=witnesses)
            cosigners = checked.witnesses
        except TlogError as exc:
            problems.append(f"checkpoint {stored.size}: {exc}")
            cosigners = ()
        signed_at = datetime.fromtimestamp(stored.created_at, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        bundled.append(BundledCheckpoint(stored.size, name, tuple(cosigners), signed_at))
    verified, commands = 0, []
    for old, new in itertools.pairwise(chosen):
        proof = log.consistency_proof(old.size, new.size)
        name = f"log/consistency-{old.size}-{new.size}.proof"
        files.append(
            evidence.write_text(
                name,
                "".join(b64encode(h) + "\n" for h in proof.hashes),
                f"consistency proof from size {old.size} to {new.size}",
            )
        )
        try:
            ConsistencyProof(old.size, new.size, old.root, new.root, proof.hashes).verify()
            verified += 1
        except TlogError as exc:
            problems.append(f"consistency {old.size} -> {new.size}: {exc}")
        cosigned = witness_vkey is not None and all(
            _cosigned(c.note, verifier, log.origin, witnesses) for c in (old, new)
        )
        commands.append(
            f"tracemark tlog audit {shlex.quote(_bundle_name(old))} {shlex.quote(_bundle_name(new))} "
            f'--proof {shlex.quote(name.removeprefix("log/"))} --log-key "$(cat log.vkey)"'
            + (' --witness "$(cat witness.vkey)" --quorum 1' if cosigned else "")
        )
    integrity = True
    try:
        log.verify_integrity()
    except TlogError as exc:
        integrity = False
        problems.append(f"integrity: {exc}")
    readme = (
        "Article 12 logging evidence exported by tracemark comply.\n\n"
        f"log origin: {log.origin}\nlog key: {verifier.vkey}\n"
        f"witness key: {witness_vkey or '(none)'}\n\n"
        "Check each step offline, in this folder:\n\n" + "\n".join(commands) + "\n"
    )
    files.append(evidence.write_text("log/README.txt", readme, "how to audit this bundle offline"))
    return LogBundle(
        origin=log.origin,
        log_vkey=verifier.vkey,
        witness_vkey=witness_vkey,
        tree_size=log.size,
        checkpoints=tuple(bundled),
        proofs_verified=verified,
        integrity_checked=integrity,
        problems=tuple(problems),
        audit_commands=tuple(commands),
        evidence=tuple(files),
    )


def _cosigned(note: str, verifier: NoteVerifier, origin: str, witnesses: list[NoteVerifier]) -> bool:
    try:
        verify_checkpoint(note, verifier, origin=origin, witnesses=witnesses, quorum=1)
    except TlogError:
        return False
    return True


def _bundle_name(checkpoint: StoredCheckpoint) -> str:
    return f"checkpoint-{checkpoint.size:012d}.note"
