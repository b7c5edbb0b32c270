"""The holes a public deployment cannot have (issue #18, review S1-S10), each pinned by a test."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from tests.unit.service.conftest import ClientFactory
from tracemark.keys import Keyring, mint_api_token, revoke_api_token
from tracemark.service._text import model_id_for
from tracemark.tlog import ProvenanceRecord, WitnessQuorumError

RECORD = {"content_sha256": "ab" * 32, "kind": "text", "key_id": "k", "model_id": "m"}


def test_the_bearer_scheme_is_case_insensitive(client: TestClient) -> None:
    token = mint_api_token(Keyring(), label="test")
    for scheme in ("Bearer", "bearer", "BEARER", "bEaReR"):
        response = client.post("/v1/log/entries", json=RECORD, headers={"Authorization": f"{scheme} {token}"})
        assert response.status_code == 200, (scheme, response.text)
    assert client.post("/v1/log/entries", json=RECORD, headers={"Authorization": "bearer"}).status_code == 401


def test_expired_and_revoked_tokens_get_401(client: TestClient) -> None:
    keyring = Keyring()
    expired = mint_api_token(keyring, lifetime=timedelta(hours=1))
    revoked = mint_api_token(keyring)
    path = keyring.directory / "api-tokens.json"
    tokens = json.loads(path.read_text())
    tokens[expired.split("_")[1]]["expires_at"] = "2020-01-01T00:00:00+00:00"
    path.write_text(json.dumps(tokens))
    revoke_api_token(keyring, revoked.split("_")[1])
    for token, words in ((expired, "expired"), (revoked, "revoked")):
        response = client.post("/v1/log/entries", json=RECORD, headers={"Authorization": f"Bearer {token}"})
        assert response.status_code == 401
        assert words in response.json()["error"]["message"]


def test_health_names_no_paths(make_client: ClientFactory, word_model: Path, isolated_home: Path) -> None:
    broken = isolated_home.parent / "not-a-database.sqlite3"
    broken.write_bytes(b"this is not SQLite" * 100)
    client = make_client(word_model, database=broken)
    health = client.get("/v1/health")
    assert health.json()["model"] == word_model.name
    assert health.json()["log"]["size"] is None
    assert "not-a-database.sqlite3" in health.json()["log"]["error"]
    refused = client.get("/v1/log/checkpoint")
    assert refused.status_code == 503
    assert refused.json()["error"]["type"] == "TlogStorageError"
    for body in (health.text, refused.text):
        assert str(isolated_home.parent) not in body
        assert str(word_model.parent) not in body


def test_a_missed_witness_quorum_is_a_503(client: TestClient, monkeypatch: pytest.MonkeyPatch) -> None:
    def no_quorum(*_: object, **__: object) -> None:
        raise WitnessQuorumError("1 of 2 witnesses cosigned; the quorum is 2", ())

    monkeypatch.setattr(client.app.state.context.log, "append", no_quorum)  # type: ignore[attr-defined]
    token = mint_api_token(Keyring(), label="test")
    response = client.post("/v1/log/entries", json=RECORD, headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 503
    assert response.json() == {"error": {"type": "WitnessQuorumError",
                                         "message": "1 of 2 witnesses cosigned; the quorum is 2"}}  # fmt: skip


SPOOFING_IDS = ("abc\u202edcba", "a\u200bb", "\uff4dodel", "org/model 2", "<b>model</b>")


def test_model_ids_that_render_as_others_are_refused(client: TestClient) -> None:
    headers = {"Authorization": f"Bearer {mint_api_token(Keyring(), label='test')}"}
    for model_id in SPOOFING_IDS:
        response = client.post("/v1/log/entries", json={**RECORD, "model_id": model_id}, headers=headers)
        assert response.status_code == 400, model_id
        assert "model_id may hold only letters" in response.json()["error"]["message"]
        marked = client.post("/v1/media/mark", params={"model_id": model_id}, content=b"x", headers=headers)
        assert marked.status_code == 422, model_id
        assert marked.json()["error"]["type"] == "InvalidRequest"
    ok = client.post("/v1/log/entries", json={**RECORD, "model_id": "org/model@sha256:0123+rc.1"}, headers=headers)
    assert ok.status_code == 200, ok.text


def test_the_default_model_id_of_any_folder_is_a_valid_record_id(tmp_path: Path) -> None:
    folder = tmp_path / "My Model \u202eü"
    folder.mkdir()
    (folder / "config.json").write_text("{}")
    model_id = model_id_for(folder)
    assert model_id.startswith("My-Model-")
    ProvenanceRecord.create(content=b"x", kind="text", key_id="k", model_id=model_id)  # does not raise
