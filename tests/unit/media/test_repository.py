"""The soft-binding repository: manifests stored and found by binding and by id; bad lookups refused."""

from __future__ import annotations

from pathlib import Path

import pytest

from tracemark.errors import SoftBindingRepositoryError
from tracemark.media import BindingMatch, SoftBindingRepository


def test_store_and_resolve(repository: SoftBindingRepository) -> None:
    repository.add(alg="io.tracemark.qim.v1", value="ab" * 16, manifest_id="urn:c2pa:one", manifest=b"\x00store-1",
                   content_sha256="1" * 64, log_index=7)  # fmt: skip
    repository.add(alg="io.tracemark.qim.v1", value="ab" * 16, manifest_id="urn:c2pa:two", manifest=b"store-2",
                   content_sha256="2" * 64, log_index=None)  # fmt: skip
    matches = repository.by_binding("io.tracemark.qim.v1", "ab" * 16)
    assert matches == [
        BindingMatch("urn:c2pa:one", "io.tracemark.qim.v1", "ab" * 16, "1" * 64, 7),
        BindingMatch("urn:c2pa:two", "io.tracemark.qim.v1", "ab" * 16, "2" * 64, None),
    ]
    assert repository.manifest("urn:c2pa:one") == b"\x00store-1"
    assert repository.manifest("urn:c2pa:missing") is None
    assert repository.by_binding("io.tracemark.qim.v1", "cd" * 16) == []
    assert repository.by_binding("com.other.alg", "ab" * 16) == []
    assert repository.algorithms() == ["io.tracemark.qim.v1"]


def test_a_manifest_id_is_stored_once(repository: SoftBindingRepository) -> None:
    repository.add(alg="a", value="v", manifest_id="urn:c2pa:x", manifest=b"m", content_sha256="0" * 64, log_index=None)
    with pytest.raises(SoftBindingRepositoryError):
        repository.add(alg="a", value="w", manifest_id="urn:c2pa:x", manifest=b"m", content_sha256="0" * 64,
                       log_index=None)  # fmt: skip


@pytest.mark.parametrize(("alg", "value"), [("", "v"), ("a", ""), ("a" * 300, "v"), ("a", "v" * 300)])
def test_malformed_bindings_are_refused(repository: SoftBindingRepository, alg: str, value: str) -> None:
    with pytest.raises(SoftBindingRepositoryError):
        repository.by_binding(alg, value)


def test_survives_reopening(tmp_path: Path) -> None:
    path = tmp_path / "db.sqlite3"
    with SoftBindingRepository(path) as first:
        first.add(alg="a", value="v", manifest_id="urn:c2pa:x", manifest=b"m", content_sha256="0" * 64, log_index=1)
    with SoftBindingRepository(path) as second:
        assert second.manifest("urn:c2pa:x") == b"m"


def test_unreadable_database_is_a_typed_error(tmp_path: Path) -> None:
    path = tmp_path / "not-a-db.sqlite3"
    path.write_bytes(b"this is not a database" * 100)
    with pytest.raises(SoftBindingRepositoryError):
        SoftBindingRepository(path)
