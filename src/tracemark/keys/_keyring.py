"""The local keyring under ``TRACEMARK_HOME/keys``.

Layout (every file mode 0600, written atomically; see :mod:`tracemark.keys._files` for the rules
on links, permissions, locking and errors)::

    keys/master.key          32 random bytes, hex; every scheme secret is HMAC-derived from it
    keys/<key_id>.json       one self-describing key record each
    keys/defaults.json       {"text": "<key_id>", ...}: the key each purpose uses by default
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import re
import secrets
from pathlib import Path

from tracemark.errors import KeyringError, UnknownKeyError
from tracemark.keys._files import (
    check_private,
    create_key_file_once,
    ensure_directory,
    keyring_lock,
    read_key_file,
    write_key_file,
)
from tracemark.keys._home import tracemark_home
from tracemark.keys._records import KeyId, TextKey

_MASTER_BYTES = 32
_KEY_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")


class Keyring:
    """Key records on disk; one instance per ``TRACEMARK_HOME``."""

    def __init__(self, home: Path | None = None) -> None:
        self.home = home if home is not None else tracemark_home()
        self.directory = self.home / "keys"

    # -- creation -----------------------------------------------------------------
    def exists(self) -> bool:
        """True when ``keys init`` has run for this home."""
        return (self.directory / "master.key").is_file()

    def missing_error(self) -> KeyringError:
        """The error for a keyring that is not there: a home that is not a folder, or no ``keys init`` yet."""
        if self.home.exists() and not self.home.is_dir():
            return KeyringError(f"the keyring home {self.home} is not a directory (set TRACEMARK_HOME to a folder)")
        return KeyringError(f"no keyring at {self.home}: run 'tracemark keys init'")

    def create(self) -> bool:
        """Create the master secret if missing; returns False when it already existed.

        Safe against concurrent ``keys init``: exactly one process writes the master secret
        and every process then uses that one.
        """
        if self.exists():
            return False
        if self.home.exists() and not self.home.is_dir():
            raise self.missing_error()
        ensure_directory(self.directory)
        try:
            os.chmod(self.directory, 0o700)
        except OSError as exc:
            raise KeyringError(f"cannot restrict {self.directory} to its owner: {exc.strerror}") from None
        return create_key_file_once(self.directory / "master.key", secrets.token_hex(_MASTER_BYTES).encode() + b"\n")

    def derive_secret(self, label: str, length: int = 32) -> bytes:
        """HMAC-SHA256(master, label), expanded to ``length`` bytes (HKDF-Expand style)."""
        master = self._master()
        out = b""
        block = b""
        counter = 1
        while len(out) < length:
            block = hmac.new(master, block + label.encode() + bytes([counter]), hashlib.sha256).digest()
            out += block
            counter += 1
        return out[:length]

    def _master(self) -> bytes:
        path = self.directory / "master.key"
        if not path.exists() and not path.is_symlink():
            raise self.missing_error()
        try:
            data, mode = read_key_file(path, "master key file")
        except FileNotFoundError:
            raise self.missing_error() from None
        text = data.strip()
        if len(text) != 2 * _MASTER_BYTES or not re.fullmatch(rb"[0-9a-fA-F]+", text):
            raise KeyringError(f"corrupt master key file {path}: expected {_MASTER_BYTES} bytes in hex")
        check_private(path, mode, "master key file")
        return bytes.fromhex(text.decode("ascii"))

    # -- records ------------------------------------------------------------------
    def add(self, key: TextKey, *, default_for: str | None = None) -> None:
        """Store a key record (and optionally make it the default for a purpose)."""
        if not self.exists():
            raise self.missing_error()
        write_key_file(self.directory / f"{key.key_id}.json", key.to_json())
        if default_for is not None:
            self.set_default(default_for, key.key_id)

    def get(self, key_id: str) -> TextKey:
        """Load one key record by id; raises :class:`UnknownKeyError` when absent."""
        if not isinstance(key_id, str) or not _KEY_ID.fullmatch(key_id):
            raise UnknownKeyError(f"invalid key id {key_id!r}")
        try:
            return self._load(self.directory / f"{key_id}.json", key_id)
        except FileNotFoundError:
            known = ", ".join(k.key_id for k in self.list()) or "none"
            raise UnknownKeyError(f"unknown key id {key_id!r} (known: {known})") from None

    def _load(self, path: Path, key_id: str) -> TextKey:
        data, mode = read_key_file(path, "key file")
        key = TextKey.from_json(data, where=f"key record {path}")
        if key.key_id != key_id:
            raise KeyringError(f"key file {path} holds key {key.key_id}, not {key_id}")
        check_private(path, mode, "key file")
        return key

    def list(self) -> list[TextKey]:
        """Every key record, sorted by creation time then id; a damaged record is an error, never skipped."""
        if not self.directory.is_dir():
            if self.home.exists() and not self.home.is_dir():
                raise self.missing_error()
            return []
        keys = []
        for path in sorted(self.directory.glob("tm-*.json")):
            try:
                keys.append(self._load(path, path.name.removesuffix(".json")))
            except FileNotFoundError:
                continue  # removed since the listing
        return sorted(keys, key=lambda k: (k.created_at, k.key_id))

    def defaults(self) -> dict[str, KeyId]:
        """Purpose -> key id of the default keys."""
        path = self.directory / "defaults.json"
        try:
            data, _ = read_key_file(path, "defaults file")
        except FileNotFoundError:
            return {}
        try:
            raw = json.loads(data)
        except (ValueError, RecursionError):
            raise KeyringError(f"corrupt {path}: not JSON") from None
        if not isinstance(raw, dict) or not all(
            isinstance(value, str) and _KEY_ID.fullmatch(value) for value in raw.values()
        ):
            raise KeyringError(f"corrupt {path}: expected an object mapping each purpose to a key id")
        return {str(k): KeyId(v) for k, v in raw.items()}

    def set_default(self, purpose: str, key_id: str) -> None:
        """Make ``key_id`` the default key for ``purpose`` (e.g. ``"text"``).

        Runs under the keyring lock, so concurrent processes setting defaults never lose one.
        """
        self.get(key_id)
        with keyring_lock(self.directory):
            defaults = {**self.defaults(), purpose: KeyId(key_id)}
            write_key_file(
                self.directory / "defaults.json", json.dumps(defaults, indent=2, sort_keys=True).encode() + b"\n"
            )

    def default(self, purpose: str = "text") -> TextKey:
        """The default key for ``purpose``; raises when ``keys init`` has not run."""
        key_id = self.defaults().get(purpose)
        if key_id is None:
            raise UnknownKeyError(f"no default {purpose} key in {self.home}: run 'tracemark keys init'")
        return self.get(key_id)
