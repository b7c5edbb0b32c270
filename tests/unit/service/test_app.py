"""The HTTP service: routes, authentication, JSON errors and body limits."""

from __future__ import annotations

from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from tracemark.keys import Keyring, mint_api_token
from tracemark.service import ServiceSettings, create_app
from tracemark.text import new_text_key


@pytest.fixture
def client(word_model: Path, isolated_home: Path) -> TestClient:
    keyring = Keyring()
    keyring.create()
    new_text_key(keyring, "native", word_model, make_default=True)
    settings = ServiceSettings(home=isolated_home, database=isolated_home / "db.sqlite3", model_dir=word_model,
                               max_body_bytes=64 * 1024)  # fmt: skip
    return TestClient(create_app(settings), raise_server_exceptions=False)


def test_health_and_openapi(client: TestClient) -> None:
    health = client.get("/v1/health").json()
    assert health["status"] == "ok"
    assert health["keyring"] is True
    paths = client.get("/openapi.json").json()["paths"]
    assert {"/v1/health", "/v1/text/detect", "/v1/text/generate"} <= set(paths)


def test_detect_returns_the_verdict(client: TestClient) -> None:
    text = " ".join(f"w{(i * 7919) % 2000}" for i in range(300))
    response = client.post("/v1/text/detect", json={"text": text, "explain": True})
    assert response.status_code == 200
    verdict = response.json()
    assert verdict["format"] == "tracemark.text.verdict/v1"
    assert verdict["marked"] is False
    assert len(verdict["token_marks"]) == 300


@pytest.mark.parametrize(
    ("body", "status"),
    [({"text": ""}, 422), ({"text": "   "}, 400), ({"nope": 1}, 422), ({"text": "w1 w2", "alpha": 2}, 422)],
)
def test_bad_requests_get_json_errors(client: TestClient, body: dict[str, object], status: int) -> None:
    response = client.post("/v1/text/detect", json=body)
    assert response.status_code == status
    error = response.json()["error"]
    assert error["type"]
    assert error["message"]
    assert "Traceback" not in response.text


def test_malformed_json_is_a_422(client: TestClient) -> None:
    response = client.post("/v1/text/detect", content=b"{not json", headers={"Content-Type": "application/json"})
    assert response.status_code == 422
    assert response.json()["error"]["type"] == "InvalidRequest"


def test_oversized_bodies_are_refused(client: TestClient) -> None:
    response = client.post("/v1/text/detect", json={"text": "w1 " * 40_000})
    assert response.status_code == 413
    assert response.json()["error"]["type"] == "PayloadTooLarge"


def test_unknown_key_is_a_404(client: TestClient) -> None:
    response = client.post("/v1/text/detect", json={"text": "w1 w2 w3", "key_id": "tm-native-0000"})
    assert response.status_code == 404


def test_writes_need_a_valid_token(client: TestClient) -> None:
    body = {"prompt": "w1 w2"}
    assert client.post("/v1/text/generate", json=body).status_code == 401
    bad = client.post("/v1/text/generate", json=body, headers={"Authorization": "Bearer tmk_0000_nope"})
    assert bad.status_code == 401
    assert bad.json()["error"]["type"] == "InvalidTokenError"


def test_tokens_are_stored_hashed(isolated_home: Path) -> None:
    keyring = Keyring()
    keyring.create()
    token = mint_api_token(keyring, label="test")
    stored = (keyring.directory / "api-tokens.json").read_text()
    assert token.split("_")[2] not in stored


def test_page_and_assets_are_served(client: TestClient) -> None:
    page = client.get("/")
    assert page.status_code == 200
    assert "tracemark" in page.text
    assert client.get("/static/app.js").status_code == 200
    assert client.get("/static/../_app.py").status_code == 404
