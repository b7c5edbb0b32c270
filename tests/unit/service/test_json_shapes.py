"""The JSON the service answers has the members ``docs/service.md`` lists, and the types that say so agree.

Each route's members are written out here as the routes table documents them; the TypedDict the
code builds the answer as must name the same members, so neither the wire nor the type drifts alone.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from tests.unit.service.test_log_routes import _record
from tracemark.cli import main
from tracemark.service._health_routes import HealthJSON, LogHealth
from tracemark.service._log import (
    AppendedEntryJSON,
    EntriesPageJSON,
    EntryJSON,
    InclusionJSON,
)
from tracemark.tlog import CheckpointJSON, ConsistencyJSON, VerifiedReceiptJSON

HEALTH = {"status", "version", "model", "keyring", "log"}
APPENDED = {"index", "leaf_hash", "tree_size", "record", "receipt", "integrated_time", "claimed_time", "duplicate"}
CHECKPOINT = {"origin", "tree_size", "root_hash", "note"}
ENTRY = {"index", "leaf_hash", "record", "entry", "integrated_time", "claimed_time"}
PAGE = {"tree_size", "start", "limit", "entries", "next"}
INCLUSION = {"index", "tree_size", "leaf_hash", "root_hash", "proof", "checkpoint", "receipt"}
CONSISTENCY = {"old_size", "new_size", "old_root", "new_root", "proof"}
VERIFIED = {"valid", "origin", "index", "tree_size", "root_hash", "leaf_hash", "record", "witnesses"}


def _members(typed: Any) -> set[str]:
    return set(typed.__required_keys__) | set(typed.__optional_keys__)


@pytest.mark.parametrize(
    ("typed", "documented"),
    [
        (HealthJSON, HEALTH),
        (AppendedEntryJSON, APPENDED),
        (CheckpointJSON, CHECKPOINT),
        (EntryJSON, ENTRY),
        (EntriesPageJSON, PAGE),
        (InclusionJSON, INCLUSION),
        (ConsistencyJSON, CONSISTENCY),
        (VerifiedReceiptJSON, VERIFIED | {"content_matches"}),
    ],
)
def test_types_name_the_documented_members(typed: Any, documented: set[str]) -> None:
    assert _members(typed) == documented


def _json(client: TestClient, path: str) -> dict[str, Any]:
    response = client.get(path)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def test_every_log_answer_has_the_documented_members(client: TestClient, token: dict[str, str]) -> None:
    appended = [client.post("/v1/log/entries", json=_record(n), headers=token).json() for n in range(3)]
    assert all(set(body) == APPENDED for body in appended)
    health = _json(client, "/v1/health")
    assert set(health) == HEALTH
    assert set(health["log"]) == {"size", "checkpoint_size", "origin"} <= _members(LogHealth)
    assert set(_json(client, "/v1/log/checkpoint")) == CHECKPOINT
    assert set(_json(client, "/v1/log/entries/1")) == ENTRY
    page = _json(client, "/v1/log/entries?start=1&limit=5")
    assert set(page) == PAGE
    assert [set(entry) for entry in page["entries"]] == [ENTRY, ENTRY]
    assert set(_json(client, "/v1/log/proof/inclusion?index=1")) == INCLUSION
    assert set(_json(client, "/v1/log/proof/consistency?old=1")) == CONSISTENCY
    verified = client.post("/v1/log/verify-receipt", json={"receipt": appended[1]["receipt"]}).json()
    assert set(verified) == VERIFIED
    with_content = client.post(
        "/v1/log/verify-receipt", json={"receipt": appended[1]["receipt"], "content": "content 1"}
    ).json()
    assert set(with_content) == VERIFIED | {"content_matches"}
    assert set(_json(client, "/v1/log/key")) == {"origin", "log_key"}


def test_cli_and_service_print_one_verified_receipt_json(
    client: TestClient, token: dict[str, str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """``tracemark tlog verify --json`` and ``POST /v1/log/verify-receipt`` answer the same object."""
    appended = client.post("/v1/log/entries", json=_record(0), headers=token).json()
    vkey = _json(client, "/v1/log/key")["log_key"]
    (tmp_path / "receipt").write_text(appended["receipt"])
    (tmp_path / "content").write_text("content 0")
    for content, cli_extra in ((None, []), ("content 0", ["--content", str(tmp_path / "content")])):
        served = client.post("/v1/log/verify-receipt", json={"receipt": appended["receipt"], "content": content})
        capsys.readouterr()
        assert main(["tlog", "verify", str(tmp_path / "receipt"), "--log-key", vkey, "--json", *cli_extra]) == 0
        assert json.loads(capsys.readouterr().out) == served.json()
