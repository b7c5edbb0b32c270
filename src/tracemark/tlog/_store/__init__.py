"""Log storage backends: one interface, independent implementations (SQLite, PostgreSQL, in-memory)."""

from tracemark._postgres import is_postgres_url
from tracemark.tlog._store.interface import LogStore, StoredCheckpoint, StoreWriter, TreeState
from tracemark.tlog._store.memory import MemoryStore
from tracemark.tlog._store.postgres import PostgresStore
from tracemark.tlog._store.sqlite import SQLiteStore

__all__ = [
    "LogStore",
    "MemoryStore",
    "PostgresStore",
    "SQLiteStore",
    "StoreWriter",
    "StoredCheckpoint",
    "TreeState",
    "is_postgres_url",
]
