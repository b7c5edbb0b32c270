"""The witness: tlog-witness add-checkpoint semantics, atomic persisted state, cosignatures."""

from __future__ import annotations

import json
import threading
from pathlib import Path

import pytest

from tests.support.threads import run_in_threads
from tests.unit.tlog._helpers import make_record
from tracemark.errors import (
    ConsistencyProofError,
    TlogFormatError,
    TlogSignatureError,
    WitnessConflictError,
    WitnessError,
)
from tracemark.tlog import (
    AddCheckpointRequest,
    MemoryStore,
    NoteSigner,
    TransparencyLog,
    Witness,
    WitnessStateError,
    WitnessUnknownLogError,
    verify_checkpoint,
    witness_status,
)


@pytest.fixture
def log(signer: NoteSigner) -> TransparencyLog:
    return TransparencyLog(MemoryStore(), signer=signer)


@pytest.fixture
def witness(tmp_path: Path, witness_signer: NoteSigner, signer: NoteSigner) -> Witness:
    return Witness(witness_signer, tmp_path / "witness" / "state.json", {signer.name: [signer.verifier]})


def grow(log: TransparencyLog, count: int) -> str:
    start = log.size
    log.append_many([make_record(start + i) for i in range(count)])
    return log.checkpoint().note


def test_first_contact_then_growth(log: TransparencyLog, witness: Witness, signer: NoteSigner) -> None:
    note = grow(log, 5)
    (cosignature,) = witness.add_checkpoint(0, [], note)
    cosigned = note + cosignature.line()
    verified = verify_checkpoint(cosigned, signer.verifier, witnesses=[witness.cosigner.verifier], quorum=1)
    assert verified.witnesses == (witness.name,)
    assert witness.latest(signer.name) is not None
    note2 = grow(log, 7)
    proof = log.consistency_proof(5, 12).hashes
    witness.add_checkpoint(5, proof, note2)
    latest = witness.latest(signer.name)
    assert latest is not None
    assert latest.size == 12
    # The same checkpoint again is fine (old == new, same root).
    witness.add_checkpoint(12, [], note2)


def test_stale_old_size_is_a_conflict_with_the_latest_size(log: TransparencyLog, witness: Witness) -> None:
    witness.add_checkpoint(0, [], grow(log, 4))
    note = grow(log, 4)
    with pytest.raises(WitnessConflictError) as caught:
        witness.add_checkpoint(0, [], note)
    assert caught.value.latest_size == 4
    assert witness_status(caught.value) == 409
    with pytest.raises(WitnessConflictError):
        witness.add_checkpoint(2, log.consistency_proof(2, 8).hashes, note)


def test_old_size_larger_than_checkpoint(log: TransparencyLog, witness: Witness) -> None:
    with pytest.raises(WitnessError, match="larger") as caught:
        witness.add_checkpoint(9, [], grow(log, 3))
    assert witness_status(caught.value) == 400


def test_bad_proof_does_not_move_the_state(log: TransparencyLog, witness: Witness, signer: NoteSigner) -> None:
    witness.add_checkpoint(0, [], grow(log, 6))
    note = grow(log, 3)
    proof: list[bytes] = list(log.consistency_proof(6, 9).hashes)
    proof[0] = bytes(32)
    with pytest.raises(ConsistencyProofError) as caught:
        witness.add_checkpoint(6, proof, note)
    assert witness_status(caught.value) == 422
    latest = witness.latest(signer.name)
    assert latest is not None
    assert latest.size == 6
    with pytest.raises(ConsistencyProofError, match="must be empty"):
        Witness(witness.cosigner, witness.state_path.parent / "fresh.json", witness.logs).add_checkpoint(
            0, proof[:1], note
        )


def test_a_fork_at_the_same_size_is_a_conflict(witness: Witness, signer: NoteSigner) -> None:
    honest = TransparencyLog(MemoryStore(), signer=signer)
    witness.add_checkpoint(0, [], grow(honest, 5))
    forked = TransparencyLog(MemoryStore(), signer=signer)
    forked.append_many([make_record(100 + i) for i in range(5)])
    with pytest.raises(WitnessConflictError, match="different root"):
        witness.add_checkpoint(5, [], forked.checkpoint().note)
    forked.append_many([make_record(200)])
    with pytest.raises(ConsistencyProofError):
        witness.add_checkpoint(5, forked.consistency_proof(5, 6).hashes, forked.checkpoint().note)


def test_unknown_origin_and_bad_signatures(log: TransparencyLog, witness: Witness, signer: NoteSigner) -> None:
    stranger = TransparencyLog(MemoryStore(), signer=NoteSigner.generate("example.com/stranger"))
    with pytest.raises(WitnessUnknownLogError, match="unknown log origin") as unknown:
        witness.add_checkpoint(0, [], grow(stranger, 2))
    assert witness_status(unknown.value) == 404
    impostor = TransparencyLog(MemoryStore(), signer=NoteSigner.generate(signer.name))
    with pytest.raises(TlogSignatureError) as forbidden:
        witness.add_checkpoint(0, [], grow(impostor, 2))
    assert witness_status(forbidden.value) == 403
    with pytest.raises(TlogFormatError) as malformed:
        witness.add_checkpoint(0, [], "not a note")
    assert witness_status(malformed.value) == 400
    assert witness.latest(signer.name) is None


def test_state_file_is_atomic_json_and_corruption_is_an_error(log: TransparencyLog, witness: Witness) -> None:
    witness.add_checkpoint(0, [], grow(log, 3))
    document = json.loads(witness.state_path.read_text())
    assert document["format"] == "tracemark.witness-state/v1"
    assert witness.state_path.stat().st_mode & 0o777 == 0o600
    assert not [p for p in witness.state_path.parent.iterdir() if p.name.endswith(".tmp")]
    witness.state_path.write_text("{ truncated")
    with pytest.raises(WitnessStateError, match="corrupt") as corrupt:
        witness.add_checkpoint(3, [], log.checkpoint().note)
    assert witness_status(corrupt.value) == 503  # the witness's fault, not the request's


def test_state_survives_a_new_witness_object(log: TransparencyLog, witness: Witness, signer: NoteSigner) -> None:
    witness.add_checkpoint(0, [], grow(log, 3))
    again = Witness(witness.cosigner, witness.state_path, witness.logs)
    with pytest.raises(WitnessConflictError):
        again.add_checkpoint(0, [], grow(log, 2))
    again.add_checkpoint(3, log.consistency_proof(3, 5).hashes, log.checkpoint().note)


def test_concurrent_requests_never_roll_back(log: TransparencyLog, witness: Witness, signer: NoteSigner) -> None:
    notes = {}
    for _ in range(6):
        note = grow(log, 3)
        notes[log.size] = note
    outcomes: list[str] = []
    lock = threading.Lock()

    def submit(size: int) -> None:
        try:
            witness.add_checkpoint(0, [], notes[size])
            result = f"ok {size}"
        except WitnessConflictError as exc:
            result = f"conflict {exc.latest_size}"
        with lock:
            outcomes.append(result)

    sizes = list(notes)
    run_in_threads(len(sizes), lambda i: submit(sizes[i]))
    assert sum(o.startswith("ok") for o in outcomes) == 1
    latest = witness.latest(signer.name)
    assert latest is not None
    assert f"ok {latest.size}" in outcomes


def test_request_wire_format(log: TransparencyLog, witness: Witness, signer: NoteSigner) -> None:
    witness.add_checkpoint(0, [], grow(log, 4))
    note = grow(log, 5)
    request = AddCheckpointRequest(4, log.consistency_proof(4, 9).hashes, note)
    text = request.to_text()
    assert text.startswith("old 4\n")
    assert AddCheckpointRequest.parse(text) == request
    response = witness.handle_request(text.encode())
    assert response.startswith("— witness.example/w1 ")
    verify_checkpoint(note + response, signer.verifier, witnesses=[witness.cosigner.verifier], quorum=1)
    for bad in ["old 4\n", "new 4\n\n" + note, "old 04\n\n" + note, "old 4\n" + "AAAA\n" * 64 + "\n" + note]:
        with pytest.raises(TlogFormatError):
            AddCheckpointRequest.parse(bad)


def test_configuration_is_checked(tmp_path: Path, signer: NoteSigner, witness_signer: NoteSigner) -> None:
    with pytest.raises(TlogFormatError):
        Witness(signer, tmp_path / "s.json", {signer.name: [signer.verifier]})
    with pytest.raises(TlogFormatError):
        Witness(witness_signer, tmp_path / "s.json", {signer.name: []})
    with pytest.raises(TlogFormatError):
        Witness(witness_signer, tmp_path / "s.json", {signer.name: [witness_signer.verifier]})
