"""A monitor that follows a log through its tiles and alerts on a fork or a rollback.

Each poll fetches the log's checkpoint, verifies its signature with the log's key, checks
that the tiles reproduce its root, and proves it consistent with the last checkpoint the
monitor accepted (kept in a state file, replaced atomically).  What it finds is a
:class:`MonitorEvent`, one JSON line each:

* ``start``: the first checkpoint seen (trusted on first use, like a witness's first cosignature);
* ``grew``: a larger checkpoint, proven consistent with the last one;
* ``unchanged``: the same tree (a note that only gained cosignatures is stored, silently);
* ``fork`` / ``rollback`` (``"alert": true``): the log signed two views that cannot both be
  honest; the line carries both signed checkpoints as evidence, the state keeps the last good
  one, and :meth:`LogMonitor.check` raises :class:`SplitViewError` (exit status 20);
* ``error``: the poll failed (unreachable, a bad signature, tiles that do not match the
  checkpoint); :meth:`LogMonitor.follow` reports it and polls again.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TypedDict

from tracemark._fs import atomic_write_bytes
from tracemark.errors import TlogError, TlogFormatError
from tracemark.tlog._checkpoint import Checkpoint, VerifiedCheckpoint
from tracemark.tlog._note import NoteVerifier, SignedNote, b64encode
from tracemark.tlog._tiles import LogForkError, SplitViewError, TileClient, TileSource

STATE_FORMAT = "tracemark.tlog-monitor/v1"


def _utc(timestamp: float) -> str:
    return datetime.fromtimestamp(timestamp, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass(frozen=True)
class MonitorState:
    """The last checkpoint a monitor accepted: the log's key, the tree, and the signed note itself."""

    log_key: str
    checkpoint: Checkpoint
    note: str
    checked_at: float

    def to_json(self) -> bytes:
        """The state file's bytes."""
        document = {
            "format": STATE_FORMAT,
            "log_key": self.log_key,
            "origin": self.checkpoint.origin,
            "tree_size": self.checkpoint.size,
            "root_hash": b64encode(self.checkpoint.root_hash),
            "checkpoint": self.note,
            "checked_at": _utc(self.checked_at),
        }
        return json.dumps(document, indent=2, sort_keys=True).encode("utf-8") + b"\n"

    @classmethod
    def load(cls, path: Path) -> MonitorState | None:
        """The state in ``path``, or None when there is no file; a corrupt file is an error, never a reset."""
        try:
            raw = path.read_bytes()
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise TlogError(f"cannot read monitor state {path}: {exc.strerror}") from None
        try:
            document = json.loads(raw)
            if document.get("format") != STATE_FORMAT:
                raise ValueError(f"format is not {STATE_FORMAT}")
            note = str(document["checkpoint"])
            checkpoint = Checkpoint.parse(SignedNote.parse(note).text)
            stated = (str(document["origin"]), int(document["tree_size"]), str(document["root_hash"]))
            if stated != (checkpoint.origin, checkpoint.size, b64encode(checkpoint.root_hash)):
                raise ValueError("its checkpoint differs from its tree")
            checked = datetime.strptime(str(document["checked_at"]), "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)
            return cls(str(document["log_key"]), checkpoint, note, checked.timestamp())
        except (ValueError, KeyError, TypeError, AttributeError, TlogFormatError) as exc:
            raise TlogError(f"monitor state {path} is corrupt ({exc}); refusing to start over") from None

    def save(self, path: Path) -> None:
        """Replace ``path`` atomically (write, fsync, rename, fsync the directory)."""
        atomic_write_bytes(path, self.to_json(), mode=0o600)


class MonitorEventJSON(TypedDict):
    """One line of ``tracemark tlog monitor``'s output."""

    event: str
    alert: bool
    time: str
    source: str
    origin: str | None
    tree_size: int | None
    root_hash: str | None
    previous_size: int | None
    previous_root_hash: str | None
    checkpoint: str | None
    previous_checkpoint: str | None
    message: str | None


@dataclass(frozen=True)
class MonitorEvent:
    """What one poll found (see the module docstring for the kinds)."""

    event: str
    source: str
    time: float
    checkpoint: Checkpoint | None = None
    note: str | None = None
    previous: Checkpoint | None = None
    previous_note: str | None = None
    message: str | None = None

    @property
    def alert(self) -> bool:
        """A fork or a rollback."""
        return self.event in ("fork", "rollback")

    def to_json(self) -> MonitorEventJSON:
        """The event as a JSON object (one line of the monitor's output)."""
        current, previous = self.checkpoint, self.previous
        return {
            "event": self.event,
            "alert": self.alert,
            "time": _utc(self.time),
            "source": self.source,
            "origin": current.origin if current else (previous.origin if previous else None),
            "tree_size": current.size if current else None,
            "root_hash": b64encode(current.root_hash) if current else None,
            "previous_size": previous.size if previous else None,
            "previous_root_hash": b64encode(previous.root_hash) if previous else None,
            "checkpoint": self.note,
            "previous_checkpoint": self.previous_note if self.alert else None,
            "message": self.message,
        }


def _evidence_checkpoint(note: str) -> Checkpoint | None:
    try:
        return Checkpoint.parse(SignedNote.parse(note).text)
    except TlogFormatError:
        return None


class LogMonitor:
    """Follows the tiled log at ``source`` (a URL prefix or a directory), keeping its state in ``state_path``."""

    def __init__(
        self,
        source: TileSource | str | Path,
        log_key: NoteVerifier,
        state_path: str | Path,
        *,
        origin: str | None = None,
        witnesses: tuple[NoteVerifier, ...] = (),
        quorum: int = 0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.client = TileClient(source, log_key, origin=origin, witnesses=witnesses, quorum=quorum)
        self.log_key = log_key
        self.state_path = Path(state_path)
        self._clock = clock

    @property
    def source(self) -> str:
        """The URL or directory followed."""
        return self.client.source.location

    def state(self) -> MonitorState | None:
        """The last accepted checkpoint, or None before the first poll."""
        state = MonitorState.load(self.state_path)
        if state is not None and state.log_key != self.log_key.vkey:
            raise TlogError(f"monitor state {self.state_path} follows the log key {state.log_key}, not this one")
        return state

    def _accept(self, verified: VerifiedCheckpoint, now: float) -> None:
        MonitorState(self.log_key.vkey, verified.checkpoint, verified.note, now).save(self.state_path)

    def check(self) -> MonitorEvent:
        """One poll.  Raises :class:`SplitViewError` on a fork or a rollback (the state is left as it was)."""
        previous = self.state()
        verified = self.client.checkpoint()
        current = verified.checkpoint
        now = self._clock()
        if previous is None:
            self.client.verify_tree(current)
            self._accept(verified, now)
            return MonitorEvent("start", self.source, now, current, verified.note)
        self.client.check_growth(previous.checkpoint, previous.note, verified)
        if current.size == previous.checkpoint.size:
            if verified.note != previous.note:
                self._accept(verified, now)
            return MonitorEvent("unchanged", self.source, now, current, verified.note, previous.checkpoint)
        self._accept(verified, now)
        return MonitorEvent("grew", self.source, now, current, verified.note, previous.checkpoint)

    def alert_event(self, alert: SplitViewError) -> MonitorEvent:
        """The ``fork`` or ``rollback`` event for an alert :meth:`check` raised, with both checkpoints."""
        kind = "fork" if isinstance(alert, LogForkError) else "rollback"
        return MonitorEvent(
            kind,
            self.source,
            self._clock(),
            _evidence_checkpoint(alert.new_note),
            alert.new_note,
            _evidence_checkpoint(alert.old_note),
            alert.old_note,
            str(alert),
        )

    def follow(
        self,
        emit: Callable[[MonitorEvent], None],
        *,
        interval: float = 60.0,
        polls: int | None = None,
        keep_going: bool = True,
        report_unchanged: bool = False,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        """Poll every ``interval`` seconds (``polls`` times, or for ever), passing events to ``emit``.

        An alert is emitted and then raised (:class:`SplitViewError`).  Other failures are
        emitted as ``error`` events and the monitor polls again, or, with ``keep_going=False``,
        raised.  ``unchanged`` events are emitted only with ``report_unchanged``.
        """
        done = 0
        while polls is None or done < polls:
            if done:
                sleep(interval)
            done += 1
            try:
                event = self.check()
            except SplitViewError as alert:
                emit(self.alert_event(alert))
                raise
            except TlogError as exc:
                if not keep_going:
                    raise
                event = MonitorEvent("error", self.source, self._clock(), message=exc.diagnostics())
            if event.event != "unchanged" or report_unchanged:
                emit(event)
