"""``media mark`` records nothing for an image it did not write (#21 point 4).

Before, the log entry and the soft-binding row were written first and the image last, so an
unwritable output left both behind for an image that never existed, and printed a traceback.
"""

from __future__ import annotations

import errno
import json
import os
import sqlite3
from pathlib import Path

import pytest

from tests.unit.media.conftest import encode, textured_image
from tracemark.cli._main import main
from tracemark.errors import SoftBindingRepositoryError, TlogStorageError
from tracemark.keys import Keyring, ensure_log_key, ensure_media_certificate
from tracemark.media import ContentSigner, MediaKey, SoftBindingRepository, mark_image
from tracemark.tlog import TransparencyLog


@pytest.fixture
def initialised(isolated_home: Path) -> Keyring:
    keyring = Keyring()
    keyring.create()
    ensure_log_key(keyring)
    ensure_media_certificate(keyring)
    return keyring


@pytest.fixture
def source(tmp_path: Path) -> Path:
    path = tmp_path / "in.png"
    path.write_bytes(encode(textured_image(61, 300, 300)))
    return path


def _database(keyring: Keyring) -> Path:
    return keyring.home / "tracemark.sqlite3"


def _log_size(keyring: Keyring) -> int:
    with TransparencyLog.open(_database(keyring)) as log:
        return log.size


def _binding_rows(keyring: Keyring) -> list[tuple[object, ...]]:
    if not _database(keyring).exists():
        return []
    with sqlite3.connect(_database(keyring)) as db:
        tables = {row[0] for row in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        if "media_soft_bindings" not in tables:
            return []
        return list(db.execute("SELECT manifest_id, log_index FROM media_soft_bindings"))


def _assert_nothing_recorded(keyring: Keyring, directory: Path, capsys: pytest.CaptureFixture[str]) -> str:
    assert _log_size(keyring) == 0
    assert _binding_rows(keyring) == []
    if directory.is_dir():
        assert [p.name for p in directory.iterdir() if p.name.endswith(".tmp")] == []  # no temporary file left
    err = capsys.readouterr().err
    assert err.startswith("tracemark: error: ")
    assert err.count("\n") == 1  # one line, no traceback
    return err


def test_a_marked_image_is_written_then_recorded(
    initialised: Keyring, source: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    output = tmp_path / "out" / "marked.png"
    assert main(["media", "mark", str(source), str(output), "--json"]) == 0
    marked = json.loads(capsys.readouterr().out)
    assert output.exists()
    assert _log_size(initialised) == 1
    assert _binding_rows(initialised) == [(marked["manifest_id"], 0)]  # the row got the log index afterwards


def test_an_output_directory_that_cannot_exist_records_nothing(
    initialised: Keyring, source: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_bytes(b"not a directory")
    assert main(["media", "mark", str(source), str(blocker / "marked.png")]) == 2
    err = _assert_nothing_recorded(initialised, tmp_path, capsys)
    assert "cannot write the marked image" in err
    assert "nothing was recorded" in err


def test_an_unwritable_directory_records_nothing(
    initialised: Keyring,
    source: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # The tests may run as root, for whom mode 0555 does not stop a write: the refusal is simulated where it happens.
    target = tmp_path / "locked"
    target.mkdir()

    def refuse(*args: object, **kwargs: object) -> tuple[int, str]:
        raise PermissionError(errno.EACCES, "Permission denied")

    monkeypatch.setattr("tracemark._fs.tempfile.mkstemp", refuse)
    assert main(["media", "mark", str(source), str(target / "marked.png")]) == 2
    assert "Permission denied" in _assert_nothing_recorded(initialised, target, capsys)
    assert list(target.iterdir()) == []


def test_a_full_disk_records_nothing(
    initialised: Keyring,
    source: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    target = tmp_path / "full"
    target.mkdir()

    def no_space(fd: int) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    with monkeypatch.context() as patch:
        patch.setattr(os, "fsync", no_space)
        assert main(["media", "mark", str(source), str(target / "marked.png")]) == 2
    assert "No space left on device" in _assert_nothing_recorded(initialised, target, capsys)
    assert list(target.iterdir()) == []


def test_an_interrupted_rename_records_nothing(
    initialised: Keyring,
    source: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    target = tmp_path / "renamed"
    target.mkdir()
    previous = target / "marked.png"
    previous.write_bytes(b"the user's earlier file")

    def interrupted(source_path: object, destination: object) -> None:
        raise OSError(errno.EINTR, "Interrupted system call")

    with monkeypatch.context() as patch:
        patch.setattr(os, "replace", interrupted)
        assert main(["media", "mark", str(source), str(previous)]) == 2
    _assert_nothing_recorded(initialised, target, capsys)
    assert previous.read_bytes() == b"the user's earlier file"  # the old file is untouched


def test_a_failed_log_append_removes_the_image_and_the_row(
    initialised: Keyring,
    source: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    output = tmp_path / "marked.png"

    def failing_recorder(database: Path, keyring: Keyring, model_id: str) -> object:
        def append(data: bytes, manifest_id: str, key_id: str) -> int:
            assert output.exists()  # the image was written before the log was asked
            raise TlogStorageError("database is locked")

        return append

    monkeypatch.setattr("tracemark.cli.media._record_in_log", failing_recorder)
    assert main(["media", "mark", str(source), str(output)]) == 6
    _assert_nothing_recorded(initialised, tmp_path, capsys)
    assert not output.exists()


class _Writer:
    def __init__(self) -> None:
        self.events: list[str] = []

    def publish(self, data: bytes) -> None:
        self.events.append("publish")

    def unpublish(self) -> None:
        self.events.append("unpublish")


def test_library_rolls_back_a_repository_failure(
    key: MediaKey, signer: ContentSigner, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    writer = _Writer()
    logged: list[str] = []
    with SoftBindingRepository(tmp_path / "bindings.sqlite3") as repository:

        def broken_add(**fields: object) -> None:
            raise SoftBindingRepositoryError("disk I/O error")

        def record(data: bytes, manifest_id: str, key_id: str) -> int:
            logged.append(manifest_id)
            return len(logged) - 1

        monkeypatch.setattr(repository, "add", broken_add)
        with pytest.raises(SoftBindingRepositoryError):
            mark_image(encode(textured_image(62, 300, 300)), key=key, signer=signer, model_id="m",
                       repository=repository, writer=writer, record=record)  # fmt: skip
    assert writer.events == ["publish", "unpublish"]
    assert logged == []  # the log, which cannot be undone, was never asked


def test_library_order_is_write_store_log(key: MediaKey, signer: ContentSigner, tmp_path: Path) -> None:
    writer = _Writer()
    with SoftBindingRepository(tmp_path / "bindings.sqlite3") as repository:

        def record(data: bytes, manifest_id: str, key_id: str) -> int:
            writer.events.append("log")
            assert [m.log_index for m in repository.by_binding(marked_alg[0], marked_alg[1])] == [None]
            return 41

        marked_alg: list[str] = []
        original_add = repository.add

        def add(**fields: object) -> None:
            writer.events.append("store")
            marked_alg[:] = [str(fields["alg"]), str(fields["value"])]
            original_add(**fields)  # type: ignore[arg-type]

        repository.add = add  # type: ignore[method-assign]
        marked = mark_image(encode(textured_image(63, 300, 300)), key=key, signer=signer, model_id="m",
                            repository=repository, record=record, writer=writer)  # fmt: skip
        assert writer.events == ["publish", "store", "log"]
        assert [m.log_index for m in repository.by_binding(marked_alg[0], marked.binding_value)] == [41]


def test_an_output_too_large_to_verify_is_refused_before_anything_is_written(
    initialised: Keyring,
    source: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # A noisy 49 MP picture written as PNG is over 64 MiB, which verify refuses: mark said nothing and wrote it.
    monkeypatch.setattr("tracemark.media._provenance.MAX_IMAGE_BYTES", 50_000)
    output = tmp_path / "marked.png"
    assert main(["media", "mark", str(source), str(output)]) == 2
    assert "write it as .jpg or .webp" in _assert_nothing_recorded(initialised, tmp_path, capsys)
    assert not output.exists()
