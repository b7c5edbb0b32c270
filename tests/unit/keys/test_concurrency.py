"""Concurrent writers: several processes running ``keys init`` and ``keys new`` lose no key and tear no file.

Processes are real ``tracemark`` commands started together; threads hammer the read-modify-write
updates (defaults, API tokens) far more often than processes could, which is where a missing lock
loses updates.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from tests.support.threads import run_in_threads
from tests.unit.keys.conftest import Populated
from tracemark.keys import (
    Keyring,
    MediaCertificate,
    ensure_media_certificate,
    load_log_key,
    load_media_certificate,
    mint_api_token,
    verify_api_token,
)

PROCESSES = 4


def _start_together(argvs: list[list[str]], home: Path) -> list[subprocess.CompletedProcess[str]]:
    """Run ``tracemark`` commands at the same moment (each waits for a shared start file)."""
    gate = home.parent / "go"
    script = (
        "import os, sys, time\n"
        "while not os.path.exists(sys.argv[1]): time.sleep(0.002)\n"
        "from tracemark.cli import main\n"
        "raise SystemExit(main(sys.argv[2:]))\n"
    )
    env = {**os.environ, "TRACEMARK_HOME": str(home)}
    command = [sys.executable, "-c", script, str(gate)]
    running = [
        subprocess.Popen([*command, *argv], env=env, text=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        for argv in argvs
    ]
    gate.touch()
    results = []
    for process in running:
        out, err = process.communicate(timeout=120)
        results.append(subprocess.CompletedProcess(process.args, process.returncode, out, err))
    return results


@pytest.mark.slow
def test_concurrent_keys_init_makes_one_keyring(isolated_home: Path, word_model: Path) -> None:
    results = _start_together([["keys", "init", "--model", str(word_model), "--json"]] * PROCESSES, isolated_home)
    assert [r.returncode for r in results] == [0] * PROCESSES, [r.stderr for r in results]
    keyring = Keyring(isolated_home)
    listed = keyring.list()  # every record written by every process loads
    created = {key_id for r in results for key_id in json.loads(r.stdout)["created"]}
    assert {k.key_id for k in listed} == created
    assert keyring.default("text").key_id in created
    # One log key, and one certificate chain whose leaf matches the signing key.
    assert load_log_key(keyring).name.startswith("tracemark.invalid/log/")
    assert _chain_matches_its_key(load_media_certificate(keyring))
    assert list(keyring.directory.glob(".*.tmp")) == []


@pytest.mark.slow
def test_concurrent_keys_new_loses_no_key_and_tears_no_default(populated: Populated, word_model: Path) -> None:
    keyring = populated.keyring
    argv = ["keys", "new", "--model", str(word_model), "--default", "--json"]
    results = _start_together([argv] * PROCESSES, keyring.home)
    assert [r.returncode for r in results] == [0] * PROCESSES, [r.stderr for r in results]
    made = {json.loads(r.stdout)["key_id"] for r in results}
    assert len(made) == PROCESSES
    assert {k.key_id for k in keyring.list()} == made | {populated.key.key_id}
    assert keyring.default("text").key_id in made


def _chain_matches_its_key(certificate: MediaCertificate) -> bool:
    leaf = x509.load_pem_x509_certificates(certificate.chain_pem)[0]
    private = serialization.load_pem_private_key(certificate.private_key_pem, password=None)
    return bool(leaf.public_key() == private.public_key())


def test_concurrent_creation_writes_one_master_secret(isolated_home: Path) -> None:
    created: list[bool] = []
    derived: list[bytes] = []

    def work(index: int) -> None:
        keyring = Keyring(isolated_home)
        created.append(keyring.create())
        derived.append(keyring.derive_secret("probe"))

    run_in_threads(16, work)
    assert created.count(True) == 1
    assert set(derived) == {Keyring(isolated_home).derive_secret("probe")}


def test_concurrent_certificate_creation_makes_one_chain(keyring: Keyring) -> None:
    made: list[MediaCertificate] = []
    run_in_threads(6, lambda index: made.append(ensure_media_certificate(Keyring(keyring.home))))
    assert len({m.chain_pem for m in made}) == 1
    assert _chain_matches_its_key(load_media_certificate(keyring))


def test_concurrent_defaults_lose_no_update(populated: Populated) -> None:
    keyring = populated.keyring
    key_id = populated.key.key_id

    def work(index: int) -> None:
        for round_ in range(15):
            Keyring(keyring.home).set_default(f"purpose-{index}-{round_}", key_id)

    run_in_threads(8, work)
    defaults = keyring.defaults()
    assert {f"purpose-{i}-{r}" for i in range(8) for r in range(15)} <= set(defaults)


def test_concurrent_tokens_are_all_kept(populated: Populated) -> None:
    keyring = populated.keyring
    minted: list[str] = []

    def work(index: int) -> None:
        for _ in range(8):
            minted.append(mint_api_token(Keyring(keyring.home), label=f"thread {index}"))

    run_in_threads(8, work)
    assert len(minted) == 64
    for token in minted:
        verify_api_token(keyring, token)


def test_readers_never_see_a_torn_file_while_writers_update(populated: Populated) -> None:
    keyring = populated.keyring
    key_id = populated.key.key_id
    stop = threading.Event()
    seen: list[BaseException] = []

    def read() -> None:
        while not stop.is_set():
            try:
                assert keyring.default("text").key_id == key_id
                keyring.list()
            except BaseException as exc:
                seen.append(exc)
                return

    def write(index: int) -> None:
        for n in range(20):
            keyring.set_default(f"p{index}-{n}", key_id)

    reader = threading.Thread(target=read)
    reader.start()
    try:
        run_in_threads(4, write)
    finally:
        stop.set()
        reader.join()
    assert seen == []
