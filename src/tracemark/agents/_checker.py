"""The policy checker: one decision per tool call, with the rule and the argument provenance behind it.

:class:`PolicyChecker` keeps the temporal monitors' state for one conversation: :meth:`decide` says
what a call would get without recording it; :meth:`record` moves the monitors past a call that ran.
:func:`check_trace` decides every call of a recorded trace in order.
"""

from __future__ import annotations

import fnmatch
import posixpath
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TypedDict
from urllib.parse import urlsplit

from tracemark._json import FrozenDict, FrozenJSON
from tracemark.agents._derive import requested_tool_names
from tracemark.agents._ltl import FALSE, Monitor
from tracemark.agents._policy import ArgumentRule, Policy, TaintRule, Verdict, sources_match
from tracemark.agents._provenance import ProvenanceIndex, leaf_values
from tracemark.agents._trace import Role, Trace

#: The ``tool`` of the decision about a final answer.
ANSWER = "<answer>"


class DecisionJSON(TypedDict):
    """:meth:`Decision.to_json`."""

    tool: str
    verdict: str
    rule: str
    reason: str
    argument: str | None
    provenance: dict[str, list[str]]


@dataclass(frozen=True)
class Decision:
    """allow / ask / deny for one call, the rule that decided it and the provenance it looked at."""

    tool: str
    verdict: Verdict
    rule: str
    reason: str
    #: The argument the deciding rule is about (``None`` for rules about the whole call).
    argument: str | None = None
    provenance: Mapping[str, tuple[str, ...]] = field(default_factory=FrozenDict)

    @property
    def allowed(self) -> bool:
        return self.verdict is Verdict.ALLOW

    def to_json(self) -> DecisionJSON:
        return DecisionJSON(
            tool=self.tool,
            verdict=self.verdict.value,
            rule=self.rule,
            reason=self.reason,
            argument=self.argument,
            provenance={name: list(sources) for name, sources in self.provenance.items()},
        )


def _domain_of(value: str) -> str | None:
    if "@" in value and "/" not in value:
        return value.rpartition("@")[2].lower()
    if "://" in value:
        return (urlsplit(value).hostname or "").lower()
    return None


def _domain_allowed(domain: str, allowed: tuple[str, ...]) -> bool:
    return any(domain == d or domain.endswith("." + d) for d in allowed)


def _path_allowed(value: str, globs: tuple[str, ...]) -> bool:
    if "\x00" in value:
        return False
    normal = posixpath.normpath(value)
    if normal.startswith("..") or "/../" in f"/{value}/":
        return False
    return any(fnmatch.fnmatchcase(normal, pattern) for pattern in globs)


def _number(value: str) -> float | None:
    try:
        return float(value)
    except ValueError:
        return None


def _leaf_violation(rule: ArgumentRule, leaf: str) -> str | None:  # noqa: PLR0911
    if rule.pattern is not None and not rule.pattern.fullmatch(leaf):
        return f"{leaf!r} does not match {rule.pattern.pattern!r}"
    if rule.one_of is not None and leaf not in rule.one_of:
        return f"{leaf!r} is not one of the allowed values"
    if rule.domains is not None:
        domain = _domain_of(leaf)
        if domain is None or not _domain_allowed(domain, rule.domains):
            return f"{leaf!r} is outside the allowed domains {', '.join(rule.domains)}"
    if rule.minimum is not None or rule.maximum is not None:
        number = _number(leaf)
        if number is None:
            return f"{leaf!r} is not a number"
        if rule.minimum is not None and number < rule.minimum:
            return f"{leaf} is below the minimum {rule.minimum:g}"
        if rule.maximum is not None and number > rule.maximum:
            return f"{leaf} is above the maximum {rule.maximum:g}"
    if rule.paths is not None and not _path_allowed(leaf, rule.paths):
        return f"path {leaf!r} is outside {', '.join(rule.paths)}"
    return None


def _argument_violation(rule: ArgumentRule, value: FrozenJSON, sources: tuple[str, ...]) -> str | None:
    for leaf in leaf_values(value):
        problem = _leaf_violation(rule, leaf)
        if problem is not None:
            return problem
    if rule.provenance is not None and sources and not any(sources_match(rule.provenance, s) for s in sources):
        return f"its value came from {', '.join(sources)}, not from {', '.join(rule.provenance)}"
    return None


def _tainted(rule: TaintRule, sources: tuple[str, ...]) -> bool:
    """Untrusted: at least one untrusted source and no trusted one."""
    if not sources or any(sources_match(rule.trusted, source) for source in sources):
        return False
    return any(sources_match(rule.untrusted, source) for source in sources)


class PolicyChecker:
    """Decides tool calls against one policy and follows one conversation's temporal state."""

    def __init__(self, policy: Policy) -> None:
        self.policy = policy
        self._monitors = [Monitor(rule.formula) for rule in policy.temporal]
        self._granted: set[str] = set()

    def reset(self) -> None:
        """Start a new conversation."""
        self._monitors = [monitor.fresh() for monitor in self._monitors]
        self._granted = set()

    def provenance_index(self) -> ProvenanceIndex:
        """An empty provenance index that knows the policy's delegated resources."""
        return ProvenanceIndex(self.policy.delegate)

    def grant(self, delegated_text: str) -> frozenset[str]:
        """Take in what a delegated source says (as :meth:`ProvenanceIndex.add` returns it): the tools it asks
        for, among those the policy asks about, are allowed from now on.  Returns the newly allowed tools."""
        if not self.policy.delegate:
            return frozenset()
        side = [name for name, rule in self.policy.tools.items() if rule.side_effect]
        asked = {name for name in side if self.policy.tools[name].decision is Verdict.ASK}
        new = (requested_tool_names(delegated_text, side) & asked) - self._granted
        self._granted |= new
        return frozenset(new)

    def check_answer(self, answer: str, index: ProvenanceIndex) -> Decision:
        """The decision for the agent's final answer: does it repeat an instruction span of tool output?"""
        verdict = self.policy.instructed_answer
        copied = index.copied_instructions(answer) if verdict is not Verdict.ALLOW else []
        if not copied:
            return Decision(ANSWER, Verdict.ALLOW, "instructed_answer", "the answer repeats no instruction span")
        reason = f"the answer repeats an instruction span of tool output: {copied[0]!r}"
        return Decision(ANSWER, verdict, "instructed_answer", reason)

    def atoms(self, tool: str) -> frozenset[str]:
        """What a call makes true for the temporal rules: its name, its labels, ``side_effect``."""
        rule = self.policy.tools.get(tool)
        labels = rule.labels if rule is not None else ()
        extra = ("side_effect",) if self.policy.is_side_effect(tool) else ()
        return frozenset((tool, *labels, *extra))

    def decide(
        self, tool: str, arguments: Mapping[str, FrozenJSON], provenance: Mapping[str, tuple[str, ...]] | None = None
    ) -> Decision:
        """The decision for a call, without recording it.  The strictest layer wins; ties go to the first."""
        origin = FrozenDict({name: tuple(s) for name, s in (provenance or {}).items()})
        best: Decision | None = None
        for decision in self._layers(tool, arguments, origin):
            if best is None or decision.verdict.rank > best.verdict.rank:
                best = decision
                if best.verdict is Verdict.DENY:
                    break
        return best or Decision(tool, Verdict.ALLOW, "tools", f"{tool} is allowed", provenance=origin)

    def _layers(
        self, tool: str, arguments: Mapping[str, FrozenJSON], origin: Mapping[str, tuple[str, ...]]
    ) -> list[Decision]:
        out: list[Decision] = []
        rule = self.policy.tools.get(tool)
        if rule is None:
            verdict = self.policy.default
            out.append(Decision(tool, verdict, "default", f"{tool} is not in the allowlist", provenance=origin))
            if verdict is Verdict.DENY:
                return out
        elif rule.decision is Verdict.ASK and tool in self._granted:
            reason = f"{tool} is asked for by a delegated source"
            out.append(Decision(tool, Verdict.ALLOW, "delegate", reason, provenance=origin))
        elif rule.decision is not Verdict.ALLOW:
            out.append(Decision(tool, rule.decision, f"tools.{tool}", f"{tool} is {rule.decision}", provenance=origin))
            if rule.decision is Verdict.DENY:
                return out
        if rule is not None:
            out.extend(self._argument_decisions(tool, rule.arguments, arguments, origin))
        out.extend(self._taint_decisions(tool, arguments, origin))
        out.extend(self._temporal_decisions(tool, origin))
        return out

    @staticmethod
    def _argument_decisions(
        tool: str,
        rules: Mapping[str, ArgumentRule],
        arguments: Mapping[str, FrozenJSON],
        origin: Mapping[str, tuple[str, ...]],
    ) -> list[Decision]:
        out = []
        for name, rule in rules.items():
            where = f"tools.{tool}.args.{name}"
            if name not in arguments:
                if rule.required:
                    out.append(Decision(tool, rule.decision, where, f"{name} is required", name, origin))
                continue
            problem = _argument_violation(rule, arguments[name], origin.get(name, ()))
            if problem is not None:
                out.append(Decision(tool, rule.decision, where, f"{name}: {problem}", name, origin))
        return out

    def _taint_decisions(
        self, tool: str, arguments: Mapping[str, FrozenJSON], origin: Mapping[str, tuple[str, ...]]
    ) -> list[Decision]:
        out = []
        for rule in self.policy.taint:
            if not any(self.policy.sink_matches(sink, tool) for sink in rule.sinks):
                continue
            for name in rule.arguments or tuple(arguments):
                sources = origin.get(name, ())
                if name in arguments and _tainted(rule, sources):
                    reason = f"{name} came from untrusted {', '.join(sources)} into sink {tool}"
                    out.append(Decision(tool, rule.decision, f"taint.{rule.name}", reason, name, origin))
                    break
        return out

    def _temporal_decisions(self, tool: str, origin: Mapping[str, tuple[str, ...]]) -> list[Decision]:
        if not self._monitors:
            return []
        atoms = self.atoms(tool)
        out = []
        for rule, monitor in zip(self.policy.temporal, self._monitors, strict=True):
            if monitor.state != FALSE and monitor.peek(atoms) == FALSE:
                reason = f"{tool} now would break {rule.source}"
                out.append(Decision(tool, rule.decision, f"temporal.{rule.name}", reason, provenance=origin))
        return out

    def record(self, tool: str) -> None:
        """Move the temporal monitors past a call that was made."""
        atoms = self.atoms(tool)
        for monitor in self._monitors:
            monitor.step(atoms)

    def unmet_obligations(self) -> list[str]:
        """Temporal rules the conversation has not met if it ends now (``F``/``U`` still pending)."""
        return [
            rule.name
            for rule, monitor in zip(self.policy.temporal, self._monitors, strict=True)
            if not monitor.accepts()
        ]


class TraceDecisionJSON(DecisionJSON):
    """One decided call of a trace: the decision and the call event's ``seq``."""

    seq: int


class TraceCheckJSON(TypedDict):
    """:meth:`TraceCheck.to_json`."""

    policy: str
    policy_sha256: str
    trace_head: str
    calls: int
    denied: int
    asked: int
    decisions: list[TraceDecisionJSON]
    unmet_at_end: list[str]


@dataclass(frozen=True)
class TraceCheck:
    """Every call of a trace decided in order; denied calls are not recorded into the temporal state."""

    policy: Policy
    trace_head: str
    decisions: tuple[tuple[int, Decision], ...]
    unmet_at_end: tuple[str, ...]

    @property
    def denied(self) -> int:
        return sum(1 for _, d in self.decisions if d.verdict is Verdict.DENY)

    @property
    def asked(self) -> int:
        return sum(1 for _, d in self.decisions if d.verdict is Verdict.ASK)

    def to_json(self) -> TraceCheckJSON:
        return TraceCheckJSON(
            policy=self.policy.name,
            policy_sha256=self.policy.digest,
            trace_head=self.trace_head,
            calls=len(self.decisions),
            denied=self.denied,
            asked=self.asked,
            decisions=[TraceDecisionJSON(seq=seq, **d.to_json()) for seq, d in self.decisions],
            unmet_at_end=list(self.unmet_at_end),
        )


def check_trace(policy: Policy, trace: Trace) -> TraceCheck:
    """Decide each tool call of a (verified) trace in order."""
    checker = PolicyChecker(policy)
    decisions: list[tuple[int, Decision]] = []
    for event in trace:
        if event.role is not Role.TOOL_CALL or event.tool is None:
            continue
        decision = checker.decide(event.tool, event.arguments, event.provenance)
        decisions.append((event.seq, decision))
        if decision.verdict is not Verdict.DENY:
            checker.record(event.tool)
    return TraceCheck(policy, trace.head, tuple(decisions), tuple(checker.unmet_obligations()))
