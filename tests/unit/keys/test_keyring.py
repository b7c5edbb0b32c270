"""The keyring: creation, storage permissions, tamper detection, defaults."""

from __future__ import annotations

import json
import stat
from pathlib import Path

import pytest

from tracemark.errors import KeyringError, UnknownKeyError
from tracemark.keys import Keyring, TextKey, tracemark_home
from tracemark.text import new_text_key


def test_home_follows_the_environment(isolated_home: Path) -> None:
    assert tracemark_home() == isolated_home


def test_create_is_idempotent_and_private(isolated_home: Path) -> None:
    keyring = Keyring()
    assert keyring.create() is True
    master = (isolated_home / "keys" / "master.key").read_bytes()
    assert keyring.create() is False
    assert (isolated_home / "keys" / "master.key").read_bytes() == master
    mode = stat.S_IMODE((isolated_home / "keys" / "master.key").stat().st_mode)
    assert mode == 0o600
    assert stat.S_IMODE((isolated_home / "keys").stat().st_mode) == 0o700


def test_derived_secrets_differ_by_label_and_are_stable() -> None:
    keyring = Keyring()
    keyring.create()
    assert keyring.derive_secret("a") == keyring.derive_secret("a")
    assert keyring.derive_secret("a") != keyring.derive_secret("b")
    assert len(keyring.derive_secret("a", 48)) == 48


def test_add_get_list_and_default(word_model: Path) -> None:
    keyring = Keyring()
    keyring.create()
    key = new_text_key(keyring, "native", word_model, make_default=True)
    assert keyring.get(key.key_id) == key
    assert [k.key_id for k in keyring.list()] == [key.key_id]
    assert keyring.default("text") == key
    path = keyring.directory / f"{key.key_id}.json"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_altered_key_record_is_rejected(word_model: Path) -> None:
    keyring = Keyring()
    keyring.create()
    key = new_text_key(keyring, "native", word_model)
    path = keyring.directory / f"{key.key_id}.json"
    record = json.loads(path.read_text())
    record["params"]["gamma"] = 0.5
    path.write_text(json.dumps(record))
    with pytest.raises(KeyringError, match="altered"):
        keyring.get(key.key_id)


def test_malformed_record_is_a_keyring_error() -> None:
    with pytest.raises(KeyringError):
        TextKey.from_json(b"{not json")
    with pytest.raises(KeyringError):
        TextKey.from_json(b'{"format": "something else"}')


def test_unknown_and_hostile_ids() -> None:
    keyring = Keyring()
    keyring.create()
    with pytest.raises(UnknownKeyError):
        keyring.get("tm-native-0000000000000000")
    with pytest.raises(UnknownKeyError):
        keyring.get("../../etc/passwd")
    with pytest.raises(UnknownKeyError):
        keyring.default("text")


def test_no_keyring_is_a_clear_error() -> None:
    with pytest.raises(KeyringError, match="keys init"):
        Keyring().derive_secret("x")
