"""The transparency log's Ed25519 note key and the local witness's cosigning key.

Both live in the keyring directory as one-line signer keys in the golang.org/x/mod/sumdb/note
format, mode 0600::

    keys/log.skey       PRIVATE+KEY+<origin>+<key id>+base64(0x01 || seed)   signs checkpoints
    keys/witness.skey   PRIVATE+KEY+<name>+<key id>+base64(0x04 || seed)     cosignature/v1

A key file is created once and never replaced: creation links a fully written temporary
file into place, so two processes racing to create it end up sharing the first one.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

from tracemark.errors import KeyringError, TracemarkError, UnknownKeyError
from tracemark.keys._files import check_private, create_key_file_once, read_key_file
from tracemark.keys._keyring import Keyring

if TYPE_CHECKING:
    from tracemark.tlog import NoteSigner

# The note format's signature types (tracemark.tlog's SIG_ED25519 and SIG_COSIGNATURE_V1, which a
# test holds equal).  The log package is imported where a key is read or made, not here: every
# ``import tracemark.keys`` (a text scan worker's start, for one) would otherwise pay for it.
SIG_ED25519 = 0x01
SIG_COSIGNATURE_V1 = 0x04

LOG_KEY_FILE = "log.skey"
WITNESS_KEY_FILE = "witness.skey"


def _default_name(kind: str) -> str:
    # A schema-less URL under the reserved .invalid TLD (RFC 2606): unique, never reachable.
    return f"tracemark.invalid/{kind}/{os.urandom(6).hex()}"


def _load(path: Path, signature_type: int, what: str) -> NoteSigner:
    from tracemark.tlog import NoteSigner

    try:
        data, mode = read_key_file(path, what)
    except FileNotFoundError:
        raise UnknownKeyError(f"no {what} in {path.parent}: run 'tracemark keys init'") from None
    try:
        signer = NoteSigner.from_skey(data.decode("utf-8").strip())
    except UnicodeDecodeError:
        raise KeyringError(f"corrupt {what} file {path}: not UTF-8") from None
    except TracemarkError as exc:
        raise KeyringError(f"corrupt {what} file {path}: {exc.diagnostics()}") from None
    if signer.signature_type != signature_type:
        raise KeyringError(f"{path} holds a key of type 0x{signer.signature_type:02x}, not 0x{signature_type:02x}")
    check_private(path, mode, what)
    return signer


def _ensure(keyring: Keyring, filename: str, signature_type: int, what: str, name: str | None) -> NoteSigner:
    if not keyring.exists():
        raise keyring.missing_error()
    path = keyring.directory / filename
    if not path.is_symlink() and not path.exists():
        from tracemark.tlog import NoteSigner

        signer = NoteSigner.generate(name or _default_name("log" if signature_type == SIG_ED25519 else "witness"),
                                     signature_type)  # fmt: skip
        create_key_file_once(path, (signer.skey + "\n").encode())
    signer = _load(path, signature_type, what)
    if name is not None and signer.name != name:
        raise KeyringError(f"the {what} already exists with the name {signer.name!r}, not {name!r}")
    return signer


def ensure_log_key(keyring: Keyring, *, origin: str | None = None) -> NoteSigner:
    """The log's Ed25519 note key, created on first use; its name is the log's origin.

    ``origin`` names a new key (default ``tracemark.invalid/log/<random>``); for an
    existing key it must match, since a log's origin never changes.
    """
    return _ensure(keyring, LOG_KEY_FILE, SIG_ED25519, "log key", origin)


def load_log_key(keyring: Keyring) -> NoteSigner:
    """The log's note key; raises :class:`~tracemark.errors.UnknownKeyError` when it was never created."""
    return _load(keyring.directory / LOG_KEY_FILE, SIG_ED25519, "log key")


def ensure_witness_key(keyring: Keyring, *, name: str | None = None) -> NoteSigner:
    """The local witness's cosignature/v1 key (type 0x04), created on first use."""
    return _ensure(keyring, WITNESS_KEY_FILE, SIG_COSIGNATURE_V1, "witness key", name)


def load_witness_key(keyring: Keyring) -> NoteSigner:
    """The local witness's cosigning key; raises when it was never created."""
    return _load(keyring.directory / WITNESS_KEY_FILE, SIG_COSIGNATURE_V1, "witness key")
