"""C2SP tlog-checkpoint bodies, signed as notes, and their verification under a key policy.

Body (c2sp.org/tlog-checkpoint §Note text)::

    <origin>\\n
    <tree size, decimal, no leading zeroes>\\n
    <base64 root hash>\\n
    [<extension line>\\n ...]

The log signs the body as a signed note with its Ed25519 key (type 0x01); witnesses add
cosignature/v1 lines (type 0x04).  :func:`verify_checkpoint` requires the log's own
signature, that the origin is the expected one, and optionally a quorum of witnesses.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from tracemark.errors import TlogFormatError, TlogSignatureError
from tracemark.tlog._merkle import MAX_TREE_SIZE, Hash, as_hash
from tracemark.tlog._note import (
    SIG_COSIGNATURE_V1,
    SIG_ED25519,
    NoteSigner,
    NoteVerifier,
    SignedNote,
    VerifiedSignature,
    b64decode_strict,
    b64encode,
    open_note,
    sign_note,
)


def parse_decimal(text: str, what: str, maximum: int = MAX_TREE_SIZE) -> int:
    """ASCII decimal, no sign, no leading zeroes (unless ``0``), at most ``maximum``."""
    if not text or not text.isascii() or not text.isdigit() or (len(text) > 1 and text[0] == "0"):
        raise TlogFormatError(f"{what} {text[:40]!r} is not a decimal number without leading zeroes")
    if len(text) > len(str(maximum)) or int(text) > maximum:
        raise TlogFormatError(f"{what} {text[:40]} is larger than {maximum}")
    return int(text)


@dataclass(frozen=True)
class Checkpoint:
    """A log's tree head: origin, tree size, root hash, and optional extension lines."""

    origin: str
    size: int
    root_hash: Hash
    extensions: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if not self.origin or "\n" in self.origin:
            raise TlogFormatError("checkpoint origin must be one non-empty line")
        if isinstance(self.size, bool) or not isinstance(self.size, int) or not 0 <= self.size <= MAX_TREE_SIZE:
            raise TlogFormatError(f"checkpoint size {self.size!r} is not a tree size")
        object.__setattr__(self, "root_hash", as_hash(self.root_hash, "checkpoint root hash"))
        for line in self.extensions:
            if not line or "\n" in line:
                raise TlogFormatError("checkpoint extension lines must be non-empty single lines")

    def body(self) -> str:
        """The note text (tlog-checkpoint §Note text), with its final newline."""
        lines = [self.origin, str(self.size), b64encode(self.root_hash), *self.extensions]
        return "\n".join(lines) + "\n"

    @classmethod
    def parse(cls, text: str) -> Checkpoint:
        """Parse a checkpoint body (the note text, not the signatures)."""
        if not text.endswith("\n"):
            raise TlogFormatError("checkpoint does not end in a newline")
        lines = text[:-1].split("\n")
        # tlog-checkpoint §Note text: at least three non-empty lines.
        if len(lines) < 3:
            raise TlogFormatError("checkpoint has fewer than three lines")
        origin, size_text, root_text, *extensions = lines
        if not origin:
            raise TlogFormatError("checkpoint origin is empty")
        size = parse_decimal(size_text, "checkpoint tree size")
        root = b64decode_strict(root_text, "checkpoint root hash")
        if any(not line for line in extensions):
            raise TlogFormatError("checkpoint extension lines must be non-empty")
        return cls(
            origin=origin, size=size, root_hash=as_hash(root, "checkpoint root hash"), extensions=tuple(extensions)
        )


def sign_checkpoint(checkpoint: Checkpoint, signer: NoteSigner) -> str:
    """The checkpoint as a signed note from the log's key (tlog-checkpoint §Signatures)."""
    if signer.signature_type != SIG_ED25519:
        raise TlogFormatError("a log signs its checkpoints with an Ed25519 note key (type 0x01)")
    return sign_note(checkpoint.body(), [signer])


@dataclass(frozen=True)
class VerifiedCheckpoint:
    """A checkpoint whose log signature (and witness quorum, if asked) verified."""

    checkpoint: Checkpoint
    note: str
    log_signature: VerifiedSignature
    cosignatures: tuple[VerifiedSignature, ...]

    @property
    def witnesses(self) -> tuple[str, ...]:
        """Names of the witnesses whose cosignatures verified."""
        return tuple(sig.name for sig in self.cosignatures)


def verify_checkpoint(
    note: str | bytes,
    log_key: NoteVerifier,
    *,
    origin: str | None = None,
    witnesses: Sequence[NoteVerifier] = (),
    quorum: int = 0,
) -> VerifiedCheckpoint:
    """Verify a signed checkpoint from the log holding ``log_key``; raises on any failure.

    ``origin`` defaults to the log key's name.  ``quorum`` is the number of distinct
    ``witnesses`` whose cosignature/v1 must verify.
    """
    if log_key.signature_type != SIG_ED25519:
        raise TlogFormatError("the log key must be an Ed25519 note key (type 0x01)")
    for witness in witnesses:
        if witness.signature_type != SIG_COSIGNATURE_V1:
            raise TlogFormatError(f"witness key {witness.name} is not a cosignature/v1 key (type 0x04)")
    if quorum < 0 or quorum > len(witnesses):
        raise TlogFormatError(f"quorum {quorum} cannot be met by {len(witnesses)} witness key(s)")
    signed = SignedNote.parse(note)
    checkpoint = Checkpoint.parse(signed.text)
    expected = origin if origin is not None else log_key.name
    if checkpoint.origin != expected:
        raise TlogSignatureError(f"checkpoint is from log {checkpoint.origin!r}, not {expected!r}")
    opened = open_note(signed, [log_key, *witnesses])
    log_signature = opened.signed_by(log_key)
    if log_signature is None:
        raise TlogSignatureError(f"checkpoint is not signed by the log key {log_key.name}+{log_key.key_id:08x}")
    cosignatures = tuple(s for s in opened.verified if s.signature_type == SIG_COSIGNATURE_V1)
    if len(cosignatures) < quorum:
        names = ", ".join(s.name for s in cosignatures) or "none"
        raise TlogSignatureError(f"checkpoint has {len(cosignatures)} of {quorum} required cosignatures ({names})")
    return VerifiedCheckpoint(checkpoint, signed.to_text(), log_signature, cosignatures)
