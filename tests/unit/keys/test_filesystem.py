"""The keyring's home on a hostile or broken filesystem: not a folder, missing, read-only, loose
permissions, symbolic links and special files.  Every failure is a one-line KeyringError (exit 3).

Decision on permissions: a file holding a secret that group or others may access is refused,
not repaired (ssh's rule).  Its secret may already have been copied, so the owner must notice;
the message says how to fix it (``chmod 600``) and to consider the key exposed.
"""

from __future__ import annotations

import errno
import os
import shutil
from pathlib import Path
from typing import Any

import pytest

from tests.unit.keys._helpers import SECRET_FILES, CliRunner, load_everything, secret_file
from tests.unit.keys.conftest import Populated
from tracemark.errors import KeyringError
from tracemark.keys import Keyring, ensure_log_key, mint_api_token
from tracemark.text import new_text_key

# -- TRACEMARK_HOME is not a folder, or is missing -------------------------------------------------


@pytest.fixture
def home_is_a_file(isolated_home: Path) -> Path:
    isolated_home.parent.mkdir(parents=True, exist_ok=True)
    isolated_home.write_text("not a folder\n")
    return isolated_home


def test_a_home_that_is_a_file_is_a_keyring_error(home_is_a_file: Path) -> None:
    keyring = Keyring()
    assert not keyring.exists()
    for action in (keyring.create, keyring.list, lambda: keyring.derive_secret("x"), lambda: ensure_log_key(keyring)):
        with pytest.raises(KeyringError, match="not a directory"):
            action()


@pytest.mark.parametrize(
    "argv",
    [("keys", "init"), ("keys", "list"), ("keys", "token"), ("keys", "show", "tm-native-0123456789abcdef")],
)
def test_the_cli_says_so_in_one_line(
    home_is_a_file: Path, cli: CliRunner, word_model: Path, argv: tuple[str, ...]
) -> None:
    result = cli(*argv, *(["--model", str(word_model)] if argv[1] == "init" else []))
    assert result.status == KeyringError.exit_code, result
    assert result.one_line_error, result.err


def test_keys_new_with_a_home_that_is_a_file(home_is_a_file: Path, cli: CliRunner, word_model: Path) -> None:
    result = cli("keys", "new", "--model", str(word_model))
    assert result.status == KeyringError.exit_code
    assert result.one_line_error
    assert "not a directory" in result.err


def test_a_home_below_a_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, cli: CliRunner) -> None:
    (tmp_path / "file").write_text("x")
    monkeypatch.setenv("TRACEMARK_HOME", str(tmp_path / "file" / "home"))
    with pytest.raises(KeyringError, match="not a directory"):
        Keyring().create()
    result = cli("keys", "token")
    assert result.status == KeyringError.exit_code
    assert result.one_line_error


def test_a_missing_home_is_created_with_its_parents(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    home = tmp_path / "a" / "b" / "home"
    monkeypatch.setenv("TRACEMARK_HOME", str(home))
    keyring = Keyring()
    assert keyring.list() == []
    with pytest.raises(KeyringError, match="keys init"):
        keyring.derive_secret("x")
    assert not home.exists()  # reading never creates anything
    assert keyring.create() is True
    assert (home / "keys").stat().st_mode & 0o777 == 0o700


def test_a_missing_home_lists_no_keys(cli: CliRunner) -> None:
    result = cli("keys", "list")
    assert result.status == 0
    assert "no keys" in result.out


# -- a read-only home ------------------------------------------------------------------------------

_WRITE_FLAGS = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_TRUNC | os.O_APPEND


@pytest.fixture
def read_only(populated: Populated, monkeypatch: pytest.MonkeyPatch) -> Populated:
    """Make every write under the home fail as on a read-only mount (EROFS), root or not."""
    home = str(populated.keyring.home)

    def inside(path: Any) -> bool:
        return isinstance(path, (str, os.PathLike)) and os.path.abspath(os.fspath(path)).startswith(home)

    def refuse(path: Any) -> None:
        raise OSError(errno.EROFS, os.strerror(errno.EROFS), os.fspath(path))

    real_open, real_mkdir = os.open, os.mkdir

    def guarded_open(path: Any, flags: int, mode: int = 0o777, *, dir_fd: int | None = None) -> int:
        if flags & _WRITE_FLAGS and inside(path):
            refuse(path)
        return real_open(path, flags, mode, dir_fd=dir_fd)

    def guarded_mkdir(path: Any, mode: int = 0o777, *, dir_fd: int | None = None) -> None:
        if inside(path):
            refuse(path)
        real_mkdir(path, mode, dir_fd=dir_fd)

    def guarded(real: Any) -> Any:
        def call(path: Any, *args: Any, **kwargs: Any) -> Any:
            if inside(path):
                refuse(path)
            return real(path, *args, **kwargs)

        return call

    monkeypatch.setattr(os, "open", guarded_open)
    monkeypatch.setattr(os, "mkdir", guarded_mkdir)
    for name in ("chmod", "link", "replace", "rename", "unlink"):
        monkeypatch.setattr(os, name, guarded(getattr(os, name)))
    return populated


def test_a_read_only_home_still_reads(read_only: Populated) -> None:
    load_everything(read_only.keyring, read_only.token)


def test_a_read_only_home_refuses_writes_with_one_line(read_only: Populated, word_model: Path, cli: CliRunner) -> None:
    keyring = read_only.keyring
    for action in (
        lambda: new_text_key(keyring, "native", word_model),
        lambda: mint_api_token(keyring),
        lambda: keyring.set_default("other", read_only.key.key_id),
    ):
        with pytest.raises(KeyringError, match="Read-only file system"):
            action()
    for argv in (("keys", "new", "--model", str(word_model)), ("keys", "token")):
        result = cli(*argv)
        assert result.status == KeyringError.exit_code, result
        assert result.one_line_error, result.err
    assert cli("keys", "list").status == 0


def test_a_read_only_empty_home_cannot_be_initialised(tmp_path: Path, cli: CliRunner, word_model: Path) -> None:
    if os.geteuid() == 0:
        pytest.skip("root writes through permission bits; the EROFS simulation above covers this as root")
    home = tmp_path / "ro"
    home.mkdir(mode=0o500)
    try:
        os.environ["TRACEMARK_HOME"] = str(home)
        result = cli("keys", "init", "--model", str(word_model))
        assert result.status == KeyringError.exit_code
        assert result.one_line_error
        assert "Permission denied" in result.err
    finally:
        home.chmod(0o700)


# -- permissions ---------------------------------------------------------------------------------


def test_every_secret_file_is_written_owner_only(populated: Populated) -> None:
    keyring = populated.keyring
    for pattern in (*SECRET_FILES, "defaults.json", ".lock"):
        assert secret_file(keyring, pattern).stat().st_mode & 0o777 == 0o600, pattern
    assert keyring.directory.stat().st_mode & 0o777 == 0o700


@pytest.mark.parametrize("pattern", SECRET_FILES)
@pytest.mark.parametrize("mode", [0o640, 0o604, 0o660, 0o644])
def test_a_secret_file_readable_by_others_is_refused(populated: Populated, pattern: str, mode: int) -> None:
    path = secret_file(populated.keyring, pattern)
    path.chmod(mode)
    with pytest.raises(KeyringError, match="accessible by other users") as caught:
        load_everything(populated.keyring, populated.token)
    message = caught.value.diagnostics()
    assert str(path) in message
    assert f"chmod 600 {path}" in message
    path.chmod(0o600)
    load_everything(populated.keyring, populated.token)


def test_public_files_may_be_readable(populated: Populated) -> None:
    keyring = populated.keyring
    for name in ("defaults.json", "c2pa/root.pem", "c2pa/chain.pem"):
        (keyring.directory / name).chmod(0o644)
    load_everything(keyring, populated.token)


# -- symbolic links and special files ------------------------------------------------------------


@pytest.mark.parametrize("pattern", SECRET_FILES)
def test_a_symlinked_secret_file_is_refused(populated: Populated, pattern: str, tmp_path: Path) -> None:
    path = secret_file(populated.keyring, pattern)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir(exist_ok=True)
    target = elsewhere / path.name
    shutil.copy2(path, target)
    path.unlink()
    path.symlink_to(target)
    with pytest.raises(KeyringError, match="symbolic link"):
        load_everything(populated.keyring, populated.token)


def test_writing_replaces_a_planted_link_instead_of_following_it(populated: Populated, tmp_path: Path) -> None:
    keyring = populated.keyring
    victim = tmp_path / "victim"
    victim.write_text("untouched")
    defaults = keyring.directory / "defaults.json"
    defaults.unlink()
    defaults.symlink_to(victim)
    with pytest.raises(KeyringError, match="symbolic link"):
        keyring.defaults()
    defaults.unlink()
    keyring.set_default("text", populated.key.key_id)
    assert victim.read_text() == "untouched"


def test_a_linked_home_and_keys_folder_are_fine(populated: Populated, tmp_path: Path) -> None:
    linked_home = tmp_path / "linked-home"
    linked_home.symlink_to(populated.keyring.home)
    load_everything(Keyring(linked_home), populated.token)
    moved = tmp_path / "real-keys"
    populated.keyring.directory.rename(moved)
    populated.keyring.directory.symlink_to(moved)
    load_everything(populated.keyring, populated.token)


def test_a_fifo_in_place_of_the_master_secret_does_not_hang(isolated_home: Path) -> None:
    (isolated_home / "keys").mkdir(parents=True)
    os.mkfifo(isolated_home / "keys" / "master.key")
    with pytest.raises(KeyringError, match="not a regular file"):
        Keyring().derive_secret("x")
