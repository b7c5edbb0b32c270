"""Generation through the service: marked text, recorded in the log, with a receipt that verifies."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from tests.unit.service.conftest import ClientFactory
from tracemark.keys import Keyring, mint_api_token

pytest.importorskip("torch")
pytest.importorskip("transformers")


@pytest.fixture
def tiny_client(make_client: ClientFactory, tiny_model: Path) -> TestClient:
    return make_client(tiny_model, model_id="tiny-gpt2@test")


def _auth() -> dict[str, str]:
    return {"Authorization": f"Bearer {mint_api_token(Keyring())}"}


def test_generate_marks_records_and_returns_a_receipt(tiny_client: TestClient) -> None:
    prompt = "The documentation explains how"
    response = tiny_client.post("/v1/text/generate", json={"prompt": prompt, "max_new_tokens": 120, "seed": 3},
                                headers=_auth())  # fmt: skip
    assert response.status_code == 200, response.text
    body = response.json()
    generation = body["generation"]
    assert generation["tokens"] == 120
    record = body["record"]
    assert record["content_sha256"] == hashlib.sha256(generation["text"].encode()).hexdigest()
    assert (record["kind"], record["model_id"], record["key_id"]) == ("text", "tiny-gpt2@test", generation["key_id"])
    assert body["index"] == 0

    verdict = tiny_client.post("/v1/text/detect", json={"text": generation["text"], "prompt": prompt}).json()
    assert verdict["marked"] is True
    assert verdict["p_value"] < 1e-6

    check = tiny_client.post("/v1/log/verify-receipt", json={"receipt": body["receipt"], "content": generation["text"]})
    assert check.status_code == 200, check.text
    assert check.json()["content_matches"] is True
    entry = tiny_client.get("/v1/log/entries/0").json()
    assert entry["record"] == record


def test_generation_limits(tiny_client: TestClient, make_client: ClientFactory, tiny_model: Path) -> None:
    too_many = tiny_client.post("/v1/text/generate", json={"prompt": "a", "max_new_tokens": 401}, headers=_auth())
    assert too_many.status_code == 400
    blank = tiny_client.post("/v1/text/generate", json={"prompt": "   "}, headers=_auth())
    assert blank.status_code == 400
    assert tiny_client.get("/v1/log/checkpoint").json()["tree_size"] == 0


def test_default_model_id_names_the_folder_and_its_files(tiny_model: Path) -> None:
    from tracemark.service._text import model_id_for

    model_id = model_id_for(tiny_model)
    assert model_id.startswith("tiny-gpt2@sha256:")
    assert model_id == model_id_for(tiny_model)
