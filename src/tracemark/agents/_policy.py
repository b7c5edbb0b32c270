"""Agent policies: files (TOML or YAML) that say which tool calls an agent may make.

A policy has four layers, all deterministic (no model decides anything):

* **tools**: an allowlist; each listed tool has a decision (``allow``, ``ask``, ``deny``) and whether it
  has side effects; unlisted tools get ``default``.
* **argument constraints** per tool argument: ``pattern``, ``one_of``, ``domains`` (of e-mail addresses
  and URLs), ``min``/``max``, ``paths`` (globs), ``provenance`` (sources the value may come from).
* **taint rules**: a call to a sink (a tool name, a glob, or ``@side_effect``) whose argument came only
  from untrusted tool output is decided by the rule.
* **temporal rules** in LTLf over the calls (``formula``, or the shapes ``before``, ``never_after``,
  ``at_most``, ``until``), compiled to monitors.

Two members reach past single calls: ``delegate`` names the resources the user's request handed its
authority to (their content, once read, can allow tools the policy asks about), and
``instructed_answer`` decides a final answer that repeats an injected instruction.

Schema version 1; see ``docs/agents.md`` for every member.  A file with an unknown member, a value of
the wrong type, a bad regular expression or formula is refused with a message naming the member.
"""

from __future__ import annotations

import fnmatch
import functools
import hashlib
import json
import re
import tomllib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path

from tracemark._json import FrozenDict
from tracemark.agents import _ltl
from tracemark.errors import AgentPolicyError, MissingExtraError

POLICY_VERSION = 1
SIDE_EFFECT = "@side_effect"
#: Largest policy file read (bytes).
MAX_POLICY_BYTES = 1024 * 1024


class Verdict(StrEnum):
    """What the checker decides for one call; ``deny`` beats ``ask`` beats ``allow``."""

    ALLOW = "allow"
    ASK = "ask"
    DENY = "deny"

    @property
    def rank(self) -> int:
        return {"allow": 0, "ask": 1, "deny": 2}[self.value]


@dataclass(frozen=True)
class ArgumentRule:
    """Constraints on one argument's value (every leaf of it)."""

    pattern: re.Pattern[str] | None = None
    one_of: tuple[str, ...] | None = None
    domains: tuple[str, ...] | None = None
    minimum: float | None = None
    maximum: float | None = None
    paths: tuple[str, ...] | None = None
    provenance: tuple[str, ...] | None = None
    required: bool = False
    decision: Verdict = Verdict.DENY


@dataclass(frozen=True)
class ToolRule:
    """One tool of the allowlist."""

    decision: Verdict = Verdict.ALLOW
    side_effect: bool = False
    labels: tuple[str, ...] = ()
    arguments: Mapping[str, ArgumentRule] = field(default_factory=FrozenDict)


@dataclass(frozen=True)
class TaintRule:
    """A sink call with an argument whose every source is untrusted (and none trusted) is decided here."""

    name: str
    sinks: tuple[str, ...]
    arguments: tuple[str, ...] = ()
    untrusted: tuple[str, ...] = ("tool:*",)
    trusted: tuple[str, ...] = ("user", "system")
    decision: Verdict = Verdict.DENY


@dataclass(frozen=True)
class TemporalRule:
    """An LTLf rule over the calls; a call after which it can no longer hold is decided here."""

    name: str
    formula: _ltl.Formula
    source: str
    decision: Verdict = Verdict.DENY


@dataclass(frozen=True)
class Policy:
    """A parsed, validated policy."""

    name: str
    revision: str
    default: Verdict
    tools: Mapping[str, ToolRule]
    taint: tuple[TaintRule, ...] = ()
    temporal: tuple[TemporalRule, ...] = ()
    #: Resources the user's request delegated to (a file, a URL, an e-mail subject): what a call that reads
    #: one returns is user intent, and the side-effecting tools it asks for that the policy ``ask``\ s about
    #: are allowed (their argument and taint rules still apply).
    delegate: tuple[str, ...] = ()
    #: The decision for a final answer that repeats an instruction span of tool output (``allow``: unchecked).
    instructed_answer: Verdict = Verdict.ALLOW
    #: SHA-256 of the policy's canonical JSON (what certificates pin; formatting does not change it).
    digest: str = ""

    def is_side_effect(self, tool: str) -> bool:
        """Whether a tool is declared side-effecting (unknown tools count as side-effecting)."""
        rule = self.tools.get(tool)
        return True if rule is None else rule.side_effect

    def sink_matches(self, pattern: str, tool: str) -> bool:
        """Whether a taint sink pattern names ``tool``."""
        if pattern == SIDE_EFFECT:
            return self.is_side_effect(tool)
        return fnmatch.fnmatchcase(tool, pattern)


# -- loading ---------------------------------------------------------------------------------------
_TOP = frozenset(
    {
        "version",
        "name",
        "revision",
        "default",
        "tools",
        "taint",
        "temporal",
        "description",
        "delegate",
        "instructed_answer",
    }
)
_TOOL = frozenset({"decision", "side_effect", "labels", "args", "description"})
_ARG = frozenset({"pattern", "one_of", "domains", "min", "max", "paths", "provenance", "required", "decision"})
_TAINT = frozenset({"name", "sinks", "args", "untrusted", "trusted", "decision"})
_TEMPORAL = frozenset({"name", "formula", "before", "never_after", "at_most", "until", "decision"})


def _check_members(where: str, value: object, allowed: frozenset[str]) -> Mapping[str, object]:
    if not isinstance(value, Mapping):
        raise AgentPolicyError(f"{where} must be a table/mapping")
    unknown = sorted(set(value) - allowed)
    if unknown:
        raise AgentPolicyError(f"{where}: unknown member {unknown[0]!r} (allowed: {', '.join(sorted(allowed))})")
    return value


def _string(where: str, value: object) -> str:
    if not isinstance(value, str) or not value:
        raise AgentPolicyError(f"{where} must be a non-empty string")
    return value


def _strings(where: str, value: object) -> tuple[str, ...]:
    if not isinstance(value, list | tuple) or not all(isinstance(item, str) for item in value):
        raise AgentPolicyError(f"{where} must be a list of strings")
    return tuple(str(item) for item in value)


def _number(where: str, value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise AgentPolicyError(f"{where} must be a number")
    return float(value)


def _verdict(where: str, value: object, default: Verdict) -> Verdict:
    if value is None:
        return default
    try:
        return Verdict(str(value))
    except ValueError:
        raise AgentPolicyError(f"{where} must be one of allow, ask, deny (got {value!r})") from None


def _argument(where: str, raw: object) -> ArgumentRule:
    data = _check_members(where, raw, _ARG)
    pattern = None
    if "pattern" in data:
        try:
            pattern = re.compile(_string(f"{where}.pattern", data["pattern"]))
        except re.error as exc:
            raise AgentPolicyError(f"{where}.pattern is not a valid regular expression: {exc}") from None
    required = data.get("required", False)
    if not isinstance(required, bool):
        raise AgentPolicyError(f"{where}.required must be true or false")
    return ArgumentRule(
        pattern=pattern,
        one_of=_strings(f"{where}.one_of", data["one_of"]) if "one_of" in data else None,
        domains=tuple(d.lower().lstrip(".") for d in _strings(f"{where}.domains", data["domains"]))
        if "domains" in data
        else None,
        minimum=_number(f"{where}.min", data["min"]) if "min" in data else None,
        maximum=_number(f"{where}.max", data["max"]) if "max" in data else None,
        paths=_strings(f"{where}.paths", data["paths"]) if "paths" in data else None,
        provenance=_strings(f"{where}.provenance", data["provenance"]) if "provenance" in data else None,
        required=required,
        decision=_verdict(f"{where}.decision", data.get("decision"), Verdict.DENY),
    )


def _tool(name: str, raw: object) -> ToolRule:
    where = f"tools.{name}"
    data = _check_members(where, raw, _TOOL)
    side_effect = data.get("side_effect", False)
    if not isinstance(side_effect, bool):
        raise AgentPolicyError(f"{where}.side_effect must be true or false")
    args = data.get("args", {})
    if not isinstance(args, Mapping):
        raise AgentPolicyError(f"{where}.args must be a table/mapping")
    return ToolRule(
        decision=_verdict(f"{where}.decision", data.get("decision"), Verdict.ALLOW),
        side_effect=side_effect,
        labels=_strings(f"{where}.labels", data.get("labels", [])),
        arguments=FrozenDict({str(arg): _argument(f"{where}.args.{arg}", rule) for arg, rule in args.items()}),
    )


def _taint(position: int, raw: object) -> TaintRule:
    where = f"taint[{position}]"
    data = _check_members(where, raw, _TAINT)
    if "sinks" not in data:
        raise AgentPolicyError(f"{where}: sinks is required")
    return TaintRule(
        name=_string(f"{where}.name", data.get("name", f"taint-{position}")),
        sinks=_strings(f"{where}.sinks", data["sinks"]),
        arguments=_strings(f"{where}.args", data.get("args", [])),
        untrusted=_strings(f"{where}.untrusted", data.get("untrusted", ["tool:*"])),
        trusted=_strings(f"{where}.trusted", data.get("trusted", ["user", "system"])),
        decision=_verdict(f"{where}.decision", data.get("decision"), Verdict.DENY),
    )


def _pair(where: str, value: object) -> tuple[str, str]:
    items = _strings(where, value)
    if len(items) != 2:
        raise AgentPolicyError(f"{where} must name two tools")
    return items[0], items[1]


def _temporal_formula(where: str, data: Mapping[str, object]) -> tuple[_ltl.Formula, str]:
    shapes = [key for key in ("formula", "before", "never_after", "at_most", "until") if key in data]
    if len(shapes) != 1:
        raise AgentPolicyError(f"{where} needs exactly one of formula, before, never_after, at_most, until")
    shape = shapes[0]
    value = data[shape]
    if shape == "formula":
        text = _string(f"{where}.formula", value)
        return _ltl.parse_formula(text), text
    if shape == "at_most":
        spec = _check_members(f"{where}.at_most", value, frozenset({"tool", "count"}))
        count = spec.get("count")
        if not isinstance(count, int) or isinstance(count, bool):
            raise AgentPolicyError(f"{where}.at_most.count must be an integer")
        tool = _string(f"{where}.at_most.tool", spec.get("tool"))
        return _ltl.at_most(tool, count), f"at_most({tool}, {count})"
    first, second = _pair(f"{where}.{shape}", value)
    build = {"before": _ltl.before, "never_after": _ltl.never_after, "until": _ltl.until}[shape]
    return build(first, second), f"{shape}({first}, {second})"


def _temporal(position: int, raw: object) -> TemporalRule:
    where = f"temporal[{position}]"
    data = _check_members(where, raw, _TEMPORAL)
    formula, source = _temporal_formula(where, data)
    return TemporalRule(
        name=_string(f"{where}.name", data.get("name", f"temporal-{position}")),
        formula=formula,
        source=source,
        decision=_verdict(f"{where}.decision", data.get("decision"), Verdict.DENY),
    )


def _list_of(where: str, value: object) -> list[object]:
    if not isinstance(value, list):
        raise AgentPolicyError(f"{where} must be an array of tables/list of mappings")
    return value


def policy_from_mapping(data: object) -> Policy:
    """Validate a policy's parsed document and build it."""
    top = _check_members("policy", data, _TOP)
    version = top.get("version")
    if version != POLICY_VERSION:
        raise AgentPolicyError(f"policy version must be {POLICY_VERSION} (got {version!r})")
    tools = top.get("tools", {})
    if not isinstance(tools, Mapping):
        raise AgentPolicyError("tools must be a table/mapping of tool names")
    try:
        digest = hashlib.sha256(json.dumps(top, sort_keys=True, separators=(",", ":")).encode()).hexdigest()
    except (TypeError, ValueError):
        raise AgentPolicyError("policy holds values that are not JSON (dates?)") from None
    return Policy(
        name=_string("name", top.get("name")),
        revision=str(top.get("revision", "")),
        default=_verdict("default", top.get("default"), Verdict.DENY),
        tools=FrozenDict({str(name): _tool(str(name), rule) for name, rule in tools.items()}),
        taint=tuple(_taint(i, rule) for i, rule in enumerate(_list_of("taint", top.get("taint", [])))),
        temporal=tuple(_temporal(i, rule) for i, rule in enumerate(_list_of("temporal", top.get("temporal", [])))),
        delegate=tuple(_string("delegate[]", item) for item in _strings("delegate", top.get("delegate", []))),
        instructed_answer=_verdict("instructed_answer", top.get("instructed_answer"), Verdict.ALLOW),
        digest=digest,
    )


def parse_policy(text: str, *, format_name: str = "toml") -> Policy:
    """A policy from TOML or YAML text."""
    if format_name == "toml":
        try:
            data: object = tomllib.loads(text)
        except tomllib.TOMLDecodeError as exc:
            raise AgentPolicyError(f"policy is not valid TOML: {exc}") from None
    elif format_name in {"yaml", "yml"}:
        try:
            import yaml  # type: ignore[import-untyped, unused-ignore]
        except ModuleNotFoundError:
            raise MissingExtraError("YAML policies", "agents") from None
        try:
            data = yaml.safe_load(text)
        except yaml.YAMLError as exc:
            raise AgentPolicyError(f"policy is not valid YAML: {' '.join(str(exc).split())}") from None
    else:
        raise AgentPolicyError(f"unknown policy format {format_name!r}: toml or yaml")
    return policy_from_mapping(data)


def load_policy(path: str | Path) -> Policy:
    """Read a policy file (``.toml``, ``.yaml`` or ``.yml``)."""
    location = Path(path)
    suffix = location.suffix.lower().lstrip(".")
    if suffix not in {"toml", "yaml", "yml"}:
        raise AgentPolicyError(f"{path}: a policy file ends in .toml, .yaml or .yml")
    try:
        if location.stat().st_size > MAX_POLICY_BYTES:
            raise AgentPolicyError(f"{path} is larger than {MAX_POLICY_BYTES} bytes")
        text = location.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise AgentPolicyError(f"{path}: no such file") from None
    except (IsADirectoryError, UnicodeDecodeError, PermissionError) as exc:
        raise AgentPolicyError(f"{path}: cannot read the policy ({type(exc).__name__})") from None
    try:
        return parse_policy(text, format_name=suffix)
    except AgentPolicyError as exc:
        raise AgentPolicyError(f"{path}: {exc}") from None


@functools.lru_cache(maxsize=4096)
def _source_matches(pattern: str, source: str) -> bool:
    base = source.rpartition("#")[0] if source.startswith("tool:") and "#" in source else source
    return fnmatch.fnmatchcase(source, pattern) or fnmatch.fnmatchcase(base, pattern)


def sources_match(patterns: Sequence[str], source: str) -> bool:
    """Whether a provenance source matches any pattern (``user``, ``tool:*``, ``tool:read_file``)."""
    return any(_source_matches(pattern, source) for pattern in patterns)
