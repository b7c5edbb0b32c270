"""IPC handlers in the main process: renderer input reaching a sink, and handlers that trust any sender."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from tracemark.electron._checks._ast import at_node, binding_names, call_parts, calls_named, descendants, functions
from tracemark.electron._checks._base import Check, Context, guide, register
from tracemark.electron._checks._flows import flows, tainted_params
from tracemark.electron._js import Func, Module, Node, string_value, text
from tracemark.report import Finding, Severity

FAMILY = "ipc"


@dataclass(frozen=True)
class IpcHandler:
    """A function ``ipcMain.on/handle(channel, ...)`` runs, and the call that registers it."""

    module: Module
    call: Node
    channel: str
    func: Func


def ipc_handlers(ctx: Context) -> list[IpcHandler]:
    """Every handler registered on ``ipcMain`` (or an object named ``...ipc``)."""
    project = ctx.project
    handlers = []
    for module, call, _, args in calls_named(project, ("on", "handle", "once", "handleOnce", "addListener"), 2):
        function, _ = call_parts(call)
        if function is None or function.type != "member_expression":
            continue
        receiver = function.child_by_field_name("object")
        if receiver is None:
            continue
        receiver_name = project.qualified_name(module, receiver)
        if not (receiver_name.endswith("ipcMain") or receiver_name.endswith("ipc")):
            continue
        channel = string_value(project.evaluate(module, args[0])) or "?"
        for func in functions(project, module, args[1]):
            handlers.append(IpcHandler(module, call, channel, func))
    return handlers


@register
class IpcSink(Check):
    id = "ipc-sink"
    title = "IPC input reaches a dangerous sink"
    severity = Severity.CRITICAL
    family = FAMILY
    description = (
        "Arguments of ipcMain handlers come from the renderer: never pass them to eval, child_process, file "
        "reads or writes, shell.openExternal or loadURL without strict validation."
    )
    references = guide("17-validate-the-sender-of-all-ipc-messages")

    def run(self, ctx: Context) -> Iterable[Finding]:
        for handler in ctx.fact(ipc_handlers):
            for sink, sink_call, sink_module in flows(ctx.project, handler.func, tainted_params(handler.func, 1)):
                yield self.finding(
                    f"IPC channel {handler.channel!r}: a renderer-supplied argument reaches {sink.name} ({sink.kind})",
                    at_node(sink_module, sink_call),
                )


@register
class IpcSender(Check):
    id = "ipc-sender"
    title = "An IPC handler does not validate its sender"
    severity = Severity.MEDIUM
    family = FAMILY
    description = "Check event.senderFrame (its URL or origin) before acting on a message."
    references = guide("17-validate-the-sender-of-all-ipc-messages")

    def run(self, ctx: Context) -> Iterable[Finding]:
        for handler in ctx.fact(ipc_handlers):
            if not _validates_sender(handler.func):
                yield self.finding(
                    f"IPC channel {handler.channel!r}: the handler does not check event.senderFrame",
                    at_node(handler.module, handler.call),
                )


def _validates_sender(func: Func) -> bool:
    """Whether the handler reads ``event.senderFrame``/``event.sender`` or hands the event to a function."""
    params = func.params
    body = func.body
    if not params or body is None:
        return False
    event = params[0]
    if event.type in ("required_parameter", "optional_parameter"):
        event = event.child_by_field_name("pattern") or event
    if event.type == "object_pattern":
        return any(name in ("senderFrame", "sender") for name in (text(n) for n in binding_names(event)))
    if event.type != "identifier":
        return False
    name = text(event)
    for member in descendants(body, "member_expression"):
        obj = member.child_by_field_name("object")
        prop = member.child_by_field_name("property")
        if obj is not None and prop is not None and text(obj) == name and text(prop) in ("senderFrame", "sender"):
            return True
    for call in descendants(body, "call_expression"):
        _, args = call_parts(call)
        if any(arg.type == "identifier" and text(arg) == name for arg in args):
            return True
    return False
