"""The log on each backend: appending, proofs against the RFC recursion, checkpoints, receipts."""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Mapping, Sequence
from pathlib import Path

import pytest

from tests.support.threads import run_in_threads
from tests.unit.tlog import _reference as ref
from tests.unit.tlog._helpers import make_record
from tracemark.errors import TlogError, TlogFormatError, TlogProofError, TlogStorageError
from tracemark.tlog import (
    BatchingAppender,
    MemoryStore,
    NoteSigner,
    ProvenanceRecord,
    SQLiteStore,
    TransparencyLog,
    verify_checkpoint,
    verify_receipt,
)
from tracemark.tlog.merkle import EMPTY_ROOT, NodeAddress


def test_empty_log(log: TransparencyLog) -> None:
    assert log.size == 0
    assert log.tree_state().root == EMPTY_ROOT
    signed = log.checkpoint()
    assert signed.checkpoint.size == 0
    assert signed.checkpoint.root_hash == EMPTY_ROOT
    assert log.append_many([]) == []


def test_append_and_prove_every_index_and_size(log: TransparencyLog) -> None:
    records = [make_record(i) for i in range(45)]
    leaves: list[bytes] = []
    for low in range(0, 45, 7):  # uneven batches
        results = log.append_many(records[low : low + 7])
        leaves.extend(r.leaf_hash for r in results)
        assert [r.index for r in results] == list(range(low, min(45, low + 7)))
    assert leaves == [ref.leaf(r.to_json()) for r in records]
    assert log.tree_state().root == ref.mth(leaves)
    for size in range(1, 46):
        for index in range(size):
            proof = log.inclusion_proof(index, size)
            assert list(proof.hashes) == ref.path(index, leaves[:size])
            assert proof.root_hash == ref.mth(leaves[:size])
            proof.verify()
        for old in range(0, size + 1):
            consistency = log.consistency_proof(old, size)
            assert list(consistency.hashes) == ([] if old == 0 else ref.proof(old, leaves[:size]))
            consistency.verify()
    assert log.record(44) == records[44]
    assert log.find(records[3].content_sha256) == [3]
    assert log.find("00" * 32) == []
    log.verify_integrity()


def test_proof_requests_out_of_range(log: TransparencyLog) -> None:
    log.append_many([make_record(i) for i in range(3)])
    with pytest.raises(TlogProofError):
        log.inclusion_proof(3)
    with pytest.raises(TlogProofError):
        log.inclusion_proof(0, 4)
    with pytest.raises(TlogProofError):
        log.consistency_proof(2, 5)
    with pytest.raises(TlogError):
        log.entry(3)
    with pytest.raises(TlogFormatError):
        log.find("zz")


def test_bad_entries_are_refused(log: TransparencyLog) -> None:
    with pytest.raises(TlogFormatError):
        log.append_many(["not a record"])  # type: ignore[list-item]
    with pytest.raises(TlogFormatError):
        log.append_entries([b"x" * 70_000])
    assert log.size == 0


class CountingStore(MemoryStore):
    """Counts read round trips and node ids read."""

    def __init__(self) -> None:
        super().__init__()
        self.calls = 0
        self.ids = 0

    def read_nodes(self, nodes: Sequence[NodeAddress]) -> Mapping[NodeAddress, bytes]:
        self.calls += 1
        self.ids += len(nodes)
        return super().read_nodes(nodes)


def test_proofs_are_one_round_trip_of_o_log_n_reads(signer: NoteSigner) -> None:
    store = CountingStore()
    log = TransparencyLog(store, signer=signer)
    entries = [i.to_bytes(4, "big") for i in range(20_000)]
    for low in range(0, len(entries), 5000):
        log.append_entries(entries[low : low + 5000])
    for index in (0, 777, 12_345, 19_998):
        store.calls = store.ids = 0
        log.inclusion_proof(index, 19_999).verify()
        assert store.calls == 1
        assert store.ids <= 3 * 15  # proof nodes, right-border pieces, the leaf and the root's pieces
    store.calls = store.ids = 0
    log.consistency_proof(4097, 19_000).verify()
    assert store.calls == 1
    assert store.ids <= 4 * 15


def test_checkpoint_receipt_round_trip(log: TransparencyLog, signer: NoteSigner) -> None:
    results = log.append_many([make_record(i) for i in range(10)])
    with pytest.raises(TlogError, match="no signed checkpoint"):
        log.receipt(3)
    first = log.checkpoint()
    assert log.checkpoint().note == first.note  # same size: the stored note, not a new one
    verified = verify_checkpoint(first.note, signer.verifier)
    assert verified.checkpoint.size == 10
    receipt = log.receipt(3)
    checked = verify_receipt(receipt.to_text(), signer.verifier)
    assert checked.index == 3
    assert checked.leaf_hash == results[3].leaf_hash
    assert checked.record == make_record(3)
    # An entry appended after the checkpoint is not covered until a new one is signed.
    log.append(make_record(10))
    with pytest.raises(TlogError, match="not covered"):
        log.receipt(10)
    covered = log.receipt(10, sign=True)
    assert verify_receipt(covered, signer.verifier).tree_size == 11
    old_receipt = log.receipt(3, checkpoint_size=10)
    assert verify_receipt(old_receipt, signer.verifier).tree_size == 10


def test_receipt_checks_the_entry(log: TransparencyLog, signer: NoteSigner) -> None:
    log.append_many([make_record(i) for i in range(5)])
    log.checkpoint()
    receipt = log.receipt(2)
    verify_receipt(receipt, signer.verifier, entry=make_record(2))
    with pytest.raises(TlogProofError, match="differs"):
        verify_receipt(receipt, signer.verifier, entry=make_record(3))
    bare = type(receipt)(receipt.index, receipt.proof, receipt.checkpoint_note, None)
    with pytest.raises(TlogFormatError, match="carries no entry"):
        verify_receipt(bare, signer.verifier)
    verify_receipt(bare.to_text(), signer.verifier, entry=make_record(2).to_json())
    with pytest.raises(TlogProofError):
        verify_receipt(bare, signer.verifier, entry=make_record(3))


def test_a_log_refuses_another_logs_database(store_url: str, signer: NoteSigner) -> None:
    path = store_url
    with TransparencyLog.open(path, signer=signer) as log:
        log.append(make_record(0))
    with pytest.raises(TlogStorageError, match="holds the log"):
        TransparencyLog.open(path, signer=NoteSigner.generate("example.com/other"))
    with TransparencyLog.open(path) as read_only:
        assert read_only.origin == signer.name
        assert read_only.verifier == signer.verifier
        assert read_only.size == 1
        with pytest.raises(TlogError, match="needs the log's key"):
            read_only.checkpoint()


def test_state_survives_reopening(store_url: str, signer: NoteSigner) -> None:
    path = store_url
    with TransparencyLog.open(path, signer=signer) as log:
        log.append_many([make_record(i) for i in range(100)])
        first = log.checkpoint()
    with TransparencyLog.open(path, signer=signer) as log:
        assert log.size == 100
        assert log.latest_checkpoint() == first
        log.append_many([make_record(i) for i in range(100, 150)])
        second = log.checkpoint()
        log.consistency_proof(100, 150).verify()
        log.verify_integrity()
    assert second.checkpoint.size == 150
    if store_url.startswith("postgresql://"):
        return
    with sqlite3.connect(path) as db:
        assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        tables = {row[0] for row in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    assert all(name.startswith("tlog_") for name in tables)


def test_tampered_nodes_stop_the_log_from_signing(tmp_path: Path, signer: NoteSigner) -> None:
    path = tmp_path / "log.sqlite3"
    with TransparencyLog.open(path, signer=signer) as log:
        log.append_many([make_record(i) for i in range(8)])
        log.checkpoint()
        log.append_many([make_record(i) for i in range(8, 12)])
    with sqlite3.connect(path) as db:  # rewrite history: replace the first entry's leaf and its parents
        db.execute("UPDATE tlog_nodes SET hash = ? WHERE id = 14", (b"\x00" * 32,))
    with TransparencyLog.open(path, signer=signer) as log, pytest.raises(TlogStorageError):
        log.checkpoint()
    with TransparencyLog.open(path, signer=signer) as log, pytest.raises(TlogStorageError):
        log.verify_integrity()


def test_tampered_entries_are_found_by_the_integrity_check(tmp_path: Path, signer: NoteSigner) -> None:
    path = tmp_path / "log.sqlite3"
    with TransparencyLog.open(path, signer=signer) as log:
        log.append_many([make_record(i) for i in range(5)])
    with sqlite3.connect(path) as db:
        db.execute("UPDATE tlog_entries SET data = ? WHERE idx = 2", (make_record(99).to_json(),))
    with TransparencyLog.open(path, signer=signer) as log, pytest.raises(TlogStorageError, match="node"):
        log.verify_integrity()


def test_not_a_database(tmp_path: Path) -> None:
    path = tmp_path / "junk.sqlite3"
    path.write_bytes(b"this is not sqlite" * 100)
    with pytest.raises(TlogStorageError):
        SQLiteStore(path)


def test_cosignatures_are_stored_with_the_checkpoint(
    log: TransparencyLog, signer: NoteSigner, witness_signer: NoteSigner
) -> None:
    log.append_many([make_record(i) for i in range(4)])
    signed = log.checkpoint()
    cosignature = witness_signer.sign(signed.checkpoint.body().encode())
    note = log.add_cosignatures(4, [cosignature])
    assert verify_checkpoint(note, signer.verifier, witnesses=[witness_signer.verifier], quorum=1).witnesses == (
        witness_signer.name,
    )
    receipt = log.receipt(1)
    verify_receipt(receipt, signer.verifier, witnesses=[witness_signer.verifier], quorum=1)
    with pytest.raises(TlogError, match="no checkpoint of size 3"):
        log.add_cosignatures(3, [cosignature])


class TestBatchingAppender:
    def test_threads_get_durable_distinct_indices(self, log: TransparencyLog) -> None:
        results: list[int] = []
        lock = threading.Lock()

        def worker(offset: int) -> None:
            with_indices = [appender.append(make_record(offset + i)).index for i in range(40)]
            with lock:
                results.extend(with_indices)

        with BatchingAppender(log, max_batch=16, max_delay=0.01) as appender:
            run_in_threads(5, lambda t: worker(1000 * t))
        assert sorted(results) == list(range(200))
        assert log.size == 200
        contents = {ProvenanceRecord.from_json(e).content_sha256 for e in log.store.read_entries(0, 200)}
        assert len(contents) == 200
        log.verify_integrity()

    def test_close_flushes_and_then_refuses(self, log: TransparencyLog) -> None:
        appender = BatchingAppender(log, max_batch=1000, max_delay=60)
        futures = [appender.submit(make_record(i)) for i in range(10)]
        appender.close()
        assert [f.result(timeout=5).index for f in futures] == list(range(10))
        with pytest.raises(TlogError, match="closed"):
            appender.submit(make_record(11))

    def test_a_failed_batch_fails_its_futures(self, signer: NoteSigner) -> None:
        class Broken(MemoryStore):
            def writer(self, pending=()):  # type: ignore[no-untyped-def]
                raise TlogStorageError("disk on fire")

        log = TransparencyLog(MemoryStore(), signer=signer)
        log.store = Broken()
        with BatchingAppender(log, max_batch=2, max_delay=0.001) as appender:
            future = appender.submit(make_record(0))
            with pytest.raises(TlogStorageError, match="disk on fire"):
                future.result(timeout=5)

    def test_parameters_are_checked(self, log: TransparencyLog) -> None:
        with pytest.raises(TlogFormatError):
            BatchingAppender(log, max_batch=0)
        with BatchingAppender(log) as appender, pytest.raises(TlogFormatError):
            appender.submit("record")  # type: ignore[arg-type]


def test_sqlite_lookup_index_is_filled_lazily_and_finds_everything(
    tmp_path: Path, signer: NoteSigner, monkeypatch: pytest.MonkeyPatch
) -> None:
    from tracemark.tlog._store import sqlite as sqlite_store

    monkeypatch.setattr(sqlite_store, "LOOKUP_TAIL", 10)
    with TransparencyLog.open(tmp_path / "log.sqlite3", signer=signer) as log:
        records = [make_record(i % 7) for i in range(30)]  # each content appears several times
        for low in range(0, 30, 4):
            log.append_many(records[low : low + 4])
            for i in range(7):
                expected = [j for j in range(min(30, low + 4)) if j % 7 == i]
                assert log.find(make_record(i).content_sha256) == expected
        log.checkpoint()
        assert log.store.get_meta("lookup_indexed_upto") == "30"
        assert log.find(make_record(3).content_sha256) == [3, 10, 17, 24]
        assert log.find(make_record(3).content_sha256, limit=2) == [3, 10]
        assert log.find(make_record(99).content_sha256) == []
