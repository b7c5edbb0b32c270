"""Renderer settings: ``webPreferences`` of every window, and the same settings on ``<webview>`` tags.

A window's options are judged on their resolved value, so ``nodeIntegration`` written through a
constant, a spread, ``Object.assign``, a computed key, a subclass's ``super(...)``, a
``setWindowOpenHandler`` override or another module is found like a literal one; a value the
resolver cannot know is not reported.  Version-dependent defaults use the app's Electron version.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from itertools import chain, islice
from typing import ClassVar

from tracemark.electron._checks._ast import (
    WINDOW_CLASSES,
    all_calls,
    at,
    at_node,
    call_parts,
    calls_named,
    descendants,
    enclosing_function,
    falsy,
    function_name,
    functions,
    pref,
    returned_values,
    truthy,
)
from tracemark.electron._checks._base import Check, Context, guide, register
from tracemark.electron._html import Tag
from tracemark.electron._js import (
    Const,
    Func,
    Klass,
    Module,
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
from tracemark.report import Finding, Location, Severity

FAMILY = "windows"


@dataclass(frozen=True)
class WindowSettings:
    """One ``webPreferences`` object a window may get: the window's kind, where it is made, the object."""

    kind: str
    where: Location
    prefs: Obj

    @property
    def sandboxed(self) -> bool:
        sandbox, _ = pref(self.prefs, "sandbox")
        return isinstance(sandbox, Const) and sandbox.value is True


@dataclass(frozen=True)
class Webview:
    """A ``<webview>`` tag, where it is, and its ``webpreferences`` features string parsed."""

    tag: Tag
    where: Location
    features: Mapping[str, str]


@dataclass(frozen=True)
class UnresolvedWindow:
    """A window whose ``webPreferences`` the resolver could not (fully) know, and why."""

    kind: str
    where: Location
    reason: str


@dataclass(frozen=True)
class Windows:
    """Every window's resolved settings, and the windows whose settings could not be resolved."""

    settings: tuple[WindowSettings, ...]
    unresolved: tuple[UnresolvedWindow, ...]


def windows(ctx: Context) -> Windows:
    """Every window construction's ``webPreferences`` (a window without them gets an empty object)."""
    settings: list[WindowSettings] = []
    unresolved: list[UnresolvedWindow] = []
    made = chain(_constructed_windows(ctx.project), _opened_windows(ctx.project))
    for kind, where, value, judged in made:
        for option in options(value):
            if not isinstance(option, Obj):
                if judged and not _nothing(option):
                    unresolved.append(UnresolvedWindow(kind, where, "its options could not be resolved"))
                continue
            raw, _ = pref(option, "webPreferences")
            for prefs in options(raw) if raw is not None else [Obj()]:
                if isinstance(prefs, Obj):
                    settings.append(WindowSettings(kind, where, prefs))
                    if prefs.open and judged:
                        reason = "its webPreferences merge in a value that could not be resolved"
                        unresolved.append(UnresolvedWindow(kind, where, reason))
                elif judged and not _nothing(prefs):
                    unresolved.append(UnresolvedWindow(kind, where, "its webPreferences could not be resolved"))
    return Windows(tuple(settings), tuple(unresolved))


def _nothing(value: Value) -> bool:
    return isinstance(value, Const) and value.value is None


def window_settings(ctx: Context) -> list[WindowSettings]:
    """Every window construction's resolved ``webPreferences``."""
    return list(ctx.fact(windows).settings)


def _constructed_windows(project: Project) -> Iterator[tuple[str, Location, Value, bool]]:
    """``new BrowserWindow(options)``, ``new AppWindow(options)`` and ``super(options)`` in a window subclass.

    The last element says whether an unresolved value is worth reporting: the unbound ``super(...)``
    of a constructor that takes parameters is judged through its ``new`` sites instead.
    """
    for module in project.modules:
        for node in module.news:
            constructor, args = call_parts(node)
            if constructor is None:
                continue
            kind = text(constructor).rsplit(".", 1)[-1]
            if kind in WINDOW_CLASSES:
                for value in _window_options(project, module, node, args):
                    yield kind, at_node(module, node), value, True
                continue
            for subclass_kind, value in _subclass_options(project, module, constructor, args):
                yield subclass_kind, at_node(module, node), value, True
        for call in module.calls:
            # class AppWindow extends BrowserWindow { constructor() { super(options) } }
            function, args = call_parts(call)
            kind_name = _window_superclass(call) if function is not None and function.type == "super" else None
            if kind_name is not None:
                method = enclosing_function(call)
                judged = method is None or not Func(method, module).params
                yield kind_name, at_node(module, call), project.evaluate(module, args[0]) if args else Obj(), judged


#: Most call sites of one window factory whose arguments are bound.
_MAX_CALL_SITES = 64
#: How many factories deep call-site arguments are followed (``open(p)`` calling ``make(p)``).
_FACTORY_LEVELS = 2


def _window_options(project: Project, module: Module, node: Node, args: list[Node]) -> Iterator[Value]:
    """A window's options; inside a factory that takes parameters, once per call site with its arguments bound.

    ``function createWindow(prefs) { return new BrowserWindow({ webPreferences: prefs }) }`` called
    as ``createWindow({ nodeIntegration: true })`` gets the caller's object, so the finding points at it;
    a call from another factory's parameter is bound through that factory's own call sites.
    """
    if not args:
        yield Obj()
        return
    factory_node = enclosing_function(node)
    factory = Func(factory_node, module) if factory_node is not None else None
    bound = 0
    if factory is not None and factory.params:
        for arguments in islice(_argument_lists(project, factory, _FACTORY_LEVELS), _MAX_CALL_SITES):
            yield project.evaluate_in_call(factory, arguments, args[0])
            bound += 1
    if not bound:
        yield project.evaluate(module, args[0])


def _argument_lists(project: Project, func: Func, levels: int) -> Iterator[list[Value]]:
    """The argument values of each call of ``func``, bound through up to ``levels`` enclosing factories."""
    for site_module, call, site_args in _call_sites(project, func):
        outer_node = enclosing_function(call)
        outer = Func(outer_node, site_module) if outer_node is not None else None
        outer_lists: list[list[Value]] = []
        if outer is not None and outer.params and levels > 1:
            outer_lists = list(islice(_argument_lists(project, outer, levels - 1), _MAX_CALL_SITES))
        if outer is None or not outer_lists:
            yield [project.evaluate(site_module, arg) for arg in site_args]
            continue
        for outer_arguments in outer_lists:
            yield [project.evaluate_in_call(outer, outer_arguments, arg) for arg in site_args]


def _call_sites(project: Project, func: Func) -> Iterator[tuple[Module, Node, list[Node]]]:
    """The calls in the project whose callee resolves to ``func``, with their arguments."""
    name = function_name(func.node)
    if name is None:
        return
    for module, call, method, args in all_calls(project):
        if method != name:
            continue
        callee, _ = call_parts(call)
        if callee is not None and any(
            candidate.node.id == func.node.id and candidate.module is func.module
            for candidate in functions(project, module, callee)
        ):
            yield module, call, args


def _opened_windows(project: Project) -> Iterator[tuple[str, Location, Value, bool]]:
    """The ``overrideBrowserWindowOptions`` a ``setWindowOpenHandler`` returns with ``action: 'allow'``."""
    for module, call, _, args in calls_named(project, ("setWindowOpenHandler",)):
        for func in functions(project, module, args[0]):
            for value in returned_values(project, func):
                for option in options(value):
                    action = pref(option, "action")[0] if isinstance(option, Obj) else None
                    if not isinstance(option, Obj) or action is None or string_value(action) != "allow":
                        continue
                    override, _ = pref(option, "overrideBrowserWindowOptions")
                    if override is not None:
                        yield "a window allowed by setWindowOpenHandler", at_node(module, call), override, True


def _subclass_options(
    project: Project, module: Module, constructor: Node, args: list[Node]
) -> Iterator[tuple[str, Value]]:
    """``new AppWindow(options)`` of a class extending a window: its ``super(...)`` options, given the arguments."""
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
            for call in descendants(method, "call_expression"):
                function, super_args = call_parts(call)
                if function is None or function.type != "super" or not super_args:
                    continue
                yield kind, project.evaluate_in_call(func, arguments, super_args[0])


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
    return name if name in WINDOW_CLASSES else None


def webviews(ctx: Context) -> list[Webview]:
    """Every ``<webview>`` tag of the app's pages."""
    found = []
    for page in ctx.pages:
        for tag in page.tags:
            if tag.name == "webview":
                where = Location(page.path, tag.line, tag.column)
                found.append(Webview(tag, where, _features(tag.attributes.get("webpreferences") or "")))
    return found


def _features(preferences: str) -> dict[str, str]:
    # Electron's features string: ``key=value`` pairs separated by commas; a bare key means ``yes``.
    settings: dict[str, str] = {}
    for item in preferences.split(","):
        key, separator, value = item.partition("=")
        if key.strip():
            settings[key.strip()] = value.strip().lower() if separator else "yes"
    return settings


#: Values of a ``webpreferences`` feature that turn it on, and off.
_YES = ("true", "yes", "1", "on")
_NO = ("false", "no", "0", "off")


class RendererSetting(Check):
    """A setting judged on every window's ``webPreferences`` and on every ``<webview>`` tag."""

    family = FAMILY
    #: ``(option, test, message)``: a window option is flagged where ``test`` finds a value it rejects.
    settings: ClassVar[tuple[tuple[str, Callable[[Value], Site | None], str], ...]] = ()
    #: ``(feature, rejected values)`` in a ``<webview>``'s ``webpreferences`` string.
    features: ClassVar[tuple[tuple[str, tuple[str, ...]], ...]] = ()
    #: ``(attribute, message)``: a ``<webview>`` attribute that is flagged when present.
    attributes: ClassVar[tuple[tuple[str, str], ...]] = ()

    def run(self, ctx: Context) -> Iterable[Finding]:
        for window in ctx.fact(window_settings):
            yield from self.window(ctx, window)
        for webview in ctx.fact(webviews):
            yield from self.webview(webview)
        for literal in ctx.app.literal_settings if ctx.app is not None else ():
            if literal.rule == self.id:
                yield self.finding(
                    f"{literal.option} is set to {literal.value} (a literal found in a file too large to parse)",
                    Location(literal.path, literal.line, literal.column),
                )

    def window(self, ctx: Context, window: WindowSettings) -> Iterator[Finding]:
        for name, test, message in self.settings:
            value, key_site = pref(window.prefs, name)
            if value is not None and not isinstance(value, Unknown) and test(value) is not None:
                yield self.finding(f"{window.kind} {message}", at(key_site))

    def webview(self, webview: Webview) -> Iterator[Finding]:
        for name, message in self.attributes:
            if name in webview.tag.attributes:
                yield self.finding(message, webview.where)
        for key, rejected in self.features:
            if webview.features.get(key) in rejected:
                yield self.finding(f"<webview> webpreferences sets {key}={webview.features[key]}", webview.where)


@register
class NodeIntegration(RendererSetting):
    id = "node-integration"
    title = "Node.js is reachable from web content"
    severity = Severity.HIGH
    description = (
        "Set nodeIntegration, nodeIntegrationInWorker and nodeIntegrationInSubFrames to false (or leave them "
        "unset) and keep the renderer sandboxed; expose only narrow functions through a preload script."
    )
    references = guide("2-do-not-enable-nodejs-integration-for-remote-content")
    electronegativity = ("NODE_INTEGRATION_JS_CHECK", "NODE_INTEGRATION_HTML_CHECK")
    attributes = (
        ("nodeintegration", "<webview> has the nodeintegration attribute"),
        ("nodeintegrationinsubframes", "<webview> has the nodeintegrationinsubframes attribute"),
    )
    features = (("nodeIntegration", _YES),)

    def window(self, ctx: Context, window: WindowSettings) -> Iterator[Finding]:
        for name in ("nodeIntegration", "nodeIntegrationInWorker", "nodeIntegrationInSubFrames"):
            value, key_site = pref(window.prefs, name)
            site = truthy(value) if value is not None else None
            if site is not None and not window.sandboxed:
                yield self.finding(f"{window.kind} sets {name} to true", at(key_site) or at(site))
        major = ctx.electron_major
        unset = pref(window.prefs, "nodeIntegration")[0] is None
        if major is not None and major < 5 and unset and not window.sandboxed:
            yield self.finding(
                f"{window.kind} leaves nodeIntegration unset: it defaults to true before Electron 5", window.where
            )


class SafeByDefault(RendererSetting):
    """An option that is unsafe when set to false, and when left unset before the Electron major ``safe_from``.

    An unset option is reported only when the app's Electron version is known to be older.
    """

    #: The ``webPreferences`` option (and ``<webview>`` feature).
    option: ClassVar[str]
    #: The first Electron major whose default is the safe value.
    safe_from: ClassVar[int]
    #: What leaving it unset means on older versions, after "<window> leaves <option> unset: ".
    unset_before: ClassVar[str]

    def window(self, ctx: Context, window: WindowSettings) -> Iterator[Finding]:
        value, key_site = pref(window.prefs, self.option)
        if value is None:
            if ctx.electron_major is not None and ctx.electron_major < self.safe_from:
                yield self.finding(f"{window.kind} leaves {self.option} unset: {self.unset_before}", window.where)
        elif falsy(value) is not None:
            yield self.finding(f"{window.kind} sets {self.option} to false", at(key_site))


@register
class ContextIsolation(SafeByDefault):
    id = "context-isolation"
    title = "Context isolation is off"
    severity = Severity.HIGH
    description = (
        "Set contextIsolation to true (the default since Electron 12) so preload scripts and page scripts do "
        "not share globals."
    )
    references = guide("3-enable-context-isolation")
    electronegativity = ("CONTEXT_ISOLATION_JS_CHECK",)
    features = (("contextIsolation", _NO),)
    option = "contextIsolation"
    safe_from = 12
    unset_before = "it defaults to false before Electron 12"


@register
class Sandbox(SafeByDefault):
    id = "sandbox"
    title = "The renderer is not sandboxed"
    severity = Severity.MEDIUM
    description = "Leave sandbox unset on Electron 20+ or set it to true; enabling nodeIntegration also turns it off."
    references = guide("4-enable-process-sandboxing")
    electronegativity = ("SANDBOX_JS_CHECK",)
    features = (("sandbox", _NO),)
    option = "sandbox"
    safe_from = 20
    unset_before = "renderers are not sandboxed before Electron 20"


@register
class WebSecurity(RendererSetting):
    id = "web-security"
    title = "webSecurity is off (same-origin policy disabled)"
    severity = Severity.HIGH
    description = "Never set webSecurity to false or add disablewebsecurity to a webview."
    references = guide("6-do-not-disable-websecurity")
    electronegativity = ("WEB_SECURITY_JS_CHECK", "WEB_SECURITY_HTML_CHECK")
    settings = (("webSecurity", falsy, "sets webSecurity to false"),)
    attributes = (("disablewebsecurity", "<webview> has the disablewebsecurity attribute"),)
    features = (("webSecurity", _NO),)


@register
class InsecureContent(RendererSetting):
    id = "insecure-content"
    title = "HTTPS pages may run HTTP content"
    severity = Severity.HIGH
    description = "Do not set allowRunningInsecureContent to true."
    references = guide("8-do-not-enable-allowrunninginsecurecontent")
    electronegativity = ("INSECURE_CONTENT_JS_CHECK", "INSECURE_CONTENT_HTML_CHECK")
    settings = (("allowRunningInsecureContent", truthy, "sets allowRunningInsecureContent to true"),)
    features = (("allowRunningInsecureContent", _YES),)


@register
class ExperimentalFeatures(RendererSetting):
    id = "experimental-features"
    title = "Experimental Chromium features are enabled"
    severity = Severity.MEDIUM
    description = "Do not set experimentalFeatures to true."
    references = guide("9-do-not-enable-experimental-features")
    electronegativity = ("EXPERIMENTAL_FEATURES_JS_CHECK", "EXPERIMENTAL_FEATURES_HTML_CHECK")
    settings = (
        ("experimentalFeatures", truthy, "sets experimentalFeatures to true"),
        ("experimentalCanvasFeatures", truthy, "sets experimentalCanvasFeatures to true"),
    )
    features = (("experimentalFeatures", _YES), ("experimentalCanvasFeatures", _YES))


@register
class BlinkFeatures(RendererSetting):
    id = "blink-features"
    title = "Extra Blink features are enabled"
    severity = Severity.MEDIUM
    description = "Do not use enableBlinkFeatures or the blinkfeatures webview attribute."
    references = guide("10-do-not-use-enableblinkfeatures")
    electronegativity = ("BLINK_FEATURES_JS_CHECK", "BLINK_FEATURES_HTML_CHECK")
    settings = (
        ("enableBlinkFeatures", truthy, "enables Blink features"),
        ("blinkFeatures", truthy, "enables Blink features (blinkFeatures)"),
    )

    def webview(self, webview: Webview) -> Iterator[Finding]:
        for name in ("blinkfeatures", "enableblinkfeatures"):
            if webview.tag.attributes.get(name):  # an empty value enables nothing
                yield self.finding(f"<webview> enables Blink features ({name})", webview.where)


@register
class RemoteModule(RendererSetting):
    id = "remote-module"
    title = "The remote module is enabled"
    severity = Severity.HIGH
    description = (
        "Do not enable the remote module (enableRemoteModule, @electron/remote); use IPC with narrow handlers."
    )
    references = guide("15-disable-the-remote-module")
    electronegativity = ("REMOTE_MODULE_JS_CHECK",)
    settings = (("enableRemoteModule", truthy, "sets enableRemoteModule to true"),)

    def run(self, ctx: Context) -> Iterable[Finding]:
        yield from super().run(ctx)
        project = ctx.project
        for module, call, method, _ in all_calls(project):
            function, _ = call_parts(call)
            if method not in ("enable", "initialize") or function is None:
                continue
            if "@electron/remote" in project.qualified_name(module, function):
                done = "enabled for a webContents" if method == "enable" else "initialised in the main process"
                yield self.finding(f"@electron/remote is {done}", at_node(module, call))

    def window(self, ctx: Context, window: WindowSettings) -> Iterator[Finding]:
        yield from super().window(ctx, window)
        major = ctx.electron_major
        if major is not None and major < 5:
            yield self.finding(
                f"{window.kind} has the remote module: before Electron 5 it is always on (enableRemoteModule "
                "does not exist yet)",
                window.where,
            )
        elif pref(window.prefs, "enableRemoteModule")[0] is None and major is not None and 5 <= major < 10:
            yield self.finding(
                f"{window.kind} leaves enableRemoteModule unset: it defaults to true before Electron 10", window.where
            )


@register
class WindowSettingsUnresolved(Check):
    id = "window-settings-unresolved"
    title = "A window's webPreferences could not be resolved"
    severity = Severity.INFO
    family = FAMILY
    description = (
        "The audit could not tell which webPreferences this window gets (a value computed at run time, a "
        "parameter no call site fixes, or code past the resolver's limits): review its settings by hand, or "
        "write them as a literal object."
    )
    references = guide("checklist-security-recommendations")

    def run(self, ctx: Context) -> Iterable[Finding]:
        for window in ctx.fact(windows).unresolved:
            yield self.finding(f"{window.kind}: {window.reason}", window.where)
