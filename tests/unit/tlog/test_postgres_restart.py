"""Clients that retry survive the database going away mid-load.

Two ways: the shared test server reached through a TCP relay that, twice during the load, cuts
every open connection and refuses new ones for a moment (what clients see of a restart); and a
private server (its own data directory, port and socket, made with ``initdb``) that is really
crashed and restarted twice under load.  Appends that retry on ``TlogStorageError`` with
``deduplicate=True`` lose nothing and store nothing twice, even when a commit succeeded but its
answer was lost with the connection.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import pytest

from tests.unit.tlog._writer import record
from tracemark.errors import TlogStorageError
from tracemark.tlog import NoteSigner, ProvenanceRecord, TransparencyLog

pytestmark = pytest.mark.postgres


class Relay:
    """A TCP relay to ``upstream`` that can drop every connection and refuse new ones for a while."""

    def __init__(self, upstream: tuple[str, int]) -> None:
        self.upstream = upstream
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.down = False
        self.sockets: list[socket.socket] = []
        self.guard = threading.Lock()
        self.closed = False
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while not self.closed:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            if self.down:
                client.close()
                continue
            server = socket.create_connection(self.upstream)
            with self.guard:
                self.sockets += [client, server]
            threading.Thread(target=self._pump, args=(client, server), daemon=True).start()
            threading.Thread(target=self._pump, args=(server, client), daemon=True).start()

    @staticmethod
    def _pump(source: socket.socket, target: socket.socket) -> None:
        with contextlib.suppress(OSError):
            while data := source.recv(65536):
                target.sendall(data)
        for end in (source, target):
            with contextlib.suppress(OSError):
                end.shutdown(socket.SHUT_RDWR)

    def restart(self, outage: float) -> None:
        """Cut every connection, refuse new ones for ``outage`` seconds."""
        self.down = True
        with self.guard:
            sockets, self.sockets = self.sockets, []
        for end in sockets:
            with contextlib.suppress(OSError):
                end.shutdown(socket.SHUT_RDWR)
            end.close()
        time.sleep(outage)
        self.down = False

    def close(self) -> None:
        self.closed = True
        self.listener.close()
        self.restart(0)


@pytest.fixture
def relayed_url(postgres_url: str) -> Iterator[tuple[str, Relay]]:
    parts = urlsplit(postgres_url)
    relay = Relay((parts.hostname or "127.0.0.1", parts.port or 5432))
    netloc = f"{parts.username}@127.0.0.1:{relay.port}" if parts.username else f"127.0.0.1:{relay.port}"
    try:
        yield urlunsplit(parts._replace(netloc=netloc)), relay
    finally:
        relay.close()


PRIVATE_SERVER_NEEDED = (
    "the PostgreSQL restart test runs a private server: it needs PostgreSQL's server programs (initdb and"
    " pg_ctl, Debian's postgresql package) and, when run as root, the 'postgres' system user;"
    " TRACEMARK_TEST_POSTGRES=0 deselects the PostgreSQL tests"
)


def _server_programs() -> Path | None:
    """The folder holding ``initdb`` and ``pg_ctl``: on PATH, else Debian's newest version folder."""
    on_path = shutil.which("initdb")
    if on_path and shutil.which("pg_ctl"):
        return Path(on_path).parent
    found = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"), key=lambda p: int(p.parent.parent.name))
    return found[-1].parent if found else None


class PrivateServer:
    """A throw-away PostgreSQL server on a free loopback port, in a data directory of its own."""

    def __init__(self, bindir: Path) -> None:
        self.bindir = bindir
        self.root = Path(tempfile.mkdtemp(prefix="tracemark-pg-"))
        self.as_user: list[str] = []
        if os.geteuid() == 0:  # initdb and postgres refuse to run as root
            shutil.chown(self.root, user="postgres")
            self.as_user = ["runuser", "-u", "postgres", "--"]
        with socket.create_server(("127.0.0.1", 0)) as probe:
            self.port = probe.getsockname()[1]
        self.url = f"postgresql://postgres@127.0.0.1:{self.port}/postgres"
        self._run("initdb", "-D", str(self.root / "data"), "-A", "trust", "-U", "postgres", "--no-sync")
        self.start()

    def _run(self, program: str, *args: str) -> None:
        command = [*self.as_user, str(self.bindir / program), *args]
        subprocess.run(command, check=True, capture_output=True, timeout=120)

    def start(self) -> None:
        options = f"-p {self.port} -k {self.root} -c listen_addresses=127.0.0.1 -c fsync=on"
        self._run("pg_ctl", "-D", str(self.root / "data"), "-l", str(self.root / "log"), "-o", options, "-w", "start")

    def crash_and_restart(self, down: float) -> None:
        """Stop without a shutdown checkpoint (the server recovers from its WAL), wait, start again."""
        self._run("pg_ctl", "-D", str(self.root / "data"), "-m", "immediate", "stop")
        time.sleep(down)
        self.start()

    def remove(self) -> None:
        with contextlib.suppress(subprocess.SubprocessError):
            self._run("pg_ctl", "-D", str(self.root / "data"), "-m", "immediate", "stop")
        shutil.rmtree(self.root, ignore_errors=True)


@pytest.fixture
def private_postgres() -> Iterator[PrivateServer]:
    bindir = _server_programs()
    if bindir is None or (os.geteuid() == 0 and shutil.which("runuser") is None):
        pytest.fail(PRIVATE_SERVER_NEEDED, pytrace=False)
    server = PrivateServer(bindir)
    try:
        yield server
    finally:
        server.remove()


class Load:
    """Four retrying writer threads on two log instances; ``wait_for(n)`` blocks until n records are acked."""

    def __init__(self, url: str, signer: NoteSigner) -> None:
        self.instances = [TransparencyLog.open(url, signer=signer) for _ in range(2)]
        self.acked: dict[tuple[int, int], int] = {}
        self.failures: list[int] = []
        self.lock = threading.Lock()
        self.stop = threading.Event()
        self.threads = [threading.Thread(target=self._write, args=(w,)) for w in range(4)]
        for thread in self.threads:
            thread.start()

    def _append(self, log: TransparencyLog, writer: int, records: list[ProvenanceRecord]) -> list[int]:
        deadline = time.monotonic() + 60
        while True:
            try:
                return [result.index for result in log.append_many(records, deduplicate=True)]
            except TlogStorageError:
                with self.lock:
                    self.failures.append(writer)
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)

    def _write(self, writer: int, batch: int = 6) -> None:
        log = self.instances[writer % 2]
        for low in range(0, 10**9, batch):
            if self.stop.is_set():
                return
            indices = self._append(log, writer, [record(writer, seq) for seq in range(low, low + batch)])
            with self.lock:
                self.acked.update({(writer, low + i): index for i, index in enumerate(indices)})

    def wait_for(self, count: int) -> None:
        while len(self.acked) < count and all(thread.is_alive() for thread in self.threads):
            time.sleep(0.005)

    def finish(self) -> dict[tuple[int, int], int]:
        self.stop.set()
        for thread in self.threads:
            thread.join(timeout=120)
        for instance in self.instances:
            instance.close()
        return dict(self.acked)


def check_log(url: str, signer: NoteSigner, acked: dict[tuple[int, int], int]) -> None:
    """Every acknowledged record once, at its acknowledged index; nothing stored twice; no gap."""
    with TransparencyLog.open(url, signer=signer) as log:
        assert log.size == len(acked)
        assert sorted(acked.values()) == list(range(len(acked)))
        for (writer, seq), index in acked.items():
            assert ProvenanceRecord.from_json(log.entry(index)) == record(writer, seq)
        log.verify_integrity()


def test_retrying_clients_survive_two_outages_mid_load(
    postgres_url: str, relayed_url: tuple[str, Relay], signer: NoteSigner
) -> None:
    url, relay = relayed_url
    TransparencyLog.open(postgres_url, signer=signer).close()
    load = Load(url, signer)
    try:
        for target in (100, 300):  # two outages mid-load, then load after the second
            load.wait_for(target)
            relay.restart(outage=0.5)
        load.wait_for(500)
    finally:
        acked = load.finish()
    assert load.failures, "no append failed: the outages did not hit the load"
    assert len(acked) >= 500
    check_log(postgres_url, signer, acked)


def test_retrying_clients_survive_a_real_server_crash_and_restart(
    private_postgres: PrivateServer, signer: NoteSigner
) -> None:
    """A private PostgreSQL server (its own data directory and port) is killed without a shutdown
    checkpoint (``pg_ctl stop -m immediate``: crash recovery from the WAL on start) and started
    again, twice, under load: every acknowledged append survives the crash."""
    url = private_postgres.url
    TransparencyLog.open(url, signer=signer).close()
    load = Load(url, signer)
    try:
        for target in (100, 300):
            load.wait_for(target)
            private_postgres.crash_and_restart(down=0.5)
        load.wait_for(500)
    finally:
        acked = load.finish()
    assert load.failures, "no append failed: the restarts did not hit the load"
    assert len(acked) >= 500
    check_log(url, signer, acked)
