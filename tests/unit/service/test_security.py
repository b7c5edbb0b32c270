"""The holes a public deployment cannot have (issue #18, review S1-S10), each pinned by a test."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from tests.unit.service.conftest import ClientFactory
from tracemark.keys import Keyring, mint_api_token, revoke_api_token
from tracemark.service._limits import RequestGuard
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

    async def no_quorum_async(*_: object, **__: object) -> None:
        no_quorum()

    log = client.app.state.context.log  # type: ignore[attr-defined]
    monkeypatch.setattr(log, "append", no_quorum)  # whichever the route awaits
    monkeypatch.setattr(log, "append_async", no_quorum_async)
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


def test_json_routes_need_a_json_content_type(client: TestClient) -> None:
    body = json.dumps({"text": "w1 w2 w3"})
    for content_type in ("text/plain", "application/x-www-form-urlencoded", "multipart/form-data; boundary=x", None):
        headers = {"Content-Type": content_type} if content_type else {}
        for path in ("/v1/text/detect", "/v1/log/verify-receipt", "/v1/log/entries", "/matches/byBinding"):
            response = client.post(path, content=body, headers=headers)
            assert response.status_code == 415, (path, content_type)
            assert response.json()["error"]["type"] == "UnsupportedMediaType"
    accepted = client.post("/v1/text/detect", content=body, headers={"Content-Type": "Application/JSON; charset=utf-8"})
    assert accepted.status_code == 200


def test_detect_refuses_lax_types(client: TestClient) -> None:
    for field, value in (("alpha", "0.5"), ("explain", "yes"), ("explain", 1), ("text", 5)):
        response = client.post("/v1/text/detect", json={"text": "w1 w2 w3", field: value})
        assert response.status_code == 422, (field, value)
        assert response.json()["error"]["type"] == "InvalidRequest"
    assert client.post("/v1/text/detect", json={"text": "w1 w2 w3", "alpha": 1e-3}).status_code == 200


def test_foreign_host_names_are_refused(make_client: ClientFactory, word_model: Path) -> None:
    client = make_client(word_model, allowed_hosts="tracemark.example.org", bind_host="10.0.0.5")
    for host in ("evil.example", "rebind.attacker.test:8000", "testserver"):
        response = client.get("/v1/health", headers={"Host": host})
        assert response.status_code == 421, host
        assert response.json()["error"]["type"] == "MisdirectedRequest"
        detect = client.post("/v1/text/detect", json={"text": "w1 w2"}, headers={"Host": host})
        assert detect.status_code == 421
    for host in ("localhost:8000", "127.0.0.1", "[::1]:8000", "TRACEMARK.example.org", "10.0.0.5:80"):
        assert client.get("/v1/health", headers={"Host": host}).status_code == 200, host
    anything = make_client(word_model, allowed_hosts="*")
    assert anything.get("/v1/health", headers={"Host": "whatever.test"}).status_code == 200


def test_every_route_is_rate_limited_per_client(make_client: ClientFactory, word_model: Path) -> None:
    client = make_client(word_model, rate_limit_per_second=0.01, rate_limit_burst=3)
    for path in ("/v1/health", "/v1/log/checkpoint", "/checkpoint"):
        assert client.get(path).status_code == 200
    for method, path in (("GET", "/v1/log/entries"), ("POST", "/v1/text/detect"), ("GET", "/no/such/route")):
        refused = client.request(method, path, json={"text": "w1 w2"} if method == "POST" else None)
        assert refused.status_code == 429
        assert refused.json()["error"]["type"] == "RateLimitedError"
        assert int(refused.headers["Retry-After"]) >= 1
    unlimited = make_client(word_model, rate_limit_per_second=0)
    assert all(unlimited.get("/v1/health").status_code == 200 for _ in range(300))


def test_requests_are_rate_limited_per_token(make_client: ClientFactory, word_model: Path) -> None:
    client = make_client(word_model, rate_limit_per_second=0.01, rate_limit_burst=4)
    headers = {"Authorization": f"Bearer {mint_api_token(Keyring(), label='test')}"}
    statuses = [client.post("/v1/log/entries", json=RECORD, headers=headers).status_code for _ in range(3)]
    assert statuses == [200, 200, 200]
    # the address bucket still has a token; the token's own bucket (charged by the token check) too
    assert client.post("/v1/log/entries", json=RECORD, headers=headers).status_code == 200
    metrics = client.app.state.context.metrics  # type: ignore[attr-defined]
    metrics.limited.clear()
    client.app.state.context.limits.client.rate = 0  # type: ignore[attr-defined]
    refused = client.post("/v1/log/entries", json=RECORD, headers=headers)
    assert refused.status_code == 429
    assert "API token" in refused.json()["error"]["message"]
    assert "Retry-After" in refused.headers
    assert metrics.limited == {"token": 1}


def test_heavy_routes_have_their_own_lower_rate(make_client: ClientFactory, word_model: Path) -> None:
    client = make_client(word_model, heavy_rate_per_second=0.01, heavy_rate_burst=2)
    for _ in range(2):
        assert client.post("/v1/media/verify", content=b"not an image").status_code != 429
    refused = client.post("/v1/media/verify", content=b"not an image")
    assert refused.status_code == 429
    assert client.get("/v1/health").status_code == 200  # light routes keep their own budget


def test_heavy_requests_beyond_the_slots_get_503(make_client: ClientFactory, word_model: Path) -> None:
    client = make_client(word_model, max_heavy_requests=1)
    guard = _guard(client)
    guard.heavy_running = 1  # one image verification already running
    busy = client.post("/v1/media/verify", content=b"x")
    assert busy.status_code == 503
    assert busy.json()["error"]["type"] == "ServiceBusyError"
    assert busy.headers["Retry-After"] == "1"
    assert client.get("/v1/health").status_code == 200
    guard.heavy_running = 0
    assert client.post("/v1/media/verify", content=b"x").status_code != 503


def _guard(client: TestClient) -> RequestGuard:
    app = client.app.middleware_stack  # type: ignore[attr-defined]
    while not isinstance(app, RequestGuard):
        app = app.app
    return app


ERROR_CASES: tuple[tuple[str, str, dict[str, str], bytes, int, str], ...] = (
    ("GET", "/no/such/route", {}, b"", 404, "NotFound"),
    ("DELETE", "/v1/health", {}, b"", 405, "MethodNotAllowed"),
    (
        "POST",
        "/v1/log/verify-receipt",
        {"Content-Type": "application/json"},
        b'{"receipt": "\xff\xfe"}',
        422,
        "InvalidRequest",
    ),
    ("POST", "/v1/text/detect", {"Content-Type": "application/json"}, b'{"text": "\xff\xfe"}', 422, "InvalidRequest"),
    ("POST", "/v1/log/verify-receipt", {"Content-Type": "application/json"}, b"[" * 5000, 422, "InvalidRequest"),
    ("POST", "/v1/text/detect", {"Content-Type": "application/json"}, b"x" * 70_000, 413, "PayloadTooLarge"),
    ("POST", "/v1/text/detect", {"Content-Type": "text/plain"}, b"{}", 415, "UnsupportedMediaType"),
    ("GET", "/v1/health", {"Host": "evil.example"}, b"", 421, "MisdirectedRequest"),
    ("GET", "/v1/log/entries/99", {}, b"", 404, "NotFoundError"),
    ("POST", "/v1/log/entries", {"Content-Type": "application/json"}, b"{}", 401, "InvalidTokenError"),
)


def test_every_error_has_one_body_shape(client: TestClient) -> None:
    for method, path, headers, body, status, kind in ERROR_CASES:
        response = client.request(method, path, headers=headers, content=body)
        assert response.status_code == status, (method, path, response.text)
        assert response.headers["content-type"].startswith("application/json")
        error = response.json()
        assert list(error) == ["error"]
        assert sorted(error["error"]) == ["message", "type"]
        assert error["error"]["type"] == kind, (method, path)
        assert error["error"]["message"]


def test_every_error_type_is_in_the_documented_table() -> None:
    table = (Path(__file__).parents[3] / "docs" / "service.md").read_text().split("## Errors", 1)[1].split("\n## ")[0]
    for *_, kind in ERROR_CASES:
        assert f"`{kind}`" in table, kind
    for kind in ("RateLimitedError", "ServiceBusyError", "WitnessQuorumError", "TlogStorageError", "InternalError"):
        assert f"`{kind}`" in table, kind
