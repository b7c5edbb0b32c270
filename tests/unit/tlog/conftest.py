"""Fixtures for the log tests: signers, records, and a log on each storage backend."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tracemark.tlog import SIG_COSIGNATURE_V1, MemoryStore, NoteSigner, SQLiteStore, TransparencyLog


@pytest.fixture
def signer() -> NoteSigner:
    """A fresh log key."""
    return NoteSigner.generate("example.com/tracemark-test-log")


@pytest.fixture
def witness_signer() -> NoteSigner:
    """A fresh witness cosigning key."""
    return NoteSigner.generate("witness.example/w1", SIG_COSIGNATURE_V1)


@pytest.fixture(params=["memory", "sqlite"])
def log(request: pytest.FixtureRequest, tmp_path: Path, signer: NoteSigner) -> Iterator[TransparencyLog]:
    """A log on each backend."""
    store = MemoryStore() if request.param == "memory" else SQLiteStore(tmp_path / "log.sqlite3")
    with TransparencyLog(store, signer=signer) as opened:
        yield opened
