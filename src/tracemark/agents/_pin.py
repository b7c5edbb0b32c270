"""Tool pinning: a lock file of MCP tools and agent skills keyed by content, and the drift checker.

Each tool is pinned by two SHA-256 hashes over canonical JSON: ``sha256`` of ``{name, description,
inputSchema}`` and ``content_sha256`` of the same without the name, so that a tool renamed after
approval is recognised by its content.  Canonical form: JSON keys sorted, white space in descriptions
collapsed, ``required`` lists sorted; so reordering tools or schema members, or re-wrapping a
description, changes nothing, while any change of meaning changes the hash.

:func:`diff_tools` classifies drift: ``edited`` (description), ``schema-widened`` (new properties,
fewer required ones, wider enums or bounds, ``additionalProperties`` opened), ``schema-changed``,
``renamed``, ``shadowing`` (a tool whose name or description claims another server's tool), ``added``,
``removed``.  The MCP proxy fails closed on any of them.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TypedDict

from tracemark._fs import atomic_write_bytes
from tracemark._json import FrozenJSON, FrozenJSONObject, JSONObject, JSONValue, freeze, thaw
from tracemark.errors import ToolPinError

LOCK_FORMAT = "tracemark.agent-tools-lock/v1"
_SPACE = re.compile(r"\s+")


@dataclass(frozen=True)
class ToolDefinition:
    """An MCP tool as ``tools/list`` describes it, with the server that offers it."""

    name: str
    description: str
    input_schema: FrozenJSONObject
    server: str = ""

    @classmethod
    def from_mcp(cls, tool: Mapping[str, object], server: str = "") -> ToolDefinition:
        """From one element of a ``tools/list`` result."""
        name = tool.get("name")
        if not isinstance(name, str) or not name:
            raise ToolPinError("a tool without a name")
        schema = tool.get("inputSchema", {})
        return cls(
            name=name,
            description=str(tool.get("description") or ""),
            input_schema=freeze(schema if isinstance(schema, Mapping) else {}),
            server=server,
        )

    def canonical(self, *, with_name: bool = True) -> bytes:
        """The canonical JSON the pins hash."""
        body: JSONObject = {
            "description": _SPACE.sub(" ", self.description).strip(),
            "inputSchema": _normalise_schema(thaw(self.input_schema)),
        }
        if with_name:
            body["name"] = self.name
        return json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode("utf-8")

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.canonical()).hexdigest()

    @property
    def content_sha256(self) -> str:
        return hashlib.sha256(self.canonical(with_name=False)).hexdigest()


def _normalise_schema(value: JSONValue) -> JSONValue:
    if isinstance(value, dict):
        out: JSONObject = {}
        for key, item in value.items():
            normal = _normalise_schema(item)
            if key == "required" and isinstance(normal, list):
                normal = sorted(normal, key=lambda v: json.dumps(v, sort_keys=True))
            if key == "description" and isinstance(normal, str):
                normal = _SPACE.sub(" ", normal).strip()
            out[key] = normal
        return out
    if isinstance(value, list):
        return [_normalise_schema(item) for item in value]
    return value


class PinJSON(TypedDict):
    server: str
    name: str
    sha256: str
    content_sha256: str
    description: str
    inputSchema: JSONValue


class LockJSON(TypedDict):
    format: str
    tools: list[PinJSON]
    skills: dict[str, str]


@dataclass(frozen=True)
class ToolLock:
    """Approved tools (and skills: name -> SHA-256 of their files)."""

    tools: tuple[ToolDefinition, ...]
    skills: Mapping[str, str]

    def to_json(self) -> LockJSON:
        pins = sorted(self.tools, key=lambda t: (t.server, t.name))
        return LockJSON(
            format=LOCK_FORMAT,
            tools=[
                PinJSON(
                    server=t.server,
                    name=t.name,
                    sha256=t.sha256,
                    content_sha256=t.content_sha256,
                    description=t.description,
                    inputSchema=thaw(t.input_schema),
                )
                for t in pins
            ],
            skills=dict(sorted(self.skills.items())),
        )

    def write(self, path: str | Path) -> None:
        atomic_write_bytes(Path(path), (json.dumps(self.to_json(), indent=2, sort_keys=True) + "\n").encode())

    @property
    def digest(self) -> str:
        """SHA-256 of the lock's pins (what a certificate names as the tool set)."""
        pins = sorted((t.server, t.name, t.sha256) for t in self.tools)
        return hashlib.sha256(json.dumps([pins, sorted(self.skills.items())]).encode()).hexdigest()


def read_lock(path: str | Path) -> ToolLock:
    """Read a lock file; a pin whose hash does not match its recorded definition is refused."""
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ToolPinError(f"{path}: no such lock file") from None
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise ToolPinError(f"{path} is not a JSON lock file") from None
    if not isinstance(data, dict) or data.get("format") != LOCK_FORMAT:
        raise ToolPinError(f"{path}: not a {LOCK_FORMAT} lock file")
    tools = []
    for pin in data.get("tools", []):
        tool = ToolDefinition.from_mcp(pin, str(pin.get("server", "")))
        if tool.sha256 != pin.get("sha256"):
            raise ToolPinError(f"{path}: the pin of {tool.name} does not match its recorded definition (edited)")
        tools.append(tool)
    skills = data.get("skills", {})
    if not isinstance(skills, dict):
        raise ToolPinError(f"{path}: skills must be an object")
    return ToolLock(tuple(tools), {str(k): str(v) for k, v in skills.items()})


class DriftJSON(TypedDict):
    kind: str
    server: str
    name: str
    detail: str


@dataclass(frozen=True)
class Drift:
    """One difference between the approved tools and the offered ones."""

    kind: str
    server: str
    name: str
    detail: str

    def to_json(self) -> DriftJSON:
        return DriftJSON(kind=self.kind, server=self.server, name=self.name, detail=self.detail)


def _properties(schema: FrozenJSON) -> Mapping[str, FrozenJSON]:
    if isinstance(schema, Mapping):
        props = schema.get("properties")
        if isinstance(props, Mapping):
            return props
    return {}


def _required(schema: FrozenJSON) -> set[str]:
    if isinstance(schema, Mapping):
        required = schema.get("required")
        if isinstance(required, Sequence) and not isinstance(required, str):
            return {str(item) for item in required}
    return set()


_UPPER_BOUNDS = ("maximum", "exclusiveMaximum", "maxLength", "maxItems", "maxProperties")
_LOWER_BOUNDS = ("minimum", "exclusiveMinimum", "minLength", "minItems", "minProperties")
_RESTRICTIONS = ("pattern", "format", "const", "enum", *_UPPER_BOUNDS, *_LOWER_BOUNDS)


def _strings_of(value: FrozenJSON) -> set[str] | None:
    if isinstance(value, list | tuple):
        return {json.dumps(item, sort_keys=True) if not isinstance(item, str) else item for item in value}
    return None


def _widened(old: FrozenJSON, new: FrozenJSON) -> str | None:  # noqa: C901, PLR0911
    """How ``new`` accepts more than ``old`` (None when it does not, as far as these checks see)."""
    if not isinstance(old, Mapping) or not isinstance(new, Mapping):
        return None
    old_props, new_props = _properties(old), _properties(new)
    added = sorted(set(new_props) - set(old_props))
    if added:
        return f"new properties {', '.join(added)}"
    dropped = sorted(_required(old) - _required(new))
    if dropped:
        return f"no longer required: {', '.join(dropped)}"
    if old.get("additionalProperties") is False and new.get("additionalProperties") is not False:
        return "additionalProperties opened"
    for key in _RESTRICTIONS:
        if key in old and key not in new:
            return f"{key} removed"
    old_enum, new_enum = _strings_of(old.get("enum")), _strings_of(new.get("enum"))
    if old_enum is not None and new_enum is not None and new_enum - old_enum:
        return "enum extended"
    for key in _UPPER_BOUNDS:
        o, n = old.get(key), new.get(key)
        if isinstance(o, int | float) and isinstance(n, int | float) and n > o:
            return f"{key} raised from {o} to {n}"
    for key in _LOWER_BOUNDS:
        o, n = old.get(key), new.get(key)
        if isinstance(o, int | float) and isinstance(n, int | float) and n < o:
            return f"{key} lowered from {o} to {n}"
    old_type, new_type = old.get("type"), new.get("type")
    if old_type != new_type and new_type is not None:
        old_types = {old_type} if isinstance(old_type, str) else _strings_of(old_type) or set()
        new_types = {new_type} if isinstance(new_type, str) else _strings_of(new_type) or set()
        if not new_types <= old_types:
            return f"type widened to {sorted(map(str, new_types))}"
    for name in old_props:
        inner = _widened(old_props[name], new_props.get(name))
        if inner is not None:
            return f"{name}: {inner}"
    items = _widened(old.get("items"), new.get("items"))
    return f"items: {items}" if items else None


_CLAIM = re.compile(r"\b(instead of|rather than|replaces?|overrides?|do not use|don't use|never use)\b", re.IGNORECASE)


def _shadowing(tool: ToolDefinition, approved: Iterable[ToolDefinition]) -> str | None:
    for other in approved:
        if other.server == tool.server:
            continue
        if other.name == tool.name:
            return f"same name as {other.server or '?'}'s {other.name}"
        if re.search(rf"\b{re.escape(other.name)}\b", tool.description) and _CLAIM.search(tool.description):
            return f"its description claims {other.server or '?'}'s {other.name}"
    return None


def _changed(old: ToolDefinition, new: ToolDefinition) -> Drift:
    if _SPACE.sub(" ", old.description).strip() != _SPACE.sub(" ", new.description).strip():
        return Drift("edited", new.server, new.name, "the description changed after approval")
    widened = _widened(thaw(old.input_schema), thaw(new.input_schema))
    if widened is not None:
        return Drift("schema-widened", new.server, new.name, widened)
    return Drift("schema-changed", new.server, new.name, "the input schema changed after approval")


def diff_tools(lock: ToolLock, offered: Sequence[ToolDefinition]) -> list[Drift]:
    """Every drift between the lock and the tools a server offers now (empty: all pins hold)."""
    pinned = {(t.server, t.name): t for t in lock.tools}
    by_content = {(t.server, t.content_sha256): t for t in lock.tools}
    drifts: list[Drift] = []
    seen: set[tuple[str, str]] = set()
    for tool in offered:
        key = (tool.server, tool.name)
        old = pinned.get(key)
        if old is not None:
            seen.add(key)
            if old.sha256 != tool.sha256:
                drifts.append(_changed(old, tool))
            continue
        shadow = _shadowing(tool, lock.tools)
        renamed = by_content.get((tool.server, tool.content_sha256))
        if shadow is not None:
            drifts.append(Drift("shadowing", tool.server, tool.name, shadow))
        elif renamed is not None and (renamed.server, renamed.name) not in {(t.server, t.name) for t in offered}:
            seen.add((renamed.server, renamed.name))
            drifts.append(Drift("renamed", tool.server, tool.name, f"was approved as {renamed.name}"))
        else:
            drifts.append(Drift("added", tool.server, tool.name, "not in the lock file"))
    for key, old in pinned.items():
        if key not in seen and key not in {(t.server, t.name) for t in offered}:
            drifts.append(Drift("removed", old.server, old.name, "approved but no longer offered"))
    return drifts


def verify_tools(lock: ToolLock, offered: Sequence[ToolDefinition]) -> None:
    """Raise :class:`ToolPinError` on any drift except tools removed since approval."""
    drifts = [d for d in diff_tools(lock, offered) if d.kind != "removed"]
    if drifts:
        first = drifts[0]
        more = f" (and {len(drifts) - 1} more)" if len(drifts) > 1 else ""
        raise ToolPinError(f"tool pin drift: {first.kind} {first.name}: {first.detail}{more}")


def skill_digest(folder: str | Path) -> str:
    """SHA-256 over a skill folder's files: sorted relative paths and each file's SHA-256."""
    root = Path(folder)
    if not root.is_dir():
        raise ToolPinError(f"{folder} is not a skill folder")
    lines = []
    for path in sorted(p for p in root.rglob("*") if p.is_file() and not p.is_symlink()):
        lines.append(f"{path.relative_to(root).as_posix()}\0{hashlib.sha256(path.read_bytes()).hexdigest()}")
    return hashlib.sha256("\n".join(lines).encode("utf-8")).hexdigest()


def diff_skills(lock: ToolLock, folders: Mapping[str, str | Path]) -> list[Drift]:
    """Skills whose files changed since approval, and skills not in the lock."""
    drifts = []
    for name, folder in sorted(folders.items()):
        digest = skill_digest(folder)
        approved = lock.skills.get(name)
        if approved is None:
            drifts.append(Drift("added", "skills", name, "not in the lock file"))
        elif approved != digest:
            drifts.append(Drift("edited", "skills", name, "its files changed after approval"))
    return drifts


def make_lock(tools: Sequence[ToolDefinition], skills: Mapping[str, str | Path] | None = None) -> ToolLock:
    """A lock approving these tools and skill folders as they are now."""
    names = [(t.server, t.name) for t in tools]
    if len(set(names)) != len(names):
        raise ToolPinError("two tools share a server and name; a lock keys tools by both")
    return ToolLock(tuple(tools), {name: skill_digest(path) for name, path in (skills or {}).items()})


def tools_from_list_result(result: Mapping[str, object], server: str = "") -> list[ToolDefinition]:
    """The tools of a ``tools/list`` result (or a JSON file holding one, or a bare list)."""
    tools = result.get("tools")
    if not isinstance(tools, list):
        raise ToolPinError("a tools/list result has a 'tools' array")
    return [ToolDefinition.from_mcp(tool, server) for tool in tools if isinstance(tool, Mapping)]
