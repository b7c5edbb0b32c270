"""The transparency log recipe: append provenance records in durable batches, sign checkpoints,
issue receipts, and prove inclusion and consistency.

Appending integrates a whole batch in one store transaction (sequence, hash and commit
together), so an acknowledged entry is both durable and covered by the stored tree: there
is no window in which an entry has an index but no Merkle path.  :class:`BatchingAppender`
gathers entries from many threads into such batches, the way Tessera does (a batch closes
at 1,024 entries or 250 ms; Tessera's defaults are 256 or 250 ms, but one fsync per 256
entries caps a SQLite log below our throughput goal), and resolves each caller's future
only after the batch commits.
"""

from __future__ import annotations

import calendar
import functools
import threading
import time
from collections.abc import Iterable, Mapping, Sequence
from concurrent.futures import Future
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TypedDict

from tracemark._postgres import is_postgres_url
from tracemark.errors import InclusionProofError, TlogError, TlogFormatError, TlogProofError, TlogStorageError
from tracemark.tlog._checkpoint import Checkpoint, sign_checkpoint, verify_checkpoint
from tracemark.tlog._merkle import (
    CompactRange,
    Hash,
    NodeAddress,
    NodeReader,
    consistency_subtrees,
    fold_plans,
    hash_leaf,
    inclusion_subtrees,
    range_nodes,
    subtree_nodes,
    verify_consistency,
    verify_inclusion,
)
from tracemark.tlog._note import NoteSignature, NoteSigner, NoteVerifier, SignedNote, b64encode
from tracemark.tlog._receipt import Receipt, verify_receipt
from tracemark.tlog._records import ProvenanceRecord
from tracemark.tlog._store.interface import LogStore, StoredCheckpoint, TreeState
from tracemark.tlog._store.postgres import PostgresStore
from tracemark.tlog._store.sqlite import SQLiteStore

#: Largest single entry (bytes); tlog-tiles entry bundles cap entries at 64 KiB.
MAX_ENTRY_BYTES = 65535
#: Largest batch integrated in one transaction.
MAX_BATCH = 100_000

_META_ORIGIN = "origin"
_META_VKEY = "log_vkey"


#: How far ahead of the log's clock a record's claimed ``time`` may be (24 hours): a client clock
#: a little fast is tolerated, a date in the far future (``9999-12-31``) is refused.
MAX_CLAIMED_TIME_AHEAD = 24 * 3600


@functools.lru_cache(maxsize=1024)
def _unix_seconds(moment: str) -> int:
    return calendar.timegm(datetime.strptime(moment, "%Y-%m-%dT%H:%M:%SZ").timetuple())


def claimed_timestamp(record: ProvenanceRecord) -> int:
    """A record's ``time`` as Unix seconds: the time its submitter claims, not one the log vouches for."""
    return _unix_seconds(record.time)


@dataclass(frozen=True)
class AppendResult:
    """Where an appended entry landed; returned only after its batch is durable.

    ``integrated_time`` is the log's clock (Unix time) when the entry's batch was integrated;
    ``duplicate`` is true when a deduplicating append found the identical entry already stored
    (or earlier in the same batch) and answered with that entry instead of adding another.
    """

    index: int
    leaf_hash: Hash
    tree_size: int
    root_hash: Hash
    integrated_time: float | None = None
    duplicate: bool = False


@dataclass(frozen=True)
class InclusionProof:
    """RFC 9162 §2.1.3 inclusion proof of leaf ``index`` in the tree of ``tree_size`` leaves."""

    index: int
    tree_size: int
    leaf_hash: Hash
    hashes: tuple[Hash, ...]
    root_hash: Hash

    def verify(self) -> None:
        """Check the proof against its own root (RFC 9162 §2.1.3.2); raises on failure."""
        verify_inclusion(self.index, self.tree_size, self.leaf_hash, self.hashes, self.root_hash)


@dataclass(frozen=True)
class ConsistencyProof:
    """RFC 9162 §2.1.4 consistency proof between two tree sizes."""

    old_size: int
    new_size: int
    old_root: Hash
    new_root: Hash
    hashes: tuple[Hash, ...]

    def verify(self) -> None:
        """Check the proof against its roots (RFC 9162 §2.1.4.2); raises on failure."""
        verify_consistency(self.old_size, self.new_size, self.old_root, self.new_root, self.hashes)

    def to_json(self) -> ConsistencyJSON:
        """The JSON form the service and ``tlog audit --json`` give (hashes in base64)."""
        return {
            "old_size": self.old_size,
            "new_size": self.new_size,
            "old_root": b64encode(self.old_root),
            "new_root": b64encode(self.new_root),
            "proof": [b64encode(h) for h in self.hashes],
        }


class ConsistencyJSON(TypedDict):
    """:meth:`ConsistencyProof.to_json`."""

    old_size: int
    new_size: int
    old_root: str
    new_root: str
    proof: list[str]


@dataclass(frozen=True)
class SignedCheckpoint:
    """A checkpoint the log signed and stored, as a signed note."""

    checkpoint: Checkpoint
    note: str

    def to_json(self) -> CheckpointJSON:
        """Origin, size, base64 root, and the signed note itself."""
        return {
            "origin": self.checkpoint.origin,
            "tree_size": self.checkpoint.size,
            "root_hash": b64encode(self.checkpoint.root_hash),
            "note": self.note,
        }


class CheckpointJSON(TypedDict):
    """:meth:`SignedCheckpoint.to_json`."""

    origin: str
    tree_size: int
    root_hash: str
    note: str


class TransparencyLog:
    """An append-only Merkle log of provenance records over a :class:`LogStore`.

    ``signer`` is the log's Ed25519 note key (needed to sign checkpoints); its name is the
    log's origin.  The store remembers the origin and verifier key of the first log that
    used it and refuses to serve a different one.
    """

    def __init__(self, store: LogStore, *, signer: NoteSigner | None = None) -> None:
        self.store = store
        self.signer = signer
        stored_origin = store.get_meta(_META_ORIGIN)
        stored_vkey = store.get_meta(_META_VKEY)
        if signer is not None:
            if stored_vkey is None:
                with store.writer() as writer:  # re-read under the write lock: a racing process may have won
                    stored_origin, stored_vkey = store.get_meta(_META_ORIGIN), store.get_meta(_META_VKEY)
                    if stored_vkey is None:
                        writer.set_meta(_META_ORIGIN, signer.name)
                        writer.set_meta(_META_VKEY, signer.vkey)
                        stored_vkey = signer.vkey
            if stored_vkey != signer.vkey:
                raise TlogStorageError(
                    f"this database holds the log {stored_origin!r} ({stored_vkey}), not {signer.vkey}"
                )
            self.origin: str | None = signer.name
            self.verifier: NoteVerifier | None = signer.verifier
        else:
            self.origin = stored_origin
            self.verifier = NoteVerifier.from_vkey(stored_vkey) if stored_vkey else None

    @classmethod
    def open(cls, path: str | Path, *, signer: NoteSigner | None = None, synchronous: str = "FULL") -> TransparencyLog:
        """A log in the SQLite database at ``path`` (created if missing), or in PostgreSQL when
        ``path`` is a ``postgresql://`` URL (tables created or migrated if needed)."""
        if is_postgres_url(path):
            return cls(PostgresStore(str(path)), signer=signer)
        return cls(SQLiteStore(path, synchronous=synchronous), signer=signer)

    def close(self) -> None:
        """Close the store."""
        self.store.close()

    def __enter__(self) -> TransparencyLog:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- state -------------------------------------------------------------------------------
    @property
    def size(self) -> int:
        """Number of integrated (durable) entries."""
        return self.store.tree_state().size

    def tree_state(self) -> TreeState:
        """Size and root of the integrated tree."""
        return self.store.tree_state()

    # -- appending ---------------------------------------------------------------------------
    def append(self, record: ProvenanceRecord) -> AppendResult:
        """Append one record as its own durable batch (prefer :meth:`append_many` or a batcher)."""
        return self.append_many([record])[0]

    def append_many(self, records: Sequence[ProvenanceRecord], *, deduplicate: bool = False) -> list[AppendResult]:
        """Append records as one batch; returns after the batch is durable.

        A record whose claimed ``time`` is more than :data:`MAX_CLAIMED_TIME_AHEAD` seconds ahead
        of the log's clock is refused.  With ``deduplicate``, a record identical (byte for byte)
        to one already stored is not appended again: its result is the stored entry's.
        """
        latest = time.time() + MAX_CLAIMED_TIME_AHEAD
        for record in records:
            if not isinstance(record, ProvenanceRecord):
                raise TlogFormatError(f"expected a ProvenanceRecord, got {type(record).__name__}")
            if claimed_timestamp(record) > latest:
                raise TlogFormatError(
                    f"record time {record.time} is more than {MAX_CLAIMED_TIME_AHEAD // 3600} hours ahead of the"
                    " log's clock"
                )
        return self.append_entries(
            [record.to_json() for record in records],
            [bytes.fromhex(record.content_sha256) for record in records],
            deduplicate=deduplicate,
        )

    def append_entries(
        self, entries: Sequence[bytes], lookups: Sequence[bytes | None] | None = None, *, deduplicate: bool = False
    ) -> list[AppendResult]:
        """Append raw entries (with optional lookup keys) as one durable batch; the low-level path.

        With ``deduplicate``, an entry with a lookup key whose bytes are already stored under that
        key (or earlier in this batch) is answered with the stored index instead of being appended.
        """
        if not entries:
            return []
        if len(entries) > MAX_BATCH:
            raise TlogFormatError(f"a batch holds at most {MAX_BATCH} entries, got {len(entries)}")
        keys: Sequence[bytes | None] = lookups if lookups is not None else [None] * len(entries)
        if len(keys) != len(entries):
            raise TlogFormatError("entries and lookup keys differ in number")
        for data in entries:
            if not isinstance(data, bytes) or len(data) > MAX_ENTRY_BYTES:
                raise TlogFormatError(f"an entry must be bytes of at most {MAX_ENTRY_BYTES} bytes")
        leaf_hashes = [hash_leaf(data) for data in entries]
        pending = list(zip(entries, leaf_hashes, keys, strict=True))
        with self.store.writer(pending) as writer:
            state = writer.tree_state()
            compact = self._compact_range(writer.read_nodes, state)
            first = state.size
            now = time.time()
            stored: Mapping[bytes, int] = {}
            if deduplicate:
                stored = writer.find_leaves([(k, leaf) for k, leaf in zip(keys, leaf_hashes, strict=True) if k])
            placed: dict[bytes, int] = {}  # leaf hash -> index, for the entries this batch adds
            fresh: list[tuple[bytes, bytes, bytes | None]] = []
            slots: list[tuple[int, bool]] = []
            for data, leaf, key in zip(entries, leaf_hashes, keys, strict=True):
                if deduplicate and key is not None and (leaf in stored or leaf in placed):
                    slots.append((stored[leaf] if leaf in stored else placed[leaf], True))
                    continue
                index = first + len(fresh)
                placed.setdefault(leaf, index)
                fresh.append((data, leaf, key))
                slots.append((index, False))
            nodes: list[tuple[int, int, Hash]] = []
            append = compact.append
            for _, added, _ in fresh:
                nodes.extend(append(Hash(added)))
            root = compact.root()
            if fresh:
                writer.write_entries(first, fresh)
                writer.write_nodes(nodes)
                writer.set_tree_state(TreeState(compact.size, root))
                writer.record_integration(first, now)
        size = compact.size
        return [
            AppendResult(
                index,
                leaf,
                size,
                root,
                now if index >= first else self.store.integrated_time(index),
                duplicate,
            )
            for (index, duplicate), leaf in zip(slots, leaf_hashes, strict=True)
        ]

    @staticmethod
    def _compact_range(read: NodeReader, state: TreeState) -> CompactRange:
        addresses = CompactRange.addresses(state.size)
        found = read(addresses)
        try:
            compact = CompactRange(state.size, [found[a] for a in addresses])
        except KeyError:
            raise TlogStorageError(f"the log's right border at size {state.size} is missing nodes") from None
        if compact.root() != state.root:
            raise TlogStorageError(f"the stored nodes do not match the stored root of size {state.size}")
        return compact

    # -- reading -----------------------------------------------------------------------------
    def entry(self, index: int) -> bytes:
        """The stored bytes of entry ``index``."""
        size = self.size
        if not 0 <= index < size:
            raise TlogError(f"no entry {index}: the log holds {size} entries")
        return self.store.read_entries(index, index + 1)[0]

    def integrated_time(self, index: int) -> float | None:
        """When entry ``index`` was integrated (Unix time, the log's clock), or None for entries
        appended before the log recorded integration times."""
        size = self.size
        if not 0 <= index < size:
            raise TlogError(f"no entry {index}: the log holds {size} entries")
        return self.store.integrated_time(index)

    def record(self, index: int) -> ProvenanceRecord:
        """Entry ``index`` parsed as a provenance record."""
        return ProvenanceRecord.from_json(self.entry(index))

    def find(self, content_sha256: str, limit: int = 100) -> list[int]:
        """Indices of the records whose ``content_sha256`` is this hex digest."""
        try:
            key = bytes.fromhex(content_sha256)
        except ValueError:
            raise TlogFormatError("content_sha256 must be hex") from None
        if len(key) != 32:
            raise TlogFormatError("content_sha256 must be 32 bytes of hex")
        wanted = key.hex()
        hits = []
        for index in self.store.find_entries(key, limit):
            try:
                if ProvenanceRecord.from_json(self.store.read_entries(index, index + 1)[0]).content_sha256 == wanted:
                    hits.append(index)
            except TlogFormatError:
                continue
        return hits

    # -- proofs ------------------------------------------------------------------------------
    def _resolve(
        self, subtrees: Sequence[tuple[int, int]], roots: Iterable[int], extra: Iterable[NodeAddress] = ()
    ) -> tuple[list[Hash], dict[int, Hash], Mapping[NodeAddress, bytes]]:
        """Proof hashes, root hashes of the given sizes, and extra nodes, from one batch read."""
        plans = subtree_nodes(subtrees)
        root_plans = {size: range_nodes(0, size) for size in roots}
        wanted = {n for plan in plans for n in plan}
        wanted.update(n for plan in root_plans.values() for n in plan)
        wanted.update(extra)
        found = self.store.read_nodes(list(wanted))
        if len(found) != len(wanted):
            raise TlogStorageError("the log's node store is missing nodes")
        hashes = fold_plans(plans, found)
        root_hashes = dict(zip(root_plans, fold_plans(list(root_plans.values()), found), strict=True))
        return hashes, root_hashes, found

    def _size_at_most(self, size: int | None) -> tuple[int, TreeState]:
        state = self.store.tree_state()
        if size is None:
            return state.size, state
        if isinstance(size, bool) or not isinstance(size, int) or not 0 <= size <= state.size:
            raise TlogProofError(f"tree size {size} is not between 0 and the log's size {state.size}")
        return size, state

    def inclusion_proof(self, index: int, tree_size: int | None = None) -> InclusionProof:
        """RFC 9162 §2.1.3.1 proof for entry ``index`` in the tree of ``tree_size`` (default: current)."""
        size, state = self._size_at_most(tree_size)
        subtrees = inclusion_subtrees(index, size)
        leaf = NodeAddress(0, index)
        roots = [] if size == state.size else [size]
        hashes, root_hashes, found = self._resolve(subtrees, roots, [leaf])
        root = state.root if size == state.size else root_hashes[size]
        return InclusionProof(index, size, Hash(found[leaf]), tuple(hashes), root)

    def consistency_proof(self, old_size: int, new_size: int | None = None) -> ConsistencyProof:
        """RFC 9162 §2.1.4.1 proof that the tree of ``old_size`` is a prefix of the one of ``new_size``."""
        new, state = self._size_at_most(new_size)
        old, _ = self._size_at_most(old_size)
        subtrees = consistency_subtrees(old, new)
        roots = {old} | ({new} if new != state.size else set())
        hashes, root_hashes, _ = self._resolve(subtrees, roots)
        new_root = state.root if new == state.size else root_hashes[new]
        return ConsistencyProof(old, new, root_hashes[old], new_root, tuple(hashes))

    # -- checkpoints -------------------------------------------------------------------------
    def checkpoint(self) -> SignedCheckpoint:
        """Sign and store a checkpoint of the current tree (or return the stored one of that size).

        Before signing, the tree is proven consistent with the latest checkpoint already
        signed (tlog-checkpoint §Signatures: a log MUST NOT sign inconsistent checkpoints).
        """
        if self.signer is None or self.origin is None:
            raise TlogError("signing a checkpoint needs the log's key: run 'tracemark keys init'")
        with self.store.writer() as writer:
            state = writer.tree_state()
            latest = self.store.latest_checkpoint()
            if latest is not None and latest.size == state.size:
                if latest.root != state.root:
                    raise TlogStorageError(f"stored checkpoint of size {state.size} has another root than the tree")
                return SignedCheckpoint(Checkpoint.parse(SignedNote.parse(latest.note).text), latest.note)
            if latest is not None and latest.size > state.size:
                raise TlogStorageError(f"a checkpoint of size {latest.size} exists but the tree has only {state.size}")
            self._compact_range(writer.read_nodes, state)
            if latest is not None:
                proof = self._consistency_in(writer.read_nodes, latest.size, state.size)
                try:
                    verify_consistency(latest.size, state.size, latest.root, state.root, proof)
                except TlogProofError as exc:
                    raise TlogStorageError(
                        f"refusing to sign: the tree is not consistent with checkpoint {latest.size}: {exc}"
                    ) from None
            checkpoint = Checkpoint(self.origin, state.size, state.root)
            note = sign_checkpoint(checkpoint, self.signer)
            writer.save_checkpoint(StoredCheckpoint(state.size, state.root, note, time.time()))
        return SignedCheckpoint(checkpoint, note)

    @staticmethod
    def _consistency_in(read: NodeReader, old: int, new: int) -> list[Hash]:
        plans = subtree_nodes(consistency_subtrees(old, new))
        found = read(list({n for plan in plans for n in plan}))
        try:
            return fold_plans(plans, found)
        except TlogFormatError:
            raise TlogStorageError("the log's node store is missing nodes") from None

    def latest_checkpoint(self) -> SignedCheckpoint | None:
        """The largest signed checkpoint, with any cosignatures it collected."""
        stored = self.store.latest_checkpoint()
        if stored is None:
            return None
        return SignedCheckpoint(Checkpoint.parse(SignedNote.parse(stored.note).text), stored.note)

    def add_cosignatures(self, size: int, signatures: Sequence[NoteSignature]) -> str:
        """Attach witness cosignature lines to the stored checkpoint of ``size``; returns the new note."""
        with self.store.writer() as writer:
            stored = self.store.checkpoint_at(size)
            if stored is None:
                raise TlogError(f"no checkpoint of size {size} is stored")
            note = SignedNote.parse(stored.note).with_signatures(signatures).to_text()
            writer.save_checkpoint(StoredCheckpoint(stored.size, stored.root, note, stored.created_at))
        return note

    # -- receipts ----------------------------------------------------------------------------
    def receipt(self, index: int, *, checkpoint_size: int | None = None, sign: bool = False) -> Receipt:
        """A tlog-proof@v1 receipt for entry ``index`` against a stored checkpoint.

        By default the latest checkpoint is used; ``sign=True`` signs a new one first when
        no checkpoint covers the entry yet.  The entry travels in the receipt's extra data.
        """
        stored = (
            self.store.checkpoint_at(checkpoint_size) if checkpoint_size is not None else self.store.latest_checkpoint()
        )
        if (stored is None or stored.size <= index) and sign and checkpoint_size is None:
            self.checkpoint()
            stored = self.store.latest_checkpoint()
        if stored is None:
            raise TlogError("the log has no signed checkpoint yet: run 'tracemark tlog checkpoint'")
        if stored.size <= index:
            raise TlogError(f"entry {index} is not covered by checkpoint {stored.size}: sign a newer checkpoint")
        proof = self.inclusion_proof(index, stored.size)
        if proof.root_hash != stored.root:
            raise TlogStorageError(f"stored checkpoint {stored.size} does not match the tree")
        receipt = Receipt(index=index, proof=proof.hashes, checkpoint_note=stored.note, extra=self.entry(index))
        self._check_receipt(receipt, proof.leaf_hash)
        return receipt

    def _check_receipt(self, receipt: Receipt, leaf: Hash) -> None:
        """Verify a receipt as its holder will, before handing it out (about 0.1 ms).

        A damaged database (an edited entry or node) must give an error, never a receipt that
        fails verification later.
        """
        entry = receipt.extra if receipt.extra is not None else b""
        try:
            if hash_leaf(entry) != leaf:
                raise InclusionProofError("the entry's bytes do not hash to its stored leaf hash")
            if self.verifier is not None:
                verify_receipt(receipt, self.verifier, origin=self.origin)
            else:
                checkpoint = Checkpoint.parse(SignedNote.parse(receipt.checkpoint_note).text)
                verify_inclusion(receipt.index, checkpoint.size, leaf, receipt.proof, checkpoint.root_hash)
        except TlogError as exc:
            raise TlogStorageError(
                f"refusing to issue a receipt for entry {receipt.index}: it does not verify ({exc}); the log"
                " database is damaged (TransparencyLog.verify_integrity locates the damage)"
            ) from None

    # -- audit -------------------------------------------------------------------------------
    def verify_integrity(self) -> None:
        """Recompute the whole tree from the entries: every leaf, node, root and checkpoint (O(n)).

        Raises :class:`~tracemark.errors.TlogStorageError` on the first disagreement.
        """
        state = self.store.tree_state()
        checkpoints = {c.size: c for c in self.store.checkpoints()}
        compact = CompactRange()
        if 0 in checkpoints and checkpoints[0].root != compact.root():
            raise TlogStorageError("checkpoint 0 does not have the empty root")
        chunk = 4096
        for low in range(0, state.size, chunk):
            high = min(state.size, low + chunk)
            entries = self.store.read_entries(low, high)
            completed: list[tuple[int, int, bytes]] = []
            for data in entries:
                leaf = hash_leaf(data)
                completed.append((0, compact.size, leaf))
                completed.extend(compact.append(leaf))
                checkpoint = checkpoints.get(compact.size)
                if checkpoint is not None and checkpoint.root != compact.root():
                    raise TlogStorageError(f"checkpoint {compact.size} does not match the entries")
            addresses = [NodeAddress(level, index) for level, index, _ in completed]
            stored = self.store.read_nodes(addresses)
            for address, (_, _, value) in zip(addresses, completed, strict=True):
                if stored.get(address) != value:
                    raise TlogStorageError(f"node ({address.level}, {address.index}) does not match the entries")
        if compact.root() != state.root:
            raise TlogStorageError("the stored root does not match the entries")
        if any(size > state.size for size in checkpoints):
            raise TlogStorageError("a checkpoint is larger than the tree")
        if self.verifier is not None:
            for checkpoint in checkpoints.values():
                verify_checkpoint(checkpoint.note, self.verifier)


class BatchingAppender:
    """Gathers records from many threads into durable batches (Tessera-style batching).

    A batch is written when it holds ``max_batch`` records or its oldest record has waited
    ``max_delay`` seconds.  :meth:`submit` returns a future resolved with the
    :class:`AppendResult` once the batch is durable, or with the error that lost it; when
    ``max_pending`` records are waiting, :meth:`submit` blocks (pushback).  With
    ``deduplicate``, a record identical to a stored one (or to one earlier in its batch)
    resolves to that entry instead of being appended again.
    """

    def __init__(
        self,
        log: TransparencyLog,
        *,
        max_batch: int = 1024,
        max_delay: float = 0.25,
        max_pending: int = 8192,
        deduplicate: bool = False,
    ) -> None:
        if max_batch < 1 or max_pending < max_batch or max_delay < 0:
            raise TlogFormatError("need max_batch >= 1, max_pending >= max_batch and max_delay >= 0")
        self.log = log
        self.max_batch = max_batch
        self.max_delay = max_delay
        self.max_pending = max_pending
        self.deduplicate = deduplicate
        self._queue: list[tuple[ProvenanceRecord, Future[AppendResult]]] = []
        self._oldest = 0.0
        self._closed = False
        self._condition = threading.Condition()
        self._thread = threading.Thread(target=self._run, name="tracemark-tlog-batcher", daemon=True)
        self._thread.start()

    def submit(self, record: ProvenanceRecord) -> Future[AppendResult]:
        """Queue ``record``; the future resolves after its batch is durable."""
        if not isinstance(record, ProvenanceRecord):
            raise TlogFormatError(f"expected a ProvenanceRecord, got {type(record).__name__}")
        future: Future[AppendResult] = Future()
        with self._condition:
            while len(self._queue) >= self.max_pending and not self._closed:
                self._condition.wait()
            if self._closed:
                raise TlogError("the batching appender is closed")
            if not self._queue:
                self._oldest = time.monotonic()
            self._queue.append((record, future))
            if len(self._queue) == 1 or len(self._queue) >= self.max_batch:
                self._condition.notify_all()  # start the batch timer, or close a full batch
        return future

    def append(self, record: ProvenanceRecord, timeout: float | None = None) -> AppendResult:
        """Queue ``record`` and wait until it is durable."""
        return self.submit(record).result(timeout)

    def _take_batch(self) -> list[tuple[ProvenanceRecord, Future[AppendResult]]] | None:
        with self._condition:
            while True:
                if self._queue:
                    waited = time.monotonic() - self._oldest
                    if len(self._queue) >= self.max_batch or waited >= self.max_delay or self._closed:
                        batch, self._queue = self._queue[: self.max_batch], self._queue[self.max_batch :]
                        self._oldest = time.monotonic()
                        self._condition.notify_all()
                        return batch
                    self._condition.wait(self.max_delay - waited)
                elif self._closed:
                    return None
                else:
                    self._condition.wait()

    def _run(self) -> None:
        while True:
            batch = self._take_batch()
            if batch is None:
                return
            try:
                results = self.log.append_many([record for record, _ in batch], deduplicate=self.deduplicate)
            except BaseException as exc:  # every waiter learns that its record was not appended
                for _, future in batch:
                    future.set_exception(exc)
                continue
            for (_, future), result in zip(batch, results, strict=True):
                future.set_result(result)

    def close(self) -> None:
        """Flush what is queued and stop the background thread."""
        with self._condition:
            self._closed = True
            self._condition.notify_all()
        self._thread.join()

    def __enter__(self) -> BatchingAppender:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
