"""The service's view of the transparency log: opened once, appends batched, every append receipted.

One :class:`ServiceLog` per application.  Request handlers run in the thread pool, so
everything here is safe to call from many threads at once:

* the SQLite store keeps one connection per thread and serialises writers on the database
  lock (``BEGIN IMMEDIATE``), also across worker processes sharing the file;
* appends go through a :class:`~tracemark.tlog.BatchingAppender`, so concurrent requests share
  one durable commit (group commit), and each request returns only once its entry is durable;
  an append identical (byte for byte) to a stored record answers with the stored entry, so a
  client that retries after a lost answer creates no duplicate;
* checkpoints are published on a rhythm: one thread signs (or, under a witness policy, has
  the witnesses cosign) a checkpoint at most once per ``checkpoint_interval`` seconds, when
  entries wait for one.  An append waits for the next checkpoint covering its entry and
  returns its tlog-proof@v1 receipt, or (``wait=False``) returns at once with a promise: the
  index, leaf hash and the size the next checkpoint covers, redeemed with :meth:`ServiceLog.receipt`.
  With ``checkpoint_interval`` 0 each request signs a checkpoint covering its batch itself
  (one signature per batch, the old behaviour).
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import logging
import math
import os
import sqlite3
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import partial
from pathlib import Path
from typing import TypedDict

from cryptography import x509
from starlette.concurrency import run_in_threadpool

from tracemark.errors import TlogError, TlogFormatError, TlogStorageError
from tracemark.keys import Keyring, ensure_log_key
from tracemark.service._errors import NotFoundError
from tracemark.service._settings import DEFAULT_CHECKPOINT_INTERVAL
from tracemark.tlog import (
    AppendResult,
    BatchingAppender,
    Checkpoint,
    CheckpointPublisher,
    ConsistencyJSON,
    InclusionProof,
    NoteVerifier,
    ProvenanceRecord,
    Receipt,
    SignedCheckpoint,
    SignedNote,
    TransparencyLog,
    VerifiedReceiptJSON,
    request_timestamp,
    verify_receipt,
    verify_timestamp,
)
from tracemark.tlog.merkle import hash_leaf

_log = logging.getLogger(__name__)

#: Longest an append waits for a checkpoint covering its entry, beyond one interval.
_COVER_TIMEOUT = 60.0


def b64(data: bytes) -> str:
    """Standard base64 with padding, as the C2SP formats write hashes."""
    return base64.b64encode(data).decode("ascii")


class ContentMismatchError(TlogError):
    """A valid receipt, but for other content than the one given."""


def rfc3339(moment: float | None) -> str | None:
    """Unix time as RFC 3339 UTC with milliseconds (``2026-08-02T12:00:00.123Z``), None for None."""
    if moment is None:
        return None
    return datetime.fromtimestamp(moment, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


class AppendedEntryJSON(TypedDict):
    """An appended entry: ``POST /v1/log/entries``, and the log part of ``POST /v1/text/generate``.

    ``receipt`` is None when the client did not wait for a checkpoint (``?wait=false``): the
    next published checkpoint covers at least ``tree_size`` entries, and
    ``GET /v1/log/receipt/{index}`` gives the receipt then.
    """

    index: int
    leaf_hash: str
    tree_size: int
    record: dict[str, str]
    receipt: str | None
    #: When the log integrated the entry (its own clock, RFC 3339 UTC with milliseconds).
    integrated_time: str | None
    #: The record's ``time``: what the submitter claims, not vouched for by the log.
    claimed_time: str
    #: True when the identical record was already stored: this is that entry, not a new one.
    duplicate: bool


class CheckpointTimestampJSON(TypedDict):
    """An RFC 3161 timestamp over a published checkpoint: ``GET /v1/log/checkpoint/timestamp``."""

    tree_size: int
    #: The checkpoint (signed note); the token's message imprint is SHA-256 of its text (before the signatures).
    checkpoint: str
    #: The RFC 3161 token (CMS ContentInfo, DER), standard base64.
    token: str
    #: When the TSA says the checkpoint existed (its genTime, RFC 3339 UTC).
    gen_time: str | None


class ReceiptJSON(TypedDict):
    """A redeemed promise: ``GET /v1/log/receipt/{index}``."""

    index: int
    tree_size: int
    receipt: str


class EntryJSON(TypedDict):
    """One entry: ``GET /v1/log/entries/{index}`` (``record`` is None when the bytes are not a record)."""

    index: int
    leaf_hash: str
    record: dict[str, str] | None
    entry: str
    #: When the log integrated the entry (None for entries older than integration times).
    integrated_time: str | None
    #: The record's ``time`` (the submitter's claim), None when the entry is not a record.
    claimed_time: str | None


class EntriesPageJSON(TypedDict):
    """A page of entries: ``GET /v1/log/entries``."""

    tree_size: int
    start: int
    limit: int
    entries: list[EntryJSON]
    next: int | None


class InclusionJSON(TypedDict):
    """An inclusion proof: ``GET /v1/log/proof/inclusion`` (``checkpoint`` and ``receipt`` None when unsigned)."""

    index: int
    tree_size: int
    leaf_hash: str
    root_hash: str
    proof: list[str]
    checkpoint: str | None
    receipt: str | None


@dataclass(frozen=True)
class AppendedEntry:
    """An entry the service appended, with its receipt."""

    result: AppendResult
    record: ProvenanceRecord
    #: None for a promise (the client did not wait for a checkpoint).
    receipt: Receipt | None

    def to_json(self) -> AppendedEntryJSON:
        """``index``, ``leaf_hash`` (hex), ``tree_size``, ``record``, ``receipt`` (tlog-proof@v1 text or None),
        ``integrated_time``, ``claimed_time`` and ``duplicate``."""
        return {
            "index": self.result.index,
            "leaf_hash": self.result.leaf_hash.hex(),
            "tree_size": self.result.tree_size,
            "record": self.record.to_dict(),
            "receipt": None if self.receipt is None else self.receipt.to_text(),
            "integrated_time": rfc3339(self.result.integrated_time),
            "claimed_time": self.record.time,
            "duplicate": self.result.duplicate,
        }


def _entry_json(index: int, data: bytes, integrated: float | None) -> EntryJSON:
    try:
        record: dict[str, str] | None = ProvenanceRecord.from_json(data).to_dict()
    except TlogFormatError:
        record = None
    return {"index": index, "leaf_hash": hash_leaf(data).hex(), "record": record, "entry": b64(data),
            "integrated_time": rfc3339(integrated),
            "claimed_time": None if record is None else record["time"]}  # fmt: skip


class _LeafIndex:
    """Leaf hash → index, in a database file of its own beside the log's (``<database>.leaves``).

    The log indexes content hashes, not leaf hashes.  This index is derived data, filled lazily
    with the entries added since the last lookup, in chunks.  It lives in its own file so that
    filling it never takes the log database's write lock: the entries are read from the log
    through snapshot reads (WAL readers never block the writer), and only the index file is
    written.  A lookup on a large log that grew since the last one may take seconds, but appends
    go on meanwhile.  Losing the file loses nothing: it is rebuilt on the next lookup.
    """

    #: Entries read and indexed per transaction of the index file.
    CHUNK = 65_536

    def __init__(self, database: Path | str, home: Path) -> None:
        if isinstance(database, str):  # a PostgreSQL log: the derived index is a local file per instance
            digest = hashlib.sha256(database.encode()).hexdigest()[:16]
            self.path = home / f"tlog-{digest}.leaves"
        else:
            self.path = database.with_name(database.name + ".leaves")
        self._lock = threading.Lock()
        self._connection: sqlite3.Connection | None = None

    def _connect(self) -> sqlite3.Connection:
        if self._connection is None:
            connection = sqlite3.connect(str(self.path), timeout=30.0, isolation_level=None,
                                         check_same_thread=False)  # fmt: skip
            connection.execute("PRAGMA busy_timeout = 30000")
            connection.execute("PRAGMA journal_mode = WAL")
            connection.execute("PRAGMA synchronous = NORMAL")  # derived data: a lost tail is re-indexed
            connection.execute("PRAGMA cache_size = -65536")  # random leaf hashes touch the whole index
            connection.execute(
                "CREATE TABLE IF NOT EXISTS leaf_index (leaf BLOB PRIMARY KEY, idx INTEGER NOT NULL) WITHOUT ROWID"
            )
            connection.execute("CREATE TABLE IF NOT EXISTS leaf_meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)")
            self._connection = connection
        return self._connection

    def _insert(self, db: sqlite3.Connection, log: TransparencyLog, low: int, high: int) -> None:
        """Index entries ``[low, high)``: read from the log (no lock), written to the index file."""
        rows = sorted(zip(log.store.read_leaves(low, high), range(low, high), strict=True))
        db.execute("BEGIN IMMEDIATE")  # the index file's lock, never the log's
        try:
            db.executemany("INSERT OR IGNORE INTO leaf_index (leaf, idx) VALUES (?, ?)", rows)
            db.execute("INSERT OR REPLACE INTO leaf_meta (key, value) VALUES ('indexed_upto', ?)", (str(high),))
            db.execute("COMMIT")
        except BaseException:
            if db.in_transaction:
                db.execute("ROLLBACK")
            raise

    def find(self, log: TransparencyLog, leaf: bytes, size: int) -> int | None:
        """The first index whose leaf hash is ``leaf`` among the first ``size`` entries, or None."""
        with self._lock:
            try:
                db = self._connect()
                row = db.execute("SELECT value FROM leaf_meta WHERE key = 'indexed_upto'").fetchone()
                upto = 0 if row is None else int(row[0])
                for low in range(upto, size, self.CHUNK):
                    self._insert(db, log, low, min(size, low + self.CHUNK))
                found = db.execute("SELECT idx FROM leaf_index WHERE leaf = ?", (leaf,)).fetchone()
            except sqlite3.Error as exc:
                raise TlogStorageError(f"the leaf index of the log database: {exc}") from None
        return None if found is None or int(found[0]) >= size else int(found[0])

    def close(self) -> None:
        with self._lock:
            if self._connection is not None:
                self._connection.close()
                self._connection = None


class _Rhythm:
    """Publishes checkpoints at most once per ``interval`` seconds, in one thread, when entries wait.

    ``publish`` signs (or has witnesses cosign) a checkpoint of the whole tree and returns its
    size.  An attempt that fails is retried an interval later; the appends waiting when it
    started learn its error.
    """

    def __init__(self, publish: Callable[[], int], interval: float, after: Callable[[int], None] | None = None) -> None:
        self.interval = interval
        self._publish = publish
        self._after = after  # called with each published size, after the waiters were released
        self._condition = threading.Condition()
        self._wanted = 0  # the largest size an append asked to have covered
        self._covered = 0  # the largest size published
        self._started = 0  # attempts started
        self._failed: tuple[int, BaseException] | None = None  # the latest failed attempt and its error
        self._last = -math.inf
        self._closed = False
        #: Requests waiting on an event loop: (size, ticket, loop, future).
        self._async_waiters: list[tuple[int, int, asyncio.AbstractEventLoop, asyncio.Future[None]]] = []
        self.attempts = 0  # finished attempts (successful or not), for tests and metrics
        self._thread = threading.Thread(target=self._run, name="tracemark-checkpoint-publisher", daemon=True)
        self._thread.start()

    def request(self, size: int) -> int:
        """Ask for a checkpoint covering ``size`` entries; returns a ticket for :meth:`wait`."""
        with self._condition:
            if size > self._wanted:
                self._wanted = size
                self._condition.notify_all()
            return self._started

    def wait(self, size: int, ticket: int, timeout: float) -> None:
        """Block until a checkpoint covering ``size`` entries is published, or raise the error of an
        attempt started after ``ticket`` (or :class:`TlogError` after ``timeout`` seconds)."""
        deadline = time.monotonic() + timeout
        with self._condition:
            while self._covered < size:
                failed = self._failed
                if failed is not None and failed[0] > ticket:
                    raise failed[1]
                left = deadline - time.monotonic()
                if left <= 0 or self._closed:
                    raise TlogError(f"no checkpoint covering {size} entries was published within {timeout:.0f} s")
                self._condition.wait(left)

    async def wait_async(self, size: int, ticket: int, timeout: float) -> None:
        """:meth:`wait` for a request on an event loop: no thread is held while it waits."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[None] = loop.create_future()
        with self._condition:
            if self._covered >= size:
                return
            failed = self._failed
            if failed is not None and failed[0] > ticket:
                raise failed[1]
            if self._closed:
                raise TlogError("the log is closed")
            self._async_waiters.append((size, ticket, loop, future))
        try:
            await asyncio.wait_for(future, timeout)
        except TimeoutError:
            raise TlogError(f"no checkpoint covering {size} entries was published within {timeout:.0f} s") from None

    def _settle_async(self) -> None:
        """Resolve the event-loop waiters this attempt covered or failed (under the condition)."""
        kept = []
        for size, ticket, loop, future in self._async_waiters:
            failed = self._failed
            if self._covered >= size:
                loop.call_soon_threadsafe(_resolve, future, None)
            elif failed is not None and failed[0] > ticket:
                loop.call_soon_threadsafe(_resolve, future, failed[1])
            elif self._closed:
                loop.call_soon_threadsafe(_resolve, future, TlogError("the log is closed"))
            else:
                kept.append((size, ticket, loop, future))
        self._async_waiters = kept

    def _next(self) -> int | None:
        """Wait for work and the interval; the attempt's number, or None once closed."""
        with self._condition:
            while not self._closed:
                if self._wanted <= self._covered:
                    self._condition.wait()
                    continue
                delay = self._last + self.interval - time.monotonic()
                if delay <= 0:
                    self._started += 1
                    self._last = time.monotonic()
                    return self._started
                self._condition.wait(delay)
            return None

    def _run(self) -> None:
        while (number := self._next()) is not None:
            try:
                size, error = self._publish(), None
            except BaseException as exc:  # the waiters learn it; the next interval tries again
                size, error = 0, exc
                _log.warning("checkpoint not published: %s", exc)
            with self._condition:
                self._last = time.monotonic()  # the interval runs from the end of an attempt
                self.attempts += 1
                if error is None:
                    self._covered = max(self._covered, size)
                else:
                    self._failed = (number, error)
                self._settle_async()
                self._condition.notify_all()
            if error is None and self._after is not None:
                try:
                    self._after(size)
                except Exception as exc:  # best effort: the checkpoint is published either way
                    _log.warning("after publishing checkpoint %d: %s", size, exc)

    def close(self) -> None:
        with self._condition:
            self._closed = True
            self._settle_async()
            self._condition.notify_all()
        self._thread.join()


def _resolve(future: asyncio.Future[None], error: BaseException | None) -> None:
    if future.done():  # the waiter timed out or was cancelled
        return
    if error is None:
        future.set_result(None)
    else:
        future.set_exception(error)


@dataclass(frozen=True)
class _OpenLog:
    """The open log and the appender that batches its appends: opened and closed together."""

    log: TransparencyLog
    appender: BatchingAppender
    #: None when each request signs its own checkpoint (``checkpoint_interval`` 0).
    rhythm: _Rhythm | None


@dataclass(frozen=True)
class TimestampAuthority:
    """An RFC 3161 TSA the service asks to timestamp each published checkpoint."""

    url: str
    certificate: x509.Certificate

    @classmethod
    def from_environment(cls) -> TimestampAuthority | None:
        """``TRACEMARK_SERVICE_TSA_URL`` and ``TRACEMARK_SERVICE_TSA_CERTIFICATE`` (a PEM file), or None."""
        url = os.environ.get("TRACEMARK_SERVICE_TSA_URL")
        if not url:
            return None
        path = os.environ.get("TRACEMARK_SERVICE_TSA_CERTIFICATE")
        if not path:
            raise TlogFormatError("TRACEMARK_SERVICE_TSA_URL needs TRACEMARK_SERVICE_TSA_CERTIFICATE (the TSA's PEM)")
        try:
            certificate = x509.load_pem_x509_certificate(Path(path).read_bytes())
        except (OSError, ValueError) as exc:
            raise TlogFormatError(f"TRACEMARK_SERVICE_TSA_CERTIFICATE {Path(path).name}: {exc}") from None
        return cls(url, certificate)


_TIMESTAMP_META = "rfc3161.token."


class ServiceLog:
    """The log in ``database``, signed with the keyring's log key; opened on first use.

    ``checkpoint_interval`` (seconds, the service's setting of that name): the least time
    between two published checkpoints; 0 signs one per append batch.
    """

    def __init__(
        self,
        database: Path | str,
        keyring: Keyring,
        *,
        batch_delay: float = 0.002,
        checkpoint_interval: float = DEFAULT_CHECKPOINT_INTERVAL,
    ) -> None:
        self.database = database
        self.keyring = keyring
        self.batch_delay = batch_delay
        self.checkpoint_interval = checkpoint_interval
        if not 0 <= self.checkpoint_interval <= 3600:
            raise TlogFormatError("checkpoint_interval is a number of seconds in 0..3600")
        self._lock = threading.Lock()
        self._open: _OpenLog | None = None
        #: With a TSA: each published checkpoint is timestamped (best effort, after publication).
        self.timestamp_authority = TimestampAuthority.from_environment()
        self._leaves = _LeafIndex(database, keyring.home)
        self._latest: SignedCheckpoint | None = None
        #: With a witness policy (set by ``_witness_routes.install``): checkpoints are served and
        #: receipted only once the policy's quorum of witnesses cosigned them.
        self.publisher: CheckpointPublisher | None = None

    # -- lifecycle ---------------------------------------------------------------------------
    def _opened(self) -> _OpenLog:
        """The open log and its appender (opened, and given a checkpoint of its current tree, on first use)."""
        current = self._open
        if current is not None:
            return current
        with self._lock:
            if self._open is None:
                opened = TransparencyLog.open(self.database, signer=ensure_log_key(self.keyring))
                try:
                    latest = opened.latest_checkpoint()
                    if latest is None or latest.checkpoint.size != opened.size:
                        opened.checkpoint()
                except BaseException:
                    opened.close()
                    raise
                appender = BatchingAppender(opened, max_batch=256, max_delay=self.batch_delay, deduplicate=True)
                rhythm = (
                    _Rhythm(self._publish, self.checkpoint_interval, self._timestamp)
                    if self.checkpoint_interval > 0
                    else None
                )
                self._open = _OpenLog(opened, appender, rhythm)
            return self._open

    def _publish(self) -> int:
        """Sign (or, under a witness policy, publish) a checkpoint of the whole tree; its size."""
        log = self.log
        if self.publisher is not None:
            return self.publisher.publish(log).checkpoint.checkpoint.size
        return log.checkpoint().checkpoint.size

    @property
    def log(self) -> TransparencyLog:
        """The open log (opened, and given a checkpoint of its current tree, on first use)."""
        return self._opened().log

    @property
    def is_open(self) -> bool:
        """Whether the log was opened already."""
        return self._open is not None

    def close(self) -> None:
        """Flush pending appends and close the database."""
        with self._lock:
            current = self._open
            if current is not None:
                current.appender.close()
                if current.rhythm is not None:
                    current.rhythm.close()
                self._open = None
                current.log.close()
            self._leaves.close()

    # -- writing -----------------------------------------------------------------------------
    def _timestamp(self, size: int) -> None:
        """Ask the TSA (if one is configured) to timestamp the published checkpoint of ``size``, once."""
        authority = self.timestamp_authority
        log = self.log
        if authority is None or log.store.get_meta(_TIMESTAMP_META + str(size)) is not None:
            return
        stored = log.store.checkpoint_at(size)
        if stored is None:
            return
        token = request_timestamp(authority.url, SignedNote.parse(stored.note).text.encode(), authority.certificate)
        with log.store.writer() as writer:
            writer.set_meta(_TIMESTAMP_META + str(size), b64(token.token))

    def checkpoint_timestamp(self, size: int | None) -> CheckpointTimestampJSON:
        """The RFC 3161 token over the published checkpoint of ``size`` (default: the latest)."""
        authority = self.timestamp_authority
        tree_size = self.latest_checkpoint().checkpoint.size if size is None else size
        raw = self.log.store.get_meta(_TIMESTAMP_META + str(tree_size))
        stored = self.log.store.checkpoint_at(tree_size)
        if raw is None or stored is None:
            configured = "" if authority is not None else " (no TSA is configured)"
            raise NotFoundError(f"no RFC 3161 timestamp of checkpoint {tree_size}{configured}")
        token = base64.b64decode(raw)
        gen_time = None
        if authority is not None:  # the stored token, verified again before it is served
            text = SignedNote.parse(stored.note).text.encode()
            gen_time = rfc3339(verify_timestamp(token, text, authority.certificate).gen_time)
        return {"tree_size": tree_size, "checkpoint": stored.note, "token": raw, "gen_time": gen_time}

    def append(self, record: ProvenanceRecord, *, wait: bool = True) -> AppendedEntry:
        """Append ``record`` durably (or find the identical stored record) and return its entry.

        With ``wait`` (the default) the answer holds the entry's receipt against the first
        published checkpoint covering it; without, the answer is a promise (no receipt) as soon
        as the entry is durable, and :meth:`receipt` redeems it once the next checkpoint is out.
        """
        opened = self._opened()
        result = opened.appender.append(record)
        rhythm = opened.rhythm
        if rhythm is None:  # one checkpoint per batch, signed by the request
            if self.publisher is not None:
                published = self.publisher.publish(opened.log, covering=result.index + 1).checkpoint.checkpoint.size
                receipt = opened.log.receipt(result.index, checkpoint_size=published)
            else:
                receipt = opened.log.receipt(result.index, sign=True)
            return AppendedEntry(result=result, record=record, receipt=receipt if wait else None)
        ticket = rhythm.request(result.tree_size)
        if not wait:
            return AppendedEntry(result=result, record=record, receipt=None)
        rhythm.wait(result.index + 1, ticket, rhythm.interval + _COVER_TIMEOUT)
        return AppendedEntry(result=result, record=record, receipt=self.receipt_for(result.index))

    async def append_async(self, record: ProvenanceRecord, *, wait: bool = True) -> AppendedEntry:
        """:meth:`append` for a request handler on the event loop: waiting for the durable commit and
        for the covering checkpoint holds no thread, so many waiting clients need no thread each."""
        opened = self._open if self._open is not None else await run_in_threadpool(self._opened)
        rhythm = opened.rhythm
        if rhythm is None:
            return await run_in_threadpool(partial(self.append, record, wait=wait))
        result = await asyncio.wrap_future(opened.appender.submit(record))
        ticket = rhythm.request(result.tree_size)
        if not wait:
            return AppendedEntry(result=result, record=record, receipt=None)
        await rhythm.wait_async(result.index + 1, ticket, rhythm.interval + _COVER_TIMEOUT)
        receipt = await run_in_threadpool(self.receipt_for, result.index)
        return AppendedEntry(result=result, record=record, receipt=receipt)

    def receipt_for(self, index: int) -> Receipt:
        """Entry ``index``'s receipt against the latest published checkpoint (404 while none covers it)."""
        size = self.log.size
        if index >= size:
            raise NotFoundError(f"no entry {index}: the log holds {size} entries")
        published = self.latest_checkpoint().checkpoint.size
        if index >= published:
            raise NotFoundError(
                f"entry {index} is not covered by a published checkpoint yet (latest covers {published});"
                f" the log publishes one at most every {self.checkpoint_interval:g} s: ask again"
            )
        return self.log.receipt(index, checkpoint_size=published)

    def receipt(self, index: int) -> ReceiptJSON:
        """``GET /v1/log/receipt/{index}``: the entry's receipt once a published checkpoint covers it."""
        receipt = self.receipt_for(index)
        size = Checkpoint.parse(SignedNote.parse(receipt.checkpoint_note).text).size
        return {"index": index, "tree_size": size, "receipt": receipt.to_text()}

    # -- reading -----------------------------------------------------------------------------
    def size(self) -> int:
        """Entries in the log (integrated and durable)."""
        return self.log.size

    def latest_checkpoint(self) -> SignedCheckpoint:
        """The latest signed checkpoint (a new log has the checkpoint of size 0).

        One indexed query each time (another process may have signed a newer one); the note is
        parsed again only when it changed, since proofs ask for it on every request.
        """
        publisher = self.publisher
        stored = self.log.store.latest_checkpoint() if publisher is None else publisher.published(self.log)
        if stored is None:
            raise TlogError("the log has no signed checkpoint yet" if publisher is None else
                            "the log has no checkpoint its witnesses cosigned yet")  # fmt: skip
        cached = self._latest
        if cached is not None and cached.note == stored.note:
            return cached
        signed = SignedCheckpoint(Checkpoint.parse(SignedNote.parse(stored.note).text), stored.note)
        self._latest = signed
        return signed

    def tree_size_for(self, size: int | None) -> int:
        """``size`` if the log has grown that far, else raise; None means the latest checkpoint's size."""
        latest = self.latest_checkpoint().checkpoint.size
        if size is None:
            return latest
        tree = self.log.size
        if size > tree:
            raise NotFoundError(f"tree size {size} is larger than the log ({tree} entries)")
        return size

    def entry(self, index: int) -> EntryJSON:
        """Entry ``index``: its record (or null when it is not one), leaf hash and raw bytes (base64)."""
        size = self.log.size
        if index >= size:
            raise NotFoundError(f"no entry {index}: the log holds {size} entries")
        return _entry_json(
            index, self.log.store.read_entries(index, index + 1)[0], self.log.store.integrated_time(index)
        )

    def record(self, index: int) -> ProvenanceRecord:
        """Entry ``index`` parsed as a provenance record; a :class:`~tracemark.errors.TlogError` if it is none."""
        return self.log.record(index)

    def entries(self, start: int, limit: int) -> EntriesPageJSON:
        """A page of entries from ``start`` (at most ``limit``), for the explorer."""
        size = self.log.size
        end = min(size, start + limit)
        data = self.log.store.read_entries(start, end) if start < end else []
        return {
            "tree_size": size,
            "start": start,
            "limit": limit,
            "entries": [
                _entry_json(start + offset, item, self.log.store.integrated_time(start + offset))
                for offset, item in enumerate(data)
            ],
            "next": end if end < size else None,
        }

    def find_leaf(self, leaf_hash: bytes, size: int) -> int:
        """The first entry with this leaf hash among the first ``size`` entries."""
        found = self._leaves.find(self.log, leaf_hash, size)
        if found is None:
            raise NotFoundError(f"no entry with leaf hash {leaf_hash.hex()} in the first {size} entries")
        return found

    def find_content(self, content_sha256: str, size: int) -> int:
        """The first entry recording this content hash among the first ``size`` entries."""
        hits = [index for index in self.log.find(content_sha256, limit=1) if index < size]
        if not hits:
            raise NotFoundError(f"no record of content {content_sha256} in the first {size} entries")
        return hits[0]

    def inclusion(self, index: int, size: int | None) -> InclusionJSON:
        """RFC 9162 inclusion proof of ``index`` in the tree of ``size`` (default: latest checkpoint).

        When a signed checkpoint of that size exists, the answer also holds it and the entry's
        receipt (tlog-proof@v1), so a client can check the proof against the log's signature.
        """
        tree_size = self.tree_size_for(size)
        if index >= tree_size:
            raise NotFoundError(f"entry {index} is not in the tree of size {tree_size}")
        log = self.log
        stored = log.store.checkpoint_at(tree_size)
        receipt = None
        if stored is not None:  # the receipt is verified against the signed checkpoint before it is served
            receipt = log.receipt(index, checkpoint_size=tree_size)
            proof = InclusionProof(index, tree_size, hash_leaf(receipt.extra or b""), receipt.proof, stored.root)
        else:
            proof = log.inclusion_proof(index, tree_size)
            try:
                proof.verify()
            except TlogError as exc:
                raise TlogStorageError(f"the inclusion proof of entry {index} does not verify ({exc}): the log"
                                       " database is damaged") from None  # fmt: skip
        out: InclusionJSON = {
            "index": index,
            "tree_size": tree_size,
            "leaf_hash": proof.leaf_hash.hex(),
            "root_hash": b64(proof.root_hash),
            "proof": [b64(h) for h in proof.hashes],
            "checkpoint": None,
            "receipt": None,
        }
        if stored is not None and receipt is not None:
            out["checkpoint"] = stored.note
            out["receipt"] = receipt.to_text()
        return out

    def consistency(self, old: int, new: int | None) -> ConsistencyJSON:
        """RFC 9162 consistency proof from ``old`` to ``new`` (default: the latest checkpoint's size)."""
        new_size = self.tree_size_for(new)
        if old > new_size:
            raise NotFoundError(f"old size {old} is larger than the new size {new_size}")
        return self.log.consistency_proof(old, new_size).to_json()

    def verifier(self) -> NoteVerifier:
        """The log's verifier key (the public half of its note key)."""
        verifier = self.log.verifier
        if verifier is None:
            raise TlogError("the log has no verifier key")
        return verifier

    def verify(self, receipt: str, content: bytes | None = None) -> VerifiedReceiptJSON:
        """Verify a receipt as an offline client would, with only the log's public key."""
        verified = verify_receipt(receipt, self.verifier())
        payload = verified.to_json()
        if content is not None:
            if verified.record is None or not verified.record.matches_content(content):
                raise ContentMismatchError("the content given is not the content this receipt records")
            payload["content_matches"] = True
        return payload
