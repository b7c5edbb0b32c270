"""Corrupted keyring files: every one is a one-line KeyringError naming the file, never a traceback.

Covers the master secret, key records (truncated, wrong types, altered, misplaced), the defaults
file, API tokens and the log and witness keys, through the library and through the CLI.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.unit.keys._helpers import CliRunner, load_everything
from tests.unit.keys.conftest import Populated
from tracemark.errors import KeyMismatchError, KeyringError, UnknownKeyError
from tracemark.keys import (
    Keyring,
    TextKey,
    load_log_key,
    load_witness_key,
    make_text_key,
    mint_api_token,
    verify_api_token,
)
from tracemark.text import load_scheme, new_text_key

# -- the master secret ---------------------------------------------------------------------------

MASTER_CORRUPTIONS = {
    "empty": b"",
    "truncated": b"ab" * 31 + b"a",
    "short (16 bytes)": b"ab" * 16 + b"\n",
    "long (33 bytes)": b"ab" * 33 + b"\n",
    "not hex": b"zz" * 32 + b"\n",
    "binary": bytes(range(256)),
    "hex with inner spaces": b"ab" * 16 + b" " + b"ab" * 16,
}


@pytest.mark.parametrize("content", MASTER_CORRUPTIONS.values(), ids=MASTER_CORRUPTIONS.keys())
def test_a_corrupt_master_secret_is_refused(keyring: Keyring, content: bytes) -> None:
    path = keyring.directory / "master.key"
    path.write_bytes(content)
    with pytest.raises(KeyringError, match="corrupt master key file") as caught:
        keyring.derive_secret("label")
    assert str(path) in str(caught.value)


def test_a_short_master_secret_never_derives_keys(keyring: Keyring) -> None:
    # Before: bytes.fromhex("") gave an empty HMAC key and every "secret" was public.
    (keyring.directory / "master.key").write_bytes(b"\n")
    with pytest.raises(KeyringError):
        keyring.derive_secret("tracemark/media/v1")


def test_a_folder_in_place_of_the_master_secret(isolated_home: Path) -> None:
    (isolated_home / "keys" / "master.key").mkdir(parents=True)
    with pytest.raises(KeyringError, match="not a regular file"):
        Keyring().derive_secret("label")


# -- key records ---------------------------------------------------------------------------------


def _set(field: str, value: Any) -> Callable[[dict[str, Any]], Any]:
    def corrupt(record: dict[str, Any]) -> Any:
        record[field] = value
        return record

    return corrupt


def _drop(field: str) -> Callable[[dict[str, Any]], Any]:
    def corrupt(record: dict[str, Any]) -> Any:
        del record[field]
        return record

    return corrupt


RECORD_CORRUPTIONS: dict[str, Callable[[dict[str, Any]], Any]] = {
    "a JSON array": lambda record: [record],
    "null": lambda record: None,
    "a number": lambda record: 7,
    "another format": _set("format", "tracemark.key/v0"),
    "vocab_size a string": _set("vocab_size", "2001"),
    "vocab_size a float": _set("vocab_size", 2001.0),
    "vocab_size boolean": _set("vocab_size", True),
    "vocab_size zero": _set("vocab_size", 0),
    "params a list": _set("params", [["gamma", 0.25]]),
    "secret a string": _set("secret", "00" * 16),
    "secret missing": _drop("secret"),
    "key_id a number": _set("key_id", 12),
    "scheme null": _set("scheme", None),
    "label a list": _set("label", ["x"]),
    "salt missing": _drop("salt"),
    "params altered": lambda record: {**record, "params": {**record["params"], "gamma": 0.5}},
    "secret altered": lambda record: {**record, "secret": {"aes_key": "00" * 16}},
}


def _rewrite(path: Path, corrupt: Callable[[dict[str, Any]], Any]) -> None:
    path.write_text(json.dumps(corrupt(json.loads(path.read_text()))))


@pytest.mark.parametrize("corrupt", RECORD_CORRUPTIONS.values(), ids=RECORD_CORRUPTIONS.keys())
def test_a_corrupt_key_record_is_refused_by_get_list_and_default(
    populated: Populated, corrupt: Callable[[dict[str, Any]], Any]
) -> None:
    keyring, key = populated.keyring, populated.key
    path = keyring.directory / f"{key.key_id}.json"
    _rewrite(path, corrupt)
    for load in (lambda: keyring.get(key.key_id), keyring.list, lambda: keyring.default("text")):
        with pytest.raises(KeyringError) as caught:
            load()
        assert not isinstance(caught.value, UnknownKeyError)
        assert str(path) in str(caught.value)


RAW_RECORDS = {
    "empty": b"",
    "truncated": None,  # the real record cut in half
    "not UTF-8": b"\xff\xfe{}",
    "nested 100,000 deep": b"[" * 100_000 + b"]" * 100_000,
    "a huge number": b'{"vocab_size": 1e999}',
}


@pytest.mark.parametrize("content", RAW_RECORDS.values(), ids=RAW_RECORDS.keys())
def test_a_key_record_that_is_not_json_is_refused(populated: Populated, content: bytes | None) -> None:
    keyring, key = populated.keyring, populated.key
    path = keyring.directory / f"{key.key_id}.json"
    original = path.read_bytes()
    path.write_bytes(original[: len(original) // 2] if content is None else content)
    with pytest.raises(KeyringError, match=r"key file|key record"):
        keyring.get(key.key_id)


def test_a_record_under_another_keys_name_is_refused(populated: Populated, word_model: Path) -> None:
    keyring = populated.keyring
    other = new_text_key(keyring, "native", word_model)
    (keyring.directory / f"{other.key_id}.json").write_bytes(populated.key.to_json())
    with pytest.raises(KeyringError, match=f"holds key {populated.key.key_id}, not {other.key_id}"):
        keyring.get(other.key_id)


def test_a_secret_of_the_wrong_length_is_refused_where_it_is_used(
    populated: Populated, word_model: Path, cli: CliRunner
) -> None:
    keyring, good = populated.keyring, populated.key
    short = make_text_key(
        scheme=good.scheme,
        scheme_version=good.scheme_version,
        params=good.params,
        vocab_size=good.vocab_size,
        tokenizer_sha256=good.tokenizer_sha256,
        secret={"aes_key": "11" * 8},
    )
    keyring.add(short)
    assert keyring.get(short.key_id) == short  # a well-formed record: the scheme judges its secret
    with pytest.raises(KeyMismatchError, match="128 bits"):
        load_scheme(keyring.get(short.key_id))
    text = word_model.parent / "text.txt"
    text.write_text(" ".join(f"w{i}" for i in range(50)))
    result = cli("text", "detect", str(text), "--model", str(word_model), "--key", short.key_id)
    assert result.status == KeyMismatchError.exit_code
    assert result.one_line_error


@pytest.mark.parametrize("key_id", ["", ".", "../master", "tm-a/b", "tm-\x00", "tm-" + "a" * 200, "tm a"])
def test_hostile_key_ids_are_unknown_not_crashes(keyring: Keyring, key_id: str) -> None:
    with pytest.raises(UnknownKeyError, match="invalid key id"):
        keyring.get(key_id)


# -- the defaults file ---------------------------------------------------------------------------

DEFAULTS_CORRUPTIONS = {
    "truncated": b'{"text": "tm-native-',
    "a list": b'["tm-native-0123456789abcdef"]',
    "a number as id": b'{"text": 5}',
    "null id": b'{"text": null}',
    "a path as id": b'{"text": "../../etc/passwd"}',
    "nested deep": b"[" * 100_000,
    "not UTF-8": b'{"text": "\xff"}',
}


@pytest.mark.parametrize("content", DEFAULTS_CORRUPTIONS.values(), ids=DEFAULTS_CORRUPTIONS.keys())
def test_a_corrupt_defaults_file_is_refused(populated: Populated, content: bytes, cli: CliRunner) -> None:
    keyring = populated.keyring
    (keyring.directory / "defaults.json").write_bytes(content)
    with pytest.raises(KeyringError, match=r"defaults\.json"):
        keyring.default("text")
    result = cli("keys", "list")
    assert result.status == KeyringError.exit_code
    assert result.one_line_error


def test_a_default_naming_a_missing_key_is_an_unknown_key(populated: Populated) -> None:
    keyring = populated.keyring
    os.unlink(keyring.directory / f"{populated.key.key_id}.json")
    with pytest.raises(UnknownKeyError, match="unknown key id"):
        keyring.default("text")


# -- API tokens, log and witness keys ------------------------------------------------------------


@pytest.mark.parametrize(
    "content",
    [b"", b"[]", b'{"abcd": "not a record"}', b'{"abcd": {"sha256": 5}}', b"{" * 50_000, b"\xff"],
    ids=["empty", "a list", "record a string", "hash a number", "nested deep", "not UTF-8"],
)
def test_a_corrupt_token_file_is_refused(populated: Populated, content: bytes) -> None:
    keyring = populated.keyring
    (keyring.directory / "api-tokens.json").write_bytes(content)
    with pytest.raises(KeyringError, match=r"api-tokens\.json"):
        verify_api_token(keyring, populated.token)
    with pytest.raises(KeyringError, match=r"api-tokens\.json"):
        mint_api_token(keyring)


@pytest.mark.parametrize("name", ["log.skey", "witness.skey"])
@pytest.mark.parametrize("content", [b"", b"\xff\xfe", b"PRIVATE+KEY+x+00000000+AAAA\n", b"garbage"])
def test_a_corrupt_note_key_is_refused(populated: Populated, name: str, content: bytes) -> None:
    keyring = populated.keyring
    (keyring.directory / name).write_bytes(content)
    load = load_log_key if name == "log.skey" else load_witness_key
    with pytest.raises(KeyringError, match="corrupt"):
        load(keyring)


def test_an_intact_keyring_loads(populated: Populated) -> None:
    load_everything(populated.keyring, populated.token)


def test_the_cli_reports_a_corrupt_record_in_one_line(populated: Populated, cli: CliRunner) -> None:
    path = populated.keyring.directory / f"{populated.key.key_id}.json"
    path.write_text("[]")
    for argv in (("keys", "list"), ("keys", "show", populated.key.key_id)):
        result = cli(*argv)
        assert result.status == KeyringError.exit_code, argv
        assert result.one_line_error, result.err
        assert str(path) in result.err


def test_records_round_trip_through_the_strict_parser(populated: Populated) -> None:
    key = populated.key
    assert TextKey.from_json(key.to_json()) == key
