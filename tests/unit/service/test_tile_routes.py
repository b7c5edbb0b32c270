"""The tlog-tiles read API: paths, bytes and headers, and a client that verifies from tiles alone over HTTP.

The end-to-end test runs the real application under uvicorn on a free local port and reads it
with the library's HTTP client (urllib) and the CLI, as a tlog-tiles client on the internet would.
"""

from __future__ import annotations

import hashlib
import json
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import uvicorn
from fastapi.testclient import TestClient

from tests.unit.service.conftest import ClientFactory
from tracemark.cli import main
from tracemark.keys import Keyring, ensure_log_key, mint_api_token
from tracemark.service import ServiceSettings, create_app
from tracemark.tlog import (
    LogMonitor,
    MemoryStore,
    ProvenanceRecord,
    TileAddress,
    TileClient,
    TransparencyLog,
    parse_entry_bundle,
    read_tile,
    verify_checkpoint,
)
from tracemark.tlog.merkle import hash_leaf

PRELOADED = 600  # two full tiles and a partial one at level 0, a partial one at level 1


def _record(n: int) -> ProvenanceRecord:
    return ProvenanceRecord.create(
        content_sha256=hashlib.sha256(f"content {n}".encode()).hexdigest(),
        kind="text",
        key_id="tm-native-0123456789abcdef",
        model_id="org/model@rev",
        time="2026-08-02T12:00:00Z",
    )


def _preload(home: Path, size: int) -> None:
    """The service's database with ``size`` records and a checkpoint, written with the keyring's log key."""
    keyring = Keyring()
    keyring.create()
    with TransparencyLog.open(home / "db.sqlite3", signer=ensure_log_key(keyring)) as log:
        log.append_many([_record(i) for i in range(size)])
        log.checkpoint()


def _append_json(n: int) -> dict[str, str]:
    return {k: v for k, v in _record(n).to_dict().items() if k != "format"}


@pytest.fixture
def tiles_client(make_client: ClientFactory, isolated_home: Path) -> TestClient:
    _preload(isolated_home, PRELOADED)
    return make_client(None)


def test_tiles_paths_bytes_and_headers(tiles_client: TestClient, isolated_home: Path) -> None:
    client = tiles_client
    checkpoint = client.get("/checkpoint")
    assert checkpoint.status_code == 200
    assert checkpoint.headers["content-type"] == "text/plain; charset=utf-8"
    assert checkpoint.headers["cache-control"] == "public, max-age=2"
    assert checkpoint.headers["access-control-allow-origin"] == "*"
    log_key = ensure_log_key(Keyring()).verifier
    assert verify_checkpoint(checkpoint.text, log_key).checkpoint.size == PRELOADED

    with TransparencyLog.open(isolated_home / "db.sqlite3") as log:
        for path, cache in (
            ("tile/0/000", "public, max-age=31536000, immutable"),
            ("tile/0/001", "public, max-age=31536000, immutable"),
            ("tile/0/002.p/88", "public, max-age=60"),
            ("tile/0/001.p/3", "public, max-age=60"),  # part of a full tile: still served
            ("tile/1/000.p/2", "public, max-age=60"),
            ("tile/entries/001", "public, max-age=31536000, immutable"),
            ("tile/entries/002.p/88", "public, max-age=60"),
        ):
            response = client.get(f"/{path}")
            assert response.status_code == 200, path
            assert response.headers["content-type"] == "application/octet-stream"
            assert response.headers["cache-control"] == cache
            assert response.headers["access-control-allow-origin"] == "*"
            assert response.content == read_tile(log.store, TileAddress.parse(path), PRELOADED)
    bundle = parse_entry_bundle(client.get("/tile/entries/002.p/88").content, 88)
    assert ProvenanceRecord.from_json(bundle[-1]) == _record(PRELOADED - 1)

    for missing in ("tile/0/002", "tile/0/002.p/89", "tile/2/000.p/1", "tile/0/x000/000", "tile/0/000.p/256",
                    "tile/entries/003.p/1", "tile/x/000", "tile/0"):  # fmt: skip
        response = client.get(f"/{missing}")
        assert response.status_code == 404, missing
        assert response.json()["error"]["type"] == "NotFoundError"


def test_new_entries_appear_in_new_partial_tiles(tiles_client: TestClient) -> None:
    token = {"Authorization": f"Bearer {mint_api_token(Keyring(), label='test')}"}
    assert tiles_client.get("/tile/0/002.p/89").status_code == 404
    response = tiles_client.post("/v1/log/entries", json=_append_json(PRELOADED), headers=token)
    assert response.status_code == 200, response.text
    assert tiles_client.get("/tile/0/002.p/89").status_code == 200
    assert tiles_client.get("/tile/0/002.p/88").status_code == 200  # the older partial tile stays
    assert tiles_client.get("/checkpoint").text.split("\n")[1] == str(PRELOADED + 1)


@pytest.fixture
def served_url(isolated_home: Path) -> Iterator[str]:
    """The application under uvicorn on a free port of 127.0.0.1, over a preloaded log."""
    _preload(isolated_home, PRELOADED)
    settings = ServiceSettings(home=isolated_home, database=isolated_home / "db.sqlite3", model_dir=None)
    server = uvicorn.Server(uvicorn.Config(create_app(settings), log_level="warning", lifespan="on"))
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            pytest.fail("uvicorn did not start")
        time.sleep(0.02)
    yield f"http://127.0.0.1:{port}"
    server.should_exit = True
    thread.join(30)
    sock.close()


def _post(url: str, body: dict[str, Any], token: str) -> dict[str, Any]:
    import urllib.request

    request = urllib.request.Request(
        url, data=json.dumps(body).encode(), method="POST",
        headers={"Content-Type": "application/json", "Authorization": f"Bearer {token}"},
    )  # fmt: skip
    with urllib.request.urlopen(request, timeout=30) as response:
        answer: dict[str, Any] = json.loads(response.read())
    return answer


def test_a_client_verifies_inclusion_and_consistency_from_served_tiles(
    served_url: str, tmp_path: Path, isolated_home: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    log_key = ensure_log_key(Keyring()).verifier
    client = TileClient(served_url, log_key)
    before = client.checkpoint()
    assert before.checkpoint.size == PRELOADED
    client.verify_tree(before.checkpoint)
    (tmp_path / "old.txt").write_text(before.note)

    token = mint_api_token(Keyring(), label="test")
    appended = [_post(f"{served_url}/v1/log/entries", _append_json(PRELOADED + i), token) for i in range(3)]
    (tmp_path / "receipt.tlog-proof").write_text(appended[0]["receipt"])

    after = TileClient(served_url, log_key)
    current = after.checkpoint()
    assert current.checkpoint.size == PRELOADED + 3
    growth = after.check_growth(before.checkpoint, before.note, current)
    assert growth.old.size == PRELOADED
    proof = after.inclusion_proof(PRELOADED + 1, bytes.fromhex(appended[1]["leaf_hash"]), current.checkpoint)
    with TransparencyLog.open(isolated_home / "db.sqlite3") as log:
        assert proof == log.inclusion_proof(PRELOADED + 1, PRELOADED + 3).hashes
    assert after.entries(PRELOADED - 2, PRELOADED + 3, current.checkpoint)[-1] == _record(PRELOADED + 2).to_json()
    assert hash_leaf(after.entries(0, 1, current.checkpoint)[0]).hex() == hash_leaf(_record(0).to_json()).hex()

    # the CLI, from tiles alone: the receipt's entry is still in the log, which only grew since
    status = main(["tlog", "verify", str(tmp_path / "receipt.tlog-proof"), "--tiles", served_url, "--json",
                   "--log-key", log_key.vkey])  # fmt: skip
    out = capsys.readouterr().out
    assert status == 0, out
    verified = json.loads(out)
    assert verified["valid"] is True
    assert (verified["index"], verified["tiles"]["tree_size"]) == (PRELOADED, PRELOADED + 3)
    status = main(["tlog", "audit", str(tmp_path / "old.txt"), "--tiles", served_url, "--json",
                   "--log-key", log_key.vkey])  # fmt: skip
    audited = json.loads(capsys.readouterr().out)
    assert status == 0
    assert (audited["old_size"], audited["new_size"], audited["consistent"]) == (PRELOADED, PRELOADED + 3, True)

    monitor = LogMonitor(served_url, log_key, tmp_path / "state.json")
    assert monitor.check().event == "start"
    _post(f"{served_url}/v1/log/entries", _append_json(PRELOADED + 3), token)
    assert monitor.check().event == "grew"

    # a fork of the served log, signed with the same key, cannot pass for it
    fork = TransparencyLog(MemoryStore(), signer=ensure_log_key(Keyring()))
    fork.append_many([_record(10_000 + i) for i in range(PRELOADED + 10)])
    fork.checkpoint()
    forked_note = fork.latest_checkpoint().note  # type: ignore[union-attr]
    (tmp_path / "fork.txt").write_text(forked_note)
    status = main(["tlog", "audit", str(tmp_path / "old.txt"), str(tmp_path / "fork.txt"), "--tiles", served_url,
                   "--log-key", log_key.vkey])  # fmt: skip
    assert status == 6  # the served tiles stop at PRELOADED + 4: behind the fork's 610
    capsys.readouterr()
