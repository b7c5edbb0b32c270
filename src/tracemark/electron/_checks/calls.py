"""Calls that weaken the app: external URLs, code built at run time, protocols, certificates, switches."""

from __future__ import annotations

from collections.abc import Iterable

from tracemark.electron._checks._ast import (
    all_calls,
    at_node,
    binding_names,
    call_parts,
    calls_named,
    calls_param_with,
    constant_prefix,
    descendants,
    fixed_origin,
    functions,
    guarded,
    initializer,
    method_name,
    param_name,
    truthy,
)
from tracemark.electron._checks._base import Check, Context, guide, register
from tracemark.electron._checks._flows import ExtraSink, Sink, flows, sink_of
from tracemark.electron._js import Func, Module, Node, Project, options, string_value, text
from tracemark.report import Finding, Location, Severity

FAMILY = "calls"

_EVAL_NAMES = frozenset(
    f"{prefix}{name}"
    for prefix in ("", "window.", "globalThis.", "self.")
    for name in ("eval", "Function", "setTimeout", "setInterval", "setImmediate")
)
_DANGEROUS_SWITCHES = frozenset(
    {
        "ignore-certificate-errors",
        "disable-web-security",
        "no-sandbox",
        "remote-debugging-port",
        "inspect",
        "inspect-brk",
        "js-flags",
        "disable-site-isolation-trials",
        "allow-insecure-localhost",
        "allow-running-insecure-content",
        "disable-features",
        "ignore-certificate-errors-spki-list",
        "host-rules",
        "proxy-server",
        "enable-logging",
    }
)
_PROTOCOL_METHODS = frozenset(
    {
        "registerFileProtocol",
        "registerHttpProtocol",
        "registerStringProtocol",
        "registerBufferProtocol",
        "registerStreamProtocol",
        "interceptFileProtocol",
        "interceptHttpProtocol",
        "interceptStringProtocol",
        "interceptBufferProtocol",
        "interceptStreamProtocol",
        "setAsDefaultProtocolClient",
        "registerStandardSchemes",
        "registerServiceWorkerSchemes",
        "registerSchemesAsPrivileged",
    }
)


@register
class OpenExternal(Check):
    id = "open-external"
    title = "shell.openExternal with a URL that is not a fixed https address"
    severity = Severity.MEDIUM
    family = FAMILY
    description = "Only pass URLs you have parsed and allow-listed (https scheme, known hosts)."
    references = guide("14-do-not-use-shellopenexternal-with-untrusted-content")
    electronegativity = ("OPEN_EXTERNAL_JS_CHECK",)

    def run(self, ctx: Context) -> Iterable[Finding]:
        project = ctx.project
        for module, call, _, args in calls_named(project, ("openExternal",)):
            url = string_value(project.evaluate(module, args[0]))
            if url is None:
                if not guarded(module, call, args[0]) and not fixed_origin(project, module, args[0]):
                    yield self.finding(
                        "shell.openExternal is called with a URL that is not constant", at_node(module, call)
                    )
            elif not url.lower().startswith(("https://", "mailto:")):
                yield self.finding(f"shell.openExternal opens {url!r}, not an https URL", at_node(module, call))


@register
class DangerousFunction(Check):
    id = "dangerous-function"
    title = "Code or styles built at run time are evaluated"
    severity = Severity.MEDIUM
    family = FAMILY
    description = (
        "Do not pass strings assembled at run time to eval, Function, string timers, executeJavaScript or "
        "insertCSS; call functions with data instead."
    )
    electronegativity = ("DANGEROUS_FUNCTIONS_JS_CHECK",)

    def run(self, ctx: Context) -> Iterable[Finding]:
        project = ctx.project
        for module, call, method, args in all_calls(project):
            if not args:
                continue
            function, _ = call_parts(call)
            if method in ("executeJavaScript", "insertCSS"):
                if string_value(project.evaluate(module, args[0])) is None and not _file_contents(
                    project, module, args[0]
                ):
                    yield self.finding(f"{method} is called with a value that is not constant", at_node(module, call))
            elif (
                function is not None
                and text(function) in _EVAL_NAMES
                and _dynamic_code(project, module, args[0], strict=method in ("eval", "Function"))
            ):
                yield self.finding(f"{method} runs code built at run time", at_node(module, call))
        for module in project.modules:
            for node in module.news:
                constructor, args = call_parts(node)
                if (
                    constructor is not None
                    and text(constructor) in ("Function", "window.Function", "globalThis.Function")
                    and args
                    and _dynamic_code(project, module, args[-1], strict=True)
                ):
                    yield self.finding("new Function runs code built at run time", at_node(module, node))


def _file_contents(project: Project, module: Module, node: Node) -> bool:
    """Whether a value is a file's contents (``fs.readFileSync(...)``): code shipped in a file, not assembled.

    Where the path comes from is the file-read checks' concern, not this one's.
    """
    if node.type == "await_expression" and node.named_children:
        node = node.named_children[0]
    if node.type == "identifier":
        node = initializer(module, node) or node
    if node.type != "call_expression":
        return False
    sink = sink_of(project, module, node)
    return sink is not None and sink.name in ("fs.readFileSync", "fs.readFile")


def _dynamic_code(project: Project, module: Module, node: Node, *, strict: bool) -> bool:
    """Whether an argument is code assembled at run time (not a constant string, not a function).

    ``strict`` (eval, Function) counts any non-constant value; for timers only a string being
    assembled (concatenation or a template with substitutions) counts, since their usual argument
    is a callback.
    """
    value = project.evaluate(module, node)
    if any(isinstance(option, Func) for option in options(value)) or string_value(value) is not None:
        return False
    if strict:
        return True
    if node.type == "identifier":
        node = initializer(module, node) or node
    return node.type in ("binary_expression", "template_string") and not (
        node.type == "template_string" and not any(c.type == "template_substitution" for c in node.named_children)
    )


@register
class ProtocolHandler(Check):
    id = "protocol-handler"
    title = "A custom protocol or deep-link handler to review"
    severity = Severity.LOW
    family = FAMILY
    description = "Treat every URL a custom protocol or deep link carries as hostile: parse and validate it."
    references = guide("18-avoid-usage-of-the-file-protocol-and-prefer-usage-of-custom-protocols")
    electronegativity = ("PROTOCOL_HANDLER_JS_CHECK",)

    def run(self, ctx: Context) -> Iterable[Finding]:
        project = ctx.project
        for module, call, method, args in all_calls(project):
            function, _ = call_parts(call)
            if method in _PROTOCOL_METHODS or (
                method == "handle"
                and function is not None
                and project.qualified_name(module, function).endswith("protocol.handle")
            ):
                scheme = string_value(project.evaluate(module, args[0])) if args else None
                yield self.finding(
                    f"{method} registers {scheme or 'a'} protocol handler to review", at_node(module, call)
                )


@register
class CertificateErrors(Check):
    id = "certificate-errors"
    title = "TLS certificate errors are ignored"
    severity = Severity.HIGH
    family = FAMILY
    description = (
        "Do not call callback(true) in certificate-error or return 0 from setCertificateVerifyProc without "
        "checks; do not pass ignore-certificate-errors."
    )
    electronegativity = ("CERTIFICATE_ERROR_EVENT_JS_CHECK", "CERTIFICATE_VERIFY_PROC_JS_CHECK")

    def run(self, ctx: Context) -> Iterable[Finding]:
        project = ctx.project
        for module, call, method, args in all_calls(project):
            if method == "setCertificateVerifyProc" and args:
                for func in functions(project, module, args[0]):
                    if calls_param_with(func, 1, (0,)):
                        yield self.finding(
                            "setCertificateVerifyProc accepts certificates (callback(0))", at_node(module, call)
                        )
            elif method in ("on", "once") and len(args) >= 2:
                if string_value(project.evaluate(module, args[0])) != "certificate-error":
                    continue
                for func in functions(project, module, args[1]):
                    if calls_param_with(func, 5, (True,)):
                        yield self.finding(
                            "the certificate-error handler accepts the certificate", at_node(module, call)
                        )


@register
class DangerousSwitch(Check):
    id = "dangerous-switch"
    title = "A dangerous Chromium command-line switch is set"
    severity = Severity.HIGH
    family = FAMILY
    description = (
        "Remove switches that weaken security (ignore-certificate-errors, disable-web-security, no-sandbox, "
        "remote-debugging-port, inspect, js-flags, disable-site-isolation-trials)."
    )
    electronegativity = ("CUSTOM_ARGUMENTS_JS_CHECK", "CUSTOM_ARGUMENTS_JSON_CHECK")

    def run(self, ctx: Context) -> Iterable[Finding]:
        project = ctx.project
        for module, call, _, args in calls_named(project, ("appendSwitch", "appendArgument")):
            switch = (string_value(project.evaluate(module, args[0])) or "").lstrip("-").split("=", 1)[0]
            if switch in _DANGEROUS_SWITCHES:
                yield self.finding(f"the command line gets --{switch}", at_node(module, call))


@register
class SecurityWarningsDisabled(Check):
    id = "security-warnings-disabled"
    title = "Electron's security warnings are disabled"
    severity = Severity.LOW
    family = FAMILY
    description = "Do not set ELECTRON_DISABLE_SECURITY_WARNINGS."
    electronegativity = ("SECURITY_WARNINGS_DISABLED_JS_CHECK", "SECURITY_WARNINGS_DISABLED_JSON_CHECK")

    def run(self, ctx: Context) -> Iterable[Finding]:
        project = ctx.project
        for module in project.modules:
            for assignments in module.assignments.values():
                for node in assignments:
                    left = node.child_by_field_name("left")
                    right = node.child_by_field_name("right")
                    if (
                        left is not None
                        and right is not None
                        and "ELECTRON_DISABLE_SECURITY_WARNINGS" in text(left)
                        and truthy(project.evaluate(module, right)) is not None
                    ):
                        yield self.finding("ELECTRON_DISABLE_SECURITY_WARNINGS is set", at_node(module, node))
        scripts = (ctx.package_json or {}).get("scripts")
        if isinstance(scripts, dict):
            for name, command in scripts.items():
                if isinstance(command, str) and "ELECTRON_DISABLE_SECURITY_WARNINGS=true" in command:
                    yield self.finding(
                        f"package.json script {name!r} disables security warnings", Location("package.json")
                    )


#: Protocol registrations whose handler answers requests: ``(method, callback serves a file path)``.
_SERVING_PROTOCOLS = {
    "registerFileProtocol": True,
    "interceptFileProtocol": True,
    "registerBufferProtocol": False,
    "interceptBufferProtocol": False,
    "registerStreamProtocol": False,
    "interceptStreamProtocol": False,
    "registerStringProtocol": False,
    "interceptStringProtocol": False,
    "registerHttpProtocol": False,
    "interceptHttpProtocol": False,
    "handle": False,
}


@register
class ProtocolPathTraversal(Check):
    id = "protocol-path-traversal"
    title = "A custom protocol serves files from the request path without checking it"
    severity = Severity.HIGH
    family = FAMILY
    description = (
        "Resolve the requested path (path.resolve or path.normalize) and refuse it unless it stays inside the "
        "folder the protocol serves (startsWith the root plus a separator); '../' or encoded '%2e%2e/' in the "
        "URL otherwise reads any file the app can."
    )
    references = guide("18-avoid-usage-of-the-file-protocol-and-prefer-usage-of-custom-protocols")

    def run(self, ctx: Context) -> Iterable[Finding]:
        project = ctx.project
        for module, call, method, args in calls_named(project, tuple(_SERVING_PROTOCOLS), 2):
            function, _ = call_parts(call)
            if function is None or (
                method == "handle" and not project.qualified_name(module, function).endswith("protocol.handle")
            ):
                continue
            scheme = string_value(project.evaluate(module, args[0])) or "a custom"
            for func in functions(project, module, args[1]):
                if not func.params:
                    continue
                request = {text(node) for node in binding_names(func.params[0])}
                extra = _file_callback(param_name(func, 1)) if _SERVING_PROTOCOLS[method] else _file_fetch
                for sink, sink_call, sink_module in flows(project, func, request, extra=extra):
                    if sink.kind in ("file read", "file write"):
                        yield self.finding(
                            f"the {scheme} protocol handler passes the request URL to {sink.name} unchecked",
                            at_node(sink_module, sink_call),
                        )


def _file_fetch(project: Project, module: Module, call: Node) -> Sink | None:
    """``net.fetch`` of a ``file:`` URL (``pathToFileURL(...)`` or a ``'file://' + ...`` string)."""
    function, args = call_parts(call)
    if function is None or not args or method_name(function) != "fetch":
        return None
    argument = args[0]
    builds_file_url = any(
        "pathToFileURL" in text(inner.child_by_field_name("function") or inner)
        for inner in descendants(argument, "call_expression")
    )
    if builds_file_url or constant_prefix(project, module, argument).lower().startswith("file:"):
        return Sink("file read", "net.fetch of a file: URL")
    return None


def _file_callback(callback: str | None) -> ExtraSink:
    """The handler's callback as a sink: ``callback({ path })`` serves that file."""

    def sink(project: Project, module: Module, call: Node) -> Sink | None:
        function, _ = call_parts(call)
        if callback is not None and function is not None and text(function) == callback:
            return Sink("file read", "the protocol callback's file path")
        return None

    return sink
