"""In-memory backend: for tests, examples and short-lived logs.  Nothing survives the process."""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator, Mapping, Sequence

from tracemark.errors import TlogStorageError
from tracemark.tlog._merkle import NodeAddress
from tracemark.tlog._store.interface import EMPTY_TREE, LogStore, StoredCheckpoint, StoreWriter, TreeState


class _Pending(StoreWriter):
    """Buffers one transaction's writes; applied to the store only on commit."""

    def __init__(self, store: MemoryStore) -> None:
        self._store = store
        self.state = store._state
        self.entries: dict[int, tuple[bytes, bytes, bytes | None]] = {}
        self.nodes: dict[tuple[int, int], bytes] = {}
        self.checkpoints: dict[int, StoredCheckpoint] = {}
        self.meta: dict[str, str] = {}
        self.times: dict[int, float] = {}

    def tree_state(self) -> TreeState:
        return self.state

    def read_nodes(self, nodes: Sequence[NodeAddress]) -> Mapping[NodeAddress, bytes]:
        found = dict(self._store.read_nodes(nodes))
        for node in nodes:
            if node.level == 0 and node.index in self.entries:
                found[node] = self.entries[node.index][1]
            elif (node.level, node.index) in self.nodes:
                found[node] = self.nodes[(node.level, node.index)]
        return found

    def write_entries(self, first_index: int, entries: Sequence[tuple[bytes, bytes, bytes | None]]) -> None:
        for offset, entry in enumerate(entries):
            index = first_index + offset
            if index in self._store._entries or index in self.entries:
                raise TlogStorageError(f"entry {index} is already stored")
            self.entries[index] = entry

    def write_nodes(self, nodes: Sequence[tuple[int, int, bytes]]) -> None:
        for level, index, value in nodes:
            key = (level, index)
            if level < 1 or key in self._store._nodes or key in self.nodes:
                raise TlogStorageError(f"node {key} is not a new interior node")
            self.nodes[key] = bytes(value)

    def set_tree_state(self, state: TreeState) -> None:
        self.state = state

    def save_checkpoint(self, checkpoint: StoredCheckpoint) -> None:
        existing = self._store._checkpoints.get(checkpoint.size)
        if existing is not None and existing.root != checkpoint.root:
            raise TlogStorageError(f"a checkpoint of size {checkpoint.size} with another root is already stored")
        if existing is not None:
            checkpoint = StoredCheckpoint(checkpoint.size, checkpoint.root, checkpoint.note, existing.created_at)
        self.checkpoints[checkpoint.size] = checkpoint

    def set_meta(self, key: str, value: str) -> None:
        self.meta[key] = value

    def record_integration(self, first_index: int, integrated_at: float) -> None:
        self.times[first_index] = integrated_at

    def find_leaves(self, candidates: Sequence[tuple[bytes, bytes]]) -> Mapping[bytes, int]:
        wanted = {leaf for _, leaf in candidates}
        found: dict[bytes, int] = {}
        with self._store._lock:
            stored = sorted(self._store._entries.items())
        for index, (_, leaf, key) in stored:
            if key is not None and leaf in wanted and leaf not in found:
                found[leaf] = index
        return found


class MemoryStore(LogStore):
    """A log kept in dictionaries, guarded by one lock."""

    def __init__(self) -> None:
        self._lock = threading.RLock()
        self._state = EMPTY_TREE
        self._entries: dict[int, tuple[bytes, bytes, bytes | None]] = {}
        self._nodes: dict[tuple[int, int], bytes] = {}
        self._checkpoints: dict[int, StoredCheckpoint] = {}
        self._meta: dict[str, str] = {}
        self._times: dict[int, float] = {}

    @contextlib.contextmanager
    def writer(self, pending: Sequence[tuple[bytes, bytes, bytes | None]] = ()) -> Iterator[StoreWriter]:
        """Exclusive; the buffered writes are applied only if the block succeeds."""
        with self._lock:
            batch = _Pending(self)
            yield batch
            self._entries.update(batch.entries)
            self._nodes.update(batch.nodes)
            self._checkpoints.update(batch.checkpoints)
            self._meta.update(batch.meta)
            self._times.update(batch.times)
            self._state = batch.state

    def tree_state(self) -> TreeState:
        """The committed tree state."""
        return self._state

    def read_nodes(self, nodes: Sequence[NodeAddress]) -> Mapping[NodeAddress, bytes]:
        """Stored node hashes among ``nodes``."""
        found: dict[NodeAddress, bytes] = {}
        entries, interior = self._entries, self._nodes
        for node in nodes:
            if node.level == 0:
                if node.index in entries:
                    found[node] = entries[node.index][1]
            elif (node.level, node.index) in interior:
                found[node] = interior[(node.level, node.index)]
        return found

    def read_entries(self, start: int, end: int) -> list[bytes]:
        """Entries ``[start, end)``."""
        try:
            return [self._entries[index][0] for index in range(start, end)]
        except KeyError as exc:
            raise TlogStorageError(f"entry {exc.args[0]} is not stored") from None

    def find_entries(self, lookup: bytes, limit: int = 100) -> list[int]:
        """Indices stored with ``lookup`` (a linear scan)."""
        with self._lock:
            hits = sorted(index for index, (_, _, key) in self._entries.items() if key == lookup)
        return hits[:limit]

    def integrated_time(self, index: int) -> float | None:
        """When entry ``index`` was integrated, or None."""
        with self._lock:
            starts = [first for first in self._times if first <= index]
            return self._times[max(starts)] if starts else None

    def get_meta(self, key: str) -> str | None:
        """A metadata value."""
        return self._meta.get(key)

    def checkpoints(self, *, since_size: int = 0) -> list[StoredCheckpoint]:
        """Stored checkpoints from ``since_size`` up."""
        with self._lock:
            return [self._checkpoints[size] for size in sorted(self._checkpoints) if size >= since_size]

    def latest_checkpoint(self) -> StoredCheckpoint | None:
        """The largest stored checkpoint."""
        with self._lock:
            return self._checkpoints[max(self._checkpoints)] if self._checkpoints else None

    def checkpoint_at(self, size: int) -> StoredCheckpoint | None:
        """The checkpoint of exactly ``size`` leaves."""
        return self._checkpoints.get(size)

    def close(self) -> None:
        """Nothing to release."""
