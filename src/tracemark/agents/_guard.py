"""The runtime guard: wrap the tools of any tool-calling loop so that each call is decided first.

::

    guard = Guard(load_policy("policy.toml"))
    guard.user("Pay the bill in bill-december.txt")

    @guard.tool
    def send_money(recipient: str, amount: float) -> str: ...

The guard sees the user's and system messages it is given and every result of the tools it wraps, so
it knows where each argument value came from; a denied call raises :class:`ToolCallDeniedError` (or
returns a refusal text the loop can hand back to the model, with ``on_deny="return"``) and never runs.
Every message, call and result goes into a hash-chained trace (:attr:`Guard.trace`).
"""

from __future__ import annotations

import functools
import inspect
import threading
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from typing import Literal, ParamSpec, TypeVar, cast, overload

from tracemark._json import FrozenJSON
from tracemark.agents._checker import Decision, PolicyChecker
from tracemark.agents._policy import Policy, Verdict
from tracemark.agents._trace import SYSTEM, USER, Role, Trace, TraceBuilder
from tracemark.errors import ToolCallDeniedError

P = ParamSpec("P")
R = TypeVar("R")

#: Called for an ``ask`` decision; returns whether a person approved the call.
Approver = Callable[[Decision], bool]


def _deny_all(_decision: Decision) -> bool:
    return False


class Guard:
    """Enforces one policy over one conversation (use :meth:`session` or :meth:`reset` for the next)."""

    def __init__(
        self,
        policy: Policy,
        *,
        approve: Approver = _deny_all,
        on_deny: Literal["raise", "return"] = "raise",
        record_trace: bool = True,
    ) -> None:
        self.policy = policy
        self.approve = approve
        self.on_deny = on_deny
        self.record_trace = record_trace
        self._checker = PolicyChecker(policy)
        self._lock = threading.Lock()
        self._index = self._checker.provenance_index()
        self._builder = TraceBuilder()
        self.decisions: list[Decision] = []

    # -- the conversation ---------------------------------------------------------------------------
    def reset(self) -> None:
        """Forget the conversation (messages, results, temporal state, trace)."""
        with self._lock:
            self._checker.reset()
            self._index = self._checker.provenance_index()
            self._builder = TraceBuilder()
            self.decisions = []

    @contextmanager
    def session(self, user: str | None = None, system: str | None = None) -> Iterator[Guard]:
        """A fresh conversation for the ``with`` block, started with the given messages."""
        self.reset()
        if system:
            self.system(system)
        if user:
            self.user(user)
        yield self

    def user(self, text: str) -> None:
        """A message from the user: values in it are trusted."""
        self._message(Role.USER, USER, text)

    def system(self, text: str) -> None:
        """The system prompt: values in it are trusted."""
        self._message(Role.SYSTEM, SYSTEM, text)

    def _message(self, role: Role, source: str, text: str) -> None:
        with self._lock:
            self._index.add(source, text)
            if self.record_trace:
                self._builder.add(role, content=text)

    @property
    def trace(self) -> Trace:
        """The conversation so far as a hash-chained trace."""
        with self._lock:
            return self._builder.build()

    # -- deciding -----------------------------------------------------------------------------------
    def check(self, tool: str, arguments: Mapping[str, FrozenJSON]) -> Decision:
        """The decision a call would get now (nothing is recorded)."""
        with self._lock:
            return self._checker.decide(tool, arguments, self._index.of_arguments(arguments))

    def call(self, tool: str, function: Callable[..., R], /, **arguments: FrozenJSON) -> R | str:
        """Decide a call and, when allowed, make it and record its result."""
        with self._lock:
            provenance = self._index.of_arguments(arguments)
            decision = self._checker.decide(tool, arguments, provenance)
            self.decisions.append(decision)
            seq = None
            if self.record_trace:
                event = self._builder.add(
                    Role.TOOL_CALL,
                    tool=tool,
                    arguments=arguments,
                    provenance=provenance,
                    labels=(decision.verdict.value,),
                )
                seq = event.seq
        if decision.verdict is Verdict.ASK and self.approve(decision):
            decision = Decision(tool, Verdict.ALLOW, decision.rule, "approved: " + decision.reason, decision.argument)
        if decision.verdict is not Verdict.ALLOW:
            message = f"tool call {tool} {decision.verdict}: {decision.reason} (rule {decision.rule})"
            if self.on_deny == "return":
                return message
            raise ToolCallDeniedError(message, decision)
        result = function(**arguments)
        with self._lock:
            self._checker.record(tool)
            text = result if isinstance(result, str) else repr(result)
            if self.record_trace:
                event = self._builder.add(Role.TOOL_RESULT, tool=tool, result=text, call_seq=seq)
                delegated = self._index.add(f"tool:{tool}#{event.seq}", text, arguments=arguments)
            else:
                delegated = self._index.add(f"tool:{tool}", text, arguments=arguments)
            if delegated is not None:
                self._checker.grant(delegated)
        return result

    def check_answer(self, answer: str) -> Decision:
        """The decision for the agent's final answer to the user (``instructed_answer`` of the policy): an
        answer that repeats an instruction span of tool output is what an injection that asks the agent
        to *say* something looks like, and no tool-call rule sees it."""
        with self._lock:
            decision = self._checker.check_answer(answer, self._index)
            self.decisions.append(decision)
            if self.record_trace:
                self._builder.add(Role.ASSISTANT, content=answer, labels=(decision.verdict.value,))
        return decision

    # -- the decorator ------------------------------------------------------------------------------
    @overload
    def tool(self, function: Callable[P, R], /) -> Callable[P, R | str]: ...

    @overload
    def tool(
        self, function: None = None, /, *, name: str | None = None
    ) -> Callable[[Callable[P, R]], Callable[P, R | str]]: ...

    def tool(
        self, function: Callable[P, R] | None = None, /, *, name: str | None = None
    ) -> Callable[P, R | str] | Callable[[Callable[P, R]], Callable[P, R | str]]:
        """Wrap a tool function (``@guard.tool`` or ``@guard.tool(name="...")``); positional arguments are bound
        to their parameter names first, so the policy sees every argument by name."""

        def wrap(inner: Callable[P, R]) -> Callable[P, R | str]:
            tool_name = name or inner.__name__
            signature = inspect.signature(inner)

            @functools.wraps(inner)
            def guarded(*args: P.args, **kwargs: P.kwargs) -> R | str:
                bound = signature.bind(*args, **kwargs)
                bound.apply_defaults()
                values = cast(dict[str, FrozenJSON], dict(bound.arguments))
                return self.call(tool_name, inner, **values)

            return guarded

        return wrap(function) if function is not None else wrap
