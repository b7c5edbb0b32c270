"""Dangerous sinks and the taint flows that reach them: shared by the IPC, deep-link and bridge checks.

A name is tainted when it holds outside input (an IPC argument, a deep link's URL); taint follows
local assignments and calls into project functions (bounded), and stops at an allow-list check.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass

from tracemark.electron._checks._ast import binding_names, call_parts, descendants, fixed_origin, guarded, identifiers
from tracemark.electron._js import Func, Module, Node, Project, options, text

_CHILD_PROCESS = frozenset({"exec", "execSync", "spawn", "spawnSync", "execFile", "execFileSync", "fork"})
_FS_WRITES = frozenset(
    {
        "writeFile",
        "writeFileSync",
        "appendFile",
        "appendFileSync",
        "createWriteStream",
        "rm",
        "rmSync",
        "unlink",
        "unlinkSync",
        "rename",
        "renameSync",
        "copyFile",
        "copyFileSync",
        "outputFile",
        "outputFileSync",
        "chmod",
        "chmodSync",
        "symlink",
        "symlinkSync",
    }
)
_FS_READS = frozenset(
    {"readFile", "readFileSync", "createReadStream", "readdir", "readdirSync", "opendir", "opendirSync"}
)
_VM = frozenset({"runInThisContext", "runInNewContext", "runInContext", "Script", "compileFunction"})
_NAMED_SINKS = {
    "openExternal": "shell.openExternal",
    "openPath": "shell.openPath",
    "loadURL": "loadURL",
    "loadFile": "loadFile",
    "executeJavaScript": "executeJavaScript",
}
#: ``(package, methods, kind)``: a call of one of ``methods`` reached through ``package``.
_PACKAGE_SINKS = (
    ("child_process", _CHILD_PROCESS, "command execution"),
    ("vm", _VM, "code execution"),
    ("fs", _FS_WRITES, "file write"),
    ("fs", _FS_READS, "file read"),
)


@dataclass(frozen=True)
class Sink:
    """A call that does something dangerous with its first argument: what kind, and its name."""

    kind: str
    name: str


def sink_of(project: Project, module: Module, call: Node) -> Sink | None:
    function, _ = call_parts(call)
    if function is None:
        return None
    name = project.qualified_name(module, function)
    parts = name.split(".")
    method = parts[-1]
    if name in ("eval", "Function", "globalThis.eval", "window.eval"):
        return Sink("code execution", name)
    if name == "require" and call.type == "call_expression":
        return Sink("module loading", "require")
    for package, methods, kind in _PACKAGE_SINKS:
        if package in parts and method in methods:
            return Sink(kind, f"{package}.{method}")
    if method in _NAMED_SINKS and function.type == "member_expression":
        return Sink("navigation" if method.startswith("load") else "external open", _NAMED_SINKS[method])
    return None


def tainted_params(func: Func, first: int) -> set[str]:
    """The names bound by the function's parameters from index ``first`` on."""
    return {text(node) for param in func.params[first:] for node in binding_names(param)}


#: A sink particular to one check: ``(project, module, call) -> Sink | None``.
ExtraSink = Callable[[Project, Module, Node], "Sink | None"]


def flows(
    project: Project,
    func: Func,
    tainted: set[str],
    depth: int = 0,
    visited: set[tuple[int, frozenset[str]]] | None = None,
    extra: ExtraSink | None = None,
) -> Iterator[tuple[Sink, Node, Module]]:
    """Sinks reached by tainted names inside ``func``, following calls to project functions.

    ``extra`` names further sinks (a protocol handler's callback) besides :func:`sink_of`'s.
    """
    visited = set() if visited is None else visited
    body = func.body
    key = (func.node.id, frozenset(tainted))
    if body is None or not tainted or depth > 3 or key in visited:
        return
    visited.add(key)
    tainted = _propagate(body, tainted)
    module = func.module
    calls = list(descendants(body, "call_expression")) + list(descendants(body, "new_expression"))
    for call in sorted(calls, key=lambda n: n.start_byte):
        _, args = call_parts(call)
        if not args:
            continue
        sink = sink_of(project, module, call) or (extra(project, module, call) if extra is not None else None)
        if sink is not None:
            fixed = sink.kind in ("external open", "navigation") and fixed_origin(project, module, args[0])
            if tainted & set(identifiers(args[0])) and not fixed and not guarded(module, call, args[0]):
                yield sink, call, module
            continue
        function, _ = call_parts(call)
        if function is None:
            continue
        for callee in options(project.evaluate(module, function)):
            if isinstance(callee, Func):
                inner = _tainted_arguments(callee, args, tainted)
                yield from flows(project, callee, inner, depth + 1, visited, extra)


def _propagate(body: Node, tainted: set[str]) -> set[str]:
    """``tainted`` and the names local assignments in ``body`` give a tainted value, to a fixed point (bounded)."""
    tainted = set(tainted)
    for _ in range(3):
        before = len(tainted)
        for declarator in descendants(body, "variable_declarator"):
            name = declarator.child_by_field_name("name")
            value = declarator.child_by_field_name("value")
            if name is not None and value is not None and tainted & set(identifiers(value)):
                tainted.update(text(n) for n in binding_names(name))
        for assignment in descendants(body, "assignment_expression"):
            left = assignment.child_by_field_name("left")
            right = assignment.child_by_field_name("right")
            if (
                left is not None
                and right is not None
                and left.type == "identifier"
                and tainted & set(identifiers(right))
            ):
                tainted.add(text(left))
        if len(tainted) == before:
            break
    return tainted


def _tainted_arguments(callee: Func, args: list[Node], tainted: set[str]) -> set[str]:
    """The names ``callee``'s parameters bind from the arguments that hold a tainted name."""
    inner: set[str] = set()
    for index, arg in enumerate(args):
        if tainted & set(identifiers(arg)) and index < len(callee.params):
            # f(event, ...args) spreads into every parameter from its place on
            reached = callee.params[index:] if arg.type == "spread_element" else [callee.params[index]]
            for param in reached:
                inner.update(text(n) for n in binding_names(param))
    return inner
