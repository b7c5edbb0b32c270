"""App-wide limits: permission requests, navigation and new windows (judged when the app makes windows)."""

from __future__ import annotations

from collections.abc import Iterable

from tracemark.electron._checks._ast import (
    all_calls,
    at_node,
    call_parts,
    calls_named,
    creates_windows,
    descendants,
    functions,
    guarded_names,
    listens,
    param_name,
)
from tracemark.electron._checks._base import Check, Context, guide, register
from tracemark.electron._checks._flows import tainted_params
from tracemark.electron._js import Func, Node, Obj, Project, Value, contains, options, string_value, text
from tracemark.report import Finding, Severity

FAMILY = "app"
_NAVIGATION = ("LIMIT_NAVIGATION_GLOBAL_CHECK", "LIMIT_NAVIGATION_JS_CHECK")


@register
class PermissionHandler(Check):
    id = "permission-handler"
    title = "Permission requests are not handled, or all are granted"
    severity = Severity.MEDIUM
    family = FAMILY
    description = "Call session.setPermissionRequestHandler and grant only what the app needs, for its own origin."
    references = guide("5-handle-session-permission-requests-from-remote-content")
    electronegativity = ("PERMISSION_REQUEST_HANDLER_GLOBAL_CHECK", "PERMISSION_REQUEST_HANDLER_JS_CHECK")

    def run(self, ctx: Context) -> Iterable[Finding]:
        project = ctx.project
        if not creates_windows(project):
            return
        handlers = [(m, c, a) for m, c, method, a in all_calls(project) if method == "setPermissionRequestHandler"]
        if not handlers:
            yield self.finding("no session calls setPermissionRequestHandler: every permission is granted", None)
        for module, call, args in handlers:
            if args and any(_grants_all(func) for func in functions(project, module, args[0])):
                yield self.finding("the permission request handler grants every permission", at_node(module, call))


def _grants_all(func: Func) -> bool:
    """Whether the handler calls its callback with ``true`` outside any condition."""
    body = func.body
    callback = param_name(func, 2)
    if body is None or callback is None:
        return False
    for call in descendants(body, "call_expression"):
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


@register
class NavigationLimit(Check):
    id = "navigation-limit"
    title = "Navigation is not limited"
    severity = Severity.MEDIUM
    family = FAMILY
    description = "Handle will-navigate on every webContents and prevent navigation to unexpected origins."
    references = guide("13-disable-or-limit-navigation")
    electronegativity = _NAVIGATION

    def run(self, ctx: Context) -> Iterable[Finding]:
        if creates_windows(ctx.project) and not listens(ctx.project, "will-navigate"):
            yield self.finding("no will-navigate handler: windows may navigate to any page", None)


@register
class NewWindowLimit(Check):
    id = "new-window-limit"
    title = "New windows are not limited"
    severity = Severity.MEDIUM
    family = FAMILY
    description = "Use setWindowOpenHandler and deny (or open externally after checking) new windows."
    references = guide("14-disable-or-limit-creation-of-new-windows")
    electronegativity = _NAVIGATION

    def run(self, ctx: Context) -> Iterable[Finding]:
        project = ctx.project
        if not creates_windows(project):
            return
        opens = any(method == "setWindowOpenHandler" for _, _, method, _ in all_calls(project))
        if not opens and not listens(project, "new-window"):
            yield self.finding("no setWindowOpenHandler: pages may open new windows freely", None)


@register
class WindowOpenUnchecked(Check):
    id = "window-open-unchecked"
    title = "setWindowOpenHandler allows new windows without checking their URL"
    severity = Severity.MEDIUM
    family = FAMILY
    description = (
        "Return { action: 'allow' } only for URLs the handler has parsed and checked (scheme and host); deny the "
        "rest, or open them externally after the same check."
    )
    references = guide("14-disable-or-limit-creation-of-new-windows")

    def run(self, ctx: Context) -> Iterable[Finding]:
        project = ctx.project
        for module, call, _, args in calls_named(project, ("setWindowOpenHandler",)):
            if any(_allows_unchecked(project, func) for func in functions(project, module, args[0])):
                yield self.finding(
                    "setWindowOpenHandler allows new windows without checking their URL", at_node(module, call)
                )


def _allows_unchecked(project: Project, func: Func) -> bool:
    """Whether the handler returns ``{ action: 'allow' }`` where no condition checks its argument."""
    names = tainted_params(func, 0)
    for returned, value in _returns(project, func):
        for option in options(value):
            if not isinstance(option, Obj):
                continue
            action = option.get("action")
            if action is None or string_value(action.value) != "allow":
                continue
            site = option.site.node if option.site is not None and contains(func.node, option.site.node) else returned
            if not guarded_names(site, names):
                return True
    return False


def _returns(project: Project, func: Func) -> Iterable[tuple[Node, Value]]:
    body = func.body
    if body is None:
        return []
    if body.type != "statement_block":
        return [(body, project.evaluate(func.module, body))]
    return [
        (statement, project.evaluate(func.module, statement.named_children[0]))
        for statement in descendants(body, "return_statement")
        if statement.named_children
    ]
