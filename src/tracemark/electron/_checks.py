"""The source checks: window settings, webviews, IPC flows, the contextBridge, CSP and app-wide limits.

Each check reads the resolved :class:`~tracemark.electron._js.Project` (and the parsed HTML
pages) and reports :class:`Finding` objects.  A setting is judged on its resolved value, so
``nodeIntegration`` written through a constant, a spread, ``Object.assign``, a computed key or
another module is found like a literal one; a value the resolver cannot know is not reported.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

from tracemark.electron._findings import Finding, Location
from tracemark.electron._html import HtmlPage, csp_weaknesses
from tracemark.electron._js import (
    Const,
    Func,
    Klass,
    Module,
    ModuleRef,
    Node,
    Obj,
    Project,
    Site,
    Unknown,
    Value,
    options,
    string_value,
    text,
)

_WINDOW_CLASSES = ("BrowserWindow", "BrowserView", "WebContentsView")
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
_LOCAL_HOSTS = ("http://localhost", "http://127.0.0.1", "http://[::1]")


@dataclass
class Context:
    """What every check reads, and where it writes its findings."""

    project: Project
    pages: list[HtmlPage]
    electron_major: int | None
    package_json: dict[str, object] | None = None
    findings: list[Finding] = field(default_factory=list)
    _seen: set[tuple[str, str, int, int, str]] = field(default_factory=set)

    def report(self, rule_id: str, message: str, location: Location | None) -> None:
        key = (
            rule_id,
            location.path if location else "",
            location.line if location else 0,
            location.column if location else 0,
            message,
        )
        if key not in self._seen:
            self._seen.add(key)
            self.findings.append(Finding(rule_id, message, location))


def at(site: Site | None) -> Location | None:
    return Location(site.module.path, site.line, site.column) if site is not None else None


def at_node(module: Module, node: Node) -> Location:
    return Location(module.path, node.start_point[0] + 1, node.start_point[1] + 1)


def call_parts(node: Node) -> tuple[Node | None, list[Node]]:
    function = node.child_by_field_name("function") or node.child_by_field_name("constructor")
    arguments = node.child_by_field_name("arguments")
    args = [child for child in arguments.named_children if child.type != "comment"] if arguments is not None else []
    return function, args


def method_name(function: Node | None) -> str:
    """``b`` for ``a.b(...)``, ``f`` for ``f(...)``, else empty (never the text of a large expression)."""
    if function is None:
        return ""
    if function.type == "member_expression":
        prop = function.child_by_field_name("property")
        return text(prop) if prop is not None else ""
    return text(function) if function.type == "identifier" else ""


def all_calls(project: Project) -> list[tuple[Module, Node, str, list[Node]]]:
    """Every call of the project with its method name and arguments (computed once per project)."""
    cached = project.cache.get("calls")
    if cached is None:
        cached = []
        for module in project.modules:
            for call in module.calls:
                function, args = call_parts(call)
                cached.append((module, call, method_name(function), args))
        project.cache["calls"] = cached
    calls: list[tuple[Module, Node, str, list[Node]]] = cached
    return calls


def _listens(project: Project, event: str) -> bool:
    for module, _, method, args in all_calls(project):
        if (
            method in ("on", "once", "addListener", "prependListener")
            and args
            and string_value(project.evaluate(module, args[0])) == event
        ):
            return True
    return False


def _truthy(value: Value) -> Site | None:
    """Where a value that may be truthy was written (None when it is certainly falsy or unknown)."""
    for option in options(value):
        if isinstance(option, Const) and option.value not in (None, False, 0, 0.0, ""):
            return option.site
    return None


def _falsy(value: Value) -> Site | None:
    for option in options(value):
        if isinstance(option, Const) and option.value in (False, 0, 0.0, "", None) and option.site is not None:
            return option.site
    return None


# -- window settings -------------------------------------------------------------------------
def check_windows(ctx: Context) -> None:
    attach_handled = _listens(ctx.project, "will-attach-webview")
    for module in ctx.project.modules:
        for node in module.news:
            constructor, args = call_parts(node)
            if constructor is None:
                continue
            if text(constructor).rsplit(".", 1)[-1] not in _WINDOW_CLASSES:
                _check_window_subclass(ctx, module, node, constructor, args, attach_handled)
                continue
            kind = text(constructor).rsplit(".", 1)[-1]
            where = at_node(module, node)
            value = ctx.project.evaluate(module, args[0]) if args else Obj()
            for option in options(value):
                if isinstance(option, Obj):
                    _check_preferences(ctx, kind, where, option, attach_handled)
        for call in module.calls:
            # class AppWindow extends BrowserWindow { constructor() { super(options) } }
            function, args = call_parts(call)
            kind_name = _window_superclass(call) if function is not None and function.type == "super" else None
            if kind_name is None:
                continue
            value = ctx.project.evaluate(module, args[0]) if args else Obj()
            for option in options(value):
                if isinstance(option, Obj):
                    _check_preferences(ctx, kind_name, at_node(module, call), option, attach_handled)
    for module, call, method, args in all_calls(ctx.project):
        if method != "setWindowOpenHandler" or not args:
            continue
        for func in _functions(ctx.project, module, args[0]):
            for value in _returned_values(ctx.project, func):
                for option in options(value):
                    action = _pref(option, "action")[0] if isinstance(option, Obj) else None
                    if not isinstance(option, Obj) or action is None or string_value(action) != "allow":
                        continue
                    override, _ = _pref(option, "overrideBrowserWindowOptions")
                    for override_option in options(override) if override is not None else ():
                        if isinstance(override_option, Obj):
                            _check_preferences(
                                ctx,
                                "a window allowed by setWindowOpenHandler",
                                at_node(module, call),
                                override_option,
                                attach_handled,
                            )


def _check_window_subclass(
    ctx: Context, module: Module, node: Node, constructor: Node, args: list[Node], attach_handled: bool
) -> None:
    """``new AppWindow(options)`` of a class extending a window: evaluate its ``super(...)`` with the options."""
    project = ctx.project
    for klass in options(project.evaluate(module, constructor)):
        if not isinstance(klass, Klass):
            continue
        kind = _window_class_of(klass.node)
        body = next((child for child in klass.node.named_children if child.type == "class_body"), None)
        if kind is None or body is None:
            continue
        for method in body.named_children:
            name = method.child_by_field_name("name")
            if method.type != "method_definition" or name is None or text(name) != "constructor":
                continue
            func = Func(method, klass.module)
            arguments = [project.evaluate(module, arg) for arg in args]
            for call in _descendants(method, "call_expression"):
                function, super_args = call_parts(call)
                if function is None or function.type != "super" or not super_args:
                    continue
                value = project.evaluate_in_call(func, arguments, super_args[0])
                for option in options(value):
                    if isinstance(option, Obj):
                        _check_preferences(ctx, kind, at_node(module, node), option, attach_handled)


def _window_superclass(call: Node) -> str | None:
    """The window class a ``super(...)`` call constructs, when its class extends one."""
    current = call.parent
    while current is not None and current.type not in ("class_declaration", "class", "abstract_class_declaration"):
        current = current.parent
    return _window_class_of(current) if current is not None else None


def _window_class_of(current: Node) -> str | None:
    """The window class a class declaration extends, if any."""
    heritage = next((child for child in current.named_children if child.type == "class_heritage"), None)
    if heritage is None:
        return None
    name = text(heritage).replace("extends", "").split("implements")[0].strip().rsplit(".", 1)[-1]
    return name if name in _WINDOW_CLASSES else None


def _returned_values(project: Project, func: Func) -> list[Value]:
    """Every value a function may return (all its ``return`` statements, or an arrow's expression)."""
    body = func.body
    if body is None:
        return []
    if body.type != "statement_block":
        return [project.evaluate(func.module, body)]
    return [
        project.evaluate(func.module, statement.named_children[0])
        for statement in _descendants(body, "return_statement")
        if statement.named_children
    ]


def _pref(obj: Obj, name: str) -> tuple[Value | None, Site | None]:
    prop = obj.get(name)
    if prop is None:
        return (Unknown() if obj.open else None), None
    return prop.value, prop.site


def _check_preferences(ctx: Context, kind: str, where: Location, options_obj: Obj, attach_handled: bool) -> None:
    raw, _ = _pref(options_obj, "webPreferences")
    prefs_list = [o for o in options(raw)] if raw is not None else [Obj()]
    major = ctx.electron_major
    for prefs in prefs_list:
        if not isinstance(prefs, Obj):
            continue
        sandbox, _ = _pref(prefs, "sandbox")
        sandbox_on = isinstance(sandbox, Const) and sandbox.value is True
        for name in ("nodeIntegration", "nodeIntegrationInWorker", "nodeIntegrationInSubFrames"):
            value, key_site = _pref(prefs, name)
            site = _truthy(value) if value is not None else None
            if site is not None and not sandbox_on:
                ctx.report("node-integration", f"{kind} sets {name} to true", at(key_site) or at(site))
        if major is not None and major < 5 and _pref(prefs, "nodeIntegration")[0] is None and not sandbox_on:
            ctx.report(
                "node-integration", f"{kind} leaves nodeIntegration unset: it defaults to true before Electron 5", where
            )
        value, key_site = _pref(prefs, "contextIsolation")
        if value is None:
            if major is not None and major < 12:
                ctx.report(
                    "context-isolation",
                    f"{kind} leaves contextIsolation unset: it defaults to false before Electron 12",
                    where,
                )
        elif _falsy(value) is not None:
            ctx.report("context-isolation", f"{kind} sets contextIsolation to false", at(key_site))
        if sandbox is None:
            if major is not None and major < 20:
                ctx.report(
                    "sandbox", f"{kind} leaves sandbox unset: renderers are not sandboxed before Electron 20", where
                )
        elif _falsy(sandbox) is not None:
            ctx.report("sandbox", f"{kind} sets sandbox to false", at(_pref(prefs, "sandbox")[1]))
        flags = (
            ("webSecurity", _falsy, "web-security", "sets webSecurity to false"),
            ("allowRunningInsecureContent", _truthy, "insecure-content", "sets allowRunningInsecureContent to true"),
            ("experimentalFeatures", _truthy, "experimental-features", "sets experimentalFeatures to true"),
            ("enableBlinkFeatures", _truthy, "blink-features", "enables Blink features"),
            ("blinkFeatures", _truthy, "blink-features", "enables Blink features (blinkFeatures)"),
            ("experimentalCanvasFeatures", _truthy, "experimental-features", "sets experimentalCanvasFeatures to true"),
            ("enableRemoteModule", _truthy, "remote-module", "sets enableRemoteModule to true"),
        )
        for name, test, rule, message in flags:
            value, key_site = _pref(prefs, name)
            if value is not None and not isinstance(value, Unknown) and test(value) is not None:
                ctx.report(rule, f"{kind} {message}", at(key_site))
        if _pref(prefs, "enableRemoteModule")[0] is None and major is not None and 5 <= major < 10:
            ctx.report(
                "remote-module",
                f"{kind} leaves enableRemoteModule unset: it defaults to true before Electron 10",
                where,
            )
        webview, key_site = _pref(prefs, "webviewTag")
        if webview is not None and _truthy(webview) is not None and not attach_handled:
            ctx.report("webview-tag", f"{kind} enables webviewTag without a will-attach-webview handler", at(key_site))


# -- HTML ------------------------------------------------------------------------------------
def check_pages(ctx: Context) -> None:
    for page in ctx.pages:
        for tag in page.tags:
            where = Location(page.path, tag.line, tag.column)
            attributes = tag.attributes
            if tag.name == "webview":
                for name in ("nodeintegration", "nodeintegrationinsubframes"):
                    if name in attributes:
                        ctx.report("node-integration", f"<webview> has the {name} attribute", where)
                if "disablewebsecurity" in attributes:
                    ctx.report("web-security", "<webview> has the disablewebsecurity attribute", where)
                if "allowpopups" in attributes:
                    ctx.report("webview-allowpopups", "<webview> has the allowpopups attribute", where)
                for name in ("blinkfeatures", "enableblinkfeatures"):
                    if attributes.get(name):
                        ctx.report("blink-features", f"<webview> enables Blink features ({name})", where)
                _webview_preferences(ctx, attributes.get("webpreferences") or "", where)
                source = (attributes.get("src") or "").strip()
                if source.lower().startswith("http://") and not source.lower().startswith(_LOCAL_HOSTS):
                    ctx.report("http-resource", f"<webview> loads {source} over plain HTTP", where)
            elif tag.name in ("script", "iframe", "img", "embed", "object", "link", "frame"):
                for name in ("src", "href", "data"):
                    source = (attributes.get(name) or "").strip()
                    if tag.name == "link" and "stylesheet" not in (attributes.get("rel") or "").lower():
                        continue
                    if tag.name == "img":
                        continue
                    if source.lower().startswith("http://") and not source.lower().startswith(_LOCAL_HOSTS):
                        ctx.report("http-resource", f"<{tag.name}> loads {source} over plain HTTP", where)


def _webview_preferences(ctx: Context, preferences: str, where: Location) -> None:
    # Electron's features string: ``key=value`` pairs separated by commas; a bare key means ``yes``.
    settings: dict[str, str] = {}
    for item in preferences.split(","):
        key, separator, value = item.partition("=")
        if key.strip():
            settings[key.strip()] = value.strip().lower() if separator else "yes"
    truthy = ("true", "yes", "1", "on")
    checks = (
        ("nodeIntegration", truthy, "node-integration"),
        ("contextIsolation", ("false", "no", "0", "off"), "context-isolation"),
        ("sandbox", ("false", "no", "0", "off"), "sandbox"),
        ("webSecurity", ("false", "no", "0", "off"), "web-security"),
        ("allowRunningInsecureContent", truthy, "insecure-content"),
        ("experimentalFeatures", truthy, "experimental-features"),
        ("experimentalCanvasFeatures", truthy, "experimental-features"),
    )
    for key, bad, rule in checks:
        if settings.get(key) in bad:
            ctx.report(rule, f"<webview> webpreferences sets {key}={settings[key]}", where)


# -- CSP -------------------------------------------------------------------------------------
def check_csp(ctx: Context, creates_windows: bool) -> None:
    policies: list[tuple[str, Location]] = []
    for page in ctx.pages:
        for policy, tag in page.csp_policies():
            policies.append((policy, Location(page.path, tag.line, tag.column)))
    for module in ctx.project.modules:
        stack = [module.root]
        while stack:
            node = stack.pop()
            if node.type == "pair":
                key = node.child_by_field_name("key")
                value_node = node.child_by_field_name("value")
                if key is not None and value_node is not None:
                    name = string_value(ctx.project.evaluate(module, key)) if key.type == "string" else text(key)
                    if (name or "").lower() == "content-security-policy":
                        for policy in _strings(ctx.project, module, value_node):
                            policies.append((policy, at_node(module, node)))
            stack.extend(node.named_children)
    if not policies:
        if creates_windows or ctx.pages:
            ctx.report(
                "csp-missing",
                "no Content-Security-Policy is set in any page or response header",
                Location(ctx.pages[0].path) if ctx.pages else None,
            )
        return
    for policy, where in policies:
        for weakness in csp_weaknesses(policy):
            shown = f" {weakness.source}" if weakness.source else ""
            ctx.report("csp-weak", f"CSP {weakness.directive}{shown}: {weakness.reason}", where)


def _strings(project: Project, module: Module, node: Node) -> list[str]:
    if node.type == "array":
        found: list[str] = []
        for child in node.named_children:
            found.extend(_strings(project, module, child))
        return found
    value = string_value(project.evaluate(module, node))
    return [value] if value is not None else []


# -- calls: external URLs, protocols, certificates, switches, dangerous functions ---------------
def check_calls(ctx: Context) -> None:
    project = ctx.project
    for module, call, method, args in all_calls(project):
        where = at_node(module, call)
        function, _ = call_parts(call)
        if method == "openExternal" and args:
            url = string_value(project.evaluate(module, args[0]))
            if url is None:
                if not _guarded(module, call, args[0]) and not _fixed_origin(project, module, args[0]):
                    ctx.report("open-external", "shell.openExternal is called with a URL that is not constant", where)
            elif not url.lower().startswith(("https://", "mailto:")):
                ctx.report("open-external", f"shell.openExternal opens {url!r}, not an https URL", where)
        elif method in ("executeJavaScript", "insertCSS") and args:
            if string_value(project.evaluate(module, args[0])) is None:
                ctx.report("dangerous-function", f"{method} is called with a value that is not constant", where)
        elif function is not None and text(function) in _EVAL_NAMES and args:
            if _dynamic_code(project, module, args[0], strict=method in ("eval", "Function")):
                ctx.report("dangerous-function", f"{method} runs code built at run time", where)
        elif method == "loadURL" and args:
            url = _constant_prefix(project, module, args[0]).strip()  # URL parsing trims surrounding spaces
            if url.lower().startswith("http://") and not url.lower().startswith(_LOCAL_HOSTS):
                ctx.report("http-resource", f"loadURL loads {url} over plain HTTP", where)
        elif method in _PROTOCOL_METHODS or (
            method == "handle"
            and function is not None
            and project.qualified_name(module, function).endswith("protocol.handle")
        ):
            scheme = string_value(project.evaluate(module, args[0])) if args else None
            ctx.report("protocol-handler", f"{method} registers {scheme or 'a'} protocol handler to review", where)
        elif method == "setCertificateVerifyProc" and args:
            for func in _functions(project, module, args[0]):
                if _calls_param_with(func, 1, (0,)):
                    ctx.report(
                        "certificate-errors", "setCertificateVerifyProc accepts certificates (callback(0))", where
                    )
        elif method in ("on", "once") and len(args) >= 2:
            event = string_value(project.evaluate(module, args[0]))
            if event == "certificate-error":
                for func in _functions(project, module, args[1]):
                    if _calls_param_with(func, 5, (True,)):
                        ctx.report("certificate-errors", "the certificate-error handler accepts the certificate", where)
        elif method in ("appendSwitch", "appendArgument") and args:
            switch = (string_value(project.evaluate(module, args[0])) or "").lstrip("-").split("=", 1)[0]
            if switch in _DANGEROUS_SWITCHES:
                ctx.report("dangerous-switch", f"the command line gets --{switch}", where)
        elif (
            method == "enable"
            and function is not None
            and "@electron/remote" in project.qualified_name(module, function)
        ):
            ctx.report("remote-module", "@electron/remote is enabled for a webContents", where)
        elif (
            method == "initialize"
            and function is not None
            and "@electron/remote" in project.qualified_name(module, function)
        ):
            ctx.report("remote-module", "@electron/remote is initialised in the main process", where)
    for module in project.modules:
        for node in module.news:
            constructor, args = call_parts(node)
            if (
                constructor is not None
                and text(constructor) in ("Function", "window.Function", "globalThis.Function")
                and args
                and _dynamic_code(project, module, args[-1], strict=True)
            ):
                ctx.report("dangerous-function", "new Function runs code built at run time", at_node(module, node))
        for assignments in module.assignments.values():
            for node in assignments:
                left = node.child_by_field_name("left")
                right = node.child_by_field_name("right")
                if (
                    left is not None
                    and right is not None
                    and "ELECTRON_DISABLE_SECURITY_WARNINGS" in text(left)
                    and _truthy(project.evaluate(module, right)) is not None
                ):
                    ctx.report(
                        "security-warnings-disabled",
                        "ELECTRON_DISABLE_SECURITY_WARNINGS is set",
                        at_node(module, node),
                    )
    scripts = (ctx.package_json or {}).get("scripts")
    if isinstance(scripts, dict):
        for name, command in scripts.items():
            if isinstance(command, str) and "ELECTRON_DISABLE_SECURITY_WARNINGS=true" in command:
                ctx.report(
                    "security-warnings-disabled",
                    f"package.json script {name!r} disables security warnings",
                    Location("package.json"),
                )


_FIXED_ORIGIN = re.compile(r"^(?:https://[^/\s?#]+/|mailto:)", re.IGNORECASE)


def _constant_prefix(project: Project, module: Module, node: Node, depth: int = 0) -> str:
    """The constant start of a string built at run time (``http://`` for `` `http://${host}/` ``)."""
    value = string_value(project.evaluate(module, node))
    if value is not None:
        return value
    if depth > 8:
        return ""
    if node.type == "template_string":
        prefix = []
        for child in node.named_children:
            if child.type == "template_substitution":
                break
            prefix.append(text(child) if child.type == "string_fragment" else text(child).removeprefix("\\"))
        return "".join(prefix)
    if node.type == "binary_expression":
        left = node.child_by_field_name("left")
        return _constant_prefix(project, module, left, depth + 1) if left is not None else ""
    return ""


def _fixed_origin(project: Project, module: Module, node: Node) -> bool:
    """Whether a URL built at run time starts with a constant ``https://host/`` (or ``mailto:``) prefix."""
    if node.type == "template_string":
        first = node.named_children[0] if node.named_children else None
        return first is not None and first.type == "string_fragment" and bool(_FIXED_ORIGIN.match(text(first)))
    if node.type == "binary_expression":
        left = node.child_by_field_name("left")
        if left is None or text(node.child_by_field_name("operator") or node) != "+":
            return False
        prefix = string_value(project.evaluate(module, left))
        return bool(_FIXED_ORIGIN.match(prefix)) if prefix is not None else _fixed_origin(project, module, left)
    return False


_EVAL_NAMES = frozenset(
    f"{prefix}{name}"
    for prefix in ("", "window.", "globalThis.", "self.")
    for name in ("eval", "Function", "setTimeout", "setInterval", "setImmediate")
)


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
        node = _initializer(module, node) or node
    return node.type in ("binary_expression", "template_string") and not (
        node.type == "template_string" and not any(c.type == "template_substitution" for c in node.named_children)
    )


def _initializer(module: Module, identifier: Node) -> Node | None:
    """The expression a ``const/let/var`` declaration in scope initialises ``identifier`` with."""
    for binding, declaring in module.declarations.get(text(identifier), []):
        scope = declaring.parent.parent if declaring.parent is not None else None
        if (
            declaring.type == "variable_declarator"
            and binding == declaring.child_by_field_name("name")
            and (scope is None or _contains(scope, identifier))
        ):
            return declaring.child_by_field_name("value")
    return None


def _functions(project: Project, module: Module, node: Node) -> list[Func]:
    return [option for option in options(project.evaluate(module, node)) if isinstance(option, Func)]


def _param_name(func: Func, index: int) -> str | None:
    params = func.params
    if index >= len(params):
        return None
    param = params[index]
    if param.type in ("required_parameter", "optional_parameter"):
        pattern = param.child_by_field_name("pattern")
        param = pattern if pattern is not None else param
    return text(param) if param.type == "identifier" else None


def _calls_param_with(func: Func, index: int, values: tuple[object, ...]) -> bool:
    """Whether the function calls its parameter ``index`` (or its last one) with one of ``values``."""
    names = {name for name in (_param_name(func, index), _param_name(func, len(func.params) - 1)) if name}
    body = func.body
    if body is None or not names:
        return False
    for call in _descendants(body, "call_expression"):
        function, args = call_parts(call)
        literal = _literal(args[0]) if args else None
        if (
            function is not None
            and text(function) in names
            and any(type(literal) is type(value) and literal == value for value in values)
        ):
            return True
    return False


def _literal(node: Node) -> object:
    """A boolean or integer literal's value (``true``, ``0``), else None."""
    if node.type in ("true", "false"):
        return node.type == "true"
    if node.type == "number" and text(node).isdigit():
        return int(text(node))
    return None


def _descendants(node: Node, kind: str) -> Iterator[Node]:
    stack = [node]
    while stack:
        current = stack.pop()
        if current.type == kind:
            yield current
        stack.extend(current.named_children)


def _identifiers(node: Node) -> Iterator[str]:
    for child in _descendants(node, "identifier"):
        yield text(child)
    for child in _descendants(node, "shorthand_property_identifier"):
        yield text(child)


def _guarded(module: Module, call: Node, argument: Node) -> bool:
    """Whether the argument's variables are checked by an ``if`` around or before the call.

    Accepts ``if (!allowed(url)) return;`` (or ``throw``) earlier in an enclosing block, and a call
    sitting inside ``if (allowed(url)) {...}``, ``allowed(url) ? call : ...`` or
    ``allowed(url) && call``: the usual shapes of an allow-list check.
    """
    names = set(_identifiers(argument))
    if not names:
        return False
    child = call
    parent = call.parent
    while parent is not None and parent.type not in ("program",):
        if parent.type == "if_statement":
            condition = parent.child_by_field_name("condition")
            consequence = parent.child_by_field_name("consequence")
            if (
                condition is not None
                and consequence is not None
                and _contains(consequence, call)
                and names & _checked_names(condition)
            ):
                return True
        if parent.type == "ternary_expression":
            condition = parent.child_by_field_name("condition")
            consequence = parent.child_by_field_name("consequence")
            if (
                condition is not None
                and consequence is not None
                and _contains(consequence, call)
                and names & _checked_names(condition)
            ):
                return True
        if parent.type == "binary_expression" and text(parent.child_by_field_name("operator") or parent) == "&&":
            left = parent.child_by_field_name("left")
            right = parent.child_by_field_name("right")
            if left is not None and right is not None and _contains(right, call) and names & _checked_names(left):
                return True
        if parent.type == "statement_block":
            for statement in parent.named_children:
                if statement.start_byte >= child.start_byte:
                    break
                if statement.type == "if_statement" and _exits(statement):
                    condition = statement.child_by_field_name("condition")
                    if condition is not None and names & _checked_names(condition):
                        return True
        child = parent
        parent = parent.parent
    return False


_COMPARISONS = frozenset({"===", "!==", "==", "!=", "<", ">", "<=", ">=", "instanceof", "in"})


def _checked_names(condition: Node) -> set[str]:
    """Names a condition actually checks: passed to or called on in a call, or compared.

    A bare truthiness test (``if (!path) return``) validates nothing, so its names do not count.
    """
    checked: set[str] = set()
    for node in _descendants(condition, "call_expression"):
        checked.update(_identifiers(node))
    for node in _descendants(condition, "binary_expression"):
        operator = node.child_by_field_name("operator")
        if operator is not None and text(operator) in _COMPARISONS:
            checked.update(_identifiers(node))
    return checked


def _contains(outer: Node, inner: Node) -> bool:
    return outer.start_byte <= inner.start_byte and inner.end_byte <= outer.end_byte


def _exits(statement: Node) -> bool:
    consequence = statement.child_by_field_name("consequence")
    if consequence is None:
        return False
    if consequence.type in ("return_statement", "throw_statement"):
        return True
    return any(child.type in ("return_statement", "throw_statement") for child in consequence.named_children)


# -- app-wide limits ---------------------------------------------------------------------------
def check_app_limits(ctx: Context, creates_windows: bool) -> None:
    project = ctx.project
    if not creates_windows:
        return
    handler_calls = [(m, c, a) for m, c, method, a in all_calls(project) if method == "setPermissionRequestHandler"]
    if not handler_calls:
        ctx.report(
            "permission-handler", "no session calls setPermissionRequestHandler: every permission is granted", None
        )
    for module, call, args in handler_calls:
        if not args:
            continue
        for func in _functions(project, module, args[0]):
            if _grants_all(func):
                ctx.report(
                    "permission-handler",
                    "the permission request handler grants every permission",
                    at_node(module, call),
                )
    if not _listens(project, "will-navigate"):
        ctx.report("navigation-limit", "no will-navigate handler: windows may navigate to any page", None)
    opens = any(method == "setWindowOpenHandler" for _, _, method, _ in all_calls(project))
    if not opens and not _listens(project, "new-window"):
        ctx.report("new-window-limit", "no setWindowOpenHandler: pages may open new windows freely", None)


def _grants_all(func: Func) -> bool:
    body = func.body
    callback = _param_name(func, 2)
    if body is None or callback is None:
        return False
    for call in _descendants(body, "call_expression"):
        function, args = call_parts(call)
        if function is None or text(function) != callback or not args or args[0].type != "true":
            continue
        parent = call.parent
        conditional = False
        while parent is not None and parent != body:
            if parent.type in ("if_statement", "switch_statement", "ternary_expression", "binary_expression"):
                conditional = True
                break
            parent = parent.parent
        if not conditional:
            return True
    return False


# -- IPC ---------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Sink:
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
    if "child_process" in parts and method in _CHILD_PROCESS:
        return Sink("command execution", f"child_process.{method}")
    if "vm" in parts and method in _VM:
        return Sink("code execution", f"vm.{method}")
    if "fs" in parts and method in _FS_WRITES:
        return Sink("file write", f"fs.{method}")
    if "fs" in parts and method in _FS_READS:
        return Sink("file read", f"fs.{method}")
    if method in _NAMED_SINKS and function.type == "member_expression":
        return Sink("navigation" if method.startswith("load") else "external open", _NAMED_SINKS[method])
    return None


def check_ipc(ctx: Context) -> None:
    project = ctx.project
    for module, call, method, args in all_calls(project):
        if method not in ("on", "handle", "once", "handleOnce", "addListener") or len(args) < 2:
            continue
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
        for func in _functions(project, module, args[1]):
            params = func.params
            tainted: set[str] = set()
            for param in params[1:]:
                tainted.update(text(node) for node in _binding_names(param))
            for sink, sink_call, sink_module in _flows(project, func, tainted, 0, set()):
                ctx.report(
                    "ipc-sink",
                    f"IPC channel {channel!r}: a renderer-supplied argument reaches {sink.name} ({sink.kind})",
                    at_node(sink_module, sink_call),
                )
            if not _validates_sender(func):
                ctx.report(
                    "ipc-sender",
                    f"IPC channel {channel!r}: the handler does not check event.senderFrame",
                    at_node(module, call),
                )


#: App events whose arguments come from outside the app: a deep link's URL, a second launch's argv.
_DEEP_LINK_EVENTS = {"open-url": 1, "second-instance": 1, "open-file": 1}


def check_deep_links(ctx: Context) -> None:
    """``app.on('open-url' | 'second-instance' | 'open-file')`` arguments reaching a sink."""
    project = ctx.project
    for module, _, method, args in all_calls(project):
        if method not in ("on", "once", "addListener") or len(args) < 2:
            continue
        event = string_value(project.evaluate(module, args[0]))
        if event not in _DEEP_LINK_EVENTS:
            continue
        for func in _functions(project, module, args[1]):
            tainted: set[str] = set()
            for param in func.params[_DEEP_LINK_EVENTS[event] :]:
                tainted.update(text(node) for node in _binding_names(param))
            for sink, sink_call, sink_module in _flows(project, func, tainted, 0, set()):
                ctx.report(
                    "deep-link-sink",
                    f"the {event!r} event's argument (from outside the app) reaches {sink.name} ({sink.kind})",
                    at_node(sink_module, sink_call),
                )


def _binding_names(param: Node) -> Iterator[Node]:
    if param.type in ("required_parameter", "optional_parameter"):
        pattern = param.child_by_field_name("pattern")
        if pattern is not None:
            param = pattern
    if param.type == "assignment_pattern":
        left = param.child_by_field_name("left")
        if left is not None:
            param = left
    if param.type == "rest_pattern":
        param = param.named_children[0] if param.named_children else param
    if param.type == "identifier":
        yield param
        return
    for node in _descendants(param, "identifier"):
        yield node
    for node in _descendants(param, "shorthand_property_identifier_pattern"):
        yield node


def _flows(
    project: Project, func: Func, tainted: set[str], depth: int, visited: set[tuple[int, frozenset[str]]]
) -> Iterator[tuple[Sink, Node, Module]]:
    """Sinks reached by tainted names inside ``func``, following calls to project functions."""
    body = func.body
    key = (func.node.id, frozenset(tainted))
    if body is None or not tainted or depth > 3 or key in visited:
        return
    visited.add(key)
    tainted = set(tainted)
    for _ in range(3):  # propagate through local assignments to a fixed point (bounded)
        before = len(tainted)
        for declarator in _descendants(body, "variable_declarator"):
            name = declarator.child_by_field_name("name")
            value = declarator.child_by_field_name("value")
            if name is not None and value is not None and tainted & set(_identifiers(value)):
                tainted.update(text(n) for n in _binding_names(name))
        for assignment in _descendants(body, "assignment_expression"):
            left = assignment.child_by_field_name("left")
            right = assignment.child_by_field_name("right")
            if (
                left is not None
                and right is not None
                and left.type == "identifier"
                and tainted & set(_identifiers(right))
            ):
                tainted.add(text(left))
        if len(tainted) == before:
            break
    module = func.module
    calls = list(_descendants(body, "call_expression")) + list(_descendants(body, "new_expression"))
    for call in sorted(calls, key=lambda n: n.start_byte):
        _, args = call_parts(call)
        if not args:
            continue
        sink = sink_of(project, module, call)
        if sink is not None:
            fixed = sink.kind in ("external open", "navigation") and _fixed_origin(project, module, args[0])
            if tainted & set(_identifiers(args[0])) and not fixed and not _guarded(module, call, args[0]):
                yield sink, call, module
            continue
        function, _ = call_parts(call)
        if function is None:
            continue
        for callee in options(project.evaluate(module, function)):
            if not isinstance(callee, Func):
                continue
            inner: set[str] = set()
            for index, arg in enumerate(args):
                if tainted & set(_identifiers(arg)) and index < len(callee.params):
                    inner.update(text(n) for n in _binding_names(callee.params[index]))
            yield from _flows(project, callee, inner, depth + 1, visited)


def _validates_sender(func: Func) -> bool:
    params = func.params
    body = func.body
    if not params or body is None:
        return False
    event = params[0]
    if event.type in ("required_parameter", "optional_parameter"):
        event = event.child_by_field_name("pattern") or event
    if event.type == "object_pattern":
        return any(name in ("senderFrame", "sender") for name in (text(n) for n in _binding_names(event)))
    if event.type != "identifier":
        return False
    name = text(event)
    for member in _descendants(body, "member_expression"):
        obj = member.child_by_field_name("object")
        prop = member.child_by_field_name("property")
        if obj is not None and prop is not None and text(obj) == name and text(prop) in ("senderFrame", "sender"):
            return True
    for call in _descendants(body, "call_expression"):
        _, args = call_parts(call)
        if any(arg.type == "identifier" and text(arg) == name for arg in args):
            return True
    return False


# -- contextBridge -------------------------------------------------------------------------------
_RAW_MODULES = ("electron", "child_process", "fs", "require", "shell", "os", "path", "vm", "net", "http", "https")


def check_context_bridge(ctx: Context) -> None:
    project = ctx.project
    for module, call, method, args in all_calls(project):
        if method not in ("exposeInMainWorld", "exposeInIsolatedWorld") or len(args) < 2:
            continue
        exposed = project.evaluate(module, args[-1])
        api = string_value(project.evaluate(module, args[-2])) or "api"
        for path, problem, site in _exposure_problems(project, exposed, api, 0):
            ctx.report("context-bridge", f"window.{path} {problem}", at(site) or at_node(module, call))


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
    params = {text(n) for param in func.params for n in _binding_names(param)}
    if body is None or not params:
        return None
    for call in _descendants(body, "call_expression"):
        function, args = call_parts(call)
        if function is None or not args:
            continue
        name = project.qualified_name(func.module, function)
        first = set(_identifiers(args[0]))
        method = name.rsplit(".", 1)[-1]
        if _guarded(func.module, call, args[0]):
            continue
        if (
            "ipcRenderer" in name
            and method in ("send", "invoke", "sendSync", "on", "once", "sendTo", "postMessage")
            and args[0].type == "identifier"
            and first & params
        ):
            return f"forwards a caller-chosen IPC channel through ipcRenderer.{method}"
        if name == "require" and first & params:
            return "loads a caller-chosen module with require"
        sink = sink_of(project, func.module, call)
        if sink is not None and first & params and sink.kind != "navigation":
            return f"passes its argument to {sink.name}"
    return None


ALL_CHECKS: tuple[Callable[[Context], None], ...] = (
    check_windows,
    check_pages,
    check_calls,
    check_ipc,
    check_deep_links,
    check_context_bridge,
)


def creates_windows(project: Project) -> bool:
    return any(
        text(call_parts(node)[0] or node).rsplit(".", 1)[-1] in _WINDOW_CLASSES
        for module in project.modules
        for node in module.news
    )


def run_source_checks(ctx: Context) -> None:
    """Every source check, in a fixed order."""
    for check in ALL_CHECKS:
        check(ctx)
    windows = creates_windows(ctx.project)
    check_csp(ctx, windows)
    check_app_limits(ctx, windows)
