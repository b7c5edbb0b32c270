"""The keyring's files on disk: typed errors, no symbolic links, owner-only secrets, one writer at a time.

Rules every keyring file follows (tested in ``tests/unit/keys``):

* Any ``OSError`` (a missing or read-only home, ``TRACEMARK_HOME`` naming a regular file, a full
  disk) becomes a one-line :class:`~tracemark.errors.KeyringError`; a missing file is left to the
  caller, which knows whether to say "run 'tracemark keys init'" or "unknown key".
* A key file must be a regular file, not a symbolic link: a link would let whoever can write its
  target substitute a key.  The home and ``keys/`` folder themselves may be links.
* A file that holds a secret must not be accessible to group or others (POSIX).  Such a file is
  refused, not repaired: its secret may already have been copied, so the owner has to notice
  (fix it with ``chmod 600`` and consider rotating the key).  A file that does not parse is
  reported as corrupt first, since it is unusable either way.
* Read-modify-write updates (defaults, API tokens) run under an exclusive ``flock`` on
  ``keys/.lock``, so concurrent processes never lose each other's update; every write is atomic.
* Error messages name files and fields, never their contents.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import stat
import tempfile
from collections.abc import Iterator
from pathlib import Path

from tracemark._fs import atomic_write_bytes, fsync_directory
from tracemark.errors import KeyringError

SECRET_MODE = 0o600
_LOCK_FILE = ".lock"


def _reason(exc: OSError) -> str:
    return exc.strerror or type(exc).__name__


def read_key_file(path: Path, what: str) -> tuple[bytes, int]:
    """The bytes of a keyring file and its permission bits; ``FileNotFoundError`` passes through.

    Refuses symbolic links and anything but a regular file; other failures raise
    :class:`KeyringError`.
    """
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    except FileNotFoundError:
        raise
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise KeyringError(f"{what} {path} is a symbolic link; the keyring accepts only regular files") from None
        raise KeyringError(f"cannot read {what} {path}: {_reason(exc)}") from None
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise KeyringError(f"{what} {path} is not a regular file")
        with os.fdopen(fd, "rb", closefd=False) as handle:
            data = handle.read()
    except OSError as exc:
        raise KeyringError(f"cannot read {what} {path}: {_reason(exc)}") from None
    finally:
        os.close(fd)
    return data, stat.S_IMODE(info.st_mode)


def check_private(path: Path, mode: int, what: str) -> None:
    """Refuse a secret-holding file that group or others may access (POSIX only)."""
    if os.name == "posix" and mode & 0o077:
        raise KeyringError(
            f"{what} {path} is accessible by other users (mode {mode:04o}); "
            f"refusing to use it: run 'chmod 600 {path}' and consider the key exposed"
        )


def ensure_directory(directory: Path) -> None:
    """Create the keyring folder (mode 0700) and its parents; a home that is not a folder is an error."""
    try:
        directory.mkdir(parents=True, exist_ok=True)
    except FileExistsError:
        raise KeyringError(f"{directory} exists but is not a directory") from None
    except NotADirectoryError:
        raise KeyringError(f"cannot create {directory}: a parent of it is not a directory") from None
    except OSError as exc:
        raise KeyringError(f"cannot create the keyring folder {directory}: {_reason(exc)}") from None
    if not directory.is_dir():
        raise KeyringError(f"{directory} exists but is not a directory")


def write_key_file(path: Path, data: bytes, *, mode: int = SECRET_MODE) -> None:
    """Atomically replace ``path`` (a link there is replaced, never followed)."""
    try:
        atomic_write_bytes(path, data, mode=mode)
    except OSError as exc:
        raise KeyringError(f"cannot write {path}: {_reason(exc)}") from None


def create_key_file_once(path: Path, data: bytes) -> bool:
    """Write ``data`` to ``path`` (mode 0600) only if nothing is there; False when another file won.

    The file is complete and fsynced before it becomes visible (linked into place), so a
    process racing to create the same file reads either nothing or the whole winner.
    """
    try:
        ensure_directory(path.parent)
        fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    except OSError as exc:
        raise KeyringError(f"cannot write {path}: {_reason(exc)}") from None
    try:
        os.fchmod(fd, SECRET_MODE)
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        try:
            os.link(tmp_name, path)
        except FileExistsError:
            return False
        fsync_directory(path.parent)
        return True
    except OSError as exc:
        raise KeyringError(f"cannot write {path}: {_reason(exc)}") from None
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp_name)


@contextlib.contextmanager
def keyring_lock(directory: Path) -> Iterator[None]:
    """Hold the keyring's exclusive lock (``keys/.lock``) for a read-modify-write update."""
    ensure_directory(directory)
    try:
        fd = os.open(directory / _LOCK_FILE, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, SECRET_MODE)
    except OSError as exc:
        raise KeyringError(f"cannot lock the keyring {directory}: {_reason(exc)}") from None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)
