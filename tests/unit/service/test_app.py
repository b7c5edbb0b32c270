"""The HTTP service: text routes, authentication, JSON errors, body limits, the page."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from tests.unit.service.conftest import ClientFactory
from tracemark.keys import Keyring, mint_api_token
from tracemark.service import ServiceSettings, create_app
from tracemark.service._fastpath import DirectJSONRoute
from tracemark.text import TextTokenizer, detect_watermark

UNMARKED = " ".join(f"w{(i * 7919) % 2000}" for i in range(300))


def test_health_and_openapi(client: TestClient) -> None:
    health = client.get("/v1/health").json()
    assert health["status"] == "ok"
    assert health["keyring"] is True
    assert health["log"]["size"] == 0
    assert health["log"]["origin"].startswith("tracemark.invalid/log/")
    paths = set(client.get("/openapi.json").json()["paths"])
    assert {
        "/v1/health",
        "/v1/text/detect",
        "/v1/text/generate",
        "/v1/log/entries",
        "/v1/log/entries/{index}",
        "/v1/log/checkpoint",
        "/v1/log/proof/inclusion",
        "/v1/log/proof/consistency",
        "/v1/log/verify-receipt",
        "/v1/log/key",
    } <= paths
    assert client.get("/docs").status_code == 404  # the interactive docs load third-party scripts


def test_detect_returns_the_verdict(client: TestClient) -> None:
    response = client.post("/v1/text/detect", json={"text": UNMARKED, "explain": True})
    assert response.status_code == 200
    verdict = response.json()
    assert verdict["format"] == "tracemark.text.verdict/v1"
    assert verdict["marked"] is False
    assert len(verdict["token_marks"]) == 300


def test_long_texts_are_tested_off_the_event_loop(make_client: ClientFactory, word_model: Path) -> None:
    client = make_client(word_model, inline_detect_chars=10)
    inline = make_client(word_model, inline_detect_chars=10**6, database=word_model.parent / "other.sqlite3")
    for c in (client, inline):
        assert c.post("/v1/text/detect", json={"text": UNMARKED}).json()["tokens_total"] == 300


#: (text, prompt, explain, alpha) of detection requests; the last has nothing scorable (NaN and infinities).
DETECT_REQUESTS: list[tuple[str, str | None, bool, float]] = [
    (UNMARKED, None, False, 1e-6),
    (UNMARKED, None, True, 1e-6),
    (UNMARKED, "w1 w2 w3", True, 1e-3),
    ("w1 w2", None, False, 1e-6),
]


def test_detect_answers_the_librarys_verdict_json(client: TestClient, word_model: Path) -> None:
    """The service serves Verdict.to_json() itself (one serialiser; tests/unit/text pins its shape)."""
    key = Keyring().default()
    tokenizer = TextTokenizer(word_model)
    for text, prompt, explain, alpha in DETECT_REQUESTS:
        body = {"text": text, "prompt": prompt, "explain": explain, "alpha": alpha}
        response = client.post("/v1/text/detect", json=body)
        assert response.status_code == 200
        verdict = detect_watermark(text, key, tokenizer, prompt=prompt, explain=explain, alpha=alpha)
        served = response.json()  # the verdict, and beside it the known-output attribution (test_known_outputs.py)
        assert served.pop("attribution")["status"] == "not-checked"  # this service indexed no output
        assert served == json.loads(json.dumps(verdict.to_json()))


@pytest.mark.parametrize(
    ("body", "status"),
    [
        ({"text": ""}, 422),
        ({"text": "   "}, 400),
        ({"nope": 1}, 422),
        ({"text": "w1 w2", "alpha": 2}, 422),
        ({"text": "w1 w2", "extra": 1}, 422),
        ({"text": 5}, 422),
        ({"text": "w1\x00w2"}, 400),
        ([], 422),
    ],
)
def test_bad_requests_get_json_errors(client: TestClient, body: object, status: int) -> None:
    response = client.post("/v1/text/detect", json=body)
    assert response.status_code == status
    error = response.json()["error"]
    assert error["type"]
    assert error["message"]
    assert "Traceback" not in response.text


@pytest.mark.parametrize(
    ("body", "same_message"),
    [
        (b'{"text": "w1 w2 w3 w4"}', True),
        (b'{"text": "w1 w2 w3 w4", "explain": true, "prompt": "w1"}', True),
        (b'{"text": "w1 w2", "key_id": "no-such-key"}', True),
        (b'{"text": "   "}', True),
        (b'{"text": "w1 w2", "alpha": 2}', True),
        (b'{"nope": 1}', True),
        # pydantic's JSON parser words these two itself ("Input should be an object", "Invalid JSON: ...")
        (b"[]", False),
        (b"{not json", False),
    ],
)
def test_the_direct_detect_route_answers_as_the_declared_one(
    make_client: ClientFactory, word_model: Path, isolated_home: Path, body: bytes, same_message: bool
) -> None:
    direct = make_client(word_model)
    app = create_app(ServiceSettings(home=isolated_home, database=isolated_home / "declared.sqlite3",
                                     model_dir=word_model, allowed_hosts="testserver"))  # fmt: skip
    direct_route: object = DirectJSONRoute
    app.user_middleware = [m for m in app.user_middleware if m.cls is not direct_route]
    headers = {"Content-Type": "application/json"}
    with TestClient(app, raise_server_exceptions=False) as declared:
        expected = declared.post("/v1/text/detect", content=body, headers=headers)
    answer = direct.post("/v1/text/detect", content=body, headers=headers)
    assert answer.status_code == expected.status_code
    if same_message:
        assert answer.json() == expected.json()
    else:
        assert answer.json()["error"]["type"] == expected.json()["error"]["type"] == "InvalidRequest"


def test_malformed_json_is_a_422(client: TestClient) -> None:
    response = client.post("/v1/text/detect", content=b"{not json", headers={"Content-Type": "application/json"})
    assert response.status_code == 422
    assert response.json()["error"]["type"] == "InvalidRequest"


def test_unknown_routes_and_methods_get_json_errors(client: TestClient) -> None:
    missing = client.get("/v1/nothing")
    assert missing.status_code == 404
    assert missing.json()["error"]["type"] == "NotFound"
    wrong = client.get("/v1/text/detect")
    assert wrong.status_code == 405
    assert wrong.json()["error"]["type"] == "MethodNotAllowed"


def test_oversized_bodies_are_refused(client: TestClient) -> None:
    response = client.post("/v1/text/detect", json={"text": "w1 " * 40_000})
    assert response.status_code == 413
    assert response.json()["error"]["type"] == "PayloadTooLarge"


def test_image_uploads_have_their_own_larger_limit(make_client: ClientFactory, word_model: Path) -> None:
    client = make_client(word_model, max_media_bytes=512 * 1024)
    body = b"\x00" * (200 * 1024)  # over the 64 KiB text limit, under the media limit
    text = client.post("/v1/text/detect", content=body, headers={"Content-Type": "application/json"})
    assert text.status_code == 413
    image = client.post("/v1/media/verify", content=body, headers={"Content-Type": "application/octet-stream"})
    assert image.status_code != 413  # refused later as a bad image, not for its size
    huge = client.post("/v1/media/verify", content=b"\x00" * (600 * 1024))
    assert huge.status_code == 413


def test_oversized_streamed_bodies_are_refused(client: TestClient) -> None:
    def chunks() -> Iterator[bytes]:
        yield b'{"text": "'
        for _ in range(100):
            yield b"w1 " * 1000
        yield b'"}'

    response = client.post("/v1/text/detect", content=chunks(), headers={"Content-Type": "application/json"})
    assert response.status_code == 413
    assert response.json()["error"]["type"] == "PayloadTooLarge"


def test_unknown_key_is_a_404(client: TestClient) -> None:
    response = client.post("/v1/text/detect", json={"text": "w1 w2 w3", "key_id": "tm-native-0000"})
    assert response.status_code == 404
    assert response.json()["error"]["type"] == "UnknownKeyError"


def test_a_new_default_key_is_picked_up(client: TestClient, word_model: Path) -> None:
    from tracemark.text import new_text_key

    before = client.post("/v1/text/detect", json={"text": UNMARKED}).json()["key_id"]
    after_key = new_text_key(Keyring(), "native", word_model, make_default=True)
    after = client.post("/v1/text/detect", json={"text": UNMARKED}).json()["key_id"]
    assert before != after == after_key.key_id


def test_writes_need_a_valid_token(client: TestClient) -> None:
    record = {"content_sha256": "ab" * 32, "kind": "text", "key_id": "k", "model_id": "m"}
    for path, body in (("/v1/text/generate", {"prompt": "w1 w2"}), ("/v1/log/entries", record)):
        assert client.post(path, json=body).status_code == 401
        bad = client.post(path, json=body, headers={"Authorization": "Bearer tmk_0000_nope"})
        assert bad.status_code == 401
        assert bad.json()["error"]["type"] == "InvalidTokenError"
        basic = client.post(path, json=body, headers={"Authorization": "Basic dXNlcjpwYXNz"})
        assert basic.status_code == 401
    assert client.get("/v1/log/entries").status_code == 200  # reads are public


def test_tokens_are_stored_hashed(isolated_home: Path) -> None:
    keyring = Keyring()
    keyring.create()
    token = mint_api_token(keyring, label="test")
    stored = (keyring.directory / "api-tokens.json").read_text()
    assert token.split("_")[2] not in stored


def test_without_a_keyring_routes_say_so(make_client: ClientFactory, word_model: Path) -> None:
    client = make_client(word_model, keyring=False)
    health = client.get("/v1/health").json()
    assert health["keyring"] is False
    assert health["log"]["size"] is None
    for response in (client.post("/v1/text/detect", json={"text": UNMARKED}), client.get("/v1/log/checkpoint")):
        assert response.status_code == 503
        assert "keys init" in response.json()["error"]["message"]


def test_without_a_model_detection_is_unavailable(make_client: ClientFactory) -> None:
    client = make_client(None)
    response = client.post("/v1/text/detect", json={"text": UNMARKED})
    assert response.status_code == 503
    assert response.json()["error"]["type"] == "NotConfiguredError"


def test_page_and_assets_are_served(client: TestClient) -> None:
    page = client.get("/")
    assert page.status_code == 200
    assert "tracemark" in page.text
    assert "script-src 'self'" in page.headers["content-security-policy"]
    assert "/static/app.js?v=" in page.text
    for name in ("app.js", "style.css"):
        asset = client.get(f"/static/{name}")
        assert asset.status_code == 200
        assert asset.headers["x-content-type-options"] == "nosniff"
    assert client.get("/static/../_app.py").status_code == 404
    assert client.get("/static/index.html").status_code == 404


def test_the_page_uses_no_outside_resources(client: TestClient) -> None:
    for path in ("/", "/static/app.js", "/static/style.css"):
        body = client.get(path).text
        assert "http://" not in body
        assert "https://" not in body
    script = client.get("/static/app.js").text
    assert "innerHTML" not in script  # the script builds DOM nodes with textContent, never HTML strings


def test_streamed_bodies_within_the_limit_are_read_whole(client: TestClient) -> None:
    body = json.dumps({"text": UNMARKED}).encode()

    def chunks() -> Iterator[bytes]:
        for start in range(0, len(body), 100):
            yield body[start : start + 100]

    response = client.post("/v1/text/detect", content=chunks(), headers={"Content-Type": "application/json"})
    assert response.status_code == 200
    assert response.json()["tokens_total"] == 300
