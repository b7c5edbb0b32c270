"""Crash safety and concurrent writers, with real processes on a real SQLite file and a real PostgreSQL log.

* A writer killed with SIGKILL in the middle of a load loses no acknowledged entry, and
  after a restart the log is consistent with every checkpoint it had published.
* Several processes appending at once: no entry lost, none duplicated.
"""

from __future__ import annotations

import base64
import os
import random
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

from tests.unit.tlog._writer import record
from tracemark.tlog import NoteSigner, ProvenanceRecord, TransparencyLog, verify_checkpoint

WRITER = Path(__file__).with_name("_writer.py")


def _start(db: str, signer: NoteSigner, writer: int, batch: int, count: int, every: int) -> subprocess.Popen[str]:
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    argv = [sys.executable, str(WRITER), str(db), signer.skey, str(writer), str(batch), str(count), str(every)]
    return subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)


def _parse(lines: list[str]) -> tuple[dict[tuple[int, int], int], list[tuple[int, str]]]:
    acked: dict[tuple[int, int], int] = {}
    checkpoints: list[tuple[int, str]] = []
    for line in lines:
        parts = line.split()
        if len(parts) == 4 and parts[0] == "ACK":
            acked[(int(parts[1]), int(parts[2]))] = int(parts[3])
        elif len(parts) == 3 and parts[0] == "CP":
            checkpoints.append((int(parts[1]), base64.b64decode(parts[2]).decode()))
    return acked, checkpoints


def test_sigkill_loses_no_acknowledged_entry(store_url: str, signer: NoteSigner) -> None:
    db = store_url
    rng = random.Random(1337)
    acked: dict[tuple[int, int], int] = {}
    published: list[tuple[int, str]] = []
    for round_number in range(3):
        process = _start(db, signer, writer=round_number, batch=40, count=0, every=3)
        assert process.stdout is not None
        lines: list[str] = []
        reader = threading.Thread(target=lines.extend, args=(process.stdout,))
        reader.start()
        deadline = time.monotonic() + 30
        target = rng.randrange(150, 600)  # kill somewhere in the middle of the load
        while time.monotonic() < deadline and sum(line.startswith("ACK") for line in list(lines)) < target:
            time.sleep(0.005)
        time.sleep(rng.random() * 0.05)
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=30)
        reader.join(timeout=30)
        assert process.returncode == -signal.SIGKILL, process.stderr.read() if process.stderr else ""
        round_acked, round_checkpoints = _parse(lines)
        assert len(round_acked) >= target, f"writer acknowledged only {len(round_acked)} entries"
        acked.update(round_acked)
        published.extend(round_checkpoints)

        with TransparencyLog.open(db, signer=signer) as log:
            size = log.size
            assert size >= max(acked.values()) + 1
            for (writer, seq), index in acked.items():
                assert ProvenanceRecord.from_json(log.entry(index)) == record(writer, seq)
            for checkpoint_size, note in published:
                checkpoint = verify_checkpoint(note, signer.verifier).checkpoint
                assert checkpoint.size == checkpoint_size
                proof = log.consistency_proof(checkpoint.size, size)
                assert proof.old_root == checkpoint.root_hash
                proof.verify()
            log.verify_integrity()
            # The restarted log goes on: a new checkpoint is consistent with the published ones.
            newest = log.checkpoint()
            for _, note in published:
                old = verify_checkpoint(note, signer.verifier).checkpoint
                log.consistency_proof(old.size, newest.checkpoint.size).verify()
    assert len(published) >= 3
    assert len(set(acked.values())) == len(acked)


def test_concurrent_processes_lose_and_duplicate_nothing(store_url: str, signer: NoteSigner) -> None:
    db = store_url
    TransparencyLog.open(db, signer=signer).close()
    writers, count = 4, 120
    processes = [_start(db, signer, writer=w, batch=8, count=count, every=5) for w in range(writers)]
    outputs = []
    for process in processes:
        out, err = process.communicate(timeout=120)
        assert process.returncode == 0, err
        outputs.append(out.splitlines())
    acked: dict[tuple[int, int], int] = {}
    published: list[tuple[int, str]] = []
    for lines in outputs:
        round_acked, checkpoints = _parse(lines)
        acked.update(round_acked)
        published.extend(checkpoints)
    assert len(acked) == writers * count
    assert sorted(acked.values()) == list(range(writers * count))
    with TransparencyLog.open(db, signer=signer) as log:
        assert log.size == writers * count
        seen = set()
        for index in range(log.size):
            entry = ProvenanceRecord.from_json(log.entry(index))
            key = (int(entry.key_id.split("-")[1]), int(entry.model_id.split("-")[1]))
            assert key not in seen
            seen.add(key)
            assert acked[key] == index
        log.verify_integrity()
        for _, note in published:
            old = verify_checkpoint(note, signer.verifier).checkpoint
            log.consistency_proof(old.size, log.size).verify()


def test_sigkill_of_one_of_four_writers_loses_no_acknowledged_entry(store_url: str, signer: NoteSigner) -> None:
    """Four instances append at once; one is killed mid-load; the others finish; nothing acknowledged is lost."""
    TransparencyLog.open(store_url, signer=signer).close()
    survivors = [_start(store_url, signer, writer=w, batch=8, count=100, every=4) for w in range(3)]
    victim = _start(store_url, signer, writer=3, batch=8, count=0, every=4)
    assert victim.stdout is not None
    lines: list[str] = []
    reader = threading.Thread(target=lines.extend, args=(victim.stdout,))
    reader.start()
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and sum(line.startswith("ACK") for line in list(lines)) < 120:
        time.sleep(0.005)
    victim.send_signal(signal.SIGKILL)
    victim.wait(timeout=30)
    reader.join(timeout=30)
    assert victim.returncode == -signal.SIGKILL
    acked, published = _parse(lines)
    assert len(acked) >= 120
    for process in survivors:
        out, err = process.communicate(timeout=120)
        assert process.returncode == 0, err
        more_acked, more_published = _parse(out.splitlines())
        acked.update(more_acked)
        published.extend(more_published)
    with TransparencyLog.open(store_url, signer=signer) as log:
        assert sorted(acked.values()) == sorted(set(acked.values()))  # no index acknowledged twice
        assert set(acked.values()) <= set(range(log.size))
        assert log.size >= len(acked)  # the victim's last, unacknowledged batch may be in too
        stored = [ProvenanceRecord.from_json(entry) for entry in log.store.iter_entries(0, log.size)]
        assert len({(r.key_id, r.model_id) for r in stored}) == log.size  # no record stored twice
        for (writer, seq), index in acked.items():
            assert ProvenanceRecord.from_json(log.entry(index)) == record(writer, seq)
        log.verify_integrity()
        for _, note in published:
            old = verify_checkpoint(note, signer.verifier).checkpoint
            log.consistency_proof(old.size, log.size).verify()
