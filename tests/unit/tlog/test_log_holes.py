"""What the log vouches for and what it refuses: integration times, bounded claimed times,
identical records appended once, damaged databases that give errors instead of bad receipts,
and receipts that lost their final newline (issue #18, review §1.4, S4, S5, defects 4-6, 10-11)."""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from tests.support.threads import run_in_threads
from tests.unit.tlog._helpers import make_record
from tracemark.cli import main
from tracemark.errors import TlogFormatError, TlogStorageError
from tracemark.tlog import (
    BatchingAppender,
    NoteSigner,
    ProvenanceRecord,
    Receipt,
    TransparencyLog,
    verify_receipt,
)


def format_time(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def _at(offset: timedelta) -> str:
    return format_time(datetime.now(UTC) + offset)


# -- integration time and claimed time -----------------------------------------------------------
def test_each_batch_records_the_logs_integration_time(log: TransparencyLog) -> None:
    before = time.time()
    first = log.append_many([make_record(i) for i in range(3)])
    after = time.time()
    second = log.append_many([make_record(3)])
    times = {result.integrated_time for result in first}
    assert len(times) == 1  # one batch, one instant
    (moment,) = times
    assert moment is not None
    assert before <= moment <= after
    assert second[0].integrated_time is not None
    assert second[0].integrated_time >= moment
    assert [log.integrated_time(i) for i in range(4)] == [moment] * 3 + [second[0].integrated_time]


def test_integration_times_survive_reopening(tmp_path: Path, signer: NoteSigner) -> None:
    path = tmp_path / "log.sqlite3"
    with TransparencyLog.open(path, signer=signer) as log:
        results = log.append_many([make_record(i) for i in range(5)])
    with TransparencyLog.open(path, signer=signer) as log:
        assert [log.integrated_time(i) for i in range(5)] == [r.integrated_time for r in results]


def test_entries_older_than_integration_times_have_none(tmp_path: Path, signer: NoteSigner) -> None:
    path = tmp_path / "log.sqlite3"
    with TransparencyLog.open(path, signer=signer) as log:
        log.append_many([make_record(i) for i in range(3)])
    with sqlite3.connect(path) as db:  # a database written before tlog_times existed
        db.execute("DELETE FROM tlog_times")
    with TransparencyLog.open(path, signer=signer) as log:
        assert log.integrated_time(1) is None
        log.append(make_record(3))
        assert log.integrated_time(2) is None
        assert log.integrated_time(3) is not None


@pytest.mark.parametrize("ahead", [timedelta(hours=25), timedelta(days=3650)])
def test_claimed_times_far_in_the_future_are_refused(log: TransparencyLog, ahead: timedelta) -> None:
    record = replace(make_record(0), time=_at(ahead))
    with pytest.raises(TlogFormatError, match="24 hours ahead"):
        log.append(record)
    far = ProvenanceRecord.create(content=b"x", kind="text", key_id="k", model_id="m", time="9999-12-31T23:59:59Z")
    with pytest.raises(TlogFormatError, match="ahead of the log's clock"):
        log.append_many([make_record(1), far])
    assert log.size == 0  # the whole batch is refused


def test_claimed_times_in_the_past_or_slightly_ahead_are_kept_as_claimed(log: TransparencyLog) -> None:
    fast_clock = replace(make_record(0), time=_at(timedelta(hours=23)))
    old = replace(make_record(1), time="1999-01-01T00:00:00Z")
    results = log.append_many([fast_clock, old])
    assert log.record(0).time == fast_clock.time
    assert log.record(1).time == "1999-01-01T00:00:00Z"
    assert results[1].integrated_time is not None
    assert results[1].integrated_time > time.time() - 60  # the log's own time, not the claim


# -- identical records are appended once ---------------------------------------------------------
def test_identical_records_are_appended_once_when_deduplicating(log: TransparencyLog) -> None:
    first = log.append_many([make_record(0), make_record(1)], deduplicate=True)
    again = log.append_many([make_record(1), make_record(2), make_record(2)], deduplicate=True)
    assert [(r.index, r.duplicate) for r in first] == [(0, False), (1, False)]
    assert [(r.index, r.duplicate) for r in again] == [(1, True), (2, False), (2, True)]
    assert log.size == 3
    assert {r.tree_size for r in again} == {3}
    assert again[0].integrated_time == first[1].integrated_time  # the stored entry's time
    assert again[0].leaf_hash == make_record(1).leaf_hash()
    # Only byte-identical records are the same entry: another claimed time is another record.
    other_time = replace(make_record(0), time="2026-08-02T12:00:01Z")
    assert log.append_many([other_time], deduplicate=True)[0].index == 3
    # Without deduplication (the library's default) every append adds an entry.
    assert log.append(make_record(0)).index == 4


def test_deduplication_finds_indexed_and_unindexed_entries(tmp_path: Path, signer: NoteSigner) -> None:
    with TransparencyLog.open(tmp_path / "log.sqlite3", signer=signer) as log:
        log.append_many([make_record(i) for i in range(10)])
        log.checkpoint()  # moves entries 0..9 into the lookup index
        log.append_many([make_record(i) for i in range(10, 20)])  # the unindexed tail
        results = log.append_many([make_record(3), make_record(15), make_record(20)], deduplicate=True)
        assert [(r.index, r.duplicate) for r in results] == [(3, True), (15, True), (20, False)]


def test_concurrent_identical_submissions_make_one_entry(tmp_path: Path, signer: NoteSigner) -> None:
    with TransparencyLog.open(tmp_path / "log.sqlite3", signer=signer) as log:
        appender = BatchingAppender(log, max_batch=4, max_delay=0.001, deduplicate=True)
        indices: list[int] = []
        lock = threading.Lock()

        def submit() -> None:
            for n in range(5):
                index = appender.append(make_record(n), timeout=30).index
                with lock:
                    indices.append(index)

        run_in_threads(6, lambda _: submit())
        appender.close()
        assert log.size == 5
        assert sorted(set(indices)) == [0, 1, 2, 3, 4]
        assert sorted(log.record(i).content_sha256 for i in range(5)) == sorted(
            make_record(n).content_sha256 for n in range(5)
        )


# -- damaged databases: errors, never bad receipts -----------------------------------------------
def _damaged(tmp_path: Path, signer: NoteSigner, statement: str, *params: object) -> Path:
    path = tmp_path / "log.sqlite3"
    with TransparencyLog.open(path, signer=signer) as log:
        log.append_many([make_record(i) for i in range(200)])
        log.checkpoint()
    with sqlite3.connect(path) as db:
        db.execute(statement, params)
    return path


def test_a_damaged_interior_node_gives_an_error_not_a_receipt(tmp_path: Path, signer: NoteSigner) -> None:
    # Node id 2 is the parent of leaves 0 and 1: off the right border, so appends and signing do not read it.
    path = _damaged(tmp_path, signer, "UPDATE tlog_nodes SET hash = zeroblob(32) WHERE id = 2")
    with TransparencyLog.open(path, signer=signer) as log:
        with pytest.raises(TlogStorageError, match="refusing to issue a receipt for entry 2"):
            log.receipt(2)
        verify_receipt(log.receipt(150), signer.verifier)  # entries whose path avoids the node still work


def test_edited_entry_bytes_give_an_error_not_a_receipt(tmp_path: Path, signer: NoteSigner) -> None:
    path = _damaged(tmp_path, signer, "UPDATE tlog_entries SET data = ? WHERE idx = 100", make_record(999).to_json())
    with TransparencyLog.open(path, signer=signer) as log, pytest.raises(TlogStorageError, match="entry 100"):
        log.receipt(100)


def test_a_text_typed_entry_is_a_typed_error(tmp_path: Path, signer: NoteSigner) -> None:
    path = _damaged(tmp_path, signer, "UPDATE tlog_entries SET data = CAST(data AS TEXT) WHERE idx = 100")
    with TransparencyLog.open(path, signer=signer) as log:
        with pytest.raises(TlogStorageError, match="entry 100 is stored as TEXT, not as a BLOB"):
            log.entry(100)
        with pytest.raises(TlogStorageError, match="TEXT"):
            log.receipt(100)


@pytest.mark.parametrize(
    ("statement", "index"),
    [
        ("UPDATE tlog_nodes SET hash = zeroblob(32) WHERE id = 2", "2"),
        ("UPDATE tlog_entries SET data = CAST(data AS TEXT) WHERE idx = 100", "100"),
    ],
)
def test_tlog_prove_on_a_damaged_database_exits_6_with_one_line(
    isolated_home: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], statement: str, index: str
) -> None:
    path = tmp_path / "cli.sqlite3"
    assert main(["tlog", "init", "--db", str(path)]) == 0
    with TransparencyLog.open(path) as log:  # the keyring's log, as the CLI opens it
        log.append_many([make_record(i) for i in range(200)])
    with sqlite3.connect(path) as db:
        db.execute(statement)
    capsys.readouterr()
    out = tmp_path / "receipt"
    assert main(["tlog", "prove", index, "--db", str(path), "--out", str(out)]) == 6
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1
    assert "damaged" in err
    assert "Traceback" not in err
    assert not out.exists()


# -- receipts that lost their final newline -------------------------------------------------------
def test_a_receipt_without_its_final_newline_verifies(log: TransparencyLog, signer: NoteSigner) -> None:
    log.append_many([make_record(i) for i in range(5)])
    text = log.receipt(3, sign=True).to_text()
    assert text.endswith("\n")
    for pasted in (text.rstrip("\n"), text + "\n\n"):
        verified = verify_receipt(pasted, signer.verifier)
        assert verified.index == 3
        assert Receipt.parse(pasted).to_text() == text  # normalised; the signed bytes unchanged


def test_cli_verify_accepts_a_receipt_without_its_final_newline(
    tmp_path: Path, signer: NoteSigner, capsys: pytest.CaptureFixture[str]
) -> None:
    with TransparencyLog.open(tmp_path / "log.sqlite3", signer=signer) as log:
        log.append_many([make_record(i) for i in range(3)])
        text = log.receipt(1, sign=True).to_text()
    path = tmp_path / "pasted.tlog-proof"
    path.write_text(text.rstrip("\n"))
    assert main(["tlog", "verify", str(path), "--log-key", signer.vkey]) == 0
    assert capsys.readouterr().out.startswith("valid: text")
    damaged = text.replace("index 1", "index 2").rstrip("\n")  # still refused when really damaged
    path.write_text(damaged)
    assert main(["tlog", "verify", str(path), "--log-key", signer.vkey]) == 6


def test_cli_append_prints_the_integration_time_and_refuses_far_future_claims(
    isolated_home: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = str(tmp_path / "cli.sqlite3")
    assert main(["tlog", "init", "--db", path]) == 0
    common = ["tlog", "append", "--db", path, "--content-sha256", "ab" * 32, "--kind", "text", "--model-id", "m/1"]
    capsys.readouterr()
    before = time.time()
    assert main([*common, "--key-id", "tm-native-1", "--time", "2026-08-02T12:00:00Z", "--json"]) == 0
    (appended,) = json.loads(capsys.readouterr().out)["appended"]
    assert before - 1 <= appended["integrated_time"] <= time.time() + 1
    assert main([*common, "--key-id", "tm-native-1", "--time", "9999-12-31T23:59:59Z"]) == 6
    assert "24 hours ahead" in capsys.readouterr().err
