"""The local keyring under ``TRACEMARK_HOME/keys``.

Layout (every file mode 0600, written atomically)::

    keys/master.key          32 random bytes, hex; every scheme secret is HMAC-derived from it
    keys/<key_id>.json       one self-describing key record each
    keys/defaults.json       {"text": "<key_id>", ...}: the key each purpose uses by default
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import secrets
from pathlib import Path

from tracemark._fs import atomic_write_bytes
from tracemark.errors import KeyringError, UnknownKeyError
from tracemark.keys._home import tracemark_home
from tracemark.keys._records import KeyId, TextKey

_SECRET_MODE = 0o600


class Keyring:
    """Key records on disk; one instance per ``TRACEMARK_HOME``."""

    def __init__(self, home: Path | None = None) -> None:
        self.home = home if home is not None else tracemark_home()
        self.directory = self.home / "keys"

    # -- creation -----------------------------------------------------------------
    def exists(self) -> bool:
        """True when ``keys init`` has run for this home."""
        return (self.directory / "master.key").is_file()

    def create(self) -> bool:
        """Create the master secret if missing; returns False when it already existed."""
        if self.exists():
            return False
        self.directory.mkdir(parents=True, exist_ok=True)
        os.chmod(self.directory, 0o700)
        atomic_write_bytes(self.directory / "master.key", secrets.token_hex(32).encode() + b"\n", mode=_SECRET_MODE)
        return True

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
        try:
            return bytes.fromhex(path.read_text().strip())
        except FileNotFoundError:
            raise KeyringError(f"no keyring at {self.home}: run 'tracemark keys init'") from None
        except ValueError:
            raise KeyringError(f"corrupt master key file {path}") from None

    # -- records ------------------------------------------------------------------
    def add(self, key: TextKey, *, default_for: str | None = None) -> None:
        """Store a key record (and optionally make it the default for a purpose)."""
        if not self.exists():
            raise KeyringError(f"no keyring at {self.home}: run 'tracemark keys init'")
        atomic_write_bytes(self.directory / f"{key.key_id}.json", key.to_json(), mode=_SECRET_MODE)
        if default_for is not None:
            self.set_default(default_for, key.key_id)

    def get(self, key_id: str) -> TextKey:
        """Load one key record by id; raises :class:`UnknownKeyError` when absent."""
        if not key_id or "/" in key_id or key_id.startswith("."):
            raise UnknownKeyError(f"invalid key id {key_id!r}")
        path = self.directory / f"{key_id}.json"
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            known = ", ".join(k.key_id for k in self.list()) or "none"
            raise UnknownKeyError(f"unknown key id {key_id!r} (known: {known})") from None
        return TextKey.from_json(data)

    def list(self) -> list[TextKey]:
        """Every key record, sorted by creation time then id."""
        if not self.directory.is_dir():
            return []
        keys = [TextKey.from_json(p.read_bytes()) for p in sorted(self.directory.glob("tm-*.json"))]
        return sorted(keys, key=lambda k: (k.created_at, k.key_id))

    def defaults(self) -> dict[str, KeyId]:
        """Purpose -> key id of the default keys."""
        path = self.directory / "defaults.json"
        if not path.is_file():
            return {}
        try:
            raw = json.loads(path.read_text())
        except ValueError:
            raise KeyringError(f"corrupt {path}") from None
        return {str(k): KeyId(str(v)) for k, v in raw.items()}

    def set_default(self, purpose: str, key_id: str) -> None:
        """Make ``key_id`` the default key for ``purpose`` (e.g. ``"text"``)."""
        self.get(key_id)
        defaults = {**self.defaults(), purpose: KeyId(key_id)}
        atomic_write_bytes(
            self.directory / "defaults.json",
            json.dumps(defaults, indent=2, sort_keys=True).encode() + b"\n",
            mode=_SECRET_MODE,
        )

    def default(self, purpose: str = "text") -> TextKey:
        """The default key for ``purpose``; raises when ``keys init`` has not run."""
        key_id = self.defaults().get(purpose)
        if key_id is None:
            raise UnknownKeyError(f"no default {purpose} key in {self.home}: run 'tracemark keys init'")
        return self.get(key_id)
