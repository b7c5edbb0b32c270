"""Fixtures for the log tests: signers, records, and a log on each storage backend."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tracemark.tlog import SIG_COSIGNATURE_V1, LogStore, MemoryStore, NoteSigner, SQLiteStore, TransparencyLog

STORES = ["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)]


@pytest.fixture(params=STORES)
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """Where a log lives, for ``TransparencyLog.open``: a SQLite file, or a fresh PostgreSQL schema."""
    if request.param == "postgresql":
        url: str = request.getfixturevalue("postgres_url")
        return url
    return str(tmp_path / "log.sqlite3")


def open_store(location: str) -> LogStore:
    """The store at a ``store_url``."""
    return TransparencyLog.open(location).store


@pytest.fixture
def signer() -> NoteSigner:
    """A fresh log key."""
    return NoteSigner.generate("example.com/tracemark-test-log")


@pytest.fixture
def witness_signer() -> NoteSigner:
    """A fresh witness cosigning key."""
    return NoteSigner.generate("witness.example/w1", SIG_COSIGNATURE_V1)


@pytest.fixture(params=["memory", *STORES])
def log(request: pytest.FixtureRequest, tmp_path: Path, signer: NoteSigner) -> Iterator[TransparencyLog]:
    """A log on each backend."""
    store: LogStore
    if request.param == "memory":
        store = MemoryStore()
    elif request.param == "postgresql":
        store = TransparencyLog.open(request.getfixturevalue("postgres_url")).store
    else:
        store = SQLiteStore(tmp_path / "log.sqlite3")
    with TransparencyLog(store, signer=signer) as opened:
        yield opened
