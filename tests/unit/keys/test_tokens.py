"""API tokens expire and can be revoked (review S6: ``--dev-token`` tokens lived forever)."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest

from tests.unit.keys._helpers import CliRunner
from tracemark.keys import (
    DEV_TOKEN_LIFETIME,
    InvalidTokenError,
    Keyring,
    list_api_tokens,
    mint_api_token,
    revoke_api_token,
    verify_api_token,
)


def _backdate(keyring: Keyring, token_id: str, *, expires_at: str) -> None:
    path = keyring.directory / "api-tokens.json"
    tokens = json.loads(path.read_text())
    tokens[token_id]["expires_at"] = expires_at
    path.write_text(json.dumps(tokens))


def test_an_expired_token_is_refused(keyring: Keyring) -> None:
    token = mint_api_token(keyring, label="dev", lifetime=DEV_TOKEN_LIFETIME)
    token_id = verify_api_token(keyring, token)
    (info,) = list_api_tokens(keyring)
    expires = datetime.fromisoformat(info["expires_at"])
    assert timedelta(hours=11, minutes=59) < expires - datetime.now(UTC) <= timedelta(hours=12)
    _backdate(keyring, token_id, expires_at=(datetime.now(UTC) - timedelta(seconds=1)).isoformat())
    with pytest.raises(InvalidTokenError, match="expired"):
        verify_api_token(keyring, token)


def test_a_token_without_expiry_stays_valid(keyring: Keyring) -> None:
    token = mint_api_token(keyring)
    assert list_api_tokens(keyring)[0]["expires_at"] == ""
    assert verify_api_token(keyring, token)


def test_a_revoked_token_is_refused(keyring: Keyring) -> None:
    kept = mint_api_token(keyring, label="kept")
    gone = mint_api_token(keyring, label="gone")
    revoke_api_token(keyring, verify_api_token(keyring, gone))
    with pytest.raises(InvalidTokenError, match="unknown or revoked"):
        verify_api_token(keyring, gone)
    verify_api_token(keyring, kept)
    with pytest.raises(InvalidTokenError, match="no API token"):
        revoke_api_token(keyring, "00000000")


def test_minting_drops_expired_tokens(keyring: Keyring) -> None:
    old = mint_api_token(keyring, lifetime=timedelta(hours=1))
    _backdate(keyring, verify_api_token(keyring, old), expires_at="2020-01-01T00:00:00+00:00")
    mint_api_token(keyring)
    assert len(list_api_tokens(keyring)) == 1


def test_an_unreadable_expiry_is_refused(keyring: Keyring) -> None:
    token = mint_api_token(keyring)
    _backdate(keyring, verify_api_token(keyring, token), expires_at="tomorrow")
    with pytest.raises(InvalidTokenError):
        verify_api_token(keyring, token)


def test_cli_mints_lists_and_revokes(keyring: Keyring, cli: CliRunner) -> None:
    minted = cli("keys", "token", "--label", "ci", "--expires", "12h", "--json")
    assert minted.status == 0, minted.err
    token = json.loads(minted.out)["api_token"]
    token_id = token.split("_")[1]
    listed = json.loads(cli("keys", "token", "--list", "--json").out)["tokens"]
    assert [(t["token_id"], t["label"]) for t in listed] == [(token_id, "ci")]
    expires = datetime.fromisoformat(listed[0]["expires_at"])
    assert timedelta(hours=11) < expires - datetime.now(UTC) <= timedelta(hours=12)
    assert token.split("_")[2] not in cli("keys", "token", "--list").out
    assert cli("keys", "token", "--revoke", token_id).status == 0
    with pytest.raises(InvalidTokenError):
        verify_api_token(keyring, token)
    assert cli("keys", "token", "--revoke", token_id).status != 0


def test_cli_default_lifetime_and_never(keyring: Keyring, cli: CliRunner) -> None:
    assert cli("keys", "token").status == 0
    expires = datetime.fromisoformat(list_api_tokens(keyring)[0]["expires_at"])
    assert timedelta(days=89) < expires - datetime.now(UTC) <= timedelta(days=90)
    assert cli("keys", "token", "--expires", "never").status == 0
    assert sorted(t["expires_at"] for t in list_api_tokens(keyring))[0] == ""
    refused = cli("keys", "token", "--expires", "soon")
    assert refused.status != 0
    assert "--expires" in refused.err
