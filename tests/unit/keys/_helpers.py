"""Helpers shared by the keyring tests."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from tracemark.keys import Keyring


@dataclass(frozen=True)
class CliResult:
    """What one in-process ``tracemark`` run returned and printed."""

    status: int
    out: str
    err: str

    @property
    def one_line_error(self) -> bool:
        """The CLI's error contract: exactly one ``tracemark: error:`` line, no traceback."""
        lines = self.err.splitlines()
        return len(lines) == 1 and lines[0].startswith("tracemark: error: ") and "Traceback" not in self.err


CliRunner = Callable[..., CliResult]

#: Every keyring file that holds a secret, relative to ``keys/`` (``tm-*.json`` stands for the text key).
SECRET_FILES = ("master.key", "tm-*.json", "log.skey", "witness.skey", "api-tokens.json", "c2pa/signer.key")


def secret_file(keyring: Keyring, pattern: str) -> Path:
    """The one file matching ``pattern`` under ``keys/``."""
    (path,) = keyring.directory.glob(pattern)
    return path


def load_everything(keyring: Keyring, token: str) -> None:
    """Read every file of the keyring the way the CLI and the service do."""
    from tracemark.keys import load_log_key, load_media_certificate, load_witness_key, verify_api_token

    keyring.list()
    keyring.default("text")
    keyring.derive_secret("probe")
    load_log_key(keyring)
    load_witness_key(keyring)
    load_media_certificate(keyring)
    verify_api_token(keyring, token)
