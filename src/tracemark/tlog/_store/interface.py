"""The storage interface a log backend implements.

A backend stores four things: the entries (opaque bytes with their leaf hash and an
optional lookup key), the interior perfect Merkle nodes addressed by ``(level, index)``
(see ``_merkle``), the tree state (size and root), and the signed checkpoints.  The Merkle
logic lives in the log, not in the backend, so a PostgreSQL backend only has to provide
the same primitives:

* :meth:`LogStore.writer` opens one exclusive write transaction; everything written in it
  becomes durable together when the ``with`` block ends without error, or not at all;
* reads never block on a writer and see only committed state.  Nodes and entries are
  immutable once written, so a reader that reads the tree state first and then the
  nodes of that size always sees a consistent tree.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterator, Mapping, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass

from tracemark.errors import TlogStorageError
from tracemark.tlog._merkle import EMPTY_ROOT, Hash, NodeAddress


@dataclass(frozen=True)
class TreeState:
    """The integrated tree: how many leaves, and the root over them."""

    size: int
    root: Hash


EMPTY_TREE = TreeState(0, EMPTY_ROOT)


@dataclass(frozen=True)
class StoredCheckpoint:
    """A checkpoint the log signed (the note text includes any witness cosignatures)."""

    size: int
    root: Hash
    note: str
    created_at: float


class StoreWriter(ABC):
    """Operations inside one exclusive, atomic, durable write transaction."""

    @abstractmethod
    def tree_state(self) -> TreeState:
        """The tree state as of this transaction."""

    @abstractmethod
    def read_nodes(self, nodes: Sequence[NodeAddress]) -> Mapping[NodeAddress, bytes]:
        """Hashes of the stored perfect nodes among ``nodes`` (level 0: the leaf hashes)."""

    @abstractmethod
    def write_entries(self, first_index: int, entries: Sequence[tuple[bytes, bytes, bytes | None]]) -> None:
        """Store ``(data, leaf hash, lookup key)`` at consecutive indices from ``first_index``."""

    @abstractmethod
    def write_nodes(self, nodes: Sequence[tuple[int, int, bytes]]) -> None:
        """Store interior nodes ``(level >= 1, index, hash)``, in the order they were completed."""

    @abstractmethod
    def set_tree_state(self, state: TreeState) -> None:
        """Record the new size and root."""

    @abstractmethod
    def save_checkpoint(self, checkpoint: StoredCheckpoint) -> None:
        """Insert a checkpoint, or replace the note of the one with the same size and root."""

    @abstractmethod
    def set_meta(self, key: str, value: str) -> None:
        """Set a metadata value (log origin, verifier key, schema version)."""

    @abstractmethod
    def record_integration(self, first_index: int, integrated_at: float) -> None:
        """Record that the entries from ``first_index`` on were integrated at ``integrated_at`` (Unix time).

        One row per batch: every entry of a batch is integrated at the same instant, and an
        entry's time is that of the last batch that started at or before it.
        """

    @abstractmethod
    def find_leaves(self, candidates: Sequence[tuple[bytes, bytes]]) -> Mapping[bytes, int]:
        """For ``(lookup key, leaf hash)`` pairs, the oldest stored index with that lookup key and leaf hash.

        Used inside the append transaction to answer a retried identical entry with the entry
        already stored; leaf hashes not stored are absent from the answer.
        """


class LogStore(ABC):
    """A log's durable storage.  Implementations must be safe to use from several threads."""

    @abstractmethod
    def writer(self, pending: Sequence[tuple[bytes, bytes, bytes | None]] = ()) -> AbstractContextManager[StoreWriter]:
        """An exclusive write transaction, committed durably when the block exits normally.

        ``pending`` are the ``(data, leaf hash, lookup key)`` entries the block is about to
        write with :meth:`StoreWriter.write_entries`.  A backend may store them before it takes
        the exclusive lock, so that the part of the transaction that excludes other writers is
        short; it must still write exactly what ``write_entries`` is given.
        """

    @abstractmethod
    def tree_state(self) -> TreeState:
        """The latest committed tree state."""

    @abstractmethod
    def read_nodes(self, nodes: Sequence[NodeAddress]) -> Mapping[NodeAddress, bytes]:
        """Hashes of the stored perfect nodes among ``nodes`` (level 0: the leaf hashes), in one batch."""

    @abstractmethod
    def read_entries(self, start: int, end: int) -> list[bytes]:
        """Entries ``[start, end)``; raises if any is missing."""

    @abstractmethod
    def find_entries(self, lookup: bytes, limit: int = 100) -> list[int]:
        """Indices of entries stored with this lookup key, oldest first.

        A backend may index a prefix of the key and return false positives; callers confirm.
        """

    @abstractmethod
    def integrated_time(self, index: int) -> float | None:
        """When entry ``index`` was integrated (Unix time), or None for entries appended before
        the log recorded integration times."""

    @abstractmethod
    def get_meta(self, key: str) -> str | None:
        """A metadata value, or None."""

    @abstractmethod
    def checkpoints(self, *, since_size: int = 0) -> list[StoredCheckpoint]:
        """Stored checkpoints of size at least ``since_size``, smallest first."""

    @abstractmethod
    def latest_checkpoint(self) -> StoredCheckpoint | None:
        """The checkpoint with the largest size, or None."""

    @abstractmethod
    def checkpoint_at(self, size: int) -> StoredCheckpoint | None:
        """The checkpoint of exactly ``size`` leaves, or None."""

    @abstractmethod
    def close(self) -> None:
        """Release connections and files."""

    def read_leaves(self, start: int, end: int) -> list[bytes]:
        """Leaf hashes of entries ``[start, end)``; raises if any is missing (backends may read a range)."""
        found = self.read_nodes([NodeAddress(0, index) for index in range(start, end)])
        try:
            return [found[NodeAddress(0, index)] for index in range(start, end)]
        except KeyError as exc:
            raise TlogStorageError(f"the leaf hash of entry {exc.args[0].index} is not stored") from None

    def iter_entries(self, start: int, end: int, chunk: int = 4096) -> Iterator[bytes]:
        """Entries ``[start, end)`` in chunks, for audits that read the whole log."""
        for low in range(start, end, chunk):
            yield from self.read_entries(low, min(end, low + chunk))

    def __enter__(self) -> LogStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
