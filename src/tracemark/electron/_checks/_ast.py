"""What several check families read from the syntax trees and resolved values.

Calls and their arguments, where a value was written, whether it is truthy, which functions a
value may be, and whether an argument is validated before a call (an allow-list check).
"""

from __future__ import annotations

import re
from collections.abc import Collection, Iterator

from tracemark.electron._js import (
    Const,
    Func,
    Module,
    Node,
    Obj,
    Project,
    Site,
    Unknown,
    Value,
    contains,
    descendants_of,
    options,
    string_value,
    text,
)
from tracemark.report import Location

#: Every node of a type under a node: the same walk the value resolver uses.
descendants = descendants_of

#: The classes whose constructor options hold ``webPreferences``.
WINDOW_CLASSES = ("BrowserWindow", "BrowserView", "WebContentsView")
#: Plain-HTTP origins on this machine, which load nothing from the network.
LOCAL_HOSTS = ("http://localhost", "http://127.0.0.1", "http://[::1]")
_FIXED_ORIGIN = re.compile(r"^(?:https://[^/\s?#]+/|mailto:)", re.IGNORECASE)
_COMPARISONS = frozenset({"===", "!==", "==", "!=", "<", ">", "<=", ">=", "instanceof", "in"})

Call = tuple[Module, Node, str, list[Node]]


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


def all_calls(project: Project) -> list[Call]:
    """Every call of the project with its method name and arguments (computed once per project)."""
    if project.call_index is None:
        calls: list[Call] = []
        for module in project.modules:
            for call in module.calls:
                function, args = call_parts(call)
                calls.append((module, call, method_name(function), args))
        project.call_index = calls
    return project.call_index


def calls_named(project: Project, methods: Collection[str], min_args: int = 1) -> Iterator[Call]:
    """The calls of one of ``methods`` (``a.b(...)`` or ``b(...)``) with at least ``min_args`` arguments."""
    for module, call, method, args in all_calls(project):
        if method in methods and len(args) >= min_args:
            yield module, call, method, args


def listens(project: Project, event: str) -> bool:
    """Whether any ``x.on(event, ...)`` (or ``once``, ``addListener``, ``prependListener``) exists."""
    return any(
        string_value(project.evaluate(module, args[0])) == event
        for module, _, _, args in calls_named(project, ("on", "once", "addListener", "prependListener"))
    )


def creates_windows(project: Project) -> bool:
    """Whether the app constructs a window (so app-wide limits and a CSP matter)."""
    return any(
        text(call_parts(node)[0] or node).rsplit(".", 1)[-1] in WINDOW_CLASSES
        for module in project.modules
        for node in module.news
    )


def truthy(value: Value) -> Site | None:
    """Where a value that may be truthy was written (None when it is certainly falsy or unknown)."""
    for option in options(value):
        if isinstance(option, Const) and option.value not in (None, False, 0, 0.0, ""):
            return option.site
    return None


def falsy(value: Value) -> Site | None:
    """Where a value that may be falsy was written (None when it is certainly truthy or unknown)."""
    for option in options(value):
        if isinstance(option, Const) and option.value in (False, 0, 0.0, "", None) and option.site is not None:
            return option.site
    return None


def pref(obj: Obj, name: str) -> tuple[Value | None, Site | None]:
    """An option's value and where its key was written; ``Unknown`` when an open object may hold it."""
    prop = obj.get(name)
    if prop is None:
        return (Unknown() if obj.open else None), None
    return prop.value, prop.site


def functions(project: Project, module: Module, node: Node) -> list[Func]:
    return [option for option in options(project.evaluate(module, node)) if isinstance(option, Func)]


def returned_values(project: Project, func: Func) -> list[Value]:
    """Every value a function may return (all its ``return`` statements, or an arrow's expression)."""
    body = func.body
    if body is None:
        return []
    if body.type != "statement_block":
        return [project.evaluate(func.module, body)]
    return [
        project.evaluate(func.module, statement.named_children[0])
        for statement in descendants(body, "return_statement")
        if statement.named_children
    ]


def param_name(func: Func, index: int) -> str | None:
    params = func.params
    if index >= len(params):
        return None
    param = params[index]
    if param.type in ("required_parameter", "optional_parameter"):
        pattern = param.child_by_field_name("pattern")
        param = pattern if pattern is not None else param
    return text(param) if param.type == "identifier" else None


def calls_param_with(func: Func, index: int, values: tuple[object, ...]) -> bool:
    """Whether the function calls its parameter ``index`` (or its last one) with one of ``values``."""
    names = {name for name in (param_name(func, index), param_name(func, len(func.params) - 1)) if name}
    body = func.body
    if body is None or not names:
        return False
    for call in descendants(body, "call_expression"):
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


_FUNCTION_NODES = frozenset(
    {"function_declaration", "function_expression", "function", "arrow_function", "method_definition"}
)


def enclosing_function(node: Node) -> Node | None:
    """The innermost function (declaration, expression, arrow or method) around ``node``."""
    current = node.parent
    while current is not None and current.type not in _FUNCTION_NODES:
        current = current.parent
    return current


def function_name(node: Node) -> str | None:
    """The name a function is called by: its own, its variable's, its property's or its method's."""
    own = node.child_by_field_name("name")
    if own is not None:
        return text(own)
    parent = node.parent
    if parent is None:
        return None
    if parent.type == "variable_declarator":
        name = parent.child_by_field_name("name")
        return text(name) if name is not None and name.type == "identifier" else None
    if parent.type == "pair":
        key = parent.child_by_field_name("key")
        return text(key) if key is not None and key.type == "property_identifier" else None
    if parent.type == "assignment_expression":
        left = parent.child_by_field_name("left")
        return method_name(left) or None
    return None


def identifiers(node: Node) -> Iterator[str]:
    for child in descendants(node, "identifier"):
        yield text(child)
    for child in descendants(node, "shorthand_property_identifier"):
        yield text(child)


def binding_names(param: Node) -> Iterator[Node]:
    """The identifiers a parameter (or declarator pattern) binds, through defaults, rest and destructuring."""
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
    yield from descendants(param, "identifier")
    yield from descendants(param, "shorthand_property_identifier_pattern")


def constant_prefix(project: Project, module: Module, node: Node, depth: int = 0) -> str:
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
        return constant_prefix(project, module, left, depth + 1) if left is not None else ""
    return ""


def fixed_origin(project: Project, module: Module, node: Node) -> bool:
    """Whether a URL built at run time starts with a constant ``https://host/`` (or ``mailto:``) prefix.

    ``a + b + c`` nests to the left; its left spine is walked iteratively, at most 64 operands deep.
    """
    for _ in range(64):
        if node.type == "template_string":
            first = node.named_children[0] if node.named_children else None
            return first is not None and first.type == "string_fragment" and bool(_FIXED_ORIGIN.match(text(first)))
        if node.type != "binary_expression":
            return False
        left = node.child_by_field_name("left")
        if left is None or text(node.child_by_field_name("operator") or node) != "+":
            return False
        prefix = string_value(project.evaluate(module, left))
        if prefix is not None:
            return bool(_FIXED_ORIGIN.match(prefix))
        node = left
    return False


def initializer(module: Module, identifier: Node) -> Node | None:
    """The expression a ``const/let/var`` declaration in scope initialises ``identifier`` with."""
    for binding, declaring in module.declarations.get(text(identifier), []):
        scope = declaring.parent.parent if declaring.parent is not None else None
        if (
            declaring.type == "variable_declarator"
            and binding == declaring.child_by_field_name("name")
            and (scope is None or contains(scope, identifier))
        ):
            return declaring.child_by_field_name("value")
    return None


def guarded(module: Module, call: Node, argument: Node) -> bool:
    """Whether the argument's variables are checked by an ``if`` around or before the call.

    Accepts ``if (!allowed(url)) return;`` (or ``throw``) earlier in an enclosing block, and a call
    sitting inside ``if (allowed(url)) {...}``, ``allowed(url) ? call : ...`` or
    ``allowed(url) && call``: the usual shapes of an allow-list check.
    """
    return guarded_names(call, set(identifiers(argument)))


def guarded_names(call: Node, names: set[str]) -> bool:
    """Whether any of ``names`` is checked by a condition around or an exit before ``call`` (see :func:`guarded`)."""
    if not names:
        return False
    child = call
    parent = call.parent
    while parent is not None and parent.type not in ("program",):
        if parent.type in ("if_statement", "ternary_expression"):
            condition = parent.child_by_field_name("condition")
            consequence = parent.child_by_field_name("consequence")
            if (
                condition is not None
                and consequence is not None
                and contains(consequence, call)
                and names & _checked_names(condition)
            ):
                return True
        if parent.type == "binary_expression" and text(parent.child_by_field_name("operator") or parent) == "&&":
            left = parent.child_by_field_name("left")
            right = parent.child_by_field_name("right")
            if left is not None and right is not None and contains(right, call) and names & _checked_names(left):
                return True
        if parent.type == "statement_block":
            for statement in parent.named_children:
                if statement.start_byte >= child.start_byte:
                    break
                if statement.type == "if_statement" and _exits(statement):
                    condition = statement.child_by_field_name("condition")
                    if condition is not None and _rejects(condition) and names & _checked_names(condition):
                        return True
        child = parent
        parent = parent.parent
    return False


def _rejects(condition: Node) -> bool:
    """Whether an early exit's condition holds for values that fail a check (``!allowed(x)``, ``x !== y``).

    ``if (trusted(url)) return; open(url)`` exits for the checked values and goes on with every
    other one: that is no guard.  A test for ``'..'`` is a traversal test, whatever its polarity.
    """
    if any(".." in text(literal) for literal in descendants(condition, "string")):
        return True  # a traversal test: path.relative(root, file).startsWith('..')
    stack = [condition]
    while stack:  # iterative: a || b || ... nests as deep as it is long
        node = stack.pop()
        while node.type == "parenthesized_expression" and node.named_children:
            node = node.named_children[0]
        operator_node = node.child_by_field_name("operator")
        operator = text(operator_node) if operator_node is not None else ""
        if node.type == "unary_expression" and operator == "!":
            return True
        if node.type == "binary_expression":
            if operator in ("!==", "!=", "<", ">", "<=", ">="):
                return True
            if operator in ("||", "&&"):
                sides = (node.child_by_field_name("left"), node.child_by_field_name("right"))
                stack.extend(side for side in sides if side is not None)
    return False


def _checked_names(condition: Node) -> set[str]:
    """Names a condition actually checks: passed to or called on in a call, or compared.

    A bare truthiness test (``if (!path) return``) validates nothing, so its names do not count.
    """
    checked: set[str] = set()
    for node in descendants(condition, "call_expression"):
        checked.update(identifiers(node))
    for node in descendants(condition, "binary_expression"):
        operator = node.child_by_field_name("operator")
        if operator is not None and text(operator) in _COMPARISONS:
            checked.update(identifiers(node))
    return checked


def _exits(statement: Node) -> bool:
    consequence = statement.child_by_field_name("consequence")
    if consequence is None:
        return False
    if consequence.type in ("return_statement", "throw_statement"):
        return True
    return any(child.type in ("return_statement", "throw_statement") for child in consequence.named_children)
