"""PostgreSQL backend (psycopg 3): one log shared by several service instances.

Schema (tables prefixed ``tlog_`` in the connection's current schema, so one database can
hold several logs in several schemas)::

    tlog_schema_version(version INTEGER PRIMARY KEY, applied_at DOUBLE PRECISION)
    tlog_meta(key TEXT PRIMARY KEY, value TEXT)              origin, log vkey
    tlog_tree(id = 0, size BIGINT, root BYTEA)               the tree state, and the sequencer row
    tlog_entry_data(batch BIGINT, pos BIGINT, leaf BYTEA, data BYTEA, lookup BIGINT)
                                                             entries by (batch, position in it)
    tlog_batches(first BIGINT PRIMARY KEY, batch BIGINT UNIQUE, count BIGINT, node_base BIGINT, nodes BYTEA)
                                                             where each batch sits in the log, and the
                                                             interior nodes it completed, as one value
    tlog_checkpoints(size BIGINT PRIMARY KEY, root BYTEA, note TEXT, created_at DOUBLE PRECISION)
    tlog_times(first BIGINT PRIMARY KEY, time DOUBLE PRECISION)   integration time of each batch
    tlog_nodes(id BIGINT PRIMARY KEY, hash BYTEA)            interior nodes of logs written before version 3

Sequencing: every append runs in one transaction.  It first stores the batch's entries under
a batch id of its own (``COPY`` into ``tlog_entry_data``: no lock, so writers do this in
parallel), then takes the sequencer lock,
``SELECT size, root FROM tlog_tree WHERE id = 0 FOR UPDATE``.  The row lock on that single
row is the log's sequencer: whoever holds it owns the next indices.  Under it the writer only
hashes the batch into the committed tree and writes three small rows (the batch's place and
its interior nodes as one value, its time, the new tree state), and commits; the next writer
(another thread, process or host) waits on the lock and then reads the tree state its
predecessor committed.  So indices are assigned by exactly one transaction at a time and
only in commits that also move the tree: a gap or a duplicate index would need two
transactions holding the same row lock, and a crashed writer's transaction is rolled back
with its lock and its staged entries.  ``synchronous_commit = on`` is set on every
connection, so a commit returns only after the WAL is flushed: an append is acknowledged
only once durable.  See docs/scale.md for why a row lock rather than a lease or an advisory
lock, and for the measured effect of keeping the locked part small.

The interior nodes a batch completes are stored in the order they were completed, so node
``(level, index)`` is found without an index of its own: it was completed by the batch
holding its last leaf ``k = (index + 1) * 2**level - 1``, and it is the ``r``-th interior
node of the whole log, ``r = k - popcount(k) + level - 1``; the batch keeps the rank of its
own first node (``node_base``).

Migrations are forward-only and versioned in ``tlog_schema_version``; they run under a
transaction-scoped advisory lock, so instances starting together migrate once.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from tracemark._postgres import connect, import_psycopg, redact, split_schema
from tracemark.errors import TlogStorageError
from tracemark.tlog._merkle import EMPTY_ROOT, Hash, NodeAddress, node_id
from tracemark.tlog._store.interface import LogStore, StoredCheckpoint, StoreWriter, TreeState

if TYPE_CHECKING:
    import psycopg

#: The schema version this tracemark writes; databases at a newer version are refused.
SCHEMA_VERSION = 3

#: Forward-only migrations: version -> statements that bring version - 1 to it.
MIGRATIONS: dict[int, tuple[str, ...]] = {
    1: (
        "CREATE TABLE tlog_meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)",
        "CREATE TABLE tlog_tree (id INTEGER PRIMARY KEY CHECK (id = 0), size BIGINT NOT NULL, root BYTEA NOT NULL)",
        "CREATE TABLE tlog_entries (idx BIGINT PRIMARY KEY, leaf BYTEA NOT NULL, data BYTEA NOT NULL, lookup BIGINT)",
        "CREATE INDEX tlog_entries_lookup ON tlog_entries (lookup) WHERE lookup IS NOT NULL",
        "CREATE TABLE tlog_nodes (id BIGINT PRIMARY KEY, hash BYTEA NOT NULL)",
        "CREATE TABLE tlog_checkpoints (size BIGINT PRIMARY KEY, root BYTEA NOT NULL, note TEXT NOT NULL,"
        " created_at DOUBLE PRECISION NOT NULL)",
        "INSERT INTO tlog_tree (id, size, root) VALUES (0, 0, '\\x"
        + EMPTY_ROOT.hex()
        + "'::bytea) ON CONFLICT DO NOTHING",
    ),
    2: ("CREATE TABLE tlog_times (first BIGINT PRIMARY KEY, time DOUBLE PRECISION NOT NULL)",),
    # Entries by batch, so a writer can store them before it holds the sequencer lock.  The
    # entries of an older log become batch 0, whose interior nodes stay in tlog_nodes.
    3: (
        "CREATE SEQUENCE tlog_batch_ids START 1",
        "CREATE TABLE tlog_batches (first BIGINT PRIMARY KEY, batch BIGINT NOT NULL UNIQUE, count BIGINT NOT NULL,"
        " node_base BIGINT NOT NULL, nodes BYTEA)",
        # Hashes do not compress: store a batch's nodes out of line without trying (pglz costs CPU under the lock).
        "ALTER TABLE tlog_batches ALTER COLUMN nodes SET STORAGE EXTERNAL",
        "CREATE TABLE tlog_entry_data (batch BIGINT NOT NULL, pos BIGINT NOT NULL, leaf BYTEA NOT NULL,"
        " data BYTEA NOT NULL, lookup BIGINT, PRIMARY KEY (batch, pos))",
        "INSERT INTO tlog_entry_data (batch, pos, leaf, data, lookup) SELECT 0, idx, leaf, data, lookup"
        " FROM tlog_entries",
        "INSERT INTO tlog_batches (first, batch, count, node_base, nodes) SELECT 0, 0, size, 0, NULL FROM tlog_tree"
        " WHERE size > 0",
        "DROP TABLE tlog_entries",
        "CREATE INDEX tlog_entry_data_lookup ON tlog_entry_data (lookup) WHERE lookup IS NOT NULL",
    ),
}

_LOCK_SQL = "SELECT pg_advisory_xact_lock(hashtext('tracemark.tlog.migrate:' || current_schema()))"


_FEATURE = "a log on PostgreSQL"


def _psycopg() -> Any:
    return import_psycopg(_FEATURE)


def _lookup_key(lookup: bytes | None) -> int | None:
    return None if lookup is None else int.from_bytes(lookup[:8], "big", signed=True)


def applied_version(db: psycopg.Connection[Any]) -> int:
    """The schema version of the connection's current schema (0: no log tables yet)."""
    exists = db.execute("SELECT to_regclass('tlog_schema_version') IS NOT NULL").fetchone()
    if not exists or not exists[0]:
        return 0
    row = db.execute("SELECT max(version) FROM tlog_schema_version").fetchone()
    return 0 if row is None or row[0] is None else int(row[0])


def migrate(db: psycopg.Connection[Any], *, target: int = SCHEMA_VERSION) -> int:
    """Apply the migrations up to ``target`` in one transaction; returns the version reached.

    Forward only: a database at a newer version than this tracemark knows is refused.
    """
    with db.transaction():
        db.execute(_LOCK_SQL)
        current = applied_version(db)
        if current > SCHEMA_VERSION:
            raise TlogStorageError(
                f"the log database has schema version {current}; this tracemark reads up to {SCHEMA_VERSION}"
            )
        if current == 0:
            db.execute(
                "CREATE TABLE IF NOT EXISTS tlog_schema_version"
                " (version INTEGER PRIMARY KEY, applied_at DOUBLE PRECISION NOT NULL)"
            )
        for version in range(current + 1, target + 1):
            for statement in MIGRATIONS[version]:
                db.execute(statement)
            db.execute("INSERT INTO tlog_schema_version (version, applied_at) VALUES (%s, %s)", (version, time.time()))
        return max(current, target)


def _tree_state(db: psycopg.Connection[Any], *, lock: bool = False) -> TreeState:
    query = "SELECT size, root FROM tlog_tree WHERE id = 0" + (" FOR UPDATE" if lock else "")
    row = db.execute(query).fetchone()
    if row is None:
        raise TlogStorageError("log database has no tree state row")
    return TreeState(int(row[0]), Hash(bytes(row[1])))


def interior_rank(level: int, index: int) -> int:
    """How many interior nodes the log completes before node ``(level >= 1, index)``."""
    last = ((index + 1) << level) - 1
    return last - last.bit_count() + level - 1


def _nodes_before(leaves: int) -> int:
    """Interior nodes completed by appending the first ``leaves`` leaves."""
    return leaves - leaves.bit_count()


#: The batch holding a leaf: the one that starts last at or before it.
_BATCH_OF = (
    "JOIN LATERAL (SELECT batch, first, count, node_base, nodes FROM tlog_batches WHERE first <= q.leaf"
    " ORDER BY first DESC LIMIT 1) b ON q.leaf < b.first + b.count"
)


def _read_nodes(db: psycopg.Connection[Any], nodes: Sequence[NodeAddress]) -> dict[NodeAddress, bytes]:
    found: dict[NodeAddress, bytes] = {}
    leaves = {node.index: node for node in nodes if node.level == 0}
    interior = {interior_rank(node.level, node.index): node for node in nodes if node.level > 0}
    if leaves:
        rows = db.execute(
            "SELECT q.leaf, d.leaf FROM unnest(%s::bigint[]) AS q(leaf) "
            + _BATCH_OF
            + " JOIN tlog_entry_data d ON d.batch = b.batch AND d.pos = q.leaf - b.first",
            (list(leaves),),
        )
        for key, value in rows:
            found[leaves[int(key)]] = bytes(value)
    if interior:
        ranks = list(interior)
        last_leaves = [interior[rank].end - 1 for rank in ranks]
        legacy: dict[int, NodeAddress] = {}
        rows = db.execute(
            "SELECT q.rank, b.nodes IS NULL, substring(b.nodes FROM ((q.rank - b.node_base) * 32 + 1)::int FOR 32)"
            " FROM unnest(%s::bigint[], %s::bigint[]) AS q(rank, leaf) " + _BATCH_OF,
            (ranks, last_leaves),
        )
        for rank, old, value in rows:
            node = interior[int(rank)]
            if old:
                legacy[node_id(node.level, node.index)] = node
            elif value is not None and len(value) == 32:
                found[node] = bytes(value)
        if legacy:
            for key, value in db.execute("SELECT id, hash FROM tlog_nodes WHERE id = ANY(%s)", (list(legacy),)):
                found[legacy[int(key)]] = bytes(value)
    return found


def _checkpoint(row: tuple[Any, ...]) -> StoredCheckpoint:
    return StoredCheckpoint(size=int(row[0]), root=Hash(bytes(row[1])), note=str(row[2]), created_at=float(row[3]))


Entry = tuple[bytes, bytes, bytes | None]


def _copy_entries(db: psycopg.Connection[Any], batch: int, entries: Sequence[Entry]) -> None:
    with (
        db.cursor() as cursor,
        cursor.copy("COPY tlog_entry_data (batch, pos, leaf, data, lookup) FROM STDIN (FORMAT BINARY)") as copy,
    ):
        copy.set_types(["int8", "int8", "bytea", "bytea", "int8"])
        for position, (data, leaf, key) in enumerate(entries):
            copy.write_row((batch, position, leaf, data, _lookup_key(key)))


def _new_batch(db: psycopg.Connection[Any]) -> int:
    row = db.execute("SELECT nextval('tlog_batch_ids')").fetchone()
    if row is None:
        raise TlogStorageError("the log database gave no batch id")
    return int(row[0])


class _Staged:
    """Entries stored under a batch id before the sequencer lock was taken."""

    def __init__(self, db: psycopg.Connection[Any], entries: Sequence[Entry]) -> None:
        self.batch = _new_batch(db)
        self.entries = list(entries)
        _copy_entries(db, self.batch, self.entries)


class _Writer(StoreWriter):
    def __init__(self, connection: psycopg.Connection[Any], state: TreeState, staged: _Staged | None) -> None:
        self._db = connection
        self._state = state
        self._staged = staged
        self._open: tuple[int, int, int] | None = None  # (first index, batch id, count) awaiting its nodes

    def tree_state(self) -> TreeState:
        return self._state

    def read_nodes(self, nodes: Sequence[NodeAddress]) -> Mapping[NodeAddress, bytes]:
        return _read_nodes(self._db, nodes)

    def write_entries(self, first_index: int, entries: Sequence[Entry]) -> None:
        """Place a batch at ``first_index``; entries staged before the lock are placed without copying them again."""
        self.finish()
        if not entries:
            return
        staged, self._staged = self._staged, None
        if staged is not None and staged.entries == list(entries):
            batch = staged.batch
        else:  # some staged entries turned out to be stored already (deduplicated): stage what is written
            if staged is not None:
                self._db.execute("DELETE FROM tlog_entry_data WHERE batch = %s", (staged.batch,))
            batch = _new_batch(self._db)
            _copy_entries(self._db, batch, entries)
        self._open = (first_index, batch, len(entries))

    def write_nodes(self, nodes: Sequence[tuple[int, int, bytes]]) -> None:
        """The interior nodes the last placed batch completed, in the order they were completed."""
        if self._open is None:
            if nodes:
                raise TlogStorageError("interior nodes written without the entries that complete them")
            return
        first, batch, count = self._open
        expected = _nodes_before(first + count) - _nodes_before(first)
        if len(nodes) != expected or (nodes and interior_rank(nodes[0][0], nodes[0][1]) != _nodes_before(first)):
            raise TlogStorageError(
                f"entries {first}..{first + count - 1} complete {expected} interior nodes, {len(nodes)} were given"
            )
        self._db.execute(
            "INSERT INTO tlog_batches (first, batch, count, node_base, nodes) VALUES (%s, %s, %s, %s, %s)",
            (first, batch, count, _nodes_before(first), b"".join(value for _, _, value in nodes)),
        )
        self._open = None

    def finish(self) -> None:
        """Place a batch whose nodes were not written (only valid when it completes none); drop
        staged entries that were not written (all of them were stored already)."""
        if self._open is not None:
            self.write_nodes([])
        if self._staged is not None:
            self._db.execute("DELETE FROM tlog_entry_data WHERE batch = %s", (self._staged.batch,))
            self._staged = None

    def set_tree_state(self, state: TreeState) -> None:
        self._db.execute("UPDATE tlog_tree SET size = %s, root = %s WHERE id = 0", (state.size, state.root))
        self._state = state

    def save_checkpoint(self, checkpoint: StoredCheckpoint) -> None:
        row = self._db.execute("SELECT root FROM tlog_checkpoints WHERE size = %s", (checkpoint.size,)).fetchone()
        if row is None:
            self._db.execute(
                "INSERT INTO tlog_checkpoints (size, root, note, created_at) VALUES (%s, %s, %s, %s)",
                (checkpoint.size, checkpoint.root, checkpoint.note, checkpoint.created_at),
            )
        elif bytes(row[0]) != checkpoint.root:
            raise TlogStorageError(f"a checkpoint of size {checkpoint.size} with another root is already stored")
        else:
            self._db.execute(
                "UPDATE tlog_checkpoints SET note = %s WHERE size = %s", (checkpoint.note, checkpoint.size)
            )

    def set_meta(self, key: str, value: str) -> None:
        self._db.execute(
            "INSERT INTO tlog_meta (key, value) VALUES (%s, %s) ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value",
            (key, value),
        )

    def record_integration(self, first_index: int, integrated_at: float) -> None:
        self._db.execute(
            "INSERT INTO tlog_times (first, time) VALUES (%s, %s)"
            " ON CONFLICT (first) DO UPDATE SET time = EXCLUDED.time",
            (first_index, integrated_at),
        )

    def find_leaves(self, candidates: Sequence[tuple[bytes, bytes]]) -> Mapping[bytes, int]:
        keys = sorted({int.from_bytes(lookup[:8], "big", signed=True) for lookup, _ in candidates})
        wanted = {leaf for _, leaf in candidates}
        found: dict[bytes, int] = {}
        if not keys:
            return found
        rows = self._db.execute(_PLACED + " WHERE d.lookup = ANY(%s) ORDER BY 1", (keys,))
        for index, leaf in rows:
            value = bytes(leaf)
            if value in wanted and value not in found:
                found[value] = int(index)
        return found


#: Placed entries (staged ones of a batch that did not commit are never visible, and a batch is
#: placed in the transaction that staged it): index, leaf hash.
_PLACED = "SELECT b.first + d.pos, d.leaf FROM tlog_entry_data d JOIN tlog_batches b ON b.batch = d.batch"


class PostgresStore(LogStore):
    """A log in a PostgreSQL database, shared safely by any number of processes and hosts.

    ``url`` is a libpq URL (``postgresql://user@host:port/dbname``); a ``schema=NAME`` query
    parameter (or the ``schema`` argument) keeps the log's tables in that schema, created if
    missing.  Each thread uses its own connection; a connection broken by a server restart
    is replaced on the next call, so a client that retries a failed append succeeds once the
    server is back.
    """

    def __init__(self, url: str, *, schema: str | None = None, connect_timeout: float = 10.0) -> None:
        base, from_url = split_schema(url)
        self.url = base
        self.schema = schema if schema is not None else from_url
        self._connect_timeout = connect_timeout
        self._local = threading.local()
        self._connections: list[psycopg.Connection[Any]] = []
        self._guard = threading.Lock()
        self._closed = False
        with self._errors():
            migrate(self._connect())

    def __repr__(self) -> str:
        suffix = f", schema={self.schema!r}" if self.schema else ""
        return f"PostgresStore({redact(self.url)!r}{suffix})"

    @contextlib.contextmanager
    def _errors(self) -> Iterator[None]:
        psycopg = _psycopg()
        try:
            yield
        except psycopg.OperationalError as exc:
            message = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise TlogStorageError(f"log database {redact(self.url)} is unreachable: {message}") from None
        except psycopg.Error as exc:
            message = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise TlogStorageError(f"log database {redact(self.url)}: {message}") from None

    def _connect(self) -> psycopg.Connection[Any]:
        connection: psycopg.Connection[Any] | None = getattr(self._local, "connection", None)
        if connection is not None and not connection.closed and not connection.broken:
            return connection
        if self._closed:
            raise TlogStorageError(f"log database {redact(self.url)} is closed")
        connection = connect(
            self.url, self.schema, connect_timeout=self._connect_timeout, feature="a log on PostgreSQL"
        )
        self._local.connection = connection
        with self._guard:
            self._connections.append(connection)
        return connection

    @contextlib.contextmanager
    def writer(self, pending: Sequence[Entry] = ()) -> Iterator[StoreWriter]:
        """One transaction holding the sequencer row lock; committed (and WAL-flushed) on exit.

        ``pending`` entries are stored under a batch id of their own first, before the lock.
        """
        with self._errors():
            db = self._connect()
            with db.transaction():
                staged = _Staged(db, pending) if pending else None
                writer = _Writer(db, _tree_state(db, lock=True), staged)
                yield writer
                writer.finish()

    def tree_state(self) -> TreeState:
        """The latest committed tree state."""
        with self._errors():
            return _tree_state(self._connect())

    def read_nodes(self, nodes: Sequence[NodeAddress]) -> Mapping[NodeAddress, bytes]:
        """Stored node hashes among ``nodes`` (at most two queries)."""
        with self._errors():
            return _read_nodes(self._connect(), nodes)

    def _range(self, column: str, start: int, end: int) -> list[bytes]:
        with self._errors():
            rows = (
                self._connect()
                .execute(
                    f"SELECT b.first + d.pos, d.{column} FROM tlog_batches b"
                    " JOIN tlog_entry_data d ON d.batch = b.batch"
                    " WHERE b.first >= coalesce((SELECT first FROM tlog_batches WHERE first <= %(start)s"
                    " ORDER BY first DESC LIMIT 1), 0) AND b.first < %(end)s"
                    " AND d.pos >= %(start)s - b.first AND d.pos < %(end)s - b.first ORDER BY 1",
                    {"start": start, "end": end},
                )
                .fetchall()
            )
        if len(rows) != max(0, end - start):
            raise TlogStorageError(f"entries {start}..{end - 1} are not all stored")
        return [bytes(row[1]) for row in rows]

    def read_entries(self, start: int, end: int) -> list[bytes]:
        """Entries ``[start, end)``."""
        return self._range("data", start, end)

    def read_leaves(self, start: int, end: int) -> list[bytes]:
        """Leaf hashes of entries ``[start, end)``, in one range read."""
        return self._range("leaf", start, end)

    def integrated_time(self, index: int) -> float | None:
        """When entry ``index`` was integrated: the time of the last batch that started at or before it."""
        with self._errors():
            row = (
                self._connect()
                .execute("SELECT time FROM tlog_times WHERE first <= %s ORDER BY first DESC LIMIT 1", (index,))
                .fetchone()
            )
        return None if row is None else float(row[0])

    def find_entries(self, lookup: bytes, limit: int = 100) -> list[int]:
        """Indices whose lookup key starts with the same 8 bytes as ``lookup``, oldest first."""
        with self._errors():
            rows = (
                self._connect()
                .execute(_PLACED + " WHERE d.lookup = %s ORDER BY 1 LIMIT %s", (_lookup_key(lookup), limit))
                .fetchall()
            )
        return [int(row[0]) for row in rows]

    def get_meta(self, key: str) -> str | None:
        """A metadata value, or None."""
        with self._errors():
            row = self._connect().execute("SELECT value FROM tlog_meta WHERE key = %s", (key,)).fetchone()
        return None if row is None else str(row[0])

    def checkpoints(self, *, since_size: int = 0) -> list[StoredCheckpoint]:
        """Stored checkpoints from ``since_size`` up, smallest first."""
        with self._errors():
            rows = (
                self._connect()
                .execute(
                    "SELECT size, root, note, created_at FROM tlog_checkpoints WHERE size >= %s ORDER BY size",
                    (since_size,),
                )
                .fetchall()
            )
        return [_checkpoint(row) for row in rows]

    def latest_checkpoint(self) -> StoredCheckpoint | None:
        """The largest stored checkpoint."""
        with self._errors():
            row = (
                self._connect()
                .execute("SELECT size, root, note, created_at FROM tlog_checkpoints ORDER BY size DESC LIMIT 1")
                .fetchone()
            )
        return None if row is None else _checkpoint(row)

    def checkpoint_at(self, size: int) -> StoredCheckpoint | None:
        """The checkpoint of exactly ``size`` leaves."""
        with self._errors():
            row = (
                self._connect()
                .execute("SELECT size, root, note, created_at FROM tlog_checkpoints WHERE size = %s", (size,))
                .fetchone()
            )
        return None if row is None else _checkpoint(row)

    def close(self) -> None:
        """Close every connection this store opened (in any thread)."""
        with self._guard:
            connections, self._connections = self._connections, []
            self._closed = True
        for connection in connections:
            with contextlib.suppress(Exception):
                connection.close()
        self._local = threading.local()
