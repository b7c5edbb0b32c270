"""Fixtures for the keyring tests: a populated keyring and an in-process CLI runner."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.unit.keys._helpers import CliResult, CliRunner
from tracemark.cli import main
from tracemark.keys import (
    Keyring,
    TextKey,
    ensure_log_key,
    ensure_media_certificate,
    ensure_witness_key,
    mint_api_token,
)
from tracemark.text import new_text_key


@pytest.fixture
def cli(capsys: pytest.CaptureFixture[str]) -> CliRunner:
    """Run ``tracemark`` in this process; returns its status, stdout and stderr."""

    def run(*argv: str) -> CliResult:
        status = main(list(argv))
        captured = capsys.readouterr()
        return CliResult(status, captured.out, captured.err)

    return run


@dataclass(frozen=True)
class Populated:
    """A keyring holding one file of every kind, and every secret it holds (to look for in outputs)."""

    keyring: Keyring
    key: TextKey
    token: str
    secrets: tuple[str, ...]


@pytest.fixture
def keyring(isolated_home: Path) -> Keyring:
    ring = Keyring()
    ring.create()
    return ring


@pytest.fixture
def populated(keyring: Keyring, word_model: Path) -> Populated:
    key = new_text_key(keyring, "native", word_model, make_default=True)
    log_key = ensure_log_key(keyring)
    witness_key = ensure_witness_key(keyring)
    certificate = ensure_media_certificate(keyring)
    token = mint_api_token(keyring, label="test")
    master = (keyring.directory / "master.key").read_text().strip()
    pem_body = [
        line for line in certificate.private_key_pem.decode().splitlines() if len(line) >= 16 and "-" not in line
    ]
    found = (
        master,
        *(str(value) for value in key.secret.values()),
        log_key.skey.split("+", 4)[4],
        witness_key.skey.split("+", 4)[4],
        token.split("_", 2)[2],
        *pem_body,
    )
    return Populated(keyring, key, token, tuple(found))
