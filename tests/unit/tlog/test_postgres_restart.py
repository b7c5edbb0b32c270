"""Clients that retry survive the database going away mid-load (PostgreSQL reached through a TCP relay).

The test server is shared, so it is not restarted; instead every connection goes through a relay
that, twice during the load, cuts every open connection and refuses new ones for a moment: what
clients see when the server restarts.  Appends that retry on ``TlogStorageError`` with
``deduplicate=True`` lose nothing and store nothing twice, even when a commit succeeded but its
answer was lost with the connection.
"""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections.abc import Iterator
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


def test_retrying_clients_survive_two_outages_mid_load(
    postgres_url: str, relayed_url: tuple[str, Relay], signer: NoteSigner
) -> None:
    url, relay = relayed_url
    TransparencyLog.open(postgres_url, signer=signer).close()
    instances = [TransparencyLog.open(url, signer=signer) for _ in range(2)]
    acked: dict[tuple[int, int], int] = {}
    failures: list[int] = []
    lock = threading.Lock()
    stop = threading.Event()
    batch = 6

    def write(writer: int) -> None:
        log = instances[writer % 2]
        for low in range(0, 10**9, batch):
            if stop.is_set():
                return
            records = [record(writer, seq) for seq in range(low, low + batch)]
            deadline = time.monotonic() + 60
            while True:
                try:
                    results = log.append_many(records, deduplicate=True)
                    break
                except TlogStorageError:
                    with lock:
                        failures.append(writer)
                    if time.monotonic() > deadline:
                        raise
                    time.sleep(0.05)
            with lock:
                acked.update({(writer, low + i): r.index for i, r in enumerate(results)})

    threads = [threading.Thread(target=write, args=(w,)) for w in range(4)]
    try:
        for thread in threads:
            thread.start()
        for target in (100, 300, 500):  # two outages mid-load, then load after the second
            while len(acked) < target and all(thread.is_alive() for thread in threads):
                time.sleep(0.005)
            if target < 500:
                relay.restart(outage=0.5)
        stop.set()
        for thread in threads:
            thread.join(timeout=120)
    finally:
        for instance in instances:
            instance.close()
    assert failures, "no append failed: the outages did not hit the load"
    assert len(acked) >= 500
    with TransparencyLog.open(postgres_url, signer=signer) as log:
        assert log.size == len(acked)  # every acknowledged record once, nothing stored twice, no gap
        assert sorted(acked.values()) == list(range(len(acked)))
        for (writer, seq), index in acked.items():
            assert ProvenanceRecord.from_json(log.entry(index)) == record(writer, seq)
        log.verify_integrity()
