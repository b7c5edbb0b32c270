"""Hash-chained agent traces: one JSON object per line, each naming the hash of the one before.

An event records who spoke (``role``), which tool was called with which arguments, the SHA-256 of
the content or result (never the content itself), and the provenance of every argument value:
``user``, ``system``, ``tool:<name>#<seq>`` (the output of the tool call event ``seq``) or ``model``
(found in no earlier message: the model wrote it).  ``prev`` is the previous event's ``hash`` (64
zeros for the first); ``hash`` is SHA-256 over the event's canonical JSON without ``hash``.  An edited,
dropped, inserted or reordered event breaks the chain and :func:`read_trace` refuses the trace.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path
from typing import TypedDict

from tracemark._json import FrozenDict, FrozenJSON, FrozenJSONObject, JSONObject, JSONValue, freeze, thaw
from tracemark.errors import AgentTraceError

TRACE_FORMAT = "tracemark.agent-trace/v1"
GENESIS = "0" * 64
#: Largest trace file read (bytes).
MAX_TRACE_BYTES = 64 * 1024 * 1024

USER = "user"
SYSTEM = "system"
MODEL = "model"


class Role(StrEnum):
    """What an event is."""

    SYSTEM = "system"
    USER = "user"
    ASSISTANT = "assistant"
    TOOL_CALL = "tool_call"
    TOOL_RESULT = "tool_result"


class EventJSON(TypedDict):
    """One line of a trace file."""

    format: str
    seq: int
    time: str
    role: str
    tool: str | None
    arguments: JSONObject
    content_sha256: str | None
    result_sha256: str | None
    call_seq: int | None
    provenance: dict[str, list[str]]
    labels: list[str]
    prev: str
    hash: str


def sha256_text(value: str | bytes) -> str:
    """SHA-256 (hex) of text as UTF-8, or of bytes."""
    data = value.encode("utf-8", "surrogatepass") if isinstance(value, str) else value
    return hashlib.sha256(data).hexdigest()


def canonical(value: object) -> bytes:
    """Canonical JSON: sorted keys, no spaces, UTF-8 (RFC 8785 for the strings and integers traces hold)."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def now_rfc3339() -> str:
    """The current UTC time with milliseconds and a ``Z``."""
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


@dataclass(frozen=True)
class TraceEvent:
    """One event of a trace, with its place in the hash chain."""

    seq: int
    role: Role
    time: str
    tool: str | None = None
    arguments: FrozenJSONObject = field(default_factory=FrozenDict)
    content_sha256: str | None = None
    result_sha256: str | None = None
    #: For a tool result: the ``seq`` of the call it answers.
    call_seq: int | None = None
    #: Argument name -> where its value came from (``user``, ``system``, ``tool:<name>#<seq>``, ``model``).
    provenance: Mapping[str, tuple[str, ...]] = field(default_factory=FrozenDict)
    labels: tuple[str, ...] = ()
    prev: str = GENESIS
    hash: str = ""

    def __post_init__(self) -> None:
        object.__setattr__(self, "arguments", freeze(self.arguments))
        object.__setattr__(self, "provenance", FrozenDict({k: tuple(v) for k, v in self.provenance.items()}))
        if not self.hash:
            object.__setattr__(self, "hash", self.compute_hash())

    def body(self) -> JSONObject:
        """The event as JSON without its ``hash`` (what the hash covers)."""
        return {
            "format": TRACE_FORMAT,
            "seq": self.seq,
            "time": self.time,
            "role": self.role.value,
            "tool": self.tool,
            "arguments": _thaw_object(self.arguments),
            "content_sha256": self.content_sha256,
            "result_sha256": self.result_sha256,
            "call_seq": self.call_seq,
            "provenance": {name: list(sources) for name, sources in sorted(self.provenance.items())},
            "labels": list(self.labels),
            "prev": self.prev,
        }

    def compute_hash(self) -> str:
        """SHA-256 over the canonical JSON of :meth:`body`."""
        return hashlib.sha256(canonical(self.body())).hexdigest()

    def to_json(self) -> EventJSON:
        """The trace line."""
        body = self.body()
        return EventJSON(
            format=TRACE_FORMAT,
            seq=self.seq,
            time=self.time,
            role=self.role.value,
            tool=self.tool,
            arguments=_thaw_object(self.arguments),
            content_sha256=self.content_sha256,
            result_sha256=self.result_sha256,
            call_seq=self.call_seq,
            provenance={name: list(sources) for name, sources in sorted(self.provenance.items())},
            labels=list(self.labels),
            prev=str(body["prev"]),
            hash=self.hash,
        )


def _thaw_object(value: FrozenJSONObject) -> JSONObject:
    thawed = thaw(value)
    return thawed if isinstance(thawed, dict) else {}


@dataclass(frozen=True)
class Trace:
    """A verified, hash-chained sequence of events."""

    events: tuple[TraceEvent, ...]

    def __iter__(self) -> Iterator[TraceEvent]:
        return iter(self.events)

    def __len__(self) -> int:
        return len(self.events)

    @property
    def head(self) -> str:
        """The hash of the last event (the genesis value for an empty trace)."""
        return self.events[-1].hash if self.events else GENESIS

    def tool_calls(self) -> tuple[TraceEvent, ...]:
        """The tool call events, in order."""
        return tuple(event for event in self.events if event.role is Role.TOOL_CALL)

    def to_jsonl(self) -> str:
        """The trace file's text."""
        return "".join(json.dumps(event.to_json(), sort_keys=True, ensure_ascii=False) + "\n" for event in self.events)

    def write(self, path: str | Path) -> None:
        """Write the trace atomically."""
        from tracemark._fs import atomic_write_bytes

        atomic_write_bytes(Path(path), self.to_jsonl().encode("utf-8"))


class TraceBuilder:
    """Appends events to a trace, chaining each to the one before."""

    def __init__(self) -> None:
        self._events: list[TraceEvent] = []

    @property
    def events(self) -> tuple[TraceEvent, ...]:
        """The events so far."""
        return tuple(self._events)

    def add(
        self,
        role: Role,
        *,
        tool: str | None = None,
        arguments: Mapping[str, FrozenJSON] | None = None,
        content: str | None = None,
        result: str | None = None,
        call_seq: int | None = None,
        provenance: Mapping[str, Sequence[str]] | None = None,
        labels: Iterable[str] = (),
        time: str | None = None,
    ) -> TraceEvent:
        """Append one event and return it."""
        event = TraceEvent(
            seq=len(self._events),
            role=role,
            time=time or now_rfc3339(),
            tool=tool,
            arguments=FrozenDict(arguments or {}),
            content_sha256=None if content is None else sha256_text(content),
            result_sha256=None if result is None else sha256_text(result),
            call_seq=call_seq,
            provenance={name: tuple(sources) for name, sources in (provenance or {}).items()},
            labels=tuple(labels),
            prev=self._events[-1].hash if self._events else GENESIS,
        )
        self._events.append(event)
        return event

    def build(self) -> Trace:
        """The trace (its chain is valid by construction)."""
        return Trace(tuple(self._events))


_MEMBERS = frozenset(EventJSON.__annotations__)


def _string_or_none(line: int, value: JSONValue, name: str) -> str | None:
    if value is not None and not isinstance(value, str):
        raise AgentTraceError(f"trace line {line}: {name} must be a string or null")
    return value


def _parse_provenance(line: int, value: JSONValue) -> dict[str, tuple[str, ...]]:
    if not isinstance(value, dict):
        raise AgentTraceError(f"trace line {line}: provenance must be an object")
    out: dict[str, tuple[str, ...]] = {}
    for name, sources in value.items():
        if not isinstance(sources, list) or not all(isinstance(source, str) for source in sources):
            raise AgentTraceError(f"trace line {line}: provenance of {name!r} must be a list of strings")
        out[name] = tuple(str(source) for source in sources)
    return out


def parse_event(line: int, data: JSONObject) -> TraceEvent:
    """One event from its JSON object, checking members and types (not the chain)."""
    missing = _MEMBERS - set(data)
    unknown = set(data) - _MEMBERS
    if missing or unknown:
        detail = f"missing {sorted(missing)}" if missing else f"unknown members {sorted(unknown)}"
        raise AgentTraceError(f"trace line {line}: {detail}")
    if data["format"] != TRACE_FORMAT:
        raise AgentTraceError(f"trace line {line}: format must be {TRACE_FORMAT}")
    seq, arguments, labels = data["seq"], data["arguments"], data["labels"]
    if not isinstance(seq, int) or isinstance(seq, bool):
        raise AgentTraceError(f"trace line {line}: seq must be an integer")
    if not isinstance(arguments, dict):
        raise AgentTraceError(f"trace line {line}: arguments must be an object")
    if not isinstance(labels, list) or not all(isinstance(label, str) for label in labels):
        raise AgentTraceError(f"trace line {line}: labels must be a list of strings")
    call_seq = data["call_seq"]
    if call_seq is not None and (not isinstance(call_seq, int) or isinstance(call_seq, bool)):
        raise AgentTraceError(f"trace line {line}: call_seq must be an integer or null")
    try:
        role = Role(str(data["role"]))
    except ValueError:
        raise AgentTraceError(f"trace line {line}: unknown role {data['role']!r}") from None
    return TraceEvent(
        seq=seq,
        role=role,
        time=str(data["time"]),
        tool=_string_or_none(line, data["tool"], "tool"),
        arguments=arguments,
        content_sha256=_string_or_none(line, data["content_sha256"], "content_sha256"),
        result_sha256=_string_or_none(line, data["result_sha256"], "result_sha256"),
        call_seq=call_seq,
        provenance=_parse_provenance(line, data["provenance"]),
        labels=tuple(str(label) for label in labels),
        prev=str(data["prev"]),
        hash=str(data["hash"]),
    )


def verify_chain(events: Sequence[TraceEvent]) -> None:
    """Raise :class:`AgentTraceError` unless every event's hash, sequence number and ``prev`` hold."""
    previous = GENESIS
    for position, event in enumerate(events):
        if event.seq != position:
            raise AgentTraceError(f"trace event {position} has seq {event.seq}: an event was dropped or reordered")
        if event.prev != previous:
            raise AgentTraceError(f"trace event {position}: the hash chain is broken (prev does not match)")
        if event.compute_hash() != event.hash:
            raise AgentTraceError(f"trace event {position}: its hash does not match its content (edited)")
        previous = event.hash


def parse_trace(text: str) -> Trace:
    """A trace from JSONL text; refuses malformed lines and a broken chain."""
    events: list[TraceEvent] = []
    for number, raw in enumerate(text.splitlines(), start=1):
        if not raw.strip():
            continue
        try:
            data = json.loads(raw)
        except json.JSONDecodeError as exc:
            raise AgentTraceError(f"trace line {number} is not JSON: {exc.msg}") from None
        if not isinstance(data, dict):
            raise AgentTraceError(f"trace line {number} is not a JSON object")
        events.append(parse_event(number, data))
    verify_chain(events)
    return Trace(tuple(events))


def read_trace(path: str | Path) -> Trace:
    """Read and verify a trace file."""
    location = Path(path)
    try:
        size = location.stat().st_size
        if size > MAX_TRACE_BYTES:
            raise AgentTraceError(f"{path} is {size} bytes; traces are limited to {MAX_TRACE_BYTES}")
        text = location.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise AgentTraceError(f"{path}: no such file") from None
    except UnicodeDecodeError:
        raise AgentTraceError(f"{path} is not UTF-8") from None
    except IsADirectoryError:
        raise AgentTraceError(f"{path} is a directory") from None
    return parse_trace(text)
