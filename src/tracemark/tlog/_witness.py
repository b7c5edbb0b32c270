"""A witness: checks that each new checkpoint of a log is consistent with the last one it
cosigned, then cosigns it (c2sp.org/tlog-witness, c2sp.org/tlog-cosignature).

The witness keeps, per log origin, the size and root of the latest checkpoint it cosigned,
in one JSON file.  Checking the old size against that record and persisting the new one
happen under an exclusive file lock, and the file is replaced atomically (write, fsync,
rename), so two concurrent requests can never roll the witness back (tlog-witness
§add-checkpoint).  A corrupt state file is an error, never a silent reset.

Refusals map onto the tlog-witness status codes (:func:`witness_status` gives them): unknown
origin → :class:`WitnessUnknownLogError` (404), bad or missing log signature →
:class:`TlogSignatureError` (403), a malformed request or an old size larger than the
checkpoint's → :class:`TlogFormatError` or :class:`WitnessError` (400), stale old size or a
different root at the same size → :class:`WitnessConflictError` (409, with the latest size), bad
proof → :class:`ConsistencyProofError` (422).  A witness whose own state is unreadable raises
:class:`WitnessStateError` (503): the request was fine, the witness is not.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import threading
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from tracemark._fs import atomic_write_bytes
from tracemark.errors import (
    TlogFormatError,
    TlogProofError,
    TlogSignatureError,
    TracemarkError,
    WitnessConflictError,
    WitnessError,
)
from tracemark.tlog._checkpoint import Checkpoint, parse_decimal
from tracemark.tlog._merkle import EMPTY_ROOT, MAX_PROOF_HASHES, Hash, as_hash, verify_consistency
from tracemark.tlog._note import (
    MAX_NOTE_BYTES,
    SIG_COSIGNATURE_V1,
    SIG_ED25519,
    NoteSignature,
    NoteSigner,
    NoteVerifier,
    SignedNote,
    b64decode_strict,
    b64encode,
    open_note,
)

STATE_FORMAT = "tracemark.witness-state/v1"

#: tlog-witness §add-checkpoint: a client MUST NOT send more than 63 consistency proof lines.
MAX_REQUEST_PROOF_LINES = 63
#: Largest add-checkpoint request body accepted (bytes): the ``old`` line, 63 proof lines of 45
#: bytes, the empty line and the largest note :class:`SignedNote` parses.
MAX_WITNESS_REQUEST_BYTES = MAX_NOTE_BYTES + 4096


class WitnessUnknownLogError(WitnessError):
    """The checkpoint's origin is not a log this witness is configured for (tlog-witness: 404)."""


class WitnessStateError(WitnessError):
    """The witness's own state file is unreadable or corrupt: the witness cannot answer (503)."""


def witness_status(error: TracemarkError) -> int:
    """The tlog-witness HTTP status for an error raised while answering an add-checkpoint request."""
    statuses: tuple[tuple[type[TracemarkError], int], ...] = (
        (WitnessUnknownLogError, 404),
        (WitnessConflictError, 409),
        (WitnessStateError, 503),
        (TlogSignatureError, 403),
        (TlogProofError, 422),
        (TlogFormatError, 400),
        (WitnessError, 400),
    )
    return next((status for cls, status in statuses if isinstance(error, cls)), 503)


@dataclass(frozen=True)
class WitnessedTree:
    """The latest checkpoint a witness cosigned for one log."""

    origin: str
    size: int
    root_hash: Hash


@dataclass(frozen=True)
class AddCheckpointRequest:
    """tlog-witness add-checkpoint request: old size, consistency proof, signed checkpoint."""

    old_size: int
    proof: tuple[Hash, ...]
    checkpoint_note: str

    def to_text(self) -> str:
        """The request body: ``old N``, proof lines, an empty line, then the checkpoint."""
        lines = [f"old {self.old_size}", *(b64encode(h) for h in self.proof)]
        return "\n".join(lines) + "\n\n" + self.checkpoint_note

    @classmethod
    def parse(cls, body: str | bytes) -> AddCheckpointRequest:
        """Parse a request body strictly."""
        if len(body) > MAX_WITNESS_REQUEST_BYTES:
            raise TlogFormatError(f"request is larger than {MAX_WITNESS_REQUEST_BYTES} bytes")
        if isinstance(body, bytes):
            try:
                body = body.decode("utf-8")
            except UnicodeDecodeError:
                raise TlogFormatError("request is not valid UTF-8") from None
        head, sep, note = body.partition("\n\n")
        if not sep:
            raise TlogFormatError("request has no empty line before the checkpoint")
        lines = head.split("\n")
        if not lines[0].startswith("old "):
            raise TlogFormatError("request does not start with 'old N'")
        old_size = parse_decimal(lines[0][4:], "old size")
        if len(lines) - 1 > MAX_REQUEST_PROOF_LINES:
            raise TlogFormatError(f"request has more than {MAX_REQUEST_PROOF_LINES} proof lines")
        proof = tuple(as_hash(b64decode_strict(line, "proof hash"), "proof hash") for line in lines[1:])
        return cls(old_size=old_size, proof=proof, checkpoint_note=note)


class Witness:
    """A cosigning witness for the logs in ``logs`` (origin → trusted log verifier keys)."""

    def __init__(
        self, cosigner: NoteSigner, state_path: str | Path, logs: Mapping[str, Sequence[NoteVerifier]]
    ) -> None:
        if cosigner.signature_type != SIG_COSIGNATURE_V1:
            raise TlogFormatError("a witness signs with a cosignature/v1 key (type 0x04)")
        for origin, keys in logs.items():
            if not keys or any(key.signature_type != SIG_ED25519 for key in keys):
                raise TlogFormatError(f"log {origin!r} needs at least one Ed25519 note key (type 0x01)")
        self.cosigner = cosigner
        self.state_path = Path(state_path)
        self.logs = {origin: tuple(keys) for origin, keys in logs.items()}
        self._thread_lock = threading.Lock()

    @property
    def name(self) -> str:
        """The witness's key name."""
        return self.cosigner.name

    @property
    def vkey(self) -> str:
        """The witness's cosignature verifier key (type 0x04)."""
        return self.cosigner.vkey

    # -- state -------------------------------------------------------------------------------
    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        lock_path = self.state_path.with_name(self.state_path.name + ".lock")
        with self._thread_lock:
            try:
                self.state_path.parent.mkdir(parents=True, exist_ok=True)
                fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o600)
            except OSError as exc:
                raise WitnessStateError(f"cannot lock witness state {lock_path}: {exc.strerror}") from None
            try:
                fcntl.flock(fd, fcntl.LOCK_EX)
                yield
            finally:
                os.close(fd)

    def _load(self) -> dict[str, WitnessedTree]:
        try:
            raw = self.state_path.read_bytes()
        except FileNotFoundError:
            return {}
        except OSError as exc:
            raise WitnessStateError(f"witness state {self.state_path} is unreadable: {exc.strerror}") from None
        try:
            document = json.loads(raw)
            if document.get("format") != STATE_FORMAT:
                raise ValueError("unknown format")
            trees = {}
            for origin, entry in document["logs"].items():
                root = as_hash(b64decode_strict(entry["root"], "root"), "root")
                trees[origin] = WitnessedTree(origin, int(entry["size"]), root)
            return trees
        except (ValueError, KeyError, TypeError, AttributeError, TlogFormatError) as exc:
            raise WitnessStateError(
                f"witness state {self.state_path} is corrupt ({exc}); refusing to reset it"
            ) from None

    def _store(self, trees: Mapping[str, WitnessedTree]) -> None:
        document = {
            "format": STATE_FORMAT,
            "witness": self.vkey,
            "logs": {t.origin: {"size": t.size, "root": b64encode(t.root_hash)} for t in trees.values()},
        }
        data = json.dumps(document, indent=2, sort_keys=True).encode() + b"\n"
        try:
            atomic_write_bytes(self.state_path, data, mode=0o600)
        except OSError as exc:
            raise WitnessStateError(f"cannot save witness state {self.state_path}: {exc.strerror}") from None

    def latest(self, origin: str) -> WitnessedTree | None:
        """The latest checkpoint cosigned for ``origin``, if any."""
        return self._load().get(origin)

    # -- add-checkpoint ----------------------------------------------------------------------
    def add_checkpoint(
        self, old_size: int, proof: Sequence[bytes], checkpoint_note: str | bytes, *, timestamp: int | None = None
    ) -> list[NoteSignature]:
        """tlog-witness §add-checkpoint: verify, check against the recorded state, persist, cosign.

        Returns the cosignature (one line per witness key) to append to the checkpoint.
        """
        note = SignedNote.parse(checkpoint_note)
        checkpoint = Checkpoint.parse(note.text)
        keys = self.logs.get(checkpoint.origin)
        if keys is None:
            raise WitnessUnknownLogError(f"unknown log origin {checkpoint.origin!r}")
        # The witness MUST verify the log's signature and ignore unknown keys.
        open_note(note, keys)
        if old_size > checkpoint.size:
            raise WitnessError(f"old size {old_size} is larger than the checkpoint size {checkpoint.size}")
        if len(proof) > MAX_PROOF_HASHES:
            raise WitnessError(f"consistency proof has {len(proof)} hashes")
        with self._locked():
            trees = self._load()
            latest = trees.get(checkpoint.origin)
            latest_size = latest.size if latest is not None else 0
            latest_root = latest.root_hash if latest is not None else EMPTY_ROOT
            if old_size != latest_size:
                raise WitnessConflictError(
                    f"old size {old_size} is not the latest cosigned size {latest_size}", latest_size
                )
            if old_size == checkpoint.size and latest_root != checkpoint.root_hash:
                raise WitnessConflictError(
                    f"checkpoint of size {checkpoint.size} has a different root than the one cosigned", latest_size
                )
            verify_consistency(old_size, checkpoint.size, latest_root, checkpoint.root_hash, proof)
            trees[checkpoint.origin] = WitnessedTree(checkpoint.origin, checkpoint.size, checkpoint.root_hash)
            # The witness MUST persist the new checkpoint before responding.
            self._store(trees)
        return [self.cosigner.sign(note.text.encode("utf-8"), timestamp=timestamp)]

    def handle_request(self, body: str | bytes, *, timestamp: int | None = None) -> str:
        """Process an add-checkpoint request body; returns the response body (cosignature lines)."""
        request = AddCheckpointRequest.parse(body)
        signatures = self.add_checkpoint(request.old_size, request.proof, request.checkpoint_note, timestamp=timestamp)
        return "".join(sig.line() for sig in signatures)
