"""Log storage backends: one interface, independent implementations (SQLite, in-memory)."""

from tracemark.tlog._store.interface import LogStore, StoredCheckpoint, StoreWriter, TreeState
from tracemark.tlog._store.memory import MemoryStore
from tracemark.tlog._store.sqlite import SQLiteStore

__all__ = ["LogStore", "MemoryStore", "SQLiteStore", "StoreWriter", "StoredCheckpoint", "TreeState"]
