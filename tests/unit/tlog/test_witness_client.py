"""The witness client and policy: what a log does with each kind of witness answer, and ``tlog cosign``.

The witnesses here are small standard-library HTTP servers (no service extra needed): an honest
one wrapping :class:`~tracemark.tlog.Witness`, and misbehaving ones whose answers the client must
refuse.  The tracemark service as a witness is tested in ``tests/unit/service/test_witness_routes.py``.
"""

from __future__ import annotations

import contextlib
import json
import socket
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.support.http import QuietHandler, loopback_server
from tests.unit.tlog._helpers import make_record
from tracemark.cli import main
from tracemark.errors import TlogFormatError, TracemarkError, WitnessConflictError
from tracemark.keys import Keyring, ensure_log_key
from tracemark.tlog import (
    SIG_COSIGNATURE_V1,
    CheckpointPublisher,
    MemoryStore,
    NoteSigner,
    TransparencyLog,
    Witness,
    WitnessClient,
    WitnessEndpoint,
    WitnessPolicy,
    sign_note,
    witness_status,
)

Answer = tuple[int, str, bytes]
Responder = Callable[[bytes], Answer]


@contextlib.contextmanager
def http_witness(respond: Responder) -> Iterator[str]:
    """A local HTTP server answering ``POST /add-checkpoint`` with ``respond(body)``; yields its URL."""

    class Handler(QuietHandler):
        def do_POST(self) -> None:  # noqa: N802 (http.server names it)
            body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
            status, content_type, answer = respond(body) if self.path == "/add-checkpoint" else (404, "text/plain", b"")
            headers = {"Content-Type": content_type}
            if status in (301, 307):
                headers["Location"] = "http://127.0.0.1:9/elsewhere"
            self.reply(status, answer, headers)

    with loopback_server(Handler) as url:
        yield f"{url}/"


def honest(witness: Witness) -> Responder:
    """The tlog-witness answers of ``witness``."""

    def respond(body: bytes) -> Answer:
        try:
            return 200, "text/plain; charset=utf-8", witness.handle_request(body).encode()
        except WitnessConflictError as conflict:
            return 409, "text/x.tlog.size", f"{conflict.latest_size}\n".encode()
        except TracemarkError as error:
            return witness_status(error), "text/plain", str(error).encode()

    return respond


def free_url() -> str:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{sock.getsockname()[1]}"


@pytest.fixture
def log(signer: NoteSigner) -> TransparencyLog:
    opened = TransparencyLog(MemoryStore(), signer=signer)
    opened.append_many([make_record(i) for i in range(6)])
    return opened


@pytest.fixture
def witness(tmp_path: Path, witness_signer: NoteSigner, signer: NoteSigner) -> Witness:
    return Witness(witness_signer, tmp_path / "state.json", {signer.name: [signer.verifier]})


def publish_one(log: TransparencyLog, endpoint: WitnessEndpoint) -> CheckpointPublisher:
    publisher = CheckpointPublisher(WitnessPolicy((endpoint,), quorum=1))
    publisher.publish(log)
    return publisher


# -- answers the client must refuse ----------------------------------------------------------


def _failure_of(log: TransparencyLog, endpoint: WitnessEndpoint) -> tuple[int | None, str]:
    result = WitnessClient(WitnessPolicy((endpoint,), quorum=1)).cosign(
        log.checkpoint().note, lambda old, new: log.consistency_proof(old, new).hashes
    )
    assert result.cosignatures == ()
    (failure,) = result.failures
    return failure.status, failure.reason


def test_a_cosignature_from_another_key_does_not_count(log: TransparencyLog, witness: Witness) -> None:
    impostor = Witness(NoteSigner.generate(witness.name, SIG_COSIGNATURE_V1), witness.state_path, witness.logs)
    with http_witness(honest(impostor)) as url:
        status, reason = _failure_of(log, WitnessEndpoint(witness.cosigner.verifier, url))
    assert status == 200
    assert "no valid cosignature" in reason


def test_a_cosignature_over_another_checkpoint_is_refused(
    log: TransparencyLog, witness: Witness, signer: NoteSigner
) -> None:
    # A real cosignature line from the right key, but over some other checkpoint body.
    other = sign_note(f"{signer.name}\n1\n{'A' * 43}=\n", [witness.cosigner])
    line = other.rpartition("\n\n")[2].encode()
    with http_witness(lambda _: (200, "text/plain", line)) as url:
        status, reason = _failure_of(log, WitnessEndpoint(witness.cosigner.verifier, url))
    assert status == 200
    assert "invalid signature" in reason


def test_lines_from_unknown_keys_are_ignored(log: TransparencyLog, witness: Witness) -> None:
    stranger = NoteSigner.generate("witness.example/stranger", SIG_COSIGNATURE_V1)

    def respond(body: bytes) -> Answer:
        status, content_type, answer = honest(witness)(body)
        note = body.decode().partition("\n\n")[2]
        text = note.rpartition("\n\n")[0] + "\n"
        return status, content_type, stranger.sign(text.encode()).line().encode() + answer

    with http_witness(respond) as url:
        publish_one(log, WitnessEndpoint(witness.cosigner.verifier, url))
    published = CheckpointPublisher.published(log)
    assert published is not None
    assert "witness.example/stranger" not in published.note
    assert witness.name in published.note


@pytest.mark.parametrize(
    ("answer", "expected"),
    [
        ((409, "text/plain", b"3\n"), "content type"),
        ((409, "text/x.tlog.size", b"three\n"), "not a tree size"),
        ((409, "text/x.tlog.size", b"99\n"), "larger than this checkpoint (6)"),
        ((307, "text/plain", b""), "HTTP 307"),
        ((500, "text/plain", b"boom"), "HTTP 500: boom"),
        ((200, "text/plain", b"not a signature line\n"), "no valid cosignature"),
    ],
)
def test_bad_answers_become_named_failures(
    log: TransparencyLog, witness: Witness, answer: Answer, expected: str
) -> None:
    with http_witness(lambda _: answer) as url:
        _, reason = _failure_of(log, WitnessEndpoint(witness.cosigner.verifier, url))
    assert expected in reason


def test_the_same_checkpoint_is_cosigned_again_from_the_known_size(log: TransparencyLog, witness: Witness) -> None:
    with http_witness(honest(witness)) as url:
        endpoint = WitnessEndpoint(witness.cosigner.verifier, url)
        publisher = publish_one(log, endpoint)
        assert publisher.client.known_size(endpoint) == 6
        # A checkpoint of size 6 again (the same tree): the witness accepts it once more.
        assert publisher.client.cosign(log.checkpoint().note, lambda o, n: ()).witnesses == (witness.name,)


# -- the policy file -------------------------------------------------------------------------


def test_policy_file(tmp_path: Path, signer: NoteSigner, witness_signer: NoteSigner) -> None:
    other = NoteSigner.generate("witness.example/w2", SIG_COSIGNATURE_V1)
    path = tmp_path / "policy.txt"
    path.write_text(
        f"# a comment\nlog {signer.vkey}\nlog {signer.vkey} example.com/renamed log  # origin with a space\n\n"
        f"witness {witness_signer.vkey} https://w1.example/prefix\nwitness {other.vkey} http://127.0.0.1:8\n"
    )
    policy = WitnessPolicy.load(path)
    assert policy.quorum == 2  # default: every witness
    assert [w.add_checkpoint_url for w in policy.witnesses] == [
        "https://w1.example/prefix/add-checkpoint",
        "http://127.0.0.1:8/add-checkpoint",
    ]
    assert policy.log_keys() == {signer.name: [signer.verifier], "example.com/renamed log": [signer.verifier]}
    assert WitnessPolicy.parse(path.read_text() + "quorum 1\n").quorum == 1


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("quorum 1\n", "quorum 1 cannot be met by 0"),
        ("witness {w} https://a\nwitness {w} https://b\n", "listed twice"),
        ("witness {w} ftp://a\n", "line 1: witness URL"),
        ("witness {w} https://a?x=1\n", "without query"),
        ("witness {log} https://a\n", "not a cosignature/v1 key"),
        ("log {w}\n", "Ed25519 note key"),
        ("\nwitness {w}\n", "line 2: expected"),
        ("quorum 01\n", "leading zeroes"),
        ("trust everyone\n", "expected 'log VKEY"),
    ],
)
def test_policy_errors_name_the_line(text: str, expected: str, signer: NoteSigner, witness_signer: NoteSigner) -> None:
    with pytest.raises(TlogFormatError, match=expected):
        WitnessPolicy.parse(text.format(w=witness_signer.vkey, log=signer.vkey))


# -- tracemark tlog cosign -------------------------------------------------------------------


@pytest.mark.usefixtures("isolated_home")
def test_cli_cosign_publishes_under_a_quorum(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], witness_signer: NoteSigner
) -> None:
    db = str(tmp_path / "log.sqlite3")
    assert main(["tlog", "init", "--origin", "example.com/cli-log", "--db", db]) == 0
    log_key = ensure_log_key(Keyring())
    with TransparencyLog.open(db, signer=log_key) as opened:
        opened.append_many([make_record(i) for i in range(3)])
    witness = Witness(witness_signer, tmp_path / "state.json", {log_key.name: [log_key.verifier]})
    down = free_url()
    capsys.readouterr()
    with http_witness(honest(witness)) as url:
        common = ["tlog", "cosign", "--db", db, "--witness", witness_signer.vkey, url]
        common += ["--witness", NoteSigner.generate("witness.example/down", SIG_COSIGNATURE_V1).vkey, down]
        # Default quorum: every witness named; one is down, so nothing is published.
        assert main(common) == 6
        err = capsys.readouterr().err
        assert err.count("\n") == 1
        assert "0 of 2" not in err  # the live witness did cosign
        assert "1 of 2 required cosignatures" in err
        assert f"witness.example/down ({down})" in err
        assert main([*common, "--quorum", "1", "--json"]) == 0
    payload = json.loads(capsys.readouterr().out)
    assert (payload["published"], payload["tree_size"], payload["quorum"]) == (True, 3, 1)
    assert payload["witnesses"] == [witness_signer.name]
    assert [(f["witness"], f["url"], f["status"]) for f in payload["failures"]] == [
        ("witness.example/down", down, None)
    ]
    # Receipts from the log now carry the cosignature, and verify under a witness quorum of 1.
    receipt = tmp_path / "r.tlog-proof"
    assert main(["tlog", "prove", "0", "--db", db, "--out", str(receipt)]) == 0
    verify = ["tlog", "verify", str(receipt), "--witness", witness_signer.vkey, "--quorum", "1", "--json"]
    capsys.readouterr()
    assert main(verify) == 0
    assert json.loads(capsys.readouterr().out)["witnesses"] == [witness_signer.name]
