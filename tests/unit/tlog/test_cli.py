"""``tracemark tlog``: every verb, --json, one-line errors and exit statuses."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import pytest

from tests.support.cli import run_cli as run
from tracemark.keys import Keyring, ensure_witness_key
from tracemark.tlog import NoteSigner


def run_json(capsys: pytest.CaptureFixture[str], *argv: str) -> dict[str, Any]:
    status, out, err = run(capsys, *argv, "--json")
    assert status == 0, err
    payload: dict[str, Any] = json.loads(out)
    return payload


@pytest.fixture
def db(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> str:
    path = str(tmp_path / "log.sqlite3")
    payload = run_json(capsys, "tlog", "init", "--origin", "example.com/cli-log", "--db", path)
    assert payload["origin"] == "example.com/cli-log"
    assert payload["log_key"].startswith("example.com/cli-log+")
    return path


def append(capsys: pytest.CaptureFixture[str], db: str, content: Path, *extra: str) -> dict[str, Any]:
    args = ["tlog", "append", "--db", db, "--content", str(content), "--kind", "text", "--model-id", "m/1"]
    return run_json(capsys, *args, "--key-id", "tm-native-1", *extra)


def test_append_receipt_and_offline_verify(capsys: pytest.CaptureFixture[str], db: str, tmp_path: Path) -> None:
    content = tmp_path / "output.txt"
    content.write_text("a marked output")
    receipt = tmp_path / "r.tlog-proof"
    appended = append(capsys, db, content, "--receipt", str(receipt))
    assert appended["appended"][0]["index"] == 0
    assert receipt.read_text().startswith("c2sp.org/tlog-proof@v1\n")
    verified = run_json(capsys, "tlog", "verify", str(receipt), "--content", str(content))
    assert verified["valid"] is True
    assert verified["content_matches"] is True
    assert verified["record"]["content_sha256"] == hashlib.sha256(b"a marked output").hexdigest()
    status, out, _ = run(capsys, "tlog", "verify", str(receipt))
    assert status == 0
    assert out.startswith("valid: text from model m/1")
    # Offline with the key given explicitly and no keyring at all.
    vkey = verified["origin"]
    assert vkey == "example.com/cli-log"


def test_verify_failures_are_one_line(capsys: pytest.CaptureFixture[str], db: str, tmp_path: Path) -> None:
    content = tmp_path / "output.txt"
    content.write_text("x")
    receipt = tmp_path / "r.tlog-proof"
    append(capsys, db, content, "--receipt", str(receipt))
    other = tmp_path / "other.txt"
    other.write_text("y")
    status, _, err = run(capsys, "tlog", "verify", str(receipt), "--content", str(other))
    assert status == 6
    assert "not the recorded content" in err
    assert err.count("\n") == 1
    tampered = tmp_path / "t.tlog-proof"
    tampered.write_text(receipt.read_text().replace("index 0", "index 1"))
    status, _, err = run(capsys, "tlog", "verify", str(tampered))
    assert status == 6
    assert err.startswith("tracemark: error: ")
    stranger = NoteSigner.generate("example.com/stranger").vkey
    status, _, err = run(capsys, "tlog", "verify", str(receipt), "--log-key", stranger)
    assert status == 6
    assert "not 'example.com/stranger'" in err
    status, _, err = run(capsys, "tlog", "verify", str(tmp_path / "missing"))
    assert status == 2
    status, _, err = run(capsys, "tlog", "verify", str(receipt), "--log-key", "not-a-vkey")
    assert status == 6
    assert err.count("\n") == 1


def test_records_file_checkpoint_prove_audit(capsys: pytest.CaptureFixture[str], db: str, tmp_path: Path) -> None:
    records = tmp_path / "records.jsonl"
    lines = [
        json.dumps(
            {
                "content_sha256": hashlib.sha256(bytes([i])).hexdigest(),
                "kind": "text",
                "key_id": "k",
                "model_id": "m",
                "time": "2026-08-02T12:00:00Z",
            }
        )
        for i in range(9)
    ]
    records.write_text("\n".join(lines) + "\n")
    appended = run_json(capsys, "tlog", "append", "--db", db, "--records", str(records))
    assert [a["index"] for a in appended["appended"]] == list(range(9))
    old = tmp_path / "old.checkpoint"
    first = run_json(capsys, "tlog", "checkpoint", "--db", db, "--out", str(old))
    assert first["tree_size"] == 9
    run_json(capsys, "tlog", "append", "--db", db, "--records", str(records))
    new = tmp_path / "new.checkpoint"
    run_json(capsys, "tlog", "checkpoint", "--db", db, "--out", str(new))
    audit = run_json(capsys, "tlog", "audit", str(old), str(new), "--db", db)
    assert audit["consistent"] is True
    assert (audit["old_size"], audit["new_size"]) == (9, 18)
    proof_file = tmp_path / "proof.txt"
    proof = run_json(capsys, "tlog", "prove", "--from", "9", "--to", "18", "--db", db, "--out", str(proof_file))
    assert len(proof["proof"]) == len(proof_file.read_text().splitlines())
    assert run_json(capsys, "tlog", "audit", str(old), str(new), "--proof", str(proof_file))["consistent"]
    # Audit fails on a proof for other sizes, and on swapped checkpoints.
    run_json(capsys, "tlog", "prove", "--from", "8", "--to", "18", "--db", db, "--out", str(proof_file))
    status, _, err = run(capsys, "tlog", "audit", str(old), str(new), "--proof", str(proof_file))
    assert status == 6
    assert "proof" in err
    status, _, err = run(capsys, "tlog", "audit", str(new), str(old), "--db", db)
    assert status == 6
    assert err.count("\n") == 1
    receipt = run_json(capsys, "tlog", "prove", "4", "--db", db)
    assert "index 4\n" in receipt["receipt"]
    by_hash = run_json(capsys, "tlog", "prove", "--content-sha256", hashlib.sha256(bytes([3])).hexdigest(), "--db", db)
    assert by_hash["index"] == 3
    status, _, _ = run(capsys, "tlog", "prove", "99", "--db", db)
    assert status == 6


def test_bad_input_to_append(capsys: pytest.CaptureFixture[str], db: str, tmp_path: Path) -> None:
    status, _, err = run(capsys, "tlog", "append", "--db", db, "--content-sha256", "ab" * 32)
    assert status == 2
    assert "--kind" in err
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"content_sha256": "zz"}\n')
    status, _, err = run(capsys, "tlog", "append", "--db", db, "--records", str(bad))
    assert status == 6
    assert "line 1" in err
    status, _, err = run(capsys, "tlog", "append", "--db", db, "--content-sha256", "ab" * 32, "--kind", "image",
                         "--model-id", "m", "--key-id", "k")  # fmt: skip
    assert status == 6
    assert "C2PA" in err


def test_witness_cosigns_the_local_log(capsys: pytest.CaptureFixture[str], db: str, tmp_path: Path) -> None:
    content = tmp_path / "c.txt"
    content.write_text("c")
    append(capsys, db, content)
    run_json(capsys, "tlog", "checkpoint", "--db", db)
    first = run_json(capsys, "tlog", "witness", "--db", db)
    assert (first["old_size"], first["tree_size"]) == (0, 1)
    append(capsys, db, content)
    append(capsys, db, content)
    run_json(capsys, "tlog", "checkpoint", "--db", db)
    second = run_json(capsys, "tlog", "witness", "--db", db)
    assert (second["old_size"], second["tree_size"]) == (1, 3)
    witness_vkey = second["witness"]
    receipt = tmp_path / "r.tlog-proof"
    receipt.write_text(run_json(capsys, "tlog", "prove", "2", "--db", db)["receipt"])
    verified = run_json(capsys, "tlog", "verify", str(receipt), "--witness", witness_vkey, "--quorum", "1")
    assert verified["witnesses"] == [witness_vkey.split("+")[0]]
    status, _, err = run(capsys, "tlog", "verify", str(receipt), "--quorum", "1")
    assert status == 6
    assert "quorum" in err


def test_witness_request_file(capsys: pytest.CaptureFixture[str], db: str, tmp_path: Path) -> None:
    content = tmp_path / "c.txt"
    content.write_text("c")
    append(capsys, db, content)
    note = run_json(capsys, "tlog", "checkpoint", "--db", db)["note"]
    ensure_witness_key(Keyring(), name="witness.example/cli")
    request = tmp_path / "request.txt"
    request.write_text("old 0\n\n" + note)
    state = tmp_path / "w.json"
    response = run_json(capsys, "tlog", "witness", str(request), "--state", str(state))
    assert response["cosignatures"][0].startswith("— witness.example/cli ")
    status, _, err = run(capsys, "tlog", "witness", str(request), "--state", str(state))
    assert status == 6  # stale: the witness has already moved to size 1 (409 in tlog-witness)
    assert "latest cosigned size 1" in err


def test_every_verb_has_json(capsys: pytest.CaptureFixture[str]) -> None:
    from tracemark.cli import build_parser

    parser = build_parser()
    capabilities: Any = next(a for a in parser._actions if a.dest == "capability")
    verbs: dict[str, Any] = next(a for a in capabilities.choices["tlog"]._actions if a.dest == "verb").choices
    assert set(verbs) == {"init", "append", "checkpoint", "prove", "verify", "audit", "witness", "cosign",
                          "export-tiles", "monitor", "migrate"}  # fmt: skip
    for name, verb in verbs.items():
        assert any("--json" in action.option_strings for action in verb._actions), name
