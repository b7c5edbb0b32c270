"""The service's view of the transparency log: opened once, appends batched, every append receipted.

One :class:`ServiceLog` per application.  Request handlers run in the thread pool, so
everything here is safe to call from many threads at once:

* the SQLite store keeps one connection per thread and serialises writers on the database
  lock (``BEGIN IMMEDIATE``), also across worker processes sharing the file;
* appends go through a :class:`~tracemark.tlog.BatchingAppender`, so concurrent requests share
  one durable commit (group commit), and each request returns only once its entry is durable;
* after its batch commits, a request signs a checkpoint covering its entry unless one already
  does (signing re-reads the tree inside the write transaction, so racing requests agree), and
  returns the entry's tlog-proof@v1 receipt against it.
"""

from __future__ import annotations

import base64
import sqlite3
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import TypedDict

from tracemark.errors import TlogError, TlogFormatError, TlogStorageError
from tracemark.keys import Keyring, ensure_log_key
from tracemark.service._errors import NotFoundError
from tracemark.tlog import (
    AppendResult,
    BatchingAppender,
    Checkpoint,
    CheckpointPublisher,
    NoteVerifier,
    ProvenanceRecord,
    Receipt,
    SignedCheckpoint,
    SignedNote,
    TransparencyLog,
    VerifiedReceiptJSON,
    verify_receipt,
)
from tracemark.tlog.merkle import hash_leaf


def b64(data: bytes) -> str:
    """Standard base64 with padding, as the C2SP formats write hashes."""
    return base64.b64encode(data).decode("ascii")


class ContentMismatchError(TlogError):
    """A valid receipt, but for other content than the one given."""


class AppendedEntryJSON(TypedDict):
    """An appended entry: ``POST /v1/log/entries``, and the log part of ``POST /v1/text/generate``."""

    index: int
    leaf_hash: str
    tree_size: int
    record: dict[str, str]
    receipt: str


class CheckpointJSON(TypedDict):
    """A signed checkpoint: ``GET /v1/log/checkpoint``."""

    origin: str
    tree_size: int
    root_hash: str
    note: str


class EntryJSON(TypedDict):
    """One entry: ``GET /v1/log/entries/{index}`` (``record`` is None when the bytes are not a record)."""

    index: int
    leaf_hash: str
    record: dict[str, str] | None
    entry: str


class EntriesPageJSON(TypedDict):
    """A page of entries: ``GET /v1/log/entries``."""

    tree_size: int
    start: int
    limit: int
    entries: list[EntryJSON]
    next: int | None


class InclusionJSON(TypedDict):
    """An inclusion proof: ``GET /v1/log/proof/inclusion`` (``checkpoint`` and ``receipt`` None when unsigned)."""

    index: int
    tree_size: int
    leaf_hash: str
    root_hash: str
    proof: list[str]
    checkpoint: str | None
    receipt: str | None


class ConsistencyJSON(TypedDict):
    """A consistency proof: ``GET /v1/log/proof/consistency``."""

    old_size: int
    new_size: int
    old_root: str
    new_root: str
    proof: list[str]


@dataclass(frozen=True)
class AppendedEntry:
    """An entry the service appended, with its receipt."""

    result: AppendResult
    record: ProvenanceRecord
    receipt: Receipt

    def to_json(self) -> AppendedEntryJSON:
        """``index``, ``leaf_hash`` (hex), ``tree_size``, ``record`` and ``receipt`` (tlog-proof@v1 text)."""
        return {
            "index": self.result.index,
            "leaf_hash": self.result.leaf_hash.hex(),
            "tree_size": self.result.tree_size,
            "record": self.record.to_dict(),
            "receipt": self.receipt.to_text(),
        }


def checkpoint_json(signed: SignedCheckpoint) -> CheckpointJSON:
    """The JSON form of a signed checkpoint: origin, size, base64 root, and the note itself."""
    checkpoint = signed.checkpoint
    return {
        "origin": checkpoint.origin,
        "tree_size": checkpoint.size,
        "root_hash": b64(checkpoint.root_hash),
        "note": signed.note,
    }


def _entry_json(index: int, data: bytes) -> EntryJSON:
    try:
        record: dict[str, str] | None = ProvenanceRecord.from_json(data).to_dict()
    except TlogFormatError:
        record = None
    return {"index": index, "leaf_hash": hash_leaf(data).hex(), "record": record, "entry": b64(data)}


class _LeafIndex:
    """Leaf hash → index, in a table of its own (``service_leaf_index``) beside the log's tables.

    The log indexes content hashes, not leaf hashes.  Like the log's own lookup index this one
    is filled lazily, in one sorted bulk insert of the entries added since the last lookup, so
    appends never pay for it.
    """

    def __init__(self, database: Path) -> None:
        self._database = database
        self._lock = threading.Lock()
        self._connection: sqlite3.Connection | None = None

    def _connect(self) -> sqlite3.Connection:
        if self._connection is None:
            connection = sqlite3.connect(str(self._database), timeout=30.0, isolation_level=None,
                                         check_same_thread=False)  # fmt: skip
            connection.execute("PRAGMA busy_timeout = 30000")
            connection.execute(
                "CREATE TABLE IF NOT EXISTS service_leaf_index (leaf BLOB PRIMARY KEY, idx INTEGER NOT NULL)"
                " WITHOUT ROWID"
            )
            connection.execute("CREATE TABLE IF NOT EXISTS service_meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)")
            self._connection = connection
        return self._connection

    def find(self, leaf: bytes, size: int) -> int | None:
        """The first index whose leaf hash is ``leaf`` among the first ``size`` entries, or None."""
        with self._lock:
            try:
                db = self._connect()
                db.execute("BEGIN IMMEDIATE")
                try:
                    row = db.execute("SELECT value FROM service_meta WHERE key = 'leaf_indexed_upto'").fetchone()
                    upto = 0 if row is None else int(row[0])
                    if upto < size:
                        db.execute(
                            "INSERT OR IGNORE INTO service_leaf_index (leaf, idx) SELECT leaf, idx FROM tlog_entries"
                            " WHERE idx >= ? AND idx < ? ORDER BY leaf, idx",
                            (upto, size),
                        )
                        db.execute(
                            "INSERT OR REPLACE INTO service_meta (key, value) VALUES ('leaf_indexed_upto', ?)",
                            (str(size),),
                        )
                    found = db.execute("SELECT idx FROM service_leaf_index WHERE leaf = ?", (leaf,)).fetchone()
                    db.execute("COMMIT")
                except BaseException:
                    if db.in_transaction:
                        db.execute("ROLLBACK")
                    raise
            except sqlite3.Error as exc:
                raise TlogStorageError(f"log database {self._database}: {exc}") from None
        return None if found is None or int(found[0]) >= size else int(found[0])

    def close(self) -> None:
        with self._lock:
            if self._connection is not None:
                self._connection.close()
                self._connection = None


@dataclass(frozen=True)
class _OpenLog:
    """The open log and the appender that batches its appends: opened and closed together."""

    log: TransparencyLog
    appender: BatchingAppender


class ServiceLog:
    """The log in ``database``, signed with the keyring's log key; opened on first use."""

    def __init__(self, database: Path, keyring: Keyring, *, batch_delay: float = 0.002) -> None:
        self.database = database
        self.keyring = keyring
        self.batch_delay = batch_delay
        self._lock = threading.Lock()
        self._open: _OpenLog | None = None
        self._leaves = _LeafIndex(database)
        self._latest: SignedCheckpoint | None = None
        #: With a witness policy (set by ``_witness_routes.install``): checkpoints are served and
        #: receipted only once the policy's quorum of witnesses cosigned them.
        self.publisher: CheckpointPublisher | None = None

    # -- lifecycle ---------------------------------------------------------------------------
    def _opened(self) -> _OpenLog:
        """The open log and its appender (opened, and given a checkpoint of its current tree, on first use)."""
        current = self._open
        if current is not None:
            return current
        with self._lock:
            if self._open is None:
                opened = TransparencyLog.open(self.database, signer=ensure_log_key(self.keyring))
                try:
                    latest = opened.latest_checkpoint()
                    if latest is None or latest.checkpoint.size != opened.size:
                        opened.checkpoint()
                except BaseException:
                    opened.close()
                    raise
                self._open = _OpenLog(opened, BatchingAppender(opened, max_batch=256, max_delay=self.batch_delay))
            return self._open

    @property
    def log(self) -> TransparencyLog:
        """The open log (opened, and given a checkpoint of its current tree, on first use)."""
        return self._opened().log

    @property
    def is_open(self) -> bool:
        """Whether the log was opened already."""
        return self._open is not None

    def close(self) -> None:
        """Flush pending appends and close the database."""
        with self._lock:
            current = self._open
            if current is not None:
                current.appender.close()
                self._open = None
                current.log.close()
            self._leaves.close()

    # -- writing -----------------------------------------------------------------------------
    def append(self, record: ProvenanceRecord) -> AppendedEntry:
        """Append ``record`` durably, make sure a signed checkpoint covers it, return its receipt."""
        opened = self._opened()
        result = opened.appender.append(record)
        if self.publisher is not None:
            published = self.publisher.publish(opened.log, covering=result.index + 1).checkpoint.checkpoint.size
            receipt = opened.log.receipt(result.index, checkpoint_size=published)
        else:
            receipt = opened.log.receipt(result.index, sign=True)
        return AppendedEntry(result=result, record=record, receipt=receipt)

    # -- reading -----------------------------------------------------------------------------
    def size(self) -> int:
        """Entries in the log (integrated and durable)."""
        return self.log.size

    def latest_checkpoint(self) -> SignedCheckpoint:
        """The latest signed checkpoint (a new log has the checkpoint of size 0).

        One indexed query each time (another process may have signed a newer one); the note is
        parsed again only when it changed, since proofs ask for it on every request.
        """
        publisher = self.publisher
        stored = self.log.store.latest_checkpoint() if publisher is None else publisher.published(self.log)
        if stored is None:
            raise TlogError("the log has no signed checkpoint yet" if publisher is None else
                            "the log has no checkpoint its witnesses cosigned yet")  # fmt: skip
        cached = self._latest
        if cached is not None and cached.note == stored.note:
            return cached
        signed = SignedCheckpoint(Checkpoint.parse(SignedNote.parse(stored.note).text), stored.note)
        self._latest = signed
        return signed

    def tree_size_for(self, size: int | None) -> int:
        """``size`` if the log has grown that far, else raise; None means the latest checkpoint's size."""
        latest = self.latest_checkpoint().checkpoint.size
        if size is None:
            return latest
        tree = self.log.size
        if size > tree:
            raise NotFoundError(f"tree size {size} is larger than the log ({tree} entries)")
        return size

    def entry(self, index: int) -> EntryJSON:
        """Entry ``index``: its record (or null when it is not one), leaf hash and raw bytes (base64)."""
        size = self.log.size
        if index >= size:
            raise NotFoundError(f"no entry {index}: the log holds {size} entries")
        return _entry_json(index, self.log.store.read_entries(index, index + 1)[0])

    def record(self, index: int) -> ProvenanceRecord:
        """Entry ``index`` parsed as a provenance record; a :class:`~tracemark.errors.TlogError` if it is none."""
        return self.log.record(index)

    def entries(self, start: int, limit: int) -> EntriesPageJSON:
        """A page of entries from ``start`` (at most ``limit``), for the explorer."""
        size = self.log.size
        end = min(size, start + limit)
        data = self.log.store.read_entries(start, end) if start < end else []
        return {
            "tree_size": size,
            "start": start,
            "limit": limit,
            "entries": [_entry_json(start + offset, item) for offset, item in enumerate(data)],
            "next": end if end < size else None,
        }

    def find_leaf(self, leaf_hash: bytes, size: int) -> int:
        """The first entry with this leaf hash among the first ``size`` entries."""
        found = self._leaves.find(leaf_hash, size)
        if found is None:
            raise NotFoundError(f"no entry with leaf hash {leaf_hash.hex()} in the first {size} entries")
        return found

    def find_content(self, content_sha256: str, size: int) -> int:
        """The first entry recording this content hash among the first ``size`` entries."""
        hits = [index for index in self.log.find(content_sha256, limit=1) if index < size]
        if not hits:
            raise NotFoundError(f"no record of content {content_sha256} in the first {size} entries")
        return hits[0]

    def inclusion(self, index: int, size: int | None) -> InclusionJSON:
        """RFC 9162 inclusion proof of ``index`` in the tree of ``size`` (default: latest checkpoint).

        When a signed checkpoint of that size exists, the answer also holds it and the entry's
        receipt (tlog-proof@v1), so a client can check the proof against the log's signature.
        """
        tree_size = self.tree_size_for(size)
        if index >= tree_size:
            raise NotFoundError(f"entry {index} is not in the tree of size {tree_size}")
        log = self.log
        proof = log.inclusion_proof(index, tree_size)
        stored = log.store.checkpoint_at(tree_size)
        out: InclusionJSON = {
            "index": index,
            "tree_size": tree_size,
            "leaf_hash": proof.leaf_hash.hex(),
            "root_hash": b64(proof.root_hash),
            "proof": [b64(h) for h in proof.hashes],
            "checkpoint": None,
            "receipt": None,
        }
        if stored is not None and stored.root == proof.root_hash:
            entry = log.store.read_entries(index, index + 1)[0]
            out["checkpoint"] = stored.note
            out["receipt"] = Receipt(index=index, proof=proof.hashes, checkpoint_note=stored.note,
                                     extra=entry).to_text()  # fmt: skip
        return out

    def consistency(self, old: int, new: int | None) -> ConsistencyJSON:
        """RFC 9162 consistency proof from ``old`` to ``new`` (default: the latest checkpoint's size)."""
        new_size = self.tree_size_for(new)
        if old > new_size:
            raise NotFoundError(f"old size {old} is larger than the new size {new_size}")
        proof = self.log.consistency_proof(old, new_size)
        return {
            "old_size": proof.old_size,
            "new_size": proof.new_size,
            "old_root": b64(proof.old_root),
            "new_root": b64(proof.new_root),
            "proof": [b64(h) for h in proof.hashes],
        }

    def verifier(self) -> NoteVerifier:
        """The log's verifier key (the public half of its note key)."""
        verifier = self.log.verifier
        if verifier is None:
            raise TlogError("the log has no verifier key")
        return verifier

    def verify(self, receipt: str, content: bytes | None = None) -> VerifiedReceiptJSON:
        """Verify a receipt as an offline client would, with only the log's public key."""
        verified = verify_receipt(receipt, self.verifier())
        payload = verified.to_json()
        if content is not None:
            if verified.record is None or not verified.record.matches_content(content):
                raise ContentMismatchError("the content given is not the content this receipt records")
            payload["content_matches"] = True
        return payload
