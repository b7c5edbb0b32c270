"""The soft-binding repository: every signed manifest stored under its watermark value (SQLite).

It answers the two C2PA soft-binding resolution queries tracemark serves: which manifests carry a
given binding (``/matches/byBinding?alg=&value=``) and the manifest store for an id
(``/manifests/{id}``).  A row also keeps the SHA-256 of the signed file and its transparency-log index,
so a recovered manifest leads to the log entry too.  Table ``media_soft_bindings`` lives in a SQLite
file (the CLI and the service use the log's own, ``TRACEMARK_HOME/tracemark.sqlite3``) or, for several
service instances that share one log on PostgreSQL, in that database (a ``postgresql://`` URL, with the
log's ``schema=``), so a binding recorded by one instance resolves on every other.
"""

from __future__ import annotations

import sqlite3
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tracemark._postgres import connect, import_psycopg, is_postgres_url, redact, split_schema
from tracemark.errors import SoftBindingRepositoryError

_SCHEMA = """
CREATE TABLE IF NOT EXISTS media_soft_bindings (
    alg TEXT NOT NULL,
    value TEXT NOT NULL,
    manifest_id TEXT NOT NULL UNIQUE,
    manifest BLOB NOT NULL,
    content_sha256 TEXT NOT NULL,
    log_index INTEGER,
    created TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%SZ', 'now')),
    PRIMARY KEY (alg, value, manifest_id)
)
"""
_POSTGRES_SCHEMA = """
CREATE TABLE IF NOT EXISTS media_soft_bindings (
    alg TEXT NOT NULL,
    value TEXT NOT NULL,
    manifest_id TEXT NOT NULL UNIQUE,
    manifest BYTEA NOT NULL,
    content_sha256 TEXT NOT NULL,
    log_index BIGINT,
    created TIMESTAMPTZ NOT NULL DEFAULT now(),
    seq BIGSERIAL,
    PRIMARY KEY (alg, value, manifest_id)
)
"""
_MAX_VALUE = 256
_FEATURE = "a soft-binding repository on PostgreSQL"


@dataclass(frozen=True)
class BindingMatch:
    """One manifest stored under a binding."""

    manifest_id: str
    alg: str
    value: str
    content_sha256: str
    log_index: int | None


class SoftBindingRepository:
    """Store of manifests by soft binding, in SQLite (a path) or PostgreSQL (a URL); safe to share between threads."""

    def __init__(self, location: Path | str) -> None:
        self._lock = threading.Lock()
        self._postgres = is_postgres_url(location)
        self.location = str(location)
        self._connection: Any = None
        if self._postgres:
            self._url, self._schema = split_schema(str(location))
            self._errors: Any = import_psycopg(_FEATURE).Error
            self._order = "created, seq"
            self._run(lambda db: db.execute(_POSTGRES_SCHEMA), "cannot open the soft-binding repository")
            return
        path = Path(location)
        self._errors, self._order = sqlite3.Error, "created, rowid"
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            self._connection = sqlite3.connect(str(path), timeout=30.0, check_same_thread=False)
            with self._connection:
                self._connection.execute("PRAGMA journal_mode=WAL")
                self._connection.execute(_SCHEMA)
        except sqlite3.Error as exc:
            raise SoftBindingRepositoryError(f"cannot open the soft-binding repository {path}: {exc}") from None

    def __repr__(self) -> str:
        return f"SoftBindingRepository({redact(self.location)!r})"

    def _db(self) -> Any:
        """The connection (PostgreSQL: reopened when a server restart broke it)."""
        if self._postgres and (self._connection is None or self._connection.closed or self._connection.broken):
            self._connection = connect(self._url, self._schema, connect_timeout=10, feature=_FEATURE)
        return self._connection

    def _run(self, work: Any, failure: str) -> Any:
        try:
            with self._lock:
                db = self._db()
                if self._postgres:
                    return work(db)
                with db:
                    return work(db)
        except self._errors as exc:
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise SoftBindingRepositoryError(f"{failure} ({redact(self.location)}): {first}") from None

    def close(self) -> None:
        with self._lock:
            if self._connection is not None:
                self._connection.close()

    def __enter__(self) -> SoftBindingRepository:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _sql(self, statement: str) -> str:
        return statement if self._postgres else statement.replace("%s", "?")

    def add(
        self, *, alg: str, value: str, manifest_id: str, manifest: bytes, content_sha256: str, log_index: int | None
    ) -> None:
        """Store a signed manifest store under (alg, value)."""
        _check_binding(alg, value)
        statement = self._sql(
            "INSERT INTO media_soft_bindings (alg, value, manifest_id, manifest, content_sha256, log_index)"
            " VALUES (%s, %s, %s, %s, %s, %s)"
        )
        params = (alg, value, manifest_id, manifest, content_sha256, log_index)
        self._run(lambda db: db.execute(statement, params), f"cannot store manifest {manifest_id}")

    def set_log_index(self, manifest_id: str, log_index: int) -> None:
        """Record the transparency-log index of a stored manifest (known only after the log append)."""
        statement = self._sql("UPDATE media_soft_bindings SET log_index = %s WHERE manifest_id = %s")
        self._run(lambda db: db.execute(statement, (log_index, manifest_id)), f"cannot update manifest {manifest_id}")

    def remove(self, manifest_id: str) -> None:
        """Delete a stored manifest: the roll-back of a marking whose image or log entry could not be written."""
        statement = self._sql("DELETE FROM media_soft_bindings WHERE manifest_id = %s")
        self._run(lambda db: db.execute(statement, (manifest_id,)), f"cannot remove manifest {manifest_id}")

    def by_binding(self, alg: str, value: str) -> list[BindingMatch]:
        """Manifests stored under (alg, value), oldest first."""
        _check_binding(alg, value)
        rows = self._query(
            "SELECT manifest_id, alg, value, content_sha256, log_index FROM media_soft_bindings"
            f" WHERE alg = %s AND value = %s ORDER BY {self._order}",
            (alg, value),
        )
        return [BindingMatch(str(r[0]), str(r[1]), str(r[2]), str(r[3]), _optional_int(r[4])) for r in rows]

    def manifest(self, manifest_id: str) -> bytes | None:
        """The manifest store (JUMBF bytes) with this id, or None."""
        rows = self._query("SELECT manifest FROM media_soft_bindings WHERE manifest_id = %s", (manifest_id,))
        return bytes(memoryview(rows[0][0])) if rows else None  # type: ignore[arg-type]

    def algorithms(self) -> list[str]:
        """Soft-binding algorithms that have at least one manifest stored."""
        return [str(r[0]) for r in self._query("SELECT DISTINCT alg FROM media_soft_bindings ORDER BY alg", ())]

    def _query(self, sql: str, params: tuple[object, ...]) -> list[tuple[object, ...]]:
        statement = self._sql(sql)
        rows: list[tuple[object, ...]] = self._run(
            lambda db: list(db.execute(statement, params).fetchall()), "soft-binding repository unreadable"
        )
        return rows


def _optional_int(value: object) -> int | None:
    return value if isinstance(value, int) else None


def _check_binding(alg: str, value: str) -> None:
    if not alg or len(alg) > _MAX_VALUE or not value or len(value) > _MAX_VALUE:
        raise SoftBindingRepositoryError("a soft binding needs an algorithm and a value of 1-256 characters")
