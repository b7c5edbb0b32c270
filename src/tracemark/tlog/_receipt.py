"""Receipts: C2SP tlog-proof@v1, an offline-verifiable proof that an entry is in the log.

Wire form (c2sp.org/tlog-proof §Format)::

    c2sp.org/tlog-proof@v1
    extra <base64>            <- optional; tracemark puts the canonical provenance record here
    index <N>
    <base64 hash>             <- inclusion proof, leaf's sibling first (RFC 9162 §2.1.3.1)
    ...
                              <- empty line
    <the signed checkpoint, verbatim, with any witness cosignatures>

Anyone holding the log's verifier key checks a receipt with :func:`verify_receipt`,
without contacting the log.  The ``extra`` data is not trusted by itself: it is only
accepted because its leaf hash is proven to be in the signed tree.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import NotRequired, TypedDict

from tracemark.errors import InclusionProofError, TlogFormatError
from tracemark.tlog._checkpoint import VerifiedCheckpoint, parse_decimal, verify_checkpoint
from tracemark.tlog._merkle import MAX_PROOF_HASHES, Hash, as_hash, hash_leaf, verify_inclusion
from tracemark.tlog._note import MAX_NOTE_BYTES, NoteVerifier, SignedNote, b64decode_strict, b64encode
from tracemark.tlog._records import MAX_RECORD_BYTES, ProvenanceRecord

RECEIPT_HEADER = "c2sp.org/tlog-proof@v1"

#: Largest receipt accepted (bytes): a checkpoint with many cosignatures plus a full proof.
MAX_RECEIPT_BYTES = MAX_NOTE_BYTES + 16 * 1024


def normalise_final_newline(text: str) -> str:
    """``text`` ending in exactly one newline, as a signed note (and so a receipt) does.

    Copying a receipt from a terminal or a web page often drops its final newline or adds
    empty lines after it.  The signed bytes end before the signature lines, so restoring
    the one final newline changes nothing that was signed; a receipt damaged anywhere else
    still fails to parse or verify.
    """
    return text.rstrip("\n") + "\n" if text else text


@dataclass(frozen=True)
class Receipt:
    """A parsed (not yet verified) tlog-proof@v1."""

    index: int
    proof: tuple[Hash, ...]
    checkpoint_note: str
    extra: bytes | None = None

    def to_text(self) -> str:
        """The receipt in its wire form."""
        lines = [RECEIPT_HEADER]
        if self.extra is not None:
            lines.append(f"extra {b64encode(self.extra)}")
        lines.append(f"index {self.index}")
        lines.extend(b64encode(h) for h in self.proof)
        return "\n".join(lines) + "\n\n" + self.checkpoint_note

    @classmethod
    def parse(cls, data: str | bytes) -> Receipt:
        """Parse the wire form strictly; raises :class:`~tracemark.errors.TlogFormatError`.

        The one leniency: a missing final newline (or empty lines after it) is normalised first,
        see :func:`normalise_final_newline`.
        """
        if len(data) > MAX_RECEIPT_BYTES:
            raise TlogFormatError(f"receipt is larger than {MAX_RECEIPT_BYTES} bytes")
        if isinstance(data, bytes):
            try:
                data = data.decode("utf-8")
            except UnicodeDecodeError:
                raise TlogFormatError("receipt is not valid UTF-8") from None
        data = normalise_final_newline(data)
        head, sep, note = data.partition("\n\n")
        if not sep:
            raise TlogFormatError("receipt has no empty line before its checkpoint")
        lines = head.split("\n")
        if lines[0] != RECEIPT_HEADER:
            raise TlogFormatError(f"receipt does not start with {RECEIPT_HEADER}")
        position = 1
        extra: bytes | None = None
        if position < len(lines) and lines[position].startswith("extra "):
            extra = b64decode_strict(lines[position][len("extra ") :], "receipt extra data")
            if len(extra) > MAX_RECORD_BYTES * 4:
                raise TlogFormatError("receipt extra data is too large")
            position += 1
        if position >= len(lines) or not lines[position].startswith("index "):
            raise TlogFormatError("receipt has no 'index N' line")
        index = parse_decimal(lines[position][len("index ") :], "receipt index")
        hash_lines = lines[position + 1 :]
        if len(hash_lines) > MAX_PROOF_HASHES:
            raise TlogFormatError(f"receipt proof has {len(hash_lines)} hashes; at most {MAX_PROOF_HASHES} are valid")
        proof = tuple(as_hash(b64decode_strict(line, "proof hash"), "proof hash") for line in hash_lines)
        SignedNote.parse(note)
        return cls(index=index, proof=proof, checkpoint_note=note, extra=extra)


class VerifiedReceiptJSON(TypedDict):
    """:meth:`VerifiedReceipt.to_json`: what ``tracemark tlog verify --json`` prints and
    ``POST /v1/log/verify-receipt`` answers."""

    valid: bool
    origin: str
    index: int
    tree_size: int
    #: The checkpoint's root hash, standard base64 (as in the checkpoint).
    root_hash: str
    #: The entry's leaf hash, hex.
    leaf_hash: str
    #: The entry as a provenance record, or None when it is not one.
    record: dict[str, str] | None
    #: Names of the witnesses whose cosignatures were verified.
    witnesses: list[str]
    #: Present (and true) only when the caller also checked the content against the record.
    content_matches: NotRequired[bool]


@dataclass(frozen=True)
class VerifiedReceipt:
    """What a verified receipt proves: this entry is at ``index`` in the signed tree."""

    index: int
    entry: bytes
    leaf_hash: Hash
    record: ProvenanceRecord | None
    checkpoint: VerifiedCheckpoint

    @property
    def tree_size(self) -> int:
        """Size of the tree the entry was proven in."""
        return self.checkpoint.checkpoint.size

    @property
    def origin(self) -> str:
        """The log's origin."""
        return self.checkpoint.checkpoint.origin

    def to_json(self) -> VerifiedReceiptJSON:
        """What the receipt proves, as JSON (``valid`` is always true: an invalid receipt raised)."""
        return {
            "valid": True,
            "origin": self.origin,
            "index": self.index,
            "tree_size": self.tree_size,
            "root_hash": b64encode(self.checkpoint.checkpoint.root_hash),
            "leaf_hash": self.leaf_hash.hex(),
            "record": self.record.to_dict() if self.record is not None else None,
            "witnesses": list(self.checkpoint.witnesses),
        }


def verify_receipt(
    receipt: Receipt | str | bytes,
    log_key: NoteVerifier,
    *,
    entry: bytes | ProvenanceRecord | None = None,
    origin: str | None = None,
    witnesses: Sequence[NoteVerifier] = (),
    quorum: int = 0,
) -> VerifiedReceipt:
    """Verify a tlog-proof@v1 receipt offline; raises a :class:`~tracemark.errors.TlogError` subclass.

    The entry is ``entry`` if given (it must then equal the receipt's extra data, when
    present), else the receipt's extra data.  Checks, in order: the checkpoint's origin
    and log signature (and witness quorum), then RFC 9162 §2.1.3.2 inclusion of the
    entry's leaf hash at the receipt's index.
    """
    parsed = receipt if isinstance(receipt, Receipt) else Receipt.parse(receipt)
    checkpoint = verify_checkpoint(parsed.checkpoint_note, log_key, origin=origin, witnesses=witnesses, quorum=quorum)
    given = entry.to_json() if isinstance(entry, ProvenanceRecord) else entry
    if given is not None and parsed.extra is not None and given != parsed.extra:
        raise InclusionProofError("the entry given differs from the entry carried in the receipt")
    data = given if given is not None else parsed.extra
    if data is None:
        raise TlogFormatError("the receipt carries no entry: pass the entry (provenance record) to check")
    leaf = hash_leaf(data)
    tree = checkpoint.checkpoint
    verify_inclusion(parsed.index, tree.size, leaf, parsed.proof, tree.root_hash)
    try:
        record: ProvenanceRecord | None = ProvenanceRecord.from_json(data)
    except TlogFormatError:
        record = None
    return VerifiedReceipt(index=parsed.index, entry=data, leaf_hash=leaf, record=record, checkpoint=checkpoint)
