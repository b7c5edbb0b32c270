"""Service routes: mark (token), verify, and the C2PA soft-binding resolution API."""

from __future__ import annotations

import base64
import io
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from PIL import Image

from tests.unit.media.conftest import encode, textured_image
from tracemark.keys import Keyring, ensure_media_certificate, mint_api_token
from tracemark.service import ServiceSettings, create_app


@pytest.fixture
def client(isolated_home: Path) -> Iterator[TestClient]:
    keyring = Keyring()
    keyring.create()
    ensure_media_certificate(keyring)
    settings = ServiceSettings(home=isolated_home, database=isolated_home / "db.sqlite3", model_dir=None,
                               max_body_bytes=4 * 1024 * 1024, allowed_hosts="testserver")  # fmt: skip
    with TestClient(create_app(settings), raise_server_exceptions=False) as test_client:
        yield test_client


@pytest.fixture
def token() -> dict[str, str]:
    return {"Authorization": f"Bearer {mint_api_token(Keyring(), label='test')}"}


def test_mark_verify_and_resolve(client: TestClient, token: dict[str, str]) -> None:
    image = encode(textured_image(41, 640, 640))
    response = client.post("/v1/media/mark?format=jpeg&model_id=org/gen", content=image, headers=token)
    assert response.status_code == 200, response.text
    marked = response.json()
    assert marked["log_index"] == 0
    assert marked["mime_type"] == "image/jpeg"
    data = base64.b64decode(marked["image"])

    verdict = client.post("/v1/media/verify", content=data).json()
    assert verdict["outcome"] == "trusted"
    assert verdict["manifest_id"] == marked["manifest_id"]
    layers = {layer["layer"]: layer["found"] for layer in verdict["article_50"]["layers"]}
    assert layers == {"signed-metadata": True, "watermark": True, "recovered-manifest": False, "log-entry": True}
    entry = client.get("/v1/log/entries/0").json()
    assert entry["record"]["c2pa_manifest_id"] == marked["manifest_id"]

    binding = marked["soft_binding"]
    found = client.get("/matches/byBinding", params=binding).json()
    assert found == {"matches": [{"manifestId": marked["manifest_id"]}]}
    assert client.post("/matches/byBinding", json=binding).json() == found
    store = client.get(f"/manifests/{marked['manifest_id']}")
    assert store.status_code == 200
    assert store.headers["content-type"] == "application/c2pa"
    assert len(store.content) > 1000
    algorithms = client.get("/services/supportedAlgorithms").json()
    assert algorithms["watermarks"] == [{"alg": "io.tracemark.qim.v2"}]

    stripped = io.BytesIO()
    Image.open(io.BytesIO(data)).resize((320, 320)).save(stripped, "JPEG", quality=50)
    recovered = client.post("/v1/media/verify", content=stripped.getvalue()).json()
    assert recovered["outcome"] == "recovered-via-soft-binding"
    assert recovered["manifest"]["claim_generator_info"][0]["name"] == "tracemark"


def test_mark_needs_a_token(client: TestClient) -> None:
    response = client.post("/v1/media/mark", content=encode(textured_image(42, 300, 300)))
    assert response.status_code == 401


def test_bad_images_get_a_json_error(client: TestClient, token: dict[str, str]) -> None:
    for body in (b"not an image", b""):
        response = client.post("/v1/media/verify", content=body)
        assert response.status_code == 422
        assert response.json()["error"]["type"] == "ImageInputError"


def test_unknown_manifest_is_404(client: TestClient) -> None:
    assert client.get("/manifests/urn:c2pa:nothing").status_code == 404
    assert client.get("/matches/byBinding", params={"alg": "x", "value": "y"}).json() == {"matches": []}
    assert client.get("/matches/byBinding", params={"alg": "x"}).status_code == 422
