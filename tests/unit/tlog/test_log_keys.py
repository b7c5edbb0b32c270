"""The log's note key and the witness key in the keyring."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from tests.support.threads import run_in_threads
from tracemark.errors import KeyringError, UnknownKeyError
from tracemark.keys import Keyring, ensure_log_key, ensure_witness_key, load_log_key, load_witness_key
from tracemark.tlog import SIG_COSIGNATURE_V1, SIG_ED25519, NoteSigner, NoteVerifier


@pytest.fixture
def keyring(isolated_home: Path) -> Keyring:
    ring = Keyring()
    ring.create()
    return ring


def test_log_key_is_created_once(keyring: Keyring) -> None:
    first = ensure_log_key(keyring)
    assert first.signature_type == SIG_ED25519
    assert first.name.startswith("tracemark.invalid/log/")
    assert ensure_log_key(keyring).vkey == first.vkey
    assert load_log_key(keyring).vkey == first.vkey
    path = keyring.directory / "log.skey"
    assert path.stat().st_mode & 0o777 == 0o600
    assert path.read_text().startswith("PRIVATE+KEY+tracemark.invalid/log/")
    assert NoteVerifier.from_vkey(first.vkey) == first.verifier


def test_origin_is_fixed_once_chosen(keyring: Keyring) -> None:
    signer = ensure_log_key(keyring, origin="example.com/my-log")
    assert signer.name == "example.com/my-log"
    assert ensure_log_key(keyring, origin="example.com/my-log").vkey == signer.vkey
    with pytest.raises(KeyringError, match="already exists"):
        ensure_log_key(keyring, origin="example.com/another")


def test_racing_creators_share_one_key(keyring: Keyring) -> None:
    keys: list[str] = []
    lock = threading.Lock()

    def create() -> None:
        vkey = ensure_log_key(keyring).vkey
        with lock:
            keys.append(vkey)

    run_in_threads(8, lambda _: create())
    assert len(set(keys)) == 1
    assert not [p for p in keyring.directory.iterdir() if p.name.endswith(".tmp")]


def test_missing_keyring_and_missing_key(isolated_home: Path) -> None:
    with pytest.raises(KeyringError, match="keys init"):
        ensure_log_key(Keyring())
    Keyring().create()
    with pytest.raises(UnknownKeyError, match="keys init"):
        load_log_key(Keyring())
    with pytest.raises(UnknownKeyError):
        load_witness_key(Keyring())


def test_corrupt_or_wrong_type_files(keyring: Keyring) -> None:
    (keyring.directory / "log.skey").write_text("PRIVATE+KEY+garbage\n")
    with pytest.raises(KeyringError, match="corrupt"):
        load_log_key(keyring)
    (keyring.directory / "log.skey").write_text(NoteSigner.generate("w", SIG_COSIGNATURE_V1).skey)
    with pytest.raises(KeyringError, match="type 0x04"):
        load_log_key(keyring)


def test_witness_key(keyring: Keyring) -> None:
    witness = ensure_witness_key(keyring, name="witness.example/w9")
    assert witness.signature_type == SIG_COSIGNATURE_V1
    assert load_witness_key(keyring).vkey == witness.vkey
    assert ensure_witness_key(keyring).vkey == witness.vkey
    assert witness.vkey != ensure_log_key(keyring).vkey


def test_keys_package_names_the_note_formats_signature_types() -> None:
    from tracemark.keys import _log_key

    assert (_log_key.SIG_ED25519, _log_key.SIG_COSIGNATURE_V1) == (SIG_ED25519, SIG_COSIGNATURE_V1)


def test_importing_keys_leaves_the_log_package_unloaded() -> None:
    # A scan worker imports tracemark.keys at start; the log package would add a tenth of a second.
    import subprocess
    import sys

    code = "import sys, tracemark.keys, tracemark.text; print('tracemark.tlog' in sys.modules)"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "False"
