"""The log routes: append with a receipt, checkpoints, entries, proofs, receipt verification."""

from __future__ import annotations

import base64
import hashlib
import itertools
import sqlite3
import threading
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from fastapi.testclient import TestClient

from tests.unit.tlog.test_timestamp import LocalTSA, serving
from tracemark.keys import Keyring, mint_api_token
from tracemark.service._log import _LeafIndex
from tracemark.tlog import (
    NoteVerifier,
    SignedNote,
    TransparencyLog,
    verify_checkpoint,
    verify_receipt,
    verify_timestamp,
)
from tracemark.tlog.merkle import hash_leaf, verify_consistency, verify_inclusion


@pytest.fixture(autouse=True)
def quick_rhythm(monkeypatch: pytest.MonkeyPatch) -> None:
    """Checkpoints every 50 ms (the default is 1 s): each waiting append here costs at most that."""
    monkeypatch.setenv("TRACEMARK_SERVICE_CHECKPOINT_INTERVAL", "0.05")


def _record(n: int, **changes: str) -> dict[str, str]:
    return {
        "content_sha256": hashlib.sha256(f"content {n}".encode()).hexdigest(),
        "kind": "text",
        "key_id": "tm-native-0123456789abcdef",
        "model_id": "org/model@rev",
        "time": "2026-08-02T12:00:00Z",
        **changes,
    }


def _append(client: TestClient, token: dict[str, str], n: int) -> dict[str, Any]:
    response = client.post("/v1/log/entries", json=_record(n), headers=token)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def _log_key(client: TestClient) -> NoteVerifier:
    return NoteVerifier.from_vkey(client.get("/v1/log/key").json()["log_key"])


def test_append_returns_index_and_a_receipt_that_verifies_offline(client: TestClient, token: dict[str, str]) -> None:
    first = _append(client, token, 0)
    second = _append(client, token, 1)
    assert (first["index"], second["index"]) == (0, 1)
    assert second["tree_size"] == 2
    assert first["record"]["format"] == "tracemark.provenance/v1"
    verified = verify_receipt(second["receipt"], _log_key(client))
    assert verified.index == 1
    assert verified.record is not None
    assert verified.record.to_dict() == second["record"]
    assert client.get("/v1/health").json()["log"]["size"] == 2


def test_time_defaults_to_the_service_clock(client: TestClient, token: dict[str, str]) -> None:
    record = _record(0)
    del record["time"]
    response = client.post("/v1/log/entries", json=record, headers=token)
    assert response.status_code == 200
    assert response.json()["record"]["time"].endswith("Z")


@pytest.mark.parametrize(
    ("changes", "status"),
    [
        ({"content_sha256": "xyz"}, 400),
        ({"time": "yesterday"}, 400),
        ({"kind": "image"}, 400),  # an image record needs its C2PA manifest id
        ({"c2pa_manifest_id": "urn:c2pa:1234"}, 400),  # ... and a text record has none
        ({"kind": "video"}, 422),
        ({"format": "other/v9"}, 400),
        ({"extra": "member"}, 422),
        ({"model_id": " padded "}, 400),
    ],
)
def test_bad_records_are_refused(
    client: TestClient, token: dict[str, str], changes: dict[str, str], status: int
) -> None:
    response = client.post("/v1/log/entries", json=_record(0, **changes), headers=token)
    assert response.status_code == status, response.text
    assert response.json()["error"]["message"]
    assert client.get("/v1/log/checkpoint").json()["tree_size"] == 0


def test_checkpoint_as_json_and_as_signed_note(client: TestClient, token: dict[str, str]) -> None:
    empty = client.get("/v1/log/checkpoint").json()
    assert empty["tree_size"] == 0
    _append(client, token, 0)
    data = client.get("/v1/log/checkpoint").json()
    assert data["tree_size"] == 1
    note = client.get("/v1/log/checkpoint", headers={"Accept": "text/plain"})
    assert note.headers["content-type"].startswith("text/plain")
    assert note.text == data["note"] == client.get("/v1/log/checkpoint?format=note").text
    checked = verify_checkpoint(note.text, _log_key(client))
    assert checked.checkpoint.size == 1
    assert base64.b64encode(checked.checkpoint.root_hash).decode() == data["root_hash"]
    assert client.get("/v1/log/checkpoint?format=xml").status_code == 422


def test_entries_one_by_one_and_paged(client: TestClient, token: dict[str, str]) -> None:
    for n in range(5):
        _append(client, token, n)
    one = client.get("/v1/log/entries/3").json()
    assert one["record"] == {**_record(3), "format": "tracemark.provenance/v1"}
    assert one["leaf_hash"] == hash_leaf(base64.b64decode(one["entry"])).hex()
    page = client.get("/v1/log/entries?start=1&limit=2").json()
    assert [e["index"] for e in page["entries"]] == [1, 2]
    assert (page["tree_size"], page["next"]) == (5, 3)
    last = client.get("/v1/log/entries?start=4&limit=10").json()
    assert last["next"] is None
    assert client.get("/v1/log/entries?start=9").json()["entries"] == []
    assert client.get("/v1/log/entries/5").status_code == 404
    for bad in ("/v1/log/entries/-1", "/v1/log/entries/x", "/v1/log/entries?limit=0", f"/v1/log/entries/{2**64}"):
        assert client.get(bad).status_code == 422, bad


def test_inclusion_proofs_by_index_leaf_hash_and_content(client: TestClient, token: dict[str, str]) -> None:
    appended = [_append(client, token, n) for n in range(7)]
    root = base64.b64decode(client.get("/v1/log/checkpoint").json()["root_hash"])
    target = appended[4]
    queries = [
        "index=4",
        f"leaf_hash={target['leaf_hash']}",
        "leaf_hash=" + base64.b64encode(bytes.fromhex(target["leaf_hash"])).decode().replace("+", "%2B"),
        f"content_sha256={target['record']['content_sha256']}",
    ]
    for query in queries:
        proof = client.get(f"/v1/log/proof/inclusion?{query}").json()
        assert (proof["index"], proof["tree_size"]) == (4, 7), query
        hashes = [base64.b64decode(h) for h in proof["proof"]]
        verify_inclusion(4, 7, bytes.fromhex(proof["leaf_hash"]), hashes, root)
        assert verify_receipt(proof["receipt"], _log_key(client)).index == 4
    older = client.get("/v1/log/proof/inclusion?index=2&size=5").json()
    assert older["tree_size"] == 5
    assert older["checkpoint"] is not None  # every append signed a checkpoint, so size 5 was signed


@pytest.mark.parametrize(
    ("query", "status"),
    [
        ("", 400),
        ("index=1&content_sha256=" + "ab" * 32, 400),
        ("index=3", 404),
        ("index=0&size=4", 404),
        ("leaf_hash=" + "00" * 32, 404),
        ("content_sha256=" + "00" * 32, 404),
        ("leaf_hash=nothex", 400),
        ("content_sha256=ABC", 400),
        ("index=-1", 422),
    ],
)
def test_inclusion_errors(client: TestClient, token: dict[str, str], query: str, status: int) -> None:
    for n in range(3):
        _append(client, token, n)
    response = client.get(f"/v1/log/proof/inclusion?{query}")
    assert response.status_code == status, response.text
    assert response.json()["error"]["type"]


def test_consistency_proofs(client: TestClient, token: dict[str, str]) -> None:
    roots = {0: client.get("/v1/log/checkpoint").json()["root_hash"]}
    for n in range(6):
        _append(client, token, n)
        roots[n + 1] = client.get("/v1/log/checkpoint").json()["root_hash"]
    for old, new in ((0, 6), (2, 6), (3, 5), (6, 6)):
        proof = client.get(f"/v1/log/proof/consistency?old={old}&new={new}").json()
        assert (proof["old_root"], proof["new_root"]) == (roots[old], roots[new])
        verify_consistency(old, new, base64.b64decode(roots[old]), base64.b64decode(roots[new]),
                           [base64.b64decode(h) for h in proof["proof"]])  # fmt: skip
    assert client.get("/v1/log/proof/consistency?old=2").json()["new_size"] == 6
    assert client.get("/v1/log/proof/consistency?old=7").status_code == 404
    assert client.get("/v1/log/proof/consistency?old=1&new=9").status_code == 404
    assert client.get("/v1/log/proof/consistency").status_code == 422


def test_verify_receipt(client: TestClient, token: dict[str, str]) -> None:
    appended = _append(client, token, 0)
    _append(client, token, 1)
    good = client.post("/v1/log/verify-receipt", json={"receipt": appended["receipt"]})
    assert good.status_code == 200
    assert good.json()["valid"] is True
    assert good.json()["record"] == appended["record"]
    content = client.post("/v1/log/verify-receipt", json={"receipt": appended["receipt"], "content": "content 0"})
    assert content.json()["content_matches"] is True
    other = client.post("/v1/log/verify-receipt", json={"receipt": appended["receipt"], "content": "content 1"})
    assert other.status_code == 422
    assert other.json()["error"]["type"] == "ContentMismatchError"
    lines = appended["receipt"].split("\n")
    lines[2] = "index 1"  # the proof no longer leads to the signed root
    moved = client.post("/v1/log/verify-receipt", json={"receipt": "\n".join(lines)})
    assert moved.status_code == 422
    assert moved.json()["error"]["type"] == "InclusionProofError"
    forged = appended["receipt"].replace("\n1\n", "\n2\n", 1)  # another tree size: the signature fails
    assert client.post("/v1/log/verify-receipt", json={"receipt": forged}).json()["error"]["type"] == (
        "TlogSignatureError"
    )
    garbage = client.post("/v1/log/verify-receipt", json={"receipt": "not a receipt"})
    assert garbage.status_code == 400
    assert garbage.json()["error"]["type"] == "TlogFormatError"


def test_receipts_of_another_log_are_refused(client: TestClient, token: dict[str, str], tmp_path: Any) -> None:
    from tracemark.tlog import NoteSigner, ProvenanceRecord

    with TransparencyLog.open(tmp_path / "other.sqlite3", signer=NoteSigner.generate("example.com/other")) as other:
        record = ProvenanceRecord.from_dict(_record(0))
        index = other.append(record).index
        receipt = other.receipt(index, sign=True).to_text()
    response = client.post("/v1/log/verify-receipt", json={"receipt": receipt})
    assert response.status_code == 422
    assert "example.com/other" in response.json()["error"]["message"]


def test_concurrent_appends_from_the_thread_pool(client: TestClient, token: dict[str, str]) -> None:
    results: list[dict[str, Any]] = []
    errors: list[BaseException] = []
    lock = threading.Lock()

    def writer(offset: int) -> None:
        try:
            for n in range(offset, offset + 6):
                body = _append(client, token, n)
                with lock:
                    results.append(body)
        except BaseException as exc:  # surfaced below
            errors.append(exc)

    threads = [threading.Thread(target=writer, args=(k * 100,)) for k in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors
    assert sorted(r["index"] for r in results) == list(range(36))
    log_key = _log_key(client)
    for body in results:
        assert verify_receipt(body["receipt"], log_key).record is not None
    app_log = client.app.state.log.log  # type: ignore[attr-defined]
    app_log.verify_integrity()


def test_leaf_hash_lookups_catch_up_with_new_entries(client: TestClient, token: dict[str, str]) -> None:
    first = _append(client, token, 0)
    assert client.get(f"/v1/log/proof/inclusion?leaf_hash={first['leaf_hash']}").json()["index"] == 0
    later = [_append(client, token, n) for n in range(1, 4)]
    for body in later:
        proof = client.get(f"/v1/log/proof/inclusion?leaf_hash={body['leaf_hash']}").json()
        assert proof["index"] == body["index"]
    older_tree = client.get(f"/v1/log/proof/inclusion?leaf_hash={later[-1]['leaf_hash']}&size=2")
    assert older_tree.status_code == 404


# -- the publishing rhythm, promises, times, idempotency and the holes of issue #18 --------------
def _rhythm_client(make_client: Any, monkeypatch: pytest.MonkeyPatch, interval: float) -> tuple[TestClient, Any]:
    monkeypatch.setenv("TRACEMARK_SERVICE_CHECKPOINT_INTERVAL", str(interval))
    client = make_client(None)
    token = {"Authorization": f"Bearer {mint_api_token(Keyring(), label='test')}"}
    return client, token


def test_checkpoints_are_published_on_the_interval_not_per_append(
    make_client: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    client, token = _rhythm_client(make_client, monkeypatch, 0.3)
    bodies: list[dict[str, Any]] = []
    lock = threading.Lock()

    def writer(offset: int) -> None:
        for n in range(offset, offset + 8):
            body = _append(client, token, n)
            with lock:
                bodies.append(body)

    threads = [threading.Thread(target=writer, args=(k * 100,)) for k in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(bodies) == 48
    log_key = _log_key(client)
    for body in bodies:  # every waiting append got a receipt against a published checkpoint covering it
        verified = verify_receipt(body["receipt"], log_key)
        assert verified.index == body["index"] < verified.tree_size
    stored = client.app.state.log.log.store.checkpoints()  # type: ignore[attr-defined]
    signed_here = stored[1:]  # the first is the empty log's, signed when the log opened
    gaps = [b.created_at - a.created_at for a, b in itertools.pairwise(signed_here)]
    assert all(gap >= 0.3 - 0.01 for gap in gaps), gaps  # never two checkpoints within one interval
    assert len(signed_here) < len(bodies)


def test_an_append_that_does_not_wait_gets_a_promise_it_redeems_later(
    make_client: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    client, token = _rhythm_client(make_client, monkeypatch, 0.2)
    response = client.post("/v1/log/entries?wait=false", json=_record(0), headers=token)
    assert response.status_code == 200, response.text
    promise = response.json()
    assert promise["receipt"] is None
    assert (promise["index"], promise["tree_size"]) == (0, 1)
    for _ in range(200):  # the next checkpoint comes within the interval; poll for it
        redeemed = client.get(f"/v1/log/receipt/{promise['index']}")
        if redeemed.status_code == 200:
            break
        assert redeemed.status_code == 404
        assert "not covered by a published checkpoint yet" in redeemed.json()["error"]["message"]
        time.sleep(0.05)
    body = redeemed.json()
    verified = verify_receipt(body["receipt"], _log_key(client))
    assert verified.index == 0
    assert verified.leaf_hash.hex() == promise["leaf_hash"]
    assert body["tree_size"] >= promise["tree_size"]
    assert client.get("/v1/log/receipt/5").status_code == 404  # no such entry


def test_a_promise_is_not_redeemable_before_the_next_checkpoint(
    make_client: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    client, token = _rhythm_client(make_client, monkeypatch, 3600)
    _append(client, token, 0)  # the first checkpoint is immediate: the log had published none for a while
    promise = client.post("/v1/log/entries?wait=false", json=_record(1), headers=token).json()
    assert promise["receipt"] is None
    pending = client.get(f"/v1/log/receipt/{promise['index']}")
    assert pending.status_code == 404
    assert client.get("/v1/log/checkpoint").json()["tree_size"] == 1
    assert client.get("/v1/log/receipt/0").status_code == 200


def test_the_log_time_and_the_claimed_time_are_separate(client: TestClient, token: dict[str, str]) -> None:
    before = datetime.now(UTC) - timedelta(seconds=1)
    body = _append(client, token, 0)
    assert body["claimed_time"] == "2026-08-02T12:00:00Z" == body["record"]["time"]
    integrated = datetime.fromisoformat(body["integrated_time"].replace("Z", "+00:00"))
    assert before <= integrated <= datetime.now(UTC) + timedelta(seconds=1)
    entry = client.get("/v1/log/entries/0").json()
    assert (entry["integrated_time"], entry["claimed_time"]) == (body["integrated_time"], body["claimed_time"])
    assert client.get("/v1/log/entries").json()["entries"][0]["integrated_time"] == body["integrated_time"]


@pytest.mark.parametrize("claimed", ["9999-12-31T23:59:59Z", "2100-01-01T00:00:00Z"])
def test_claimed_times_far_ahead_are_refused(client: TestClient, token: dict[str, str], claimed: str) -> None:
    response = client.post("/v1/log/entries", json=_record(0, time=claimed), headers=token)
    assert response.status_code == 400
    assert "24 hours ahead" in response.json()["error"]["message"]
    assert client.get("/v1/log/entries").json()["tree_size"] == 0


def test_retried_appends_create_no_duplicates(client: TestClient, token: dict[str, str]) -> None:
    bodies = [_append(client, token, 7) for _ in range(3)]
    assert [b["index"] for b in bodies] == [0, 0, 0]
    assert [b["duplicate"] for b in bodies] == [False, True, True]
    assert {b["leaf_hash"] for b in bodies} == {bodies[0]["leaf_hash"]}
    assert bodies[2]["integrated_time"] == bodies[0]["integrated_time"]
    for body in bodies:
        assert verify_receipt(body["receipt"], _log_key(client)).index == 0
    assert client.get("/v1/log/entries").json()["tree_size"] == 1
    # Another record (here: another claimed time) is another entry.
    assert _append(client, token, 7) == bodies[1]  # the same answer each time the retry is repeated
    other = client.post("/v1/log/entries", json=_record(7, time="2026-08-02T12:00:01Z"), headers=token).json()
    assert (other["index"], other["duplicate"]) == (1, False)


def test_concurrent_identical_posts_make_one_entry(client: TestClient, token: dict[str, str]) -> None:
    indices: list[int] = []
    lock = threading.Lock()

    def post() -> None:
        body = _append(client, token, 3)
        with lock:
            indices.append(body["index"])

    threads = [threading.Thread(target=post) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert indices == [0] * 8
    assert client.get("/v1/log/entries").json()["tree_size"] == 1


def test_a_leaf_hash_lookup_never_holds_the_logs_write_lock(
    client: TestClient, token: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    bodies = [_append(client, token, n) for n in range(12)]
    service_log = client.app.state.log  # type: ignore[attr-defined]
    original = _LeafIndex._insert
    chunks: list[tuple[int, int]] = []

    def insert(self: _LeafIndex, db: sqlite3.Connection, log: TransparencyLog, low: int, high: int) -> None:
        original(self, db, log, low, high)
        # While the index is being built, the log's write lock is free: an append could take it now.
        probe = sqlite3.connect(service_log.database, timeout=0, isolation_level=None)
        try:
            probe.execute("BEGIN IMMEDIATE")
            probe.execute("ROLLBACK")
        finally:
            probe.close()
        chunks.append((low, high))

    monkeypatch.setattr(_LeafIndex, "CHUNK", 4)
    monkeypatch.setattr(_LeafIndex, "_insert", insert)
    proof = client.get(f"/v1/log/proof/inclusion?leaf_hash={bodies[9]['leaf_hash']}").json()
    assert proof["index"] == 9
    assert chunks == [(0, 4), (4, 8), (8, 12)]
    assert not service_log.database.with_name(service_log.database.name + ".leaves").samefile(service_log.database)


def test_a_damaged_database_gets_one_error_shape_not_a_bad_receipt(client: TestClient, token: dict[str, str]) -> None:
    for n in range(8):
        _append(client, token, n)
    database = client.app.state.log.database  # type: ignore[attr-defined]
    with sqlite3.connect(database) as db:
        db.execute("UPDATE tlog_nodes SET hash = zeroblob(32) WHERE id = 2")  # parent of leaves 0 and 1
        db.execute("UPDATE tlog_entries SET data = CAST(data AS TEXT) WHERE idx = 5")
    for path in ("/v1/log/proof/inclusion?index=2", "/v1/log/receipt/3", "/v1/log/entries/5", "/v1/log/receipt/5"):
        response = client.get(path)
        assert response.status_code == 503, (path, response.text)
        error = response.json()["error"]
        assert error["type"] == "TlogStorageError"
        assert "damaged" in error["message"]
        assert "Traceback" not in response.text
    assert client.get("/v1/log/proof/inclusion?index=6").status_code == 200  # undamaged paths still work


def test_verify_receipt_accepts_a_receipt_without_its_final_newline(client: TestClient, token: dict[str, str]) -> None:
    receipt = _append(client, token, 0)["receipt"]
    response = client.post("/v1/log/verify-receipt", json={"receipt": receipt.rstrip("\n")})
    assert response.status_code == 200, response.text
    assert response.json()["valid"] is True


def test_published_checkpoints_are_timestamped_by_a_configured_tsa(
    make_client: Any, monkeypatch: pytest.MonkeyPatch, tmp_path: Any
) -> None:
    authority = LocalTSA()
    with serving(authority) as url:
        _timestamped(make_client, monkeypatch, tmp_path, authority, url)


def _timestamped(
    make_client: Any, monkeypatch: pytest.MonkeyPatch, tmp_path: Any, authority: LocalTSA, url: str
) -> None:
    pem = tmp_path / "tsa.pem"
    pem.write_bytes(authority.certificate.public_bytes(serialization.Encoding.PEM))
    monkeypatch.setenv("TRACEMARK_SERVICE_TSA_URL", url)
    monkeypatch.setenv("TRACEMARK_SERVICE_TSA_CERTIFICATE", str(pem))
    client, token = _rhythm_client(make_client, monkeypatch, 0.05)
    appended = client.post("/v1/log/entries", json=_record(0), headers=token).json()
    size = verify_receipt(appended["receipt"], _log_key(client)).tree_size
    for _ in range(200):  # the token is asked for after the waiting appends were answered
        answer = client.get(f"/v1/log/checkpoint/timestamp?size={size}")
        if answer.status_code == 200:
            break
        time.sleep(0.05)
    body = answer.json()
    assert answer.status_code == 200, body
    assert body["tree_size"] == size
    text = SignedNote.parse(body["checkpoint"]).text.encode()
    verified = verify_timestamp(base64.b64decode(body["token"]), text, authority.certificate)
    assert body["gen_time"].startswith(datetime.fromtimestamp(verified.gen_time, UTC).strftime("%Y-%m-%dT%H:%M:%S"))
    assert client.get("/v1/log/checkpoint/timestamp?size=12345").status_code == 404


def test_without_a_tsa_there_is_no_timestamp(client: TestClient, token: dict[str, str]) -> None:
    _append(client, token, 0)
    answer = client.get("/v1/log/checkpoint/timestamp")
    assert answer.status_code == 404
    assert "no TSA is configured" in answer.json()["error"]["message"]
