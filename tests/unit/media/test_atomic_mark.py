"""``media mark`` records nothing for an image it did not write (#21 point 4).

Before, the log entry and the soft-binding row were written first and the image last, so an
unwritable output left both behind for an image that never existed, and printed a traceback.
"""

from __future__ import annotations

import errno
import json
import sqlite3
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.support.cli import assert_one_line_error
from tests.unit.media.conftest import encode, textured_image
from tracemark.cli._main import main
from tracemark.errors import SoftBindingRepositoryError, TlogStorageError
from tracemark.keys import Keyring
from tracemark.media import ContentSigner, MediaKey, SoftBindingRepository, mark_image
from tracemark.tlog import TransparencyLog


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
    return assert_one_line_error(capsys.readouterr().err)


def test_a_marked_image_is_written_then_recorded(
    initialised: Keyring, source: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    output = tmp_path / "out" / "marked.png"
    assert main(["media", "mark", str(source), str(output), "--json"]) == 0
    marked = json.loads(capsys.readouterr().out)
    assert output.exists()
    assert _log_size(initialised) == 1
    assert _binding_rows(initialised) == [(marked["manifest_id"], 0)]  # the row got the log index afterwards


@dataclass(frozen=True)
class _Failure:
    """One way ``media mark`` fails after it began writing, and what must hold after it."""

    output: Path
    #: Where no temporary file may be left behind.
    directory: Path
    #: Dotted target -> replacement, in force while ``media mark`` runs.
    patches: dict[str, object]
    status: int
    #: What the one-line error must say.
    says: tuple[str, ...]
    #: What must hold of the files afterwards.
    after: Callable[[], bool]


def _output_directory_cannot_exist(tmp_path: Path) -> _Failure:
    blocker = tmp_path / "a-file"
    blocker.write_bytes(b"not a directory")
    return _Failure(blocker / "marked.png", tmp_path, {}, 2,
                    ("cannot write the marked image", "nothing was recorded"), lambda: True)  # fmt: skip


def _unwritable_directory(tmp_path: Path) -> _Failure:
    # The tests may run as root, for whom mode 0555 does not stop a write: the refusal is simulated where it happens.
    target = tmp_path / "locked"
    target.mkdir()

    def refuse(*args: object, **kwargs: object) -> tuple[int, str]:
        raise PermissionError(errno.EACCES, "Permission denied")

    return _Failure(target / "marked.png", target, {"tracemark._fs.tempfile.mkstemp": refuse}, 2,
                    ("Permission denied",), lambda: list(target.iterdir()) == [])  # fmt: skip


def _full_disk(tmp_path: Path) -> _Failure:
    target = tmp_path / "full"
    target.mkdir()

    def no_space(fd: int) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    return _Failure(target / "marked.png", target, {"os.fsync": no_space}, 2,
                    ("No space left on device",), lambda: list(target.iterdir()) == [])  # fmt: skip


def _interrupted_rename(tmp_path: Path) -> _Failure:
    target = tmp_path / "renamed"
    target.mkdir()
    previous = target / "marked.png"
    previous.write_bytes(b"the user's earlier file")

    def interrupted(source_path: object, destination: object) -> None:
        raise OSError(errno.EINTR, "Interrupted system call")

    # the old file is untouched
    return _Failure(previous, target, {"os.replace": interrupted}, 2,
                    (), lambda: previous.read_bytes() == b"the user's earlier file")  # fmt: skip


def _failed_log_append(tmp_path: Path) -> _Failure:
    """The image and the repository row are removed again."""
    output = tmp_path / "marked.png"

    def failing_recorder(database: Path, keyring: Keyring, model_id: str) -> object:
        def append(data: bytes, manifest_id: str, key_id: str) -> int:
            assert output.exists()  # the image was written before the log was asked
            raise TlogStorageError("database is locked")

        return append

    return _Failure(output, tmp_path, {"tracemark.cli.media._record_in_log": failing_recorder}, 6,
                    (), lambda: not output.exists())  # fmt: skip


def _output_too_large_to_verify(tmp_path: Path) -> _Failure:
    """Refused before anything is written: a noisy 49 MP picture written as PNG is over 64 MiB, which verify
    refuses, and mark said nothing and wrote it."""
    output = tmp_path / "marked.png"
    return _Failure(output, tmp_path, {"tracemark.media._provenance.MAX_IMAGE_BYTES": 50_000}, 2,
                    ("write it as .jpg or .webp",), lambda: not output.exists())  # fmt: skip


FAILURES: dict[str, Callable[[Path], _Failure]] = {
    "output-directory-cannot-exist": _output_directory_cannot_exist,
    "unwritable-directory": _unwritable_directory,
    "full-disk": _full_disk,
    "interrupted-rename": _interrupted_rename,
    "failed-log-append": _failed_log_append,
    "output-too-large-to-verify": _output_too_large_to_verify,
}


@pytest.mark.parametrize("case", list(FAILURES))
def test_a_failed_mark_records_nothing(
    case: str,
    initialised: Keyring,
    source: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    failure = FAILURES[case](tmp_path)
    with monkeypatch.context() as patch:
        for target, replacement in failure.patches.items():
            patch.setattr(target, replacement)
        assert main(["media", "mark", str(source), str(failure.output)]) == failure.status
    err = _assert_nothing_recorded(initialised, failure.directory, capsys)
    for words in failure.says:
        assert words in err
    assert failure.after()


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
