"""The CLI: verbs, --json, one-line errors and exit statuses."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from tests.support.cli import run_cli as run
from tracemark.keys import Keyring
from tracemark.text import SCHEME_NAMES


def test_keys_init_and_list(capsys: pytest.CaptureFixture[str], word_model: Path) -> None:
    status, out, _ = run(capsys, "keys", "init", "--model", str(word_model), "--json")
    assert status == 0
    created = json.loads(out)["created"]
    assert {k.split("-")[1] for k in created} == {"native", "kgw", "synthid"}
    status, out, _ = run(capsys, "keys", "init", "--model", str(word_model))
    assert status == 0
    assert "already initialised" in out
    status, out, _ = run(capsys, "keys", "list", "--json")
    listing = json.loads(out)
    assert len(listing["keys"]) == 3
    assert listing["defaults"]["text"].startswith("tm-native-")
    assert all("secret" not in k for k in listing["keys"])


def test_keys_init_without_a_model_fails_loudly_and_keeps_the_other_keys(
    capsys: pytest.CaptureFixture[str], word_model: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # what a wheel install sees: no models/reference above the package
    monkeypatch.setenv("TRACEMARK_REFERENCE_MODEL", str(tmp_path / "no-such-model"))
    status, out, err = run(capsys, "keys", "init")
    assert status == 4
    assert out == ""
    assert err.count("\n") == 1
    assert "no text keys" in err
    assert "no-such-model is not a model folder" in err
    assert Keyring().exists()
    status, out, _ = run(capsys, "keys", "init", "--model", str(word_model), "--json")
    assert status == 0
    created = json.loads(out)["created"]
    assert len(created) == len(SCHEME_NAMES)
    # idempotent per model: a second run makes no more keys
    status, out, _ = run(capsys, "keys", "init", "--model", str(word_model), "--json")
    assert (status, json.loads(out)["created"]) == (0, [])


def test_keys_show_never_prints_secrets(capsys: pytest.CaptureFixture[str], word_model: Path) -> None:
    run(capsys, "keys", "init", "--model", str(word_model))
    _, out, _ = run(capsys, "keys", "list", "--json")
    for record in json.loads(out)["keys"]:
        status, shown, _ = run(capsys, "keys", "show", record["key_id"], "--json")
        assert status == 0
        assert "secret" not in shown
        assert "aes_key" not in shown
        assert "hashing_key" not in shown


def test_keys_new_with_params(capsys: pytest.CaptureFixture[str], word_model: Path) -> None:
    run(capsys, "keys", "init", "--model", str(word_model))
    status, out, _ = run(
        capsys, "keys", "new", "--scheme", "native", "--model", str(word_model), "--param", "gamma=0.5", "--json"
    )
    assert status == 0
    assert json.loads(out)["params"]["gamma"] == 0.5
    status, _, err = run(capsys, "keys", "new", "--model", str(word_model), "--param", "gamma=2")
    assert status == 4
    assert err.startswith("tracemark: error:")
    assert err.count("\n") == 1


def test_detect_json_on_unmarked_text(capsys: pytest.CaptureFixture[str], word_model: Path, tmp_path: Path) -> None:
    run(capsys, "keys", "init", "--model", str(word_model))
    sample = tmp_path / "plain.txt"
    sample.write_text(" ".join(f"w{(i * 7919) % 2000}" for i in range(300)))
    status, out, _ = run(capsys, "text", "detect", "--model", str(word_model), str(sample), "--json")
    assert status == 0
    verdict = json.loads(out)
    assert verdict["marked"] is False
    assert verdict["tokens_total"] == 300
    assert verdict["scheme"] == "native"


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"", "empty"),
        (b"\x00\x01\x02binary", "binary"),
        (b"caf\xe9 au lait", "UTF-8"),
    ],
)
def test_detect_bad_input_is_one_line(
    capsys: pytest.CaptureFixture[str], word_model: Path, tmp_path: Path, content: bytes, message: str
) -> None:
    run(capsys, "keys", "init", "--model", str(word_model))
    sample = tmp_path / "bad.txt"
    sample.write_bytes(content)
    status, out, err = run(capsys, "text", "detect", "--model", str(word_model), str(sample))
    assert status == 2
    assert out == ""
    assert message in err
    assert err.count("\n") == 1
    assert "Traceback" not in err


def test_detect_refuses_a_10_mb_file(capsys: pytest.CaptureFixture[str], word_model: Path, tmp_path: Path) -> None:
    run(capsys, "keys", "init", "--model", str(word_model))
    big = tmp_path / "big.txt"
    big.write_bytes(b"w1 w2 w3 " * (10 * 1024 * 1024 // 9 + 1))
    status, _, err = run(capsys, "text", "detect", "--model", str(word_model), str(big))
    assert status == 2
    assert "limit" in err


def test_unknown_key_and_missing_keyring(capsys: pytest.CaptureFixture[str], word_model: Path, tmp_path: Path) -> None:
    sample = tmp_path / "t.txt"
    sample.write_text("w1 w2 w3 w4")
    status, _, err = run(capsys, "text", "detect", "--model", str(word_model), str(sample))
    assert status == 3
    assert "keys init" in err
    run(capsys, "keys", "init", "--model", str(word_model))
    status, _, err = run(capsys, "text", "detect", "--model", str(word_model), "--key", "tm-nope", str(sample))
    assert status == 3
    assert "unknown key" in err


def test_missing_file_and_model(capsys: pytest.CaptureFixture[str], word_model: Path, tmp_path: Path) -> None:
    run(capsys, "keys", "init", "--model", str(word_model))
    status, _, err = run(capsys, "text", "detect", "--model", str(word_model), str(tmp_path / "absent.txt"))
    assert status == 2
    assert "no such file" in err
    (tmp_path / "t.txt").write_text("hello")
    status, _, err = run(capsys, "text", "detect", "--model", str(tmp_path / "nomodel"), str(tmp_path / "t.txt"))
    assert status == 4
    assert "tokenizer.json" in err


def _members(typed: object) -> set[str]:
    return set(typed.__required_keys__) | set(typed.__optional_keys__)  # type: ignore[attr-defined]


def test_keys_json_members(capsys: pytest.CaptureFixture[str], word_model: Path) -> None:
    """``keys init/list --json`` and each key's public record have the members their types name."""
    from tracemark.cli.keys import KeyListPayload

    _, out, _ = run(capsys, "keys", "init", "--model", str(word_model), "--json")
    assert set(json.loads(out)) == {"home", "defaults", "keys", "created"} == _members(KeyListPayload)
    _, out, _ = run(capsys, "keys", "list", "--json")
    listing = json.loads(out)
    assert set(listing) == {"home", "defaults", "keys"}
    record = {"format", "key_id", "kind", "scheme", "scheme_version", "params", "vocab_size", "tokenizer_sha256"}
    record |= {"salt", "created_at", "label", "commitment"}
    assert all(set(key) == record for key in listing["keys"])


def test_tlog_append_json_members(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    from tracemark.cli.tlog import AppendPayload

    db = str(tmp_path / "log.sqlite3")
    assert run(capsys, "tlog", "init", "--db", db)[0] == 0
    content = tmp_path / "content.txt"
    content.write_text("some output")
    argv = ["tlog", "append", "--db", db, "--content", str(content), "--kind", "text", "--model-id", "m"]
    status, out, err = run(capsys, *argv, "--key-id", "tm-native-1", "--json")
    assert status == 0, err
    assert set(json.loads(out)) == {"appended", "tree_size", "root_hash", "records"}
    status, out, err = run(capsys, *argv, "--key-id", "tm-native-1", "--receipt", str(tmp_path / "r"), "--json")
    assert status == 0, err
    payload = json.loads(out)
    assert set(payload) == {"appended", "tree_size", "root_hash", "records", "receipt"} == _members(AppendPayload)
    (appended,) = payload["appended"]
    assert set(appended) == {"index", "leaf_hash", "integrated_time"}
    assert appended["index"] == 1
    assert abs(appended["integrated_time"] - time.time()) < 600  # the log's clock, in seconds since the epoch
