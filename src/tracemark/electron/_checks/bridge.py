"""The contextBridge: what a preload script exposes to web content."""

from __future__ import annotations

from collections.abc import Iterable, Iterator

from tracemark.electron._checks._ast import (
    at,
    at_node,
    binding_names,
    call_parts,
    calls_named,
    descendants,
    guarded,
    identifiers,
)
from tracemark.electron._checks._base import Check, Context, guide, register
from tracemark.electron._checks._flows import sink_of
from tracemark.electron._js import Func, ModuleRef, Obj, Project, Site, Value, options, string_value, text
from tracemark.report import Finding, Severity

FAMILY = "bridge"

_RAW_MODULES = ("electron", "child_process", "fs", "require", "shell", "os", "path", "vm", "net", "http", "https")


@register
class ContextBridge(Check):
    id = "context-bridge"
    title = "The contextBridge exposes raw Electron or Node.js APIs"
    severity = Severity.HIGH
    family = FAMILY
    description = (
        "Expose one narrow function per action; never ipcRenderer itself, a generic send/invoke with a "
        "caller-chosen channel, require, or shell/fs/child_process."
    )
    references = guide("20-do-not-expose-electron-apis-to-untrusted-web-content")

    def run(self, ctx: Context) -> Iterable[Finding]:
        project = ctx.project
        for module, call, _, args in calls_named(project, ("exposeInMainWorld", "exposeInIsolatedWorld"), 2):
            exposed = project.evaluate(module, args[-1])
            api = string_value(project.evaluate(module, args[-2])) or "api"
            for path, problem, site in _exposure_problems(project, exposed, api, 0):
                yield self.finding(f"window.{path} {problem}", at(site) or at_node(module, call))


def _exposure_problems(project: Project, value: Value, path: str, depth: int) -> Iterator[tuple[str, str, Site | None]]:
    if depth > 4:
        return
    for option in options(value):
        if isinstance(option, ModuleRef):
            root = option.name.split(".")[0]
            if root in _RAW_MODULES or option.name == "require":
                yield path, f"exposes {option.name} itself", None
        elif isinstance(option, Obj):
            for key, prop in option.props.items():
                for sub_path, problem, where in _exposure_problems(project, prop.value, f"{path}.{key}", depth + 1):
                    yield sub_path, problem, where or prop.site
        elif isinstance(option, Func):
            forwarded = _forwards_any_channel(project, option)
            if forwarded is not None:
                yield path, forwarded, None


def _forwards_any_channel(project: Project, func: Func) -> str | None:
    body = func.body
    params = {text(n) for param in func.params for n in binding_names(param)}
    if body is None or not params:
        return None
    for call in descendants(body, "call_expression"):
        function, args = call_parts(call)
        if function is None or not args:
            continue
        name = project.qualified_name(func.module, function)
        first = set(identifiers(args[0]))
        method = name.rsplit(".", 1)[-1]
        if guarded(func.module, call, args[0]):
            continue
        if (
            "ipcRenderer" in name
            and method in ("send", "invoke", "sendSync", "on", "once", "sendTo", "postMessage")
            and args[0].type in ("identifier", "spread_element")  # (...args) => ipcRenderer.invoke(...args)
            and first & params
        ):
            return f"forwards a caller-chosen IPC channel through ipcRenderer.{method}"
        if name == "require" and first & params:
            return "loads a caller-chosen module with require"
        sink = sink_of(project, func.module, call)
        if sink is not None and first & params and sink.kind != "navigation":
            return f"passes its argument to {sink.name}"
    return None
