"""SQLite backend: WAL journal, ``synchronous=FULL``, one table per kind of record.

Schema (every table prefixed ``tlog_``: the database file is shared with other stores)::

    tlog_meta(key TEXT PRIMARY KEY, value TEXT)              schema version, origin, log vkey
    tlog_tree(id = 0, size INTEGER, root BLOB)               the integrated tree state
    tlog_entries(idx INTEGER PRIMARY KEY, leaf BLOB, data BLOB, lookup INTEGER)
    tlog_lookup(key INTEGER, idx INTEGER) WITHOUT ROWID      lookup index, filled in sorted bulk
    tlog_nodes(id INTEGER PRIMARY KEY, hash BLOB)            interior perfect nodes by post-order id
    tlog_checkpoints(size INTEGER PRIMARY KEY, root BLOB, note TEXT, created_at REAL)
    tlog_times(first INTEGER PRIMARY KEY, time REAL)         integration time of the batch from ``first``

Leaf hashes live in the entries table and interior nodes are keyed by their post-order
id, so appending only ever adds rows at the end of each B-tree.  Every write goes through
one ``BEGIN IMMEDIATE`` transaction, so writers in several threads or processes serialise
on SQLite's lock, and the commit (an fsync of the WAL under ``synchronous=FULL``) is what
makes a batch durable.  Readers use their own connection per thread and never block the
writer.

The lookup key (the first 8 bytes of a record's content hash) is indexed lazily, like an
LSM tree: a B-tree index updated on every append would touch one random index page per
entry and write it to the WAL, which dominates the cost of a durable batch once the log
holds ~10^6 entries.  Instead, ``tlog_lookup`` is filled in one sorted bulk insert when a
checkpoint is signed or when more than ``LOOKUP_TAIL`` entries are unindexed, and a lookup
reads the index plus a scan of the short unindexed tail.
"""

from __future__ import annotations

import contextlib
import sqlite3
import threading
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path

from tracemark.errors import TlogStorageError
from tracemark.tlog._merkle import EMPTY_ROOT, Hash, NodeAddress, node_id
from tracemark.tlog._store.interface import LogStore, StoredCheckpoint, StoreWriter, TreeState

SCHEMA_VERSION = "1"

_SCHEMA = """
CREATE TABLE IF NOT EXISTS tlog_meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS tlog_tree (
    id INTEGER PRIMARY KEY CHECK (id = 0), size INTEGER NOT NULL, root BLOB NOT NULL
);
CREATE TABLE IF NOT EXISTS tlog_entries (
    idx INTEGER PRIMARY KEY, leaf BLOB NOT NULL, data BLOB NOT NULL, lookup INTEGER
);
CREATE TABLE IF NOT EXISTS tlog_lookup (
    key INTEGER NOT NULL, idx INTEGER NOT NULL, PRIMARY KEY (key, idx)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS tlog_nodes (id INTEGER PRIMARY KEY, hash BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS tlog_checkpoints (
    size INTEGER PRIMARY KEY, root BLOB NOT NULL, note TEXT NOT NULL, created_at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS tlog_times (first INTEGER PRIMARY KEY, time REAL NOT NULL);
"""

_MAX_PARAMS = 500

#: Most entries left out of the lookup index before an append indexes them.
LOOKUP_TAIL = 65_536


@contextlib.contextmanager
def _storage_errors(path: Path) -> Iterator[None]:
    try:
        yield
    except sqlite3.OperationalError as exc:
        if "locked" in str(exc) or "busy" in str(exc):
            raise TlogStorageError(f"log database {path} is busy (another writer held it too long): {exc}") from None
        raise TlogStorageError(f"log database {path}: {exc}") from None
    except sqlite3.DatabaseError as exc:
        raise TlogStorageError(f"log database {path} is unreadable or corrupt: {exc}") from None


class _Writer(StoreWriter):
    def __init__(self, connection: sqlite3.Connection) -> None:
        self._db = connection

    def tree_state(self) -> TreeState:
        return _tree_state(self._db)

    def read_nodes(self, nodes: Sequence[NodeAddress]) -> Mapping[NodeAddress, bytes]:
        return _read_nodes(self._db, nodes)

    def write_entries(self, first_index: int, entries: Sequence[tuple[bytes, bytes, bytes | None]]) -> None:
        self._db.executemany(
            "INSERT INTO tlog_entries (idx, leaf, data, lookup) VALUES (?, ?, ?, ?)",
            (
                (first_index + offset, leaf, data, None if key is None else int.from_bytes(key[:8], "big", signed=True))
                for offset, (data, leaf, key) in enumerate(entries)
            ),
        )

    def write_nodes(self, nodes: Sequence[tuple[int, int, bytes]]) -> None:
        self._db.executemany(
            "INSERT INTO tlog_nodes (id, hash) VALUES (?, ?)",
            ((((index + 1) << (level + 1)) - index.bit_count() - 2, value) for level, index, value in nodes),
        )

    def set_tree_state(self, state: TreeState) -> None:
        self._db.execute("UPDATE tlog_tree SET size = ?, root = ? WHERE id = 0", (state.size, state.root))
        if state.size - _indexed_upto(self._db) > LOOKUP_TAIL:
            _index_lookups(self._db, state.size)

    def save_checkpoint(self, checkpoint: StoredCheckpoint) -> None:
        _index_lookups(self._db, _tree_state(self._db).size)
        row = self._db.execute("SELECT root FROM tlog_checkpoints WHERE size = ?", (checkpoint.size,)).fetchone()
        if row is None:
            self._db.execute(
                "INSERT INTO tlog_checkpoints (size, root, note, created_at) VALUES (?, ?, ?, ?)",
                (checkpoint.size, checkpoint.root, checkpoint.note, checkpoint.created_at),
            )
        elif _blob(row[0], f"the root of checkpoint {checkpoint.size}") != checkpoint.root:
            raise TlogStorageError(f"a checkpoint of size {checkpoint.size} with another root is already stored")
        else:
            self._db.execute("UPDATE tlog_checkpoints SET note = ? WHERE size = ?", (checkpoint.note, checkpoint.size))

    def set_meta(self, key: str, value: str) -> None:
        self._db.execute("INSERT OR REPLACE INTO tlog_meta (key, value) VALUES (?, ?)", (key, value))

    def record_integration(self, first_index: int, integrated_at: float) -> None:
        self._db.execute("INSERT OR REPLACE INTO tlog_times (first, time) VALUES (?, ?)", (first_index, integrated_at))

    def find_leaves(self, candidates: Sequence[tuple[bytes, bytes]]) -> Mapping[bytes, int]:
        """The lookup index and the unindexed tail name the candidates; their leaf hashes decide."""
        keys = sorted({int.from_bytes(lookup[:8], "big", signed=True) for lookup, _ in candidates})
        wanted = {leaf for _, leaf in candidates}
        upto = _indexed_upto(self._db)
        indices: set[int] = set()
        for low in range(0, len(keys), _MAX_PARAMS):
            chunk = keys[low : low + _MAX_PARAMS]
            marks = ",".join("?" * len(chunk))
            indices.update(
                row[0] for row in self._db.execute(f"SELECT idx FROM tlog_lookup WHERE key IN ({marks})", chunk)
            )
            tail = f"SELECT idx FROM tlog_entries WHERE idx >= ? AND lookup IN ({marks})"
            indices.update(row[0] for row in self._db.execute(tail, [upto, *chunk]))
        found: dict[bytes, int] = {}
        ordered = sorted(indices)
        for low in range(0, len(ordered), _MAX_PARAMS):
            chunk = ordered[low : low + _MAX_PARAMS]
            marks = ",".join("?" * len(chunk))
            rows = self._db.execute(f"SELECT idx, leaf FROM tlog_entries WHERE idx IN ({marks}) ORDER BY idx", chunk)
            for index, leaf in rows:
                value = _blob(leaf, f"leaf hash of entry {index}")
                if value in wanted and value not in found:
                    found[value] = int(index)
        return found


def _tree_state(db: sqlite3.Connection) -> TreeState:
    row = db.execute("SELECT size, root FROM tlog_tree WHERE id = 0").fetchone()
    if row is None:
        raise TlogStorageError("log database has no tree state row")
    return TreeState(int(row[0]), Hash(_blob(row[1], "the tree root")))


def _indexed_upto(db: sqlite3.Connection) -> int:
    row = db.execute("SELECT value FROM tlog_meta WHERE key = 'lookup_indexed_upto'").fetchone()
    return 0 if row is None else int(row[0])


def _index_lookups(db: sqlite3.Connection, size: int) -> None:
    """Move the lookup keys of entries ``[indexed_upto, size)`` into the index, in key order."""
    upto = _indexed_upto(db)
    if upto >= size:
        return
    db.execute(
        "INSERT OR IGNORE INTO tlog_lookup (key, idx) SELECT lookup, idx FROM tlog_entries"
        " WHERE idx >= ? AND idx < ? AND lookup IS NOT NULL ORDER BY lookup, idx",
        (upto, size),
    )
    db.execute("INSERT OR REPLACE INTO tlog_meta (key, value) VALUES ('lookup_indexed_upto', ?)", (str(size),))


def _lookup_key(lookup: bytes | None) -> int | None:
    """The indexed form of a lookup key: its first 8 bytes as a signed 64-bit integer."""
    return None if lookup is None else int.from_bytes(lookup[:8], "big", signed=True)


def _blob(value: object, what: str) -> bytes:
    """A BLOB column's value; any other SQLite type means the row was rewritten outside the log."""
    if isinstance(value, bytes):
        return value
    kind = {str: "TEXT", int: "INTEGER", float: "REAL"}.get(type(value), "NULL")
    raise TlogStorageError(f"the log database is damaged: {what} is stored as {kind}, not as a BLOB")


def _read_nodes(db: sqlite3.Connection, nodes: Sequence[NodeAddress]) -> dict[NodeAddress, bytes]:
    found: dict[NodeAddress, bytes] = {}
    leaves = {node.index: node for node in nodes if node.level == 0}
    interior = {node_id(node.level, node.index): node for node in nodes if node.level > 0}
    for table, column, wanted in (("tlog_entries", "idx, leaf", leaves), ("tlog_nodes", "id, hash", interior)):
        keys = list(wanted)
        for low in range(0, len(keys), _MAX_PARAMS):
            chunk = keys[low : low + _MAX_PARAMS]
            marks = ",".join("?" * len(chunk))
            key_column = column.split(",")[0]
            query = f"SELECT {column} FROM {table} WHERE {key_column} IN ({marks})"
            for key, value in db.execute(query, chunk):
                node = wanted[int(key)]
                found[node] = _blob(value, f"node ({node.level}, {node.index})")
    return found


def _checkpoint(row: tuple[int, bytes, str, float]) -> StoredCheckpoint:
    root = Hash(_blob(row[1], f"the root of checkpoint {row[0]}"))
    return StoredCheckpoint(size=int(row[0]), root=root, note=str(row[2]), created_at=float(row[3]))


class SQLiteStore(LogStore):
    """A log stored in one SQLite database file (created if missing).

    ``synchronous="FULL"`` (the default) makes each committed batch survive power loss;
    ``"NORMAL"`` survives a crash of the process but may lose the last batches on power loss.
    """

    def __init__(self, path: str | Path, *, busy_timeout: float = 60.0, synchronous: str = "FULL") -> None:
        if synchronous not in ("FULL", "NORMAL", "OFF", "EXTRA"):
            raise TlogStorageError(f"unknown synchronous mode {synchronous!r}")
        self.path = Path(path)
        self._busy_timeout = busy_timeout
        self._synchronous = synchronous
        self._local = threading.local()
        self._connections: list[sqlite3.Connection] = []
        self._guard = threading.Lock()
        self._closed = False
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._initialise()

    def _connect(self) -> sqlite3.Connection:
        connection: sqlite3.Connection | None = getattr(self._local, "connection", None)
        if connection is not None:
            return connection
        if self._closed:
            raise TlogStorageError(f"log database {self.path} is closed")
        with _storage_errors(self.path):
            connection = sqlite3.connect(
                str(self.path), timeout=self._busy_timeout, isolation_level=None, check_same_thread=False
            )
            connection.execute(f"PRAGMA busy_timeout = {int(self._busy_timeout * 1000)}")
            mode = connection.execute("PRAGMA journal_mode = WAL").fetchone()
            if mode is None or str(mode[0]).lower() != "wal":
                raise TlogStorageError(f"log database {self.path} cannot use write-ahead logging")
            connection.execute(f"PRAGMA synchronous = {self._synchronous}")
            connection.execute("PRAGMA cache_size = -32768")
        self._local.connection = connection
        with self._guard:
            self._connections.append(connection)
        return connection

    def _initialise(self) -> None:
        db = self._connect()
        with _storage_errors(self.path):
            db.execute("BEGIN IMMEDIATE")
            try:
                for statement in _SCHEMA.split(";"):
                    if statement.strip():
                        db.execute(statement)
                db.execute("INSERT OR IGNORE INTO tlog_tree (id, size, root) VALUES (0, 0, ?)", (EMPTY_ROOT,))
                db.execute("INSERT OR IGNORE INTO tlog_meta (key, value) VALUES ('schema', ?)", (SCHEMA_VERSION,))
                version = db.execute("SELECT value FROM tlog_meta WHERE key = 'schema'").fetchone()
                db.execute("COMMIT")
            except BaseException:
                if db.in_transaction:
                    db.execute("ROLLBACK")
                raise
        if version is None or version[0] != SCHEMA_VERSION:
            found = None if version is None else version[0]
            raise TlogStorageError(f"log database {self.path} has schema {found!r}; this tracemark reads schema 1")

    @contextlib.contextmanager
    def writer(self, pending: Sequence[tuple[bytes, bytes, bytes | None]] = ()) -> Iterator[StoreWriter]:
        """``BEGIN IMMEDIATE`` … ``COMMIT``; rolled back if the block raises."""
        db = self._connect()
        with _storage_errors(self.path):
            db.execute("BEGIN IMMEDIATE")
            try:
                yield _Writer(db)
                db.execute("COMMIT")
            except BaseException:
                if db.in_transaction:
                    db.execute("ROLLBACK")
                raise

    def tree_state(self) -> TreeState:
        """The latest committed tree state."""
        with _storage_errors(self.path):
            return _tree_state(self._connect())

    def read_nodes(self, nodes: Sequence[NodeAddress]) -> Mapping[NodeAddress, bytes]:
        """Stored node hashes among ``nodes`` (at most two queries: leaves, interior nodes)."""
        with _storage_errors(self.path):
            return _read_nodes(self._connect(), nodes)

    def read_entries(self, start: int, end: int) -> list[bytes]:
        """Entries ``[start, end)``."""
        with _storage_errors(self.path):
            rows = (
                self._connect()
                .execute("SELECT idx, data FROM tlog_entries WHERE idx >= ? AND idx < ? ORDER BY idx", (start, end))
                .fetchall()
            )
        if len(rows) != max(0, end - start):
            raise TlogStorageError(f"entries {start}..{end - 1} are not all stored")
        return [_blob(row[1], f"entry {row[0]}") for row in rows]

    def read_leaves(self, start: int, end: int) -> list[bytes]:
        """Leaf hashes of entries ``[start, end)``, in one range read."""
        with _storage_errors(self.path):
            rows = (
                self._connect()
                .execute("SELECT idx, leaf FROM tlog_entries WHERE idx >= ? AND idx < ? ORDER BY idx", (start, end))
                .fetchall()
            )
        if len(rows) != max(0, end - start):
            raise TlogStorageError(f"entries {start}..{end - 1} are not all stored")
        return [_blob(row[1], f"leaf hash of entry {row[0]}") for row in rows]

    def integrated_time(self, index: int) -> float | None:
        """When entry ``index`` was integrated: the time of the last batch that started at or before it."""
        with _storage_errors(self.path):
            row = (
                self._connect()
                .execute("SELECT time FROM tlog_times WHERE first <= ? ORDER BY first DESC LIMIT 1", (index,))
                .fetchone()
            )
        return None if row is None else float(row[0])

    def find_entries(self, lookup: bytes, limit: int = 100) -> list[int]:
        """Indices whose lookup key starts with the same 8 bytes as ``lookup``, oldest first."""
        key = _lookup_key(lookup)
        with _storage_errors(self.path):
            db = self._connect()
            own = not db.in_transaction
            if own:
                db.execute("BEGIN")  # one snapshot for the index and the unindexed tail
            try:
                upto = _indexed_upto(db)
                indexed = db.execute("SELECT idx FROM tlog_lookup WHERE key = ? ORDER BY idx LIMIT ?", (key, limit))
                rows = indexed.fetchall()
                tail = db.execute(
                    "SELECT idx FROM tlog_entries WHERE idx >= ? AND lookup = ? ORDER BY idx LIMIT ?",
                    (upto, key, limit),
                )
                rows += tail.fetchall()
            finally:
                if own:
                    db.execute("COMMIT")
        return sorted({int(row[0]) for row in rows})[:limit]

    def get_meta(self, key: str) -> str | None:
        """A metadata value, or None."""
        with _storage_errors(self.path):
            row = self._connect().execute("SELECT value FROM tlog_meta WHERE key = ?", (key,)).fetchone()
        return None if row is None else str(row[0])

    def checkpoints(self, *, since_size: int = 0) -> list[StoredCheckpoint]:
        """Stored checkpoints from ``since_size`` up, smallest first."""
        with _storage_errors(self.path):
            rows = (
                self._connect()
                .execute(
                    "SELECT size, root, note, created_at FROM tlog_checkpoints WHERE size >= ? ORDER BY size",
                    (since_size,),
                )
                .fetchall()
            )
        return [_checkpoint(row) for row in rows]

    def latest_checkpoint(self) -> StoredCheckpoint | None:
        """The largest stored checkpoint."""
        with _storage_errors(self.path):
            row = (
                self._connect()
                .execute("SELECT size, root, note, created_at FROM tlog_checkpoints ORDER BY size DESC LIMIT 1")
                .fetchone()
            )
        return None if row is None else _checkpoint(row)

    def checkpoint_at(self, size: int) -> StoredCheckpoint | None:
        """The checkpoint of exactly ``size`` leaves."""
        with _storage_errors(self.path):
            row = (
                self._connect()
                .execute("SELECT size, root, note, created_at FROM tlog_checkpoints WHERE size = ?", (size,))
                .fetchone()
            )
        return None if row is None else _checkpoint(row)

    def close(self) -> None:
        """Close every connection this store opened (in any thread)."""
        with self._guard:
            connections, self._connections = self._connections, []
            self._closed = True
        for connection in connections:
            with contextlib.suppress(sqlite3.Error):
                connection.close()
        self._local = threading.local()

    def __repr__(self) -> str:
        return f"SQLiteStore({str(self.path)!r})"
