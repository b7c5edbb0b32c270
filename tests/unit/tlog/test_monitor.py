"""The tiles monitor: follows a growing log, keeps its state, catches a forged fork and a rollback.

The fork is a second log signed with the same key that shares a prefix with the first and then
diverges, served from another directory; the rollback is an older export of the same log.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest

from tests.unit.tlog._helpers import make_record
from tracemark.cli import main
from tracemark.errors import TlogError
from tracemark.tlog import (
    LogForkError,
    LogMonitor,
    LogRollbackError,
    MemoryStore,
    MonitorEvent,
    MonitorState,
    NoteSigner,
    TileHashError,
    TransparencyLog,
    export_tiles,
    verify_checkpoint,
)


def _grow(log: TransparencyLog, start: int, end: int) -> None:
    log.append_many([make_record(i) for i in range(start, end)])
    log.checkpoint()


@pytest.fixture
def served(tmp_path: Path, signer: NoteSigner) -> tuple[TransparencyLog, Path]:
    """A log of 100 records exported to a directory."""
    log = TransparencyLog(MemoryStore(), signer=signer)
    _grow(log, 0, 100)
    export_tiles(log, tmp_path / "tiles")
    return log, tmp_path / "tiles"


def _forked_log(signer: NoteSigner, shared: int, size: int) -> TransparencyLog:
    """A second log under the same key: the first ``shared`` records, then other ones."""
    fork = TransparencyLog(MemoryStore(), signer=signer)
    fork.append_many([make_record(i) for i in range(shared)])
    fork.append_many([make_record(10_000 + i) for i in range(shared, size)])
    fork.checkpoint()
    return fork


def test_the_monitor_follows_a_growing_log(
    served: tuple[TransparencyLog, Path], signer: NoteSigner, tmp_path: Path
) -> None:
    log, directory = served
    state = tmp_path / "monitor" / "state.json"
    monitor = LogMonitor(directory, signer.verifier, state)
    first = monitor.check()
    assert first.event == "start"
    assert first.to_json()["tree_size"] == 100
    assert (state.stat().st_mode & 0o777) == 0o600
    assert monitor.check().event == "unchanged"
    for size in (101, 356, 1000):
        _grow(log, log.size, size)
        export_tiles(log, directory)
        event = monitor.check()
        assert event.event == "grew"
        line = event.to_json()
        assert (line["previous_size"], line["tree_size"], line["alert"]) == (event.previous.size, size, False)  # type: ignore[union-attr]
    saved = MonitorState.load(state)
    assert saved is not None
    assert saved.checkpoint.size == 1000
    assert saved.note == log.latest_checkpoint().note  # type: ignore[union-attr]
    verify_checkpoint(saved.note, signer.verifier)
    assert [p.name for p in state.parent.iterdir()] == ["state.json"]  # replaced atomically, no leftovers


def test_a_forged_fork_is_caught(served: tuple[TransparencyLog, Path], signer: NoteSigner, tmp_path: Path) -> None:
    directory = served[1]
    state = tmp_path / "state.json"
    LogMonitor(directory, signer.verifier, state).check()
    fork_dir = tmp_path / "fork"
    export_tiles(_forked_log(signer, shared=60, size=300), fork_dir)
    monitor = LogMonitor(fork_dir, signer.verifier, state)
    with pytest.raises(LogForkError, match="first 100 entries") as caught:
        monitor.check()
    alert = monitor.alert_event(caught.value).to_json()
    assert alert["event"] == "fork"
    assert alert["alert"] is True
    assert (alert["previous_size"], alert["tree_size"]) == (100, 300)
    # the evidence: two checkpoints, both signed by the log's key, that cannot both be honest
    assert alert["previous_checkpoint"] is not None
    assert alert["checkpoint"] is not None
    verify_checkpoint(alert["previous_checkpoint"], signer.verifier)
    verify_checkpoint(alert["checkpoint"], signer.verifier)
    saved = MonitorState.load(state)
    assert saved is not None
    assert saved.checkpoint.size == 100  # the state keeps the last good checkpoint
    with pytest.raises(LogForkError):
        monitor.check()  # and the alarm stays up


def test_a_fork_at_the_same_size_is_caught(
    served: tuple[TransparencyLog, Path], signer: NoteSigner, tmp_path: Path
) -> None:
    state = tmp_path / "state.json"
    LogMonitor(served[1], signer.verifier, state).check()
    export_tiles(_forked_log(signer, shared=99, size=100), tmp_path / "fork")
    with pytest.raises(LogForkError, match="two roots"):
        LogMonitor(tmp_path / "fork", signer.verifier, state).check()


def test_a_rollback_is_caught(served: tuple[TransparencyLog, Path], signer: NoteSigner, tmp_path: Path) -> None:
    log, directory = served
    old_copy = tmp_path / "old-copy"
    shutil.copytree(directory, old_copy)
    state = tmp_path / "state.json"
    _grow(log, 100, 200)
    export_tiles(log, directory)
    LogMonitor(directory, signer.verifier, state).check()
    monitor = LogMonitor(old_copy, signer.verifier, state)
    with pytest.raises(LogRollbackError, match="size 100 after signing size 200") as caught:
        monitor.check()
    assert monitor.alert_event(caught.value).to_json()["event"] == "rollback"


def test_tiles_that_do_not_match_are_an_error_not_a_fork(
    served: tuple[TransparencyLog, Path], signer: NoteSigner, tmp_path: Path
) -> None:
    log, directory = served
    state = tmp_path / "state.json"
    monitor = LogMonitor(directory, signer.verifier, state)
    monitor.check()
    _grow(log, 100, 120)
    export_tiles(log, directory)
    (directory / "tile/0/000.p/120").write_bytes(bytes(32 * 120))
    with pytest.raises(TileHashError):
        LogMonitor(directory, signer.verifier, state).check()


def test_follow_reports_errors_and_keeps_polling(
    served: tuple[TransparencyLog, Path], signer: NoteSigner, tmp_path: Path
) -> None:
    log, directory = served
    events: list[MonitorEvent] = []
    naps: list[float] = []
    monitor = LogMonitor(directory, signer.verifier, tmp_path / "state.json")

    def between_polls(seconds: float) -> None:
        naps.append(seconds)
        if len(naps) == 1:
            (directory / "checkpoint").rename(directory / "checkpoint.away")
        else:
            (directory / "checkpoint.away").rename(directory / "checkpoint")
            _grow(log, log.size, log.size + 5)
            export_tiles(log, directory)

    monitor.follow(events.append, interval=7.0, polls=3, sleep=between_polls)
    assert [e.event for e in events] == ["start", "error", "grew"]
    assert events[1].message is not None
    assert "no such file" in events[1].message
    assert naps == [7.0, 7.0]
    (directory / "checkpoint").unlink()
    with pytest.raises(TlogError, match="no such file"):
        monitor.follow(events.append, polls=1, keep_going=False)


def test_a_corrupt_or_foreign_state_is_never_reset(
    served: tuple[TransparencyLog, Path], signer: NoteSigner, tmp_path: Path
) -> None:
    state = tmp_path / "state.json"
    LogMonitor(served[1], signer.verifier, state).check()
    document = json.loads(state.read_text())
    document["tree_size"] = 5
    state.write_text(json.dumps(document))
    with pytest.raises(TlogError, match="corrupt"):
        LogMonitor(served[1], signer.verifier, state).check()
    state.write_text("{")
    with pytest.raises(TlogError, match="corrupt"):
        LogMonitor(served[1], signer.verifier, state).check()
    other = tmp_path / "other.json"
    LogMonitor(served[1], signer.verifier, other).check()
    with pytest.raises(TlogError, match="follows the log key"):
        LogMonitor(served[1], NoteSigner.generate(signer.name).verifier, other).check()


# -- the CLI ---------------------------------------------------------------------------------


def _run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, list[dict[str, Any]], str]:
    status = main(list(argv))
    captured = capsys.readouterr()
    return status, [json.loads(line) for line in captured.out.splitlines()], captured.err


def test_the_monitor_verb_exits_20_on_a_fork(
    served: tuple[TransparencyLog, Path], signer: NoteSigner, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    log, directory = served
    state = str(tmp_path / "state.json")
    vkey = signer.vkey
    status, lines, _ = _run(capsys, "tlog", "monitor", str(directory), "--state", state, "--once", "--log-key", vkey)
    assert status == 0
    assert [line["event"] for line in lines] == ["start"]
    _grow(log, 100, 150)
    export_tiles(log, directory)
    status, lines, _ = _run(capsys, "tlog", "monitor", str(directory), "--state", state, "--polls", "1")
    assert status == 0  # the state file names the key
    assert [(line["event"], line["tree_size"]) for line in lines] == [("grew", 150)]

    export_tiles(_forked_log(signer, shared=10, size=400), tmp_path / "fork")
    status, lines, err = _run(capsys, "tlog", "monitor", str(tmp_path / "fork"), "--state", state, "--once")
    assert status == 20
    assert [line["event"] for line in lines] == ["fork"]
    assert lines[0]["alert"] is True
    assert err.startswith("tracemark: error: fork:")
    assert len(err.splitlines()) == 1

    status, lines, err = _run(capsys, "tlog", "monitor", str(tmp_path / "nowhere"), "--state", state, "--once")
    assert status == 6
    assert lines == []
    assert "neither an http(s) URL nor a directory" in err
