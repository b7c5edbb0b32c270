"""The public detection interface: per-client rate limits, and an authority key that lifts them and writes nothing."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.conftest import REFERENCE_MODEL
from tracemark.cli._main import main
from tracemark.errors import InvalidInputError
from tracemark.keys import InvalidTokenError, Keyring, list_api_tokens, mint_api_token, verify_api_token

pytest.importorskip("fastapi", reason="the service extra")

TEXT = {"text": "The documentation explains how the logging handler writes records to a file. " * 4}


@pytest.fixture
def authority_key(capsys: pytest.CaptureFixture[str]) -> str:
    assert main(["keys", "init"]) == 0
    capsys.readouterr()
    assert main(["comply", "authority-key", "--label", "EU AI Office", "--days", "30", "--json"]) == 0
    key: str = json.loads(capsys.readouterr().out)["authority_key"]
    return key


def test_authority_keys_are_their_own_tier(authority_key: str) -> None:
    keyring = Keyring()
    (info,) = list_api_tokens(keyring)
    assert info["tier"] == "authority"
    assert info["label"] == "EU AI Office"
    assert verify_api_token(keyring, authority_key, tier="authority") == info["token_id"]
    with pytest.raises(InvalidTokenError, match="not a write token"):
        verify_api_token(keyring, authority_key)  # the write routes' check
    write = mint_api_token(keyring, "ops")
    with pytest.raises(InvalidTokenError, match="not a authority token"):
        verify_api_token(keyring, write, tier="authority")
    with pytest.raises(InvalidTokenError, match="unknown token tier"):
        mint_api_token(keyring, tier="admin")


def test_detection_is_rate_limited_per_client_and_open_to_authority_keys(authority_key: str, tmp_path: Path) -> None:
    from starlette.testclient import TestClient

    from tracemark.service import ServiceSettings, create_app

    settings = ServiceSettings(
        home=Keyring().home,
        database=tmp_path / "log.sqlite3",
        model_dir=REFERENCE_MODEL,
        rate_limit_per_second=0.01,
        rate_limit_burst=2,
    )
    with TestClient(create_app(settings), base_url="http://127.0.0.1") as client:
        answers = [client.post("/v1/text/detect", json=TEXT).status_code for _ in range(3)]
        assert answers == [200, 200, 429]
        authority = {"Authorization": f"Bearer {authority_key}"}
        answers = [client.post("/v1/text/detect", json=TEXT, headers=authority).status_code for _ in range(5)]
        assert answers == [200] * 5
        verdict = client.post("/v1/text/detect", json=TEXT, headers=authority).json()
        assert verdict["format"] == "tracemark.text.verdict/v1"
        forged = {"Authorization": "Bearer tmk_00000000_forged"}
        assert client.post("/v1/text/detect", json=TEXT, headers=forged).status_code == 429
        # an authority key writes nothing: the write routes refuse it
        generate = client.post("/v1/text/generate", json={"prompt": "x"}, headers=authority)
        assert generate.status_code == 401


def test_authority_key_lifetime_is_checked(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["keys", "init"]) == 0
    assert main(["comply", "authority-key", "--label", "x", "--days", "0"]) == InvalidInputError.exit_code
