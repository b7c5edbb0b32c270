"""The PostgreSQL store on a real server: versioned migrations, reconnection, sequencing, ``tlog migrate``.

The log's behaviour on PostgreSQL is tested by the store-parametrised suites (test_log.py,
test_durability.py); this file covers what only the PostgreSQL store has.
"""

from __future__ import annotations

import json
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from tests.unit.tlog._helpers import make_record
from tracemark.cli import main
from tracemark.errors import TlogStorageError
from tracemark.tlog import Checkpoint, MemoryStore, NoteSigner, TransparencyLog
from tracemark.tlog._merkle import NodeAddress, node_id
from tracemark.tlog._store.postgres import migrate

if TYPE_CHECKING:
    import psycopg

pytestmark = pytest.mark.postgres  # psycopg is imported inside the tests: without it the conftest says what is missing


@pytest.fixture
def schema_db(postgres_url: str) -> Iterator[psycopg.Connection[tuple[object, ...]]]:
    """A direct connection to the test's schema, to look under the store."""
    import psycopg

    base, _, schema = postgres_url.partition("?schema=")
    with psycopg.connect(base, autocommit=True) as db:
        db.execute(f'SET search_path TO "{schema}"')
        yield db


def _versions(db: psycopg.Connection[tuple[object, ...]]) -> list[int]:
    return [int(str(row[0])) for row in db.execute("SELECT version FROM tlog_schema_version ORDER BY version")]


def test_an_empty_database_is_migrated_to_the_current_version(
    postgres_url: str, schema_db: psycopg.Connection[tuple[object, ...]], signer: NoteSigner
) -> None:
    with TransparencyLog.open(postgres_url, signer=signer) as log:
        assert log.size == 0
        log.append_many([make_record(i) for i in range(5)])
    assert _versions(schema_db) == [1, 2, 3]
    tables = {
        str(row[0]) for row in schema_db.execute("SELECT tablename FROM pg_tables WHERE schemaname = current_schema()")
    }
    assert tables == {
        "tlog_schema_version",
        "tlog_meta",
        "tlog_tree",
        "tlog_entry_data",
        "tlog_batches",
        "tlog_nodes",
        "tlog_checkpoints",
        "tlog_times",
    }
    with TransparencyLog.open(postgres_url, signer=signer) as log:  # reopening migrates nothing
        assert log.size == 5
    assert _versions(schema_db) == [1, 2, 3]


def _write_old_log(
    db: psycopg.Connection[tuple[object, ...]], version: int, signer: NoteSigner, count: int
) -> Checkpoint:
    """A database at schema ``version`` (1 or 2) holding a log of ``count`` entries, written as that version
    wrote it: entries by index in ``tlog_entries``, interior nodes by post-order id in ``tlog_nodes``."""
    migrate(db, target=version)
    memory = TransparencyLog(MemoryStore(), signer=signer)
    memory.append_many([make_record(i) for i in range(count)])
    signed = memory.checkpoint()
    store = memory.store
    entries = store.read_entries(0, count)
    leaves = store.read_leaves(0, count)
    for index, (data, leaf) in enumerate(zip(entries, leaves, strict=True)):
        key = int.from_bytes(bytes.fromhex(make_record(index).content_sha256)[:8], "big", signed=True)
        db.execute(
            "INSERT INTO tlog_entries (idx, leaf, data, lookup) VALUES (%s, %s, %s, %s)", (index, leaf, data, key)
        )
    wanted = [NodeAddress(level, index) for level in range(1, 8) for index in range(count >> level)]
    for node, value in store.read_nodes(wanted).items():
        db.execute("INSERT INTO tlog_nodes (id, hash) VALUES (%s, %s)", (node_id(node.level, node.index), value))
    state = store.tree_state()
    db.execute("UPDATE tlog_tree SET size = %s, root = %s WHERE id = 0", (state.size, state.root))
    for name in ("origin", "log_vkey"):
        db.execute("INSERT INTO tlog_meta (key, value) VALUES (%s, %s)", (name, store.get_meta(name)))
    for stored in store.checkpoints():
        db.execute(
            "INSERT INTO tlog_checkpoints (size, root, note, created_at) VALUES (%s, %s, %s, %s)",
            (stored.size, stored.root, stored.note, stored.created_at),
        )
    if version >= 2:
        db.execute("INSERT INTO tlog_times (first, time) VALUES (0, 1767225600)")
    return signed.checkpoint


@pytest.mark.parametrize("version", [1, 2])
def test_an_older_database_keeps_its_log_when_migrated(
    version: int, postgres_url: str, schema_db: psycopg.Connection[tuple[object, ...]], signer: NoteSigner
) -> None:
    """Version 1 had no integration times; version 2 kept entries by index.  Both keep every entry,
    lookup, proof and checkpoint, and take appends after the migration."""
    old = _write_old_log(schema_db, version, signer, 45)
    with TransparencyLog.open(postgres_url, signer=signer) as log:
        assert _versions(schema_db) == [1, 2, 3]
        assert log.size == 45
        assert log.integrated_time(3) == (None if version == 1 else 1767225600)
        assert log.find(make_record(17).content_sha256) == [17]
        proof = log.inclusion_proof(17, 45)
        proof.verify()
        assert proof.root_hash == old.root_hash
        appended = log.append_many([make_record(i) for i in range(45, 70)])
        assert [result.index for result in appended] == list(range(45, 70))
        assert log.integrated_time(appended[0].index) == appended[0].integrated_time
        assert log.find(make_record(60).content_sha256) == [60]
        consistency = log.consistency_proof(old.size, log.size)
        consistency.verify()
        assert consistency.old_root == old.root_hash
        log.verify_integrity()
        assert [log.entry(i) for i in (0, 44, 45, 69)] == [make_record(i).to_json() for i in (0, 44, 45, 69)]


def test_a_newer_schema_is_refused(
    postgres_url: str, schema_db: psycopg.Connection[tuple[object, ...]], signer: NoteSigner
) -> None:
    TransparencyLog.open(postgres_url, signer=signer).close()
    schema_db.execute("INSERT INTO tlog_schema_version (version, applied_at) VALUES (99, 0)")
    with pytest.raises(TlogStorageError, match="schema version 99"):
        TransparencyLog.open(postgres_url)


def test_instances_starting_together_migrate_once(
    postgres_url: str, schema_db: psycopg.Connection[tuple[object, ...]], signer: NoteSigner
) -> None:
    errors: list[BaseException] = []

    def start() -> None:
        try:
            TransparencyLog.open(postgres_url, signer=signer).close()
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=start) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert _versions(schema_db) == [1, 2, 3]


def test_threads_append_without_gaps_or_duplicates(postgres_url: str, signer: NoteSigner) -> None:
    with TransparencyLog.open(postgres_url, signer=signer) as log:

        def work(worker: int) -> None:
            for batch in range(10):
                log.append_many([make_record(worker * 1000 + batch * 10 + i) for i in range(10)])

        threads = [threading.Thread(target=work, args=(w,)) for w in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert log.size == 400
        log.verify_integrity()


def test_a_dropped_connection_fails_one_call_and_the_retry_succeeds(postgres_url: str, signer: NoteSigner) -> None:
    """What a client sees when the server restarts: one error, then a fresh connection on retry."""
    import psycopg

    base = postgres_url.partition("?schema=")[0]
    with TransparencyLog.open(postgres_url, signer=signer) as log:
        log.append(make_record(0))
        pid_row = log.store._connect().execute("SELECT pg_backend_pid()").fetchone()  # type: ignore[attr-defined]
        assert pid_row is not None
        with psycopg.connect(base, autocommit=True) as admin:
            admin.execute("SELECT pg_terminate_backend(%s)", (pid_row[0],))
        with pytest.raises(TlogStorageError, match="log database"):
            log.append(make_record(1))
        retried = log.append(make_record(1))
        assert retried.index == 1
        log.verify_integrity()


def test_unreachable_server_is_one_clear_error() -> None:
    with pytest.raises(TlogStorageError, match="unreachable"):
        TransparencyLog.open("postgresql://postgres@127.0.0.1:1/test")


def test_migrate_copies_a_sqlite_log_with_the_same_root(
    tmp_path: Path, postgres_url: str, signer: NoteSigner, capsys: pytest.CaptureFixture[str]
) -> None:
    sqlite_path = tmp_path / "log.sqlite3"
    with TransparencyLog.open(sqlite_path, signer=signer) as log:
        for start in range(0, 300, 37):
            log.append_many([make_record(i) for i in range(start, min(300, start + 37))])
            if start % 74 == 0:
                log.checkpoint()
        state = log.tree_state()
        checkpoints = log.store.checkpoints()
        times = [log.integrated_time(i) for i in range(300)]
    status = main(["tlog", "migrate", "--from", f"sqlite:{sqlite_path}", "--to", postgres_url, "--json"])
    assert status == 0
    payload = json.loads(capsys.readouterr().out)
    assert payload["tree_size"] == 300
    assert payload["root"] == state.root.hex()
    assert payload["checkpoints"] == len(checkpoints)
    with TransparencyLog.open(postgres_url, signer=signer) as copy:  # the same log: same key, same origin
        assert copy.tree_state() == state
        assert copy.store.checkpoints() == checkpoints
        assert [copy.integrated_time(i) for i in range(300)] == times
        assert copy.find(make_record(123).content_sha256) == [123]
        copy.append(make_record(300))
        copy.consistency_proof(300, 301).verify()
    # a second copy into the same (now non-empty) log is refused
    assert main(["tlog", "migrate", "--from", f"sqlite:{sqlite_path}", "--to", postgres_url]) != 0


def test_the_cli_takes_a_postgresql_url_as_db(postgres_url: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["tlog", "init", "--db", postgres_url, "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["tree_size"] == 0
    with TransparencyLog.open(postgres_url) as log:  # the CLI's log key is now the log's
        log.append_entries([b"entry"])
    assert main(["tlog", "checkpoint", "--db", postgres_url, "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["tree_size"] == 1


def test_the_service_keeps_its_log_on_postgresql(postgres_url: str, isolated_home: Path) -> None:
    """TRACEMARK_SERVICE_DATABASE takes a URL; two service logs (two instances) append to one log."""
    from tracemark.keys import Keyring
    from tracemark.service import ServiceSettings
    from tracemark.service._log import ServiceLog

    settings = ServiceSettings.from_environment({"TRACEMARK_SERVICE_DATABASE": postgres_url})
    assert settings.database == postgres_url
    keyring = Keyring(isolated_home)
    keyring.create()
    first, second = ServiceLog(settings.database, keyring), ServiceLog(settings.database, keyring)
    try:
        a = first.append(make_record(0))
        b = second.append(make_record(1))
        assert sorted([a.result.index, b.result.index]) == [0, 1]
        assert first.find_content(make_record(1).content_sha256, first.size()) == b.result.index
        assert second.receipt(a.result.index)["index"] == a.result.index
    finally:
        first.close()
        second.close()


def test_instances_starting_together_create_a_missing_schema_once(postgres_server: str, signer: NoteSigner) -> None:
    import psycopg

    schema = f"tlog_test_new_{uuid.uuid4().hex[:12]}"
    url = f"{postgres_server}?schema={schema}"
    errors: list[BaseException] = []

    def start() -> None:
        try:
            with TransparencyLog.open(url, signer=signer) as log:
                log.append(make_record(0))
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=start) for _ in range(4)]
    try:
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert errors == []
        with TransparencyLog.open(url) as log:
            assert log.size == 4
            log.verify_integrity()
    finally:
        with psycopg.connect(postgres_server, autocommit=True) as db:
            db.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
