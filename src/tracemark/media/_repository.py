"""The soft-binding repository: every signed manifest stored under its watermark value (SQLite).

It answers the two C2PA soft-binding resolution queries tracemark serves: which manifests carry a
given binding (``/matches/byBinding?alg=&value=``) and the manifest store for an id
(``/manifests/{id}``).  A row also keeps the SHA-256 of the signed file and its transparency-log index,
so a recovered manifest leads to the log entry too.  Table ``media_soft_bindings`` lives in its own
file (default ``TRACEMARK_HOME/media.sqlite3``).
"""

from __future__ import annotations

import sqlite3
import threading
from dataclasses import dataclass
from pathlib import Path

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
_MAX_VALUE = 256


@dataclass(frozen=True)
class BindingMatch:
    """One manifest stored under a binding."""

    manifest_id: str
    alg: str
    value: str
    content_sha256: str
    log_index: int | None


class SoftBindingRepository:
    """SQLite-backed store of manifests by soft binding; safe to share between threads."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.Lock()
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            self._connection = sqlite3.connect(str(path), timeout=30.0, check_same_thread=False)
            with self._connection:
                self._connection.execute("PRAGMA journal_mode=WAL")
                self._connection.execute(_SCHEMA)
        except sqlite3.Error as exc:
            raise SoftBindingRepositoryError(f"cannot open the soft-binding repository {path}: {exc}") from None

    def close(self) -> None:
        with self._lock:
            self._connection.close()

    def __enter__(self) -> SoftBindingRepository:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def add(
        self, *, alg: str, value: str, manifest_id: str, manifest: bytes, content_sha256: str, log_index: int | None
    ) -> None:
        """Store a signed manifest store under (alg, value)."""
        _check_binding(alg, value)
        try:
            with self._lock, self._connection:
                self._connection.execute(
                    "INSERT INTO media_soft_bindings (alg, value, manifest_id, manifest, content_sha256, log_index)"
                    " VALUES (?, ?, ?, ?, ?, ?)",
                    (alg, value, manifest_id, manifest, content_sha256, log_index),
                )
        except sqlite3.Error as exc:
            raise SoftBindingRepositoryError(f"cannot store manifest {manifest_id}: {exc}") from None

    def by_binding(self, alg: str, value: str) -> list[BindingMatch]:
        """Manifests stored under (alg, value), oldest first."""
        _check_binding(alg, value)
        rows = self._query(
            "SELECT manifest_id, alg, value, content_sha256, log_index FROM media_soft_bindings"
            " WHERE alg = ? AND value = ? ORDER BY created, rowid",
            (alg, value),
        )
        return [BindingMatch(str(r[0]), str(r[1]), str(r[2]), str(r[3]), _optional_int(r[4])) for r in rows]

    def manifest(self, manifest_id: str) -> bytes | None:
        """The manifest store (JUMBF bytes) with this id, or None."""
        rows = self._query("SELECT manifest FROM media_soft_bindings WHERE manifest_id = ?", (manifest_id,))
        return bytes(memoryview(rows[0][0])) if rows else None  # type: ignore[arg-type]

    def algorithms(self) -> list[str]:
        """Soft-binding algorithms that have at least one manifest stored."""
        return [str(r[0]) for r in self._query("SELECT DISTINCT alg FROM media_soft_bindings ORDER BY alg", ())]

    def _query(self, sql: str, params: tuple[object, ...]) -> list[tuple[object, ...]]:
        try:
            with self._lock:
                return list(self._connection.execute(sql, params).fetchall())
        except sqlite3.Error as exc:
            raise SoftBindingRepositoryError(f"soft-binding repository {self.path} unreadable: {exc}") from None


def _optional_int(value: object) -> int | None:
    return value if isinstance(value, int) else None


def _check_binding(alg: str, value: str) -> None:
    if not alg or len(alg) > _MAX_VALUE or not value or len(value) > _MAX_VALUE:
        raise SoftBindingRepositoryError("a soft binding needs an algorithm and a value of 1-256 characters")
