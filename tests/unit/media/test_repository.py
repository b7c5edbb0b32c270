"""The soft-binding repository: manifests stored and found by binding and by id; bad lookups refused.

Each behaviour runs on SQLite and on PostgreSQL (the machine's server, a fresh schema per test).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tracemark.errors import SoftBindingRepositoryError
from tracemark.media import BindingMatch, SoftBindingRepository


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def location(request: pytest.FixtureRequest, tmp_path: Path) -> Path | str:
    """Where a repository lives: a SQLite file, or a PostgreSQL URL naming a fresh schema."""
    if request.param == "postgresql":
        url: str = request.getfixturevalue("postgres_url")
        return url
    return tmp_path / "bindings.sqlite3"


@pytest.fixture
def store(location: Path | str) -> Iterator[SoftBindingRepository]:
    with SoftBindingRepository(location) as opened:
        yield opened


def test_store_and_resolve(store: SoftBindingRepository) -> None:
    store.add(alg="io.tracemark.qim.v1", value="ab" * 16, manifest_id="urn:c2pa:one", manifest=b"\x00store-1",
                   content_sha256="1" * 64, log_index=7)  # fmt: skip
    store.add(alg="io.tracemark.qim.v1", value="ab" * 16, manifest_id="urn:c2pa:two", manifest=b"store-2",
                   content_sha256="2" * 64, log_index=None)  # fmt: skip
    matches = store.by_binding("io.tracemark.qim.v1", "ab" * 16)
    assert matches == [
        BindingMatch("urn:c2pa:one", "io.tracemark.qim.v1", "ab" * 16, "1" * 64, 7),
        BindingMatch("urn:c2pa:two", "io.tracemark.qim.v1", "ab" * 16, "2" * 64, None),
    ]
    assert store.manifest("urn:c2pa:one") == b"\x00store-1"
    assert store.manifest("urn:c2pa:missing") is None
    assert store.by_binding("io.tracemark.qim.v1", "cd" * 16) == []
    assert store.by_binding("com.other.alg", "ab" * 16) == []
    assert store.algorithms() == ["io.tracemark.qim.v1"]


def test_a_manifest_id_is_stored_once(store: SoftBindingRepository) -> None:
    store.add(alg="a", value="v", manifest_id="urn:c2pa:x", manifest=b"m", content_sha256="0" * 64, log_index=None)
    with pytest.raises(SoftBindingRepositoryError):
        store.add(alg="a", value="w", manifest_id="urn:c2pa:x", manifest=b"m", content_sha256="0" * 64,
                       log_index=None)  # fmt: skip


@pytest.mark.parametrize(("alg", "value"), [("", "v"), ("a", ""), ("a" * 300, "v"), ("a", "v" * 300)])
def test_malformed_bindings_are_refused(store: SoftBindingRepository, alg: str, value: str) -> None:
    with pytest.raises(SoftBindingRepositoryError):
        store.by_binding(alg, value)


def test_survives_reopening(location: Path | str) -> None:
    with SoftBindingRepository(location) as first:
        first.add(alg="a", value="v", manifest_id="urn:c2pa:x", manifest=b"m", content_sha256="0" * 64, log_index=1)
    with SoftBindingRepository(location) as second:
        assert second.manifest("urn:c2pa:x") == b"m"


def test_instances_sharing_a_database_see_each_others_bindings(location: Path | str) -> None:
    """Two service instances on one database: a binding one records resolves on the other."""
    with SoftBindingRepository(location) as first, SoftBindingRepository(location) as second:
        first.add(alg="a", value="v", manifest_id="urn:c2pa:1", manifest=b"m1", content_sha256="1" * 64, log_index=0)
        second.add(alg="a", value="v", manifest_id="urn:c2pa:2", manifest=b"m2", content_sha256="2" * 64, log_index=1)
        assert [m.manifest_id for m in first.by_binding("a", "v")] == ["urn:c2pa:1", "urn:c2pa:2"]
        assert second.manifest("urn:c2pa:1") == b"m1"


@pytest.mark.postgres
def test_a_dropped_postgresql_connection_is_reopened(postgres_url: str) -> None:
    import psycopg

    with SoftBindingRepository(postgres_url) as repository:
        repository.add(alg="a", value="v", manifest_id="urn:c2pa:x", manifest=b"m", content_sha256="0" * 64,
                       log_index=None)  # fmt: skip
        base = postgres_url.partition("?")[0]
        with psycopg.connect(base, autocommit=True) as admin:  # what a server restart does to the connection
            admin.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE pid <> pg_backend_pid()"
                          " AND query LIKE '%media_soft_bindings%'")  # fmt: skip
        with pytest.raises(SoftBindingRepositoryError):
            repository.manifest("urn:c2pa:x")  # the call in flight fails, typed
        assert repository.manifest("urn:c2pa:x") == b"m"  # the next one reconnects


def test_unreadable_database_is_a_typed_error(tmp_path: Path) -> None:
    path = tmp_path / "not-a-db.sqlite3"
    path.write_bytes(b"this is not a database" * 100)
    with pytest.raises(SoftBindingRepositoryError):
        SoftBindingRepository(path)
