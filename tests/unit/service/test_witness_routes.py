"""Witnessing over real HTTP: two tracemark witnesses on sockets, one witness that is down.

Each witness is a whole tracemark service (``create_app`` with a witness policy) served by
uvicorn on a free port in a thread; the log side is :class:`~tracemark.tlog.CheckpointPublisher`
and the service's own log under a witness policy.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import itertools
import socket
import struct
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import uvicorn
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from fastapi import FastAPI

from tests.unit.service.conftest import ClientFactory
from tests.unit.tlog._helpers import make_record
from tracemark.keys import Keyring, ensure_log_key, ensure_witness_key, mint_api_token
from tracemark.service import ServiceSettings, create_app
from tracemark.tlog import (
    AddCheckpointRequest,
    CheckpointPublisher,
    MemoryStore,
    NoteSigner,
    NoteVerifier,
    TransparencyLog,
    WitnessClient,
    WitnessEndpoint,
    WitnessPolicy,
    WitnessQuorumError,
    verify_checkpoint,
    verify_receipt,
)

ORIGIN = "example.com/witnessed-log"


@contextlib.contextmanager
def serve(app: FastAPI) -> Iterator[str]:
    """Serve ``app`` with uvicorn on a free local port in a thread; yields its base URL."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", access_log=False))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("the witness server did not start")
        time.sleep(0.01)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(20)
        sock.close()


def free_url() -> str:
    """The URL of a local port nothing listens on (a witness that is down)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{sock.getsockname()[1]}"


@dataclass(frozen=True)
class RunningWitness:
    url: str
    key: NoteVerifier
    home: Path

    @property
    def endpoint(self) -> WitnessEndpoint:
        return WitnessEndpoint(self.key, self.url)

    def state(self) -> str:
        return (self.home / "witness" / "state.json").read_text()


@pytest.fixture
def signer() -> NoteSigner:
    return NoteSigner.generate(ORIGIN)


WitnessFactory = Callable[[NoteVerifier], list[RunningWitness]]


@pytest.fixture
def start_witnesses(tmp_path: Path) -> Iterator[WitnessFactory]:
    """Start two tracemark services that witness the log of a key, each with its own home and key."""
    with contextlib.ExitStack() as stack:

        def start(log_key: NoteVerifier) -> list[RunningWitness]:
            running = []
            for name in ("a", "b"):
                home = tmp_path / f"witness-{name}"
                keyring = Keyring(home)
                keyring.create()
                key = ensure_witness_key(keyring, name=f"witness.example/{name}").verifier
                policy = home / "policy.txt"
                policy.write_text(f"# logs this witness cosigns\nlog {log_key.vkey}\n")
                settings = ServiceSettings(home=home, database=home / "db.sqlite3", model_dir=None,
                                           witness_policy=policy)  # fmt: skip
                url = stack.enter_context(serve(create_app(settings)))
                running.append(RunningWitness(url, key, home))
            return running

        yield start


@pytest.fixture
def witnesses(start_witnesses: WitnessFactory, signer: NoteSigner) -> list[RunningWitness]:
    """Two running witnesses of the log of ``signer``."""
    return start_witnesses(signer.verifier)


@pytest.fixture
def down() -> WitnessEndpoint:
    key = NoteSigner.generate("witness.example/down", 0x04).verifier
    return WitnessEndpoint(key, free_url())


def grown(log: TransparencyLog, count: int) -> TransparencyLog:
    start = log.size
    log.append_many([make_record(start + i) for i in range(count)])
    return log


def post(url: str, body: str | bytes, method: str = "POST") -> tuple[int, str, bytes]:
    data = body.encode() if isinstance(body, str) else body
    request = urllib.request.Request(url + "/add-checkpoint", data=data, method=method)
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, response.headers["Content-Type"], response.read()
    except urllib.error.HTTPError as error:
        with error:
            return error.code, error.headers["Content-Type"], error.read()


def independent_cosignature_check(note: str, witness: NoteVerifier) -> int:
    """Verify ``witness``'s line on ``note`` by c2sp.org/tlog-cosignature alone; returns its timestamp."""
    text, _, signatures = note.rpartition("\n\n")
    body = (text + "\n").encode()
    public = witness.public_key
    key_id = hashlib.sha256(witness.name.encode() + b"\n" + b"\x04" + public).digest()[:4]
    for line in signatures.splitlines():
        name, blob_b64 = line.removeprefix("— ").split(" ")
        blob = base64.b64decode(blob_b64, validate=True)
        if name != witness.name or blob[:4] != key_id:
            continue
        assert len(blob) == 4 + 8 + 64
        (timestamp,) = struct.unpack(">Q", blob[4:12])
        message = b"cosignature/v1\ntime " + str(timestamp).encode() + b"\n" + body
        Ed25519PublicKey.from_public_bytes(public).verify(blob[12:], message)  # raises if invalid
        return int(timestamp)
    raise AssertionError(f"no line from {witness.name} in the note")


# -- the log side: quorum --------------------------------------------------------------------


def test_two_of_three_publishes_with_both_live_cosignatures(
    signer: NoteSigner, witnesses: list[RunningWitness], down: WitnessEndpoint
) -> None:
    log = grown(TransparencyLog(MemoryStore(), signer=signer), 5)
    policy = WitnessPolicy((witnesses[0].endpoint, witnesses[1].endpoint, down), quorum=2)
    publisher = CheckpointPublisher(policy)
    publication = publisher.publish(log)
    assert set(publication.witnesses) == {"witness.example/a", "witness.example/b"}
    (failure,) = publication.failures
    assert (failure.witness, failure.url, failure.status) == ("witness.example/down", down.url, None)
    assert "unreachable" in failure.reason
    note = publication.checkpoint.note
    keys = [w.key for w in witnesses]
    assert verify_checkpoint(note, signer.verifier, witnesses=keys, quorum=2).checkpoint.size == 5
    for witness in witnesses:
        assert abs(independent_cosignature_check(note, witness.key) - time.time()) < 300
    published = CheckpointPublisher.published(log)
    assert published is not None
    assert (published.size, published.note) == (5, note)
    # The log grows: the client sends a proof from the size each witness cosigned.
    again = publisher.publish(grown(log, 3))
    assert again.checkpoint.checkpoint.size == 8
    assert all('"size": 8' in w.state() for w in witnesses)


def test_three_of_three_is_refused_and_names_the_down_witness(
    signer: NoteSigner, witnesses: list[RunningWitness], down: WitnessEndpoint
) -> None:
    log = grown(TransparencyLog(MemoryStore(), signer=signer), 4)
    policy = WitnessPolicy((witnesses[0].endpoint, witnesses[1].endpoint, down), quorum=3)
    with pytest.raises(WitnessQuorumError) as caught:
        CheckpointPublisher(policy).publish(log)
    error = caught.value
    assert [f.witness for f in error.failures] == ["witness.example/down"]
    assert "witness.example/down" in str(error)
    assert down.url in str(error)
    assert "2 of 3 required cosignatures" in str(error)
    # Nothing is published, and the stored checkpoint carries no cosignature.
    assert CheckpointPublisher.published(log) is None
    latest = log.latest_checkpoint()
    assert latest is not None
    assert latest.note.count("\n— ") == 1


def test_a_new_client_learns_the_witness_size_from_409_and_retries_once(
    signer: NoteSigner, witnesses: list[RunningWitness], monkeypatch: pytest.MonkeyPatch
) -> None:
    log = grown(TransparencyLog(MemoryStore(), signer=signer), 5)
    policy = WitnessPolicy((witnesses[0].endpoint,), quorum=1)
    CheckpointPublisher(policy).publish(log)
    statuses: list[int] = []
    original = WitnessClient._post

    def recording(self: WitnessClient, witness: WitnessEndpoint, body: bytes) -> tuple[int, str, bytes]:
        answer = original(self, witness, body)
        statuses.append(answer[0])
        return answer

    monkeypatch.setattr(WitnessClient, "_post", recording)
    fresh = CheckpointPublisher(policy)  # knows nothing: starts from old size 0
    publication = fresh.publish(grown(log, 4))
    assert statuses == [409, 200]
    assert publication.witnesses == ("witness.example/a",)
    assert fresh.client.known_size(witnesses[0].endpoint) == 9


# -- the witness side: refusals over HTTP ----------------------------------------------------


def test_witness_refuses_a_fork_at_the_same_size_and_beyond(
    signer: NoteSigner, witnesses: list[RunningWitness]
) -> None:
    honest = grown(TransparencyLog(MemoryStore(), signer=signer), 5)
    witness = witnesses[0]
    CheckpointPublisher(WitnessPolicy((witness.endpoint,), quorum=1)).publish(honest)
    state = witness.state()
    fork = TransparencyLog(MemoryStore(), signer=signer)
    fork.append_many([make_record(100 + i) for i in range(5)])
    forked_note = fork.checkpoint().note
    status, content_type, body = post(witness.url, AddCheckpointRequest(5, (), forked_note).to_text())
    assert (status, content_type, body) == (409, "text/x.tlog.size", b"5\n")
    # Further along the fork, with the fork's own (valid for it) proof from 5: the proof fails.
    grown(fork, 3)
    proof = fork.consistency_proof(5, 8).hashes
    status, _, body = post(witness.url, AddCheckpointRequest(5, proof, fork.checkpoint().note).to_text())
    assert status == 422, body
    assert b"ConsistencyProofError" in body
    # The client reports the refusal, and the witness's state did not move.
    with pytest.raises(WitnessQuorumError) as caught:
        CheckpointPublisher(WitnessPolicy((witness.endpoint,), quorum=1)).publish(fork)
    (failure,) = caught.value.failures
    assert failure.status == 422
    assert witness.state() == state


def test_witness_refuses_a_rolled_back_checkpoint(signer: NoteSigner, witnesses: list[RunningWitness]) -> None:
    log = grown(TransparencyLog(MemoryStore(), signer=signer), 5)
    old_note = log.checkpoint().note
    witness = witnesses[0]
    CheckpointPublisher(WitnessPolicy((witness.endpoint,), quorum=1)).publish(grown(log, 3))
    # An old checkpoint: claiming the witness's own size is a bad request, any other size a conflict.
    status, _, _ = post(witness.url, AddCheckpointRequest(8, (), old_note).to_text())
    assert status == 400
    for old in (0, 5):
        status, content_type, body = post(witness.url, AddCheckpointRequest(old, (), old_note).to_text())
        assert (status, content_type, body) == (409, "text/x.tlog.size", b"8\n")
    assert '"size": 8' in witness.state()


def test_witness_status_codes(signer: NoteSigner, witnesses: list[RunningWitness]) -> None:
    url = witnesses[0].url
    note = grown(TransparencyLog(MemoryStore(), signer=signer), 2).checkpoint().note
    # Another log's checkpoint: unknown origin.
    other = grown(TransparencyLog(MemoryStore(), signer=NoteSigner.generate("example.com/other")), 2)
    status, content_type, body = post(url, AddCheckpointRequest(0, (), other.checkpoint().note).to_text())
    assert (status, content_type) == (404, "application/json")
    assert b"WitnessUnknownLogError" in body
    # The right origin signed by a key the witness does not trust.
    impostor = grown(TransparencyLog(MemoryStore(), signer=NoteSigner.generate(ORIGIN)), 2)
    status, _, _ = post(url, AddCheckpointRequest(0, (), impostor.checkpoint().note).to_text())
    assert status == 403
    # Malformed bodies.
    for bad in ("old 01\n\n" + note, "new 0\n\n" + note, "old 0\n" + note, "old 0\nnot base64\n\n" + note):
        status, _, _ = post(url, bad)
        assert status == 400, bad
    status, _, body = post(url, b"old 0\n\n" + b"x" * (300 * 1024))
    assert status == 413, body
    status, _, _ = post(url, "", method="GET")
    assert status == 405
    # And the honest checkpoint is cosigned: a 200 with one cosignature line.
    status, content_type, body = post(url, AddCheckpointRequest(0, (), note).to_text())
    assert (status, content_type) == (200, "text/plain; charset=utf-8")
    assert body.decode().startswith("— witness.example/a ")
    assert body.count(b"\n") == 1


def test_a_service_without_log_lines_witnesses_nothing(make_client: ClientFactory) -> None:
    client = make_client(None)
    note = grown(TransparencyLog(MemoryStore(), signer=NoteSigner.generate(ORIGIN)), 1).checkpoint().note
    response = client.post("/add-checkpoint", content=AddCheckpointRequest(0, (), note).to_text())
    assert response.status_code == 404
    assert response.json()["error"]["type"] == "WitnessUnknownLogError"


# -- the service's own log under a witness policy --------------------------------------------


def _policy_file(path: Path, witnesses: list[WitnessEndpoint], quorum: int) -> Path:
    lines = [f"witness {w.key.vkey} {w.url}" for w in witnesses]
    path.write_text("\n".join([*lines, f"quorum {quorum}"]) + "\n")
    return path


def _record(n: int) -> dict[str, str]:
    return make_record(n).to_dict()


def test_the_service_publishes_only_cosigned_checkpoints(
    tmp_path: Path, start_witnesses: WitnessFactory, down: WitnessEndpoint, make_client: ClientFactory
) -> None:
    keyring = Keyring()  # the isolated home of make_client
    keyring.create()
    log_key = ensure_log_key(keyring, origin=ORIGIN)
    live = [w.endpoint for w in start_witnesses(log_key.verifier)]
    policy = _policy_file(tmp_path / "log-policy.txt", [*live, down], quorum=2)
    client = make_client(None, witness_policy=policy)
    token = {"Authorization": f"Bearer {mint_api_token(keyring, label='test')}"}
    response = client.post("/v1/log/entries", json=_record(0), headers=token)
    assert response.status_code == 200, response.text
    receipt = response.json()["receipt"]
    verified = verify_receipt(receipt, log_key.verifier, witnesses=[e.key for e in live], quorum=2)
    assert set(verified.checkpoint.witnesses) == {"witness.example/a", "witness.example/b"}
    served = client.get("/v1/log/checkpoint").json()
    assert served["tree_size"] == 1
    verify_checkpoint(served["note"], log_key.verifier, witnesses=[e.key for e in live], quorum=2)

    strict = _policy_file(tmp_path / "strict-policy.txt", [*live, down], quorum=3)
    client = make_client(None, witness_policy=strict)
    response = client.post("/v1/log/entries", json=_record(1), headers=token)
    assert response.status_code == 503  # the service is not fit to publish: retry later
    error = response.json()["error"]
    assert error["type"] == "WitnessQuorumError"
    assert "witness.example/down" in error["message"]
    assert down.url in error["message"]
    # The entry is in the log, but the served checkpoint is still the last cosigned one.
    assert client.get("/v1/log/entries/1").status_code == 200
    assert client.get("/v1/log/checkpoint").json()["tree_size"] == 1


def test_the_policy_setting_reaches_worker_processes(tmp_path: Path) -> None:
    settings = ServiceSettings(home=tmp_path, database=tmp_path / "db", model_dir=None, witness_policy=tmp_path / "p")
    environment = settings.to_environment()
    assert environment["TRACEMARK_SERVICE_WITNESS_POLICY"] == str(tmp_path / "p")
    assert ServiceSettings.from_environment(environment).witness_policy == tmp_path / "p"


@pytest.mark.usefixtures("isolated_home")
def test_service_run_refuses_a_bad_policy_before_serving(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from tracemark.cli import main

    policy = tmp_path / "policy.txt"
    policy.write_text("witness not-a-key https://w.example\n")
    assert main(["service", "run", "--witness-policy", str(policy), "--port", "9"]) == 6
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert f"witness policy {policy} line 1" in err


def test_the_publishing_thread_asks_the_witnesses_once_per_interval_not_per_append(
    tmp_path: Path, start_witnesses: WitnessFactory, make_client: ClientFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TRACEMARK_SERVICE_CHECKPOINT_INTERVAL", "0.3")
    keyring = Keyring()
    keyring.create()
    log_key = ensure_log_key(keyring, origin=ORIGIN)
    live = [w.endpoint for w in start_witnesses(log_key.verifier)]
    client = make_client(None, witness_policy=_policy_file(tmp_path / "policy.txt", live, quorum=2))
    publisher = client.app.state.context.log.publisher  # type: ignore[attr-defined]
    rounds: list[float] = []
    cosign = publisher.client.cosign

    def counted(*args: object, **kwargs: object) -> object:
        rounds.append(time.monotonic())
        return cosign(*args, **kwargs)

    monkeypatch.setattr(publisher.client, "cosign", counted)
    token = {"Authorization": f"Bearer {mint_api_token(keyring, label='test')}"}
    receipts: list[str] = []
    lock = threading.Lock()

    def writer(offset: int) -> None:
        for n in range(offset, offset + 5):
            response = client.post("/v1/log/entries", json=_record(n), headers=token)
            assert response.status_code == 200, response.text
            with lock:
                receipts.append(response.json()["receipt"])

    threads = [threading.Thread(target=writer, args=(k * 100,)) for k in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(receipts) == 30
    for receipt in receipts:  # every answer carries a checkpoint the quorum cosigned
        verify_receipt(receipt, log_key.verifier, witnesses=[e.key for e in live], quorum=2)
    assert 1 <= len(rounds) < len(receipts)
    assert all(later - earlier >= 0.3 for earlier, later in itertools.pairwise(rounds)), rounds
