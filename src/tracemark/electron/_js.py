"""JavaScript and TypeScript parsed with tree-sitter, and a resolver that evaluates what a setting holds.

Security settings are rarely literal: they sit in constants, spreads, ``Object.assign`` merges,
computed keys, ternaries and other modules.  :class:`Project` evaluates an expression to a small
abstract value (:class:`Const`, :class:`Obj`, :class:`Func`, :class:`ModuleRef`, :class:`Choice`,
:class:`Unknown`) following identifiers to their declarations in the enclosing scopes, imports
(``require`` and ES modules) across files, and later member assignments (``opts.webPreferences.x = v``).
The evaluation is bounded in depth so cyclic or hostile code cannot make it loop, and in cost:
each module may spend :data:`BASE_STEPS` evaluation steps plus one per :data:`BYTES_PER_STEP`
bytes of its source, after which values it holds are unknown and the module reports itself as
exhausted (the audit turns that into an ``audit-incomplete`` finding, never a silent miss).
Declarations are evaluated once and remembered, so values shared by many windows or handlers
cost one evaluation.
"""

from __future__ import annotations

import posixpath
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import TypeGuard, Union

import tree_sitter
import tree_sitter_javascript
import tree_sitter_typescript

Node = tree_sitter.Node

_MAX_DEPTH = 24
#: Evaluation steps every module may spend, whatever its size.
BASE_STEPS = 200_000
#: One more step per this many bytes of source (a 20 MB bundle gets 1.45 million steps).
BYTES_PER_STEP = 16

_LANGUAGES: dict[str, tree_sitter.Language] = {}


def _language(kind: str) -> tree_sitter.Language:
    if kind not in _LANGUAGES:
        if kind == "ts":
            _LANGUAGES[kind] = tree_sitter.Language(tree_sitter_typescript.language_typescript())
        elif kind == "tsx":
            _LANGUAGES[kind] = tree_sitter.Language(tree_sitter_typescript.language_tsx())
        else:
            _LANGUAGES[kind] = tree_sitter.Language(tree_sitter_javascript.language())
    return _LANGUAGES[kind]


_QUERIES: dict[tuple[str, tuple[str, ...]], tree_sitter.Query] = {}


def find_nodes(root: Node, kind: str, types: tuple[str, ...]) -> list[Node]:
    """Every node of one of ``types`` under ``root``, in source order (a tree-sitter query: the walk runs in C)."""
    key = (kind, types)
    if key not in _QUERIES:
        _QUERIES[key] = tree_sitter.Query(_language(kind), "[" + " ".join(f"({t})" for t in types) + "] @node")
    found = tree_sitter.QueryCursor(_QUERIES[key]).captures(root).get("node", [])
    return sorted(found, key=lambda node: (node.start_byte, -node.end_byte))


def parse(source: bytes, kind: str) -> tree_sitter.Tree:
    """Parse JavaScript (``js``), TypeScript (``ts``) or TSX (``tsx``) source."""
    return tree_sitter.Parser(_language(kind)).parse(source)


def text(node: Node) -> str:
    return (node.text or b"").decode("utf-8", "replace")


@dataclass(frozen=True)
class Site:
    """Where a value was written: a module path and a node in it."""

    module: Module
    node: Node

    @property
    def line(self) -> int:
        return self.node.start_point[0] + 1

    @property
    def column(self) -> int:
        return self.node.start_point[1] + 1


@dataclass(frozen=True)
class Const:
    """A literal: bool, str, int/float, or None for ``null``/``undefined``."""

    value: object
    site: Site | None = None


@dataclass(frozen=True)
class Prop:
    """One resolved property and where its key was written."""

    value: Value
    site: Site | None


@dataclass
class Obj:
    """An object literal after spreads, merges and assignments; ``open`` means an unknown spread."""

    props: dict[str, Prop] = field(default_factory=dict)
    open: bool = False
    site: Site | None = None

    def get(self, name: str) -> Prop | None:
        return self.props.get(name)

    def copy(self) -> Obj:
        return Obj(dict(self.props), self.open, self.site)


@dataclass(frozen=True)
class Func:
    """A function (declaration, expression or arrow) and the module it lives in."""

    node: Node
    module: Module

    @property
    def params(self) -> list[Node]:
        params = self.node.child_by_field_name("parameters")
        if params is None:
            single = self.node.child_by_field_name("parameter")
            return [single] if single is not None else []
        return [child for child in params.named_children if child.type not in ("comment",)]

    @property
    def body(self) -> Node | None:
        return self.node.child_by_field_name("body")


@dataclass(frozen=True)
class ModuleRef:
    """A value imported from a package: ``electron.shell.openExternal``, ``child_process.exec``."""

    name: str


@dataclass(frozen=True)
class Choice:
    """One of several values (ternaries, ``||``, ``??``)."""

    options: tuple[Value, ...]


@dataclass(frozen=True)
class Unknown:
    """A value the resolver cannot know statically (user input, a call result, a parameter)."""

    site: Site | None = None


@dataclass(frozen=True)
class Klass:
    """A class declaration (followed so ``new AppWindow(options)`` can reach ``super(options)``)."""

    node: Node
    module: Module


Value = Union[Const, Obj, Func, Klass, ModuleRef, Choice, Unknown]  # noqa: UP007


def options(value: Value) -> Iterator[Value]:
    """The alternatives a value may take (flattening nested choices)."""
    if isinstance(value, Choice):
        for option in value.options:
            yield from options(option)
    else:
        yield value


_FUNCTION_TYPES = frozenset(
    {
        "function_declaration",
        "function_expression",
        "function",
        "arrow_function",
        "generator_function_declaration",
        "method_definition",
    }
)
_SCOPE_TYPES = frozenset({"program", "statement_block", "class_body"}) | _FUNCTION_TYPES


def _normalise_package(name: str) -> str:
    name = name.removeprefix("node:")
    return {"fs/promises": "fs", "original-fs": "fs", "fs-extra": "fs", "child-process-promise": "child_process"}.get(
        name, name
    )


class Module:
    """One parsed source file with its declarations indexed by name."""

    def __init__(self, path: str, source: bytes, kind: str) -> None:
        self.path = path
        self.kind = kind
        self.source = source
        self.tree = parse(source, kind)
        self.root = self.tree.root_node
        self.declarations: dict[str, list[tuple[Node, Node]]] = {}  # name -> (binding node, declaring node)
        self.assignments: dict[str, list[Node]] = {}  # root identifier -> assignment expressions
        self.calls: list[Node] = []
        self.news: list[Node] = []
        #: Evaluation steps spent on this module's expressions, and how many it may spend.
        self.steps = 0
        self.step_limit = BASE_STEPS + len(source) // BYTES_PER_STEP
        self._index()

    @property
    def exhausted(self) -> bool:
        """Whether resolution stopped in this module because it spent its step budget."""
        return self.steps > self.step_limit

    def __repr__(self) -> str:
        return f"Module({self.path!r})"

    def __hash__(self) -> int:
        return id(self)

    def find(self, *types: str) -> list[Node]:
        """Every node of one of ``types`` in the module, in source order."""
        return find_nodes(self.root, self.kind, types)

    def _index(self) -> None:
        for node in self.find(*_INDEXED):
            kind = node.type
            if kind == "variable_declarator":
                name = node.child_by_field_name("name")
                if name is not None:
                    for binding in _pattern_identifiers(name):
                        self.declarations.setdefault(text(binding), []).append((binding, node))
            elif kind in ("function_declaration", "generator_function_declaration", "class_declaration"):
                name = node.child_by_field_name("name")
                if name is not None:
                    self.declarations.setdefault(text(name), []).append((name, node))
            elif kind in ("import_specifier", "namespace_import", "import_clause"):
                for binding in _import_bindings(node):
                    self.declarations.setdefault(text(binding), []).append((binding, node))
            elif kind == "assignment_expression":
                left = node.child_by_field_name("left")
                root = _member_root(left) if left is not None else None
                if root is not None:
                    self.assignments.setdefault(root, []).append(node)
            elif kind == "call_expression":
                self.calls.append(node)
            elif kind == "new_expression":
                self.news.append(node)


#: The node types :meth:`Module._index` records.
_INDEXED = (
    "variable_declarator",
    "function_declaration",
    "generator_function_declaration",
    "class_declaration",
    "import_specifier",
    "namespace_import",
    "import_clause",
    "assignment_expression",
    "call_expression",
    "new_expression",
)


def _pattern_identifiers(pattern: Node) -> Iterator[Node]:
    """The names a binding pattern declares (iterative: hostile nesting cannot exhaust the stack)."""
    stack = [pattern]
    while stack:
        node = stack.pop()
        if node.type in ("identifier", "shorthand_property_identifier_pattern"):
            yield node
            continue
        children: list[Node] = []
        for child in node.named_children:
            if child.type == "pair_pattern":
                value = child.child_by_field_name("value")
                if value is not None:
                    children.append(value)
            elif child.type in ("object_assignment_pattern", "assignment_pattern"):
                left = child.child_by_field_name("left")
                if left is not None:
                    children.append(left)
            elif child.type in (
                "identifier",
                "shorthand_property_identifier_pattern",
                "object_pattern",
                "array_pattern",
                "rest_pattern",
            ):
                children.append(child)
        stack.extend(reversed(children))


def _import_bindings(node: Node) -> Iterator[Node]:
    if node.type == "import_specifier":
        alias = node.child_by_field_name("alias") or node.child_by_field_name("name")
        if alias is not None:
            yield alias
    elif node.type == "namespace_import":
        for child in node.named_children:
            if child.type == "identifier":
                yield child
    elif node.type == "import_clause":
        for child in node.named_children:
            if child.type == "identifier":  # default import
                yield child


def _member_root(node: Node) -> str | None:
    """The identifier a member chain starts from (``opts`` for ``opts.a['b'].c``), else None."""
    while node.type in ("member_expression", "subscript_expression"):
        inner = node.child_by_field_name("object")
        if inner is None:
            return None
        node = inner
    return text(node) if node.type == "identifier" else None


def _unquote(node: Node) -> str | None:
    """The value of a string literal or a template without substitutions."""
    if node.type == "string":
        return "".join(
            text(child) if child.type == "string_fragment" else _escape(child) for child in node.named_children
        )
    if node.type == "template_string":
        if any(child.type == "template_substitution" for child in node.named_children):
            return None
        return "".join(
            text(child) if child.type == "string_fragment" else _escape(child) for child in node.named_children
        )
    return None


def _escape(node: Node) -> str:
    if node.type != "escape_sequence":
        return text(node)
    raw = text(node)
    simple = {"\\n": "\n", "\\t": "\t", "\\'": "'", '\\"': '"', "\\\\": "\\", "\\/": "/"}
    if raw in simple:
        return simple[raw]
    try:
        decoded: str = raw.encode("ascii").decode("unicode_escape")
    except (UnicodeDecodeError, UnicodeEncodeError):
        return raw
    return decoded


_PLAIN_FUNCTIONS = frozenset(
    {"function_declaration", "function_expression", "function", "generator_function_declaration"}
)


def _enclosing_class(node: Node) -> Node | None:
    """The class whose body holds ``node`` (``this`` in an arrow function still means the class's)."""
    current: Node | None = node.parent
    while current is not None:
        if current.type in ("class_declaration", "class", "abstract_class_declaration"):
            return current
        if current.type in _PLAIN_FUNCTIONS:
            return None  # a plain function has its own ``this``
        current = current.parent
    return None


def descendants_of(node: Node, kind: str) -> Iterator[Node]:
    """Every node of type ``kind`` under ``node`` (iterative)."""
    stack = [node]
    while stack:
        current = stack.pop()
        if current.type == kind:
            yield current
        stack.extend(current.named_children)


def enclosing_scopes(node: Node) -> Iterator[Node]:
    current: Node | None = node.parent
    while current is not None:
        if current.type in _SCOPE_TYPES:
            yield current
        current = current.parent


def contains(outer: Node, inner: Node) -> bool:
    """Whether ``inner`` lies within ``outer`` (by byte span)."""
    return outer.start_byte <= inner.start_byte and inner.end_byte <= outer.end_byte


def _declaration_scope(binding: Node) -> Node | None:
    current: Node | None = binding.parent
    while current is not None:
        if current.type in ("formal_parameters",):
            return current.parent
        if current.type in _SCOPE_TYPES:
            return current
        current = current.parent
    return None


class Project:
    """Every module of an app, with cross-file resolution."""

    def __init__(self, modules: list[Module], json_files: dict[str, bytes] | None = None) -> None:
        self.modules = modules
        self.by_path = {module.path: module for module in modules}
        #: JSON files by path, parsed only when a module requires or imports one.
        self.json_files = dict(json_files or {})
        self._export_cache: dict[str, Obj] = {}
        self._exporting: set[str] = set()
        #: Objects whose later member assignments are being applied, by (module, name, declaration):
        #: a lookup of one of them from inside those assignments sees the ones applied so far.
        self._assigning: dict[tuple[str, str, int], Obj] = {}
        #: Parameters bound to argument values while evaluating inside a called function.
        self._bindings: list[tuple[Node, dict[str, Value]]] = []
        #: Every call with its method name and arguments, indexed once per project by the checks
        #: (``tracemark.electron._checks._ast.all_calls``); ``None`` until then.
        self.call_index: list[tuple[Module, Node, str, list[Node]]] | None = None
        #: How many evaluations were cut short (depth or budget): a value computed while this
        #: count rose may be incomplete and is not remembered.
        self._truncated = 0
        self._declared_cache: dict[tuple[str, str, int], Value] = {}
        self._return_cache: dict[int, Value] = {}

    # -- module resolution -------------------------------------------------------------
    def resolve_import(self, importer: Module, spec: str) -> Module | None:
        """The module a relative ``require``/``import`` names, trying the usual extensions."""
        if not spec.startswith("."):
            return None
        base = posixpath.normpath(posixpath.join(posixpath.dirname(importer.path), spec))
        for candidate in (
            base,
            *(base + ext for ext in (".js", ".ts", ".mjs", ".cjs", ".tsx", ".jsx", ".json")),
            *(posixpath.join(base, "index" + ext) for ext in (".js", ".ts")),
        ):
            if candidate in self.by_path:
                return self.by_path[candidate]
            if candidate in self.json_files:  # parsed as ``module.exports = <json>``: its value is the export
                json_module = Module(candidate, b"module.exports=" + self.json_files.pop(candidate), "js")
                self.by_path[candidate] = json_module
                return json_module
        return None

    def exports(self, module: Module, depth: int) -> Obj:
        """The module's exports as an object (``default`` holds the default export)."""
        cached = self._export_cache.get(module.path)
        if cached is not None:
            return cached
        if module.path in self._exporting or depth > _MAX_DEPTH:
            return Obj(open=True)
        self._exporting.add(module.path)
        try:
            result = Obj()
            for node in module.root.named_children:
                self._collect_export(module, node, result, depth + 1)
            self._export_cache[module.path] = result
            return result
        finally:
            self._exporting.discard(module.path)

    def _collect_export(self, module: Module, node: Node, result: Obj, depth: int) -> None:
        if node.type == "export_statement":
            self._collect_es_export(module, node, result, depth)
        elif node.type == "expression_statement" and node.named_children:
            self._collect_commonjs_export(module, node, result, depth)

    def _collect_es_export(self, module: Module, node: Node, result: Obj, depth: int) -> None:
        """``export default v``, ``export const a = ...``, ``export function f``, ``export { a as b }``."""
        site = Site(module, node)
        value = node.child_by_field_name("value")
        declaration = node.child_by_field_name("declaration")
        if value is not None:
            result.props["default"] = Prop(self.evaluate(module, value, depth), site)
            merged = self.evaluate(module, value, depth)
            if isinstance(merged, Obj):
                for key, prop in merged.props.items():
                    result.props.setdefault(key, prop)
        elif declaration is None:
            for clause in node.named_children:
                if clause.type != "export_clause":
                    continue
                for spec in clause.named_children:
                    local = spec.child_by_field_name("name")
                    alias = spec.child_by_field_name("alias") or local
                    if local is not None and alias is not None:
                        result.props[text(alias)] = Prop(self.lookup(module, local, depth), site)
        elif declaration.type in ("lexical_declaration", "variable_declaration"):
            for declarator in declaration.named_children:
                name = declarator.child_by_field_name("name")
                init = declarator.child_by_field_name("value")
                if name is not None and name.type == "identifier" and init is not None:
                    result.props[text(name)] = Prop(self.lookup(module, name, depth), Site(module, declarator))
        else:
            name = declaration.child_by_field_name("name")
            if name is not None:
                result.props[text(name)] = Prop(self.lookup(module, name, depth), site)

    def _collect_commonjs_export(self, module: Module, node: Node, result: Obj, depth: int) -> None:
        """``module.exports = v``, ``module.exports.a = v``, ``exports.a = v``."""
        expr = node.named_children[0]
        if expr.type != "assignment_expression":
            return
        left = expr.child_by_field_name("left")
        right = expr.child_by_field_name("right")
        if left is None or right is None:
            return
        site = Site(module, node)
        target = text(left)
        if target == "module.exports":
            exported = self.evaluate(module, right, depth)
            result.props["default"] = Prop(exported, site)
            if isinstance(exported, Obj):
                result.props.update(exported.props)
                result.open = result.open or exported.open
        elif target.startswith(("module.exports.", "exports.")) and left.type == "member_expression":
            key_node = left.child_by_field_name("property")
            if key_node is not None:
                result.props[text(key_node)] = Prop(self.evaluate(module, right, depth), site)

    # -- identifiers -----------------------------------------------------------------
    def lookup(self, module: Module, identifier: Node, depth: int) -> Value:
        """The value an identifier refers to at its place in the code."""
        if depth > _MAX_DEPTH:
            return Unknown(Site(module, identifier))
        name = text(identifier)
        if name == "undefined":
            return Const(None, Site(module, identifier))
        for scope_node, bound in reversed(self._bindings):
            if name in bound and contains(scope_node, identifier):
                return bound[name]
        candidates = module.declarations.get(name, [])
        best: tuple[Node, Node] | None = None
        best_scope_size = -1
        for binding, declaring in candidates:
            scope = (
                _declaration_scope(binding)
                if declaring.type == "variable_declarator"
                else (
                    _declaration_scope(declaring)
                    if declaring.type not in ("import_specifier", "namespace_import", "import_clause")
                    else module.root
                )
            )
            if scope is None or not contains(scope, identifier):
                continue
            size = -(scope.end_byte - scope.start_byte)
            if best is None or size > best_scope_size:
                best = (binding, declaring)
                best_scope_size = size
        if best is None:
            if name in ("require",):
                return ModuleRef("require")
            # A parameter or a global: unknown.
            return Unknown(Site(module, identifier))
        binding, declaring = best
        return self._declared_value(module, name, binding, declaring, depth)

    def _declared_value(self, module: Module, name: str, binding: Node, declaring: Node, depth: int) -> Value:
        """A declaration's value with the member assignments the module makes to it afterwards."""
        key = (module.path, name, binding.start_byte)
        partial = self._assigning.get(key)
        if partial is not None:  # inside this object's own assignments: no fresh start (n ** depth)
            return partial
        cacheable = not self._bindings and not self._assigning
        if cacheable and key in self._declared_cache:
            return self._declared_cache[key]
        truncated = self._truncated
        value = self._value_of_declaration(module, binding, declaring, depth + 1)
        if isinstance(value, Obj) and name in module.assignments:
            value = self._apply_assignments(module, name, value, depth + 1, key)
        if cacheable and self._truncated == truncated:
            self._declared_cache[key] = value
        return value

    def _value_of_declaration(self, module: Module, binding: Node, declaring: Node, depth: int) -> Value:
        if declaring.type in ("function_declaration", "generator_function_declaration"):
            return Func(declaring, module)
        if declaring.type in ("class_declaration", "abstract_class_declaration"):
            return Klass(declaring, module)
        if declaring.type in ("import_specifier", "namespace_import", "import_clause"):
            return self._value_of_import(module, binding, declaring, depth)
        return self._value_of_declarator(module, binding, declaring, depth)

    def _value_of_declarator(self, module: Module, binding: Node, declaring: Node, depth: int) -> Value:
        """``const x = v`` or one name of ``const { a: { b } } = v``."""
        site = Site(module, declaring)
        name_node = declaring.child_by_field_name("name")
        init = declaring.child_by_field_name("value")
        if name_node is None or init is None:
            return Const(None, site)
        value = self.evaluate(module, init, depth)
        if name_node.type == "identifier":
            return value
        path = _pattern_path(name_node, binding)
        if path is None:
            return Unknown(site)
        for key in path:
            value = self.member(value, key, site)
        return value

    def _value_of_import(self, module: Module, binding: Node, declaring: Node, depth: int) -> Value:
        statement = declaring
        while statement.parent is not None and statement.type != "import_statement":
            statement = statement.parent
        source = statement.child_by_field_name("source")
        spec = _unquote(source) if source is not None else None
        if spec is None:
            return Unknown(Site(module, declaring))
        target = self.resolve_import(module, spec)
        if declaring.type == "import_specifier":
            imported = declaring.child_by_field_name("name")
            key = text(imported) if imported is not None else text(binding)
            if target is None:
                return ModuleRef(f"{_normalise_package(spec)}.{key}")
            prop = self.exports(target, depth).get(key)
            return prop.value if prop is not None else Unknown(Site(module, declaring))
        if target is None:
            return ModuleRef(_normalise_package(spec))
        exported = self.exports(target, depth)
        if declaring.type == "import_clause":
            default = exported.get("default")
            return default.value if default is not None else exported
        return exported

    def _apply_assignments(self, module: Module, name: str, value: Obj, depth: int, key: tuple[str, str, int]) -> Obj:
        result = _deep_copy(value)
        self._assigning[key] = result
        try:
            self._assign_in_order(module, module.assignments[name], result, depth)
        finally:
            del self._assigning[key]
        return result

    def _assign_in_order(self, module: Module, assignments: list[Node], result: Obj, depth: int) -> None:
        for assignment in assignments:
            left = assignment.child_by_field_name("left")
            right = assignment.child_by_field_name("right")
            if left is None or right is None or left.type not in ("member_expression", "subscript_expression"):
                continue
            path = self._member_path(module, left, depth)
            if path is None or len(path) < 2:
                continue
            target: Obj = result
            for key in path[1:-1]:
                prop = target.get(key)
                if prop is None or not isinstance(prop.value, Obj):
                    fresh = Obj(site=Site(module, assignment))
                    target.props[key] = Prop(fresh, Site(module, assignment))
                    target = fresh
                else:
                    copied = prop.value.copy()
                    target.props[key] = Prop(copied, prop.site)
                    target = copied
            target.props[path[-1]] = Prop(self.evaluate(module, right, depth), Site(module, left))

    def _member_path(self, module: Module, node: Node, depth: int) -> list[str] | None:
        keys: list[str] = []
        while node.type in ("member_expression", "subscript_expression"):
            key = self.member_key(module, node, depth)
            if key is None:
                return None
            keys.append(key)
            inner = node.child_by_field_name("object")
            if inner is None:
                return None
            node = inner
        if node.type != "identifier":
            return None
        keys.append(text(node))
        return list(reversed(keys))

    def member_key(self, module: Module, node: Node, depth: int) -> str | None:
        """The property name of ``a.b`` or ``a['b']`` / ``a[k]`` when ``k`` resolves to a string."""
        if node.type == "member_expression":
            prop = node.child_by_field_name("property")
            return text(prop) if prop is not None else None
        index = node.child_by_field_name("index")
        if index is None:
            return None
        key = self.evaluate(module, index, depth)
        return str(key.value) if isinstance(key, Const) and key.value is not None else None

    # -- expressions -----------------------------------------------------------------
    def evaluate(self, module: Module, node: Node, depth: int = 0) -> Value:
        """The abstract value of an expression."""
        evaluator = _EVALUATORS.get(node.type)
        if evaluator is None:
            return Unknown(Site(module, node))
        module.steps += 1
        if depth > _MAX_DEPTH or module.steps > module.step_limit:
            self._truncated += 1
            return Unknown(Site(module, node))
        return evaluator(self, module, node, depth)

    # One evaluator per expression node type (``_EVALUATORS``), each called with the depth of the
    # ``evaluate`` call and descending at depth + 1.
    def _evaluate_inner(self, module: Module, node: Node, depth: int) -> Value:
        """Parentheses, type assertions and ``await``: the value of the wrapped expression."""
        inner = node.named_children[0] if node.named_children else None
        return self.evaluate(module, inner, depth + 1) if inner is not None else Unknown(Site(module, node))

    def _evaluate_keyword(self, module: Module, node: Node, depth: int) -> Value:
        return Const(_KEYWORD_VALUES[node.type], Site(module, node))

    def _evaluate_number(self, module: Module, node: Node, depth: int) -> Value:
        site = Site(module, node)
        try:
            number = float(text(node).replace("_", "")) if not text(node).startswith("0x") else int(text(node), 16)
        except ValueError:
            return Unknown(site)
        return Const(number, site)

    def _evaluate_string(self, module: Module, node: Node, depth: int) -> Value:
        site = Site(module, node)
        value = _unquote(node)
        return Const(value, site) if value is not None else Unknown(site)

    def _evaluate_identifier(self, module: Module, node: Node, depth: int) -> Value:
        return self.lookup(module, node, depth + 1)

    def _evaluate_object(self, module: Module, node: Node, depth: int) -> Value:
        return self._object(module, node, depth + 1)

    def _evaluate_function(self, module: Module, node: Node, depth: int) -> Value:
        return Func(node, module)

    def _evaluate_class(self, module: Module, node: Node, depth: int) -> Value:
        return Klass(node, module)

    def _evaluate_new(self, module: Module, node: Node, depth: int) -> Value:
        """``new Class()`` of a project class: an open object holding its methods (so ``obj.method`` resolves)."""
        constructor = node.child_by_field_name("constructor")
        klass = self.evaluate(module, constructor, depth + 1) if constructor is not None else None
        if not isinstance(klass, Klass):
            return Unknown(Site(module, node))
        instance = Obj(open=True, site=Site(module, node))
        body = klass.node.child_by_field_name("body")
        for member in body.named_children if body is not None else ():
            name = member.child_by_field_name("name")
            static = any(child.type == "static" for child in member.children)
            if member.type == "method_definition" and name is not None and not static:
                instance.props[text(name)] = Prop(Func(member, klass.module), Site(klass.module, name))
        return instance

    def _evaluate_unary(self, module: Module, node: Node, depth: int) -> Value:
        return self._unary(module, node, depth + 1)

    def _evaluate_binary(self, module: Module, node: Node, depth: int) -> Value:
        return self._binary(module, node, depth + 1)

    def _evaluate_ternary(self, module: Module, node: Node, depth: int) -> Value:
        consequence = node.child_by_field_name("consequence")
        alternative = node.child_by_field_name("alternative")
        condition = node.child_by_field_name("condition")
        if condition is not None:
            test = self.evaluate(module, condition, depth + 1)
            if isinstance(test, Const) and consequence is not None and alternative is not None:
                return self.evaluate(module, consequence if test.value else alternative, depth + 1)
        branches = [self.evaluate(module, b, depth + 1) for b in (consequence, alternative) if b is not None]
        return Choice(tuple(branches))

    def _evaluate_member(self, module: Module, node: Node, depth: int) -> Value:
        site = Site(module, node)
        obj = node.child_by_field_name("object")
        key = self.member_key(module, node, depth + 1)
        if obj is None or key is None:
            return Unknown(site)
        if text(obj) == "process" and key == "env":
            return Unknown(site)
        if obj.type == "this":
            klass = _enclosing_class(node)
            found = self._class_member(module, klass, key, static=False, depth=depth + 1) if klass else None
            return found if found is not None else Unknown(site)
        value = self.evaluate(module, obj, depth + 1)
        if isinstance(value, Klass):
            found = self._class_member(value.module, value.node, key, static=True, depth=depth + 1)
            return found if found is not None else Unknown(site)
        return self.member(value, key, site)

    def _class_member(self, module: Module, klass: Node, key: str, *, static: bool, depth: int) -> Value | None:
        """A class's field, method or ``this.key = v`` assignment named ``key`` (static ones for ``Class.key``)."""
        body = klass.child_by_field_name("body")
        if body is None:
            return None
        for member in body.named_children:
            if any(child.type == "static" for child in member.children) != static:
                continue
            name = member.child_by_field_name("name") or member.child_by_field_name("property")
            if name is None or text(name) != key:
                continue
            if member.type == "method_definition":
                return Func(member, module)
            if member.type in ("field_definition", "public_field_definition"):
                value = member.child_by_field_name("value")
                site = Site(module, member)
                return self.evaluate(module, value, depth) if value is not None else Const(None, site)
        return None if static else self._this_assignment(module, klass, body, key, depth)

    def _this_assignment(self, module: Module, klass: Node, body: Node, key: str, depth: int) -> Value | None:
        """The value of the first ``this.key = v`` in the class's own methods."""
        for assignment in descendants_of(body, "assignment_expression"):
            left = assignment.child_by_field_name("left")
            right = assignment.child_by_field_name("right")
            if (
                left is not None
                and right is not None
                and left.type == "member_expression"
                and text(left) == f"this.{key}"
                and _enclosing_class(assignment) == klass
            ):
                return self.evaluate(module, right, depth)
        return None

    def _evaluate_call(self, module: Module, node: Node, depth: int) -> Value:
        return self._call(module, node, depth + 1)

    def _evaluate_assignment(self, module: Module, node: Node, depth: int) -> Value:
        right = node.child_by_field_name("right")
        return self.evaluate(module, right, depth + 1) if right is not None else Unknown(Site(module, node))

    def _evaluate_sequence(self, module: Module, node: Node, depth: int) -> Value:
        last = node.named_children[-1] if node.named_children else None
        return self.evaluate(module, last, depth + 1) if last is not None else Unknown(Site(module, node))

    def member(self, value: Value, key: str, site: Site) -> Value:
        """``value[key]``: a property of an object, a deeper name of an imported package."""
        if isinstance(value, Obj):
            prop = value.get(key)
            return prop.value if prop is not None else (Unknown(site) if value.open else Const(None, site))
        if isinstance(value, ModuleRef):
            return ModuleRef(f"{value.name}.{key}")
        if isinstance(value, Choice):
            return Choice(tuple(self.member(option, key, site) for option in value.options))
        return Unknown(site)

    def _object(self, module: Module, node: Node, depth: int) -> Obj:
        result = Obj(site=Site(module, node))
        for child in node.named_children:
            if child.type == "pair":
                key_node = child.child_by_field_name("key")
                value_node = child.child_by_field_name("value")
                if key_node is None or value_node is None:
                    continue
                key = self._property_name(module, key_node, depth)
                if key is None:
                    result.open = True
                    continue
                result.props[key] = Prop(self.evaluate(module, value_node, depth), Site(module, key_node))
            elif child.type == "shorthand_property_identifier":
                result.props[text(child)] = Prop(self.lookup(module, child, depth), Site(module, child))
            elif child.type == "spread_element":
                inner = child.named_children[0] if child.named_children else None
                spread = self.evaluate(module, inner, depth) if inner is not None else Unknown()
                _merge_into(result, spread)
            elif child.type == "method_definition":
                name = child.child_by_field_name("name")
                if name is not None:
                    result.props[text(name)] = Prop(Func(child, module), Site(module, name))
        return result

    def _property_name(self, module: Module, key: Node, depth: int) -> str | None:
        if key.type in ("property_identifier", "identifier"):
            return text(key)
        if key.type in ("string", "template_string"):
            return _unquote(key)
        if key.type == "number":
            return text(key)
        if key.type == "computed_property_name":
            inner = key.named_children[0] if key.named_children else None
            value = self.evaluate(module, inner, depth) if inner is not None else Unknown()
            if isinstance(value, Const) and value.value is not None:
                return _js_string(value.value)
        return None

    def _unary(self, module: Module, node: Node, depth: int) -> Value:
        operator = node.child_by_field_name("operator")
        argument = node.child_by_field_name("argument")
        site = Site(module, node)
        if operator is None or argument is None:
            return Unknown(site)
        value = self.evaluate(module, argument, depth)
        op = text(operator)
        if op == "!":
            truth = _truthiness(value)
            return Const(not truth, site) if truth is not None else Unknown(site)
        if op == "void":
            return Const(None, site)
        if (
            op == "-"
            and isinstance(value, Const)
            and isinstance(value.value, (int, float))
            and not isinstance(value.value, bool)
        ):
            return Const(-value.value, site)
        return Unknown(site)

    def _binary(self, module: Module, node: Node, depth: int) -> Value:
        operator = node.child_by_field_name("operator")
        left_node = node.child_by_field_name("left")
        right_node = node.child_by_field_name("right")
        site = Site(module, node)
        if operator is None or left_node is None or right_node is None:
            return Unknown(site)
        op = text(operator)
        left = self.evaluate(module, left_node, depth)
        right = self.evaluate(module, right_node, depth)
        if op in ("||", "??", "&&"):
            return _logical(op, left, right)
        if isinstance(left, Const) and isinstance(right, Const):
            return _fold(op, left.value, right.value, site)
        return Unknown(site)

    def _call(self, module: Module, node: Node, depth: int) -> Value:
        site = Site(module, node)
        function = node.child_by_field_name("function")
        arguments = node.child_by_field_name("arguments")
        if function is None or arguments is None:
            return Unknown(site)
        args = [child for child in arguments.named_children if child.type != "comment"]
        if function.type == "identifier" and text(function) == "require" and args:
            return self._require(module, args[0], site, depth)
        builtin = self._builtin_call(module, text(function), args, site, depth) if args else None
        if builtin is not None:
            return builtin
        if function.type == "member_expression":
            prop = function.child_by_field_name("property")
            inner = function.child_by_field_name("object")
            if prop is not None and inner is not None and text(prop) == "bind":  # f.bind(this): still f
                bound = self.evaluate(module, inner, depth)
                if any(isinstance(option, Func) for option in options(bound)):
                    return bound
        called = self.evaluate(module, function, depth)
        if isinstance(called, Func):
            return self._return_value(called, depth)
        return Unknown(site)

    def _require(self, module: Module, spec_node: Node, site: Site, depth: int) -> Value:
        """``require(spec)``: a project module's exports, or the named package."""
        spec = _unquote(spec_node)
        if spec is None:
            return Unknown(site)
        target = self.resolve_import(module, spec)
        if target is None:
            return ModuleRef(_normalise_package(spec))
        exported = self.exports(target, depth)
        default = exported.get("default")
        return default.value if default is not None else exported

    def _builtin_call(self, module: Module, callee: str, args: list[Node], site: Site, depth: int) -> Value | None:
        """``Object.assign``, ``Object.freeze``, ``Boolean`` and ``String`` of ``args``; None for any other callee."""
        if callee == "Object.assign":
            result = Obj(site=site)
            for arg in args:
                _merge_into(result, self.evaluate(module, arg, depth))
            return result
        if callee == "Object.freeze":
            return self.evaluate(module, args[0], depth)
        if callee == "Boolean":
            truth = _truthiness(self.evaluate(module, args[0], depth))
            return Const(truth, site) if truth is not None else Unknown(site)
        if callee == "String":
            return self.evaluate(module, args[0], depth)
        return None

    def _return_value(self, func: Func, depth: int) -> Value:
        """The value a parameterless factory returns (``makePrefs()`` returning an object literal)."""
        body = func.body
        if body is None:
            return Unknown()
        cacheable = not self._bindings and not self._assigning
        if cacheable and func.node.id in self._return_cache:
            return self._return_cache[func.node.id]
        truncated = self._truncated
        if body.type != "statement_block":
            value = self.evaluate(func.module, body, depth + 1)
        else:
            returns = [child for child in body.named_children if child.type == "return_statement"]
            values = [self.evaluate(func.module, r.named_children[0], depth + 1) for r in returns if r.named_children]
            if not values:
                value = Unknown(Site(func.module, func.node))
            else:
                value = values[0] if len(values) == 1 else Choice(tuple(values))
        if cacheable and self._truncated == truncated:
            self._return_cache[func.node.id] = value
        return value

    def evaluate_in_call(self, func: Func, arguments: list[Value], node: Node) -> Value:
        """Evaluate ``node`` (inside ``func``) with the function's parameters bound to ``arguments``.

        Destructuring parameters with defaults and rest elements are bound property by property,
        so ``constructor({ webPreferences = {}, ...rest })`` sees what the caller passed.
        """
        bound: dict[str, Value] = {}
        for index, param in enumerate(func.params):
            value = arguments[index] if index < len(arguments) else Const(None)
            self._bind(func.module, param, value, bound, 0)
        self._bindings.append((func.node, bound))
        try:
            return self.evaluate(func.module, node)
        finally:
            self._bindings.pop()

    def _bind(self, module: Module, pattern: Node, value: Value, bound: dict[str, Value], depth: int) -> None:
        if depth > _MAX_DEPTH:
            return
        kind = pattern.type
        if kind in ("required_parameter", "optional_parameter"):
            inner = pattern.child_by_field_name("pattern")
            default = pattern.child_by_field_name("value")
            if inner is not None:
                if default is not None and isinstance(value, Const) and value.value is None:
                    value = self.evaluate(module, default, depth + 1)
                self._bind(module, inner, value, bound, depth + 1)
        elif kind in ("identifier", "shorthand_property_identifier_pattern"):
            bound[text(pattern)] = value
        elif kind in ("assignment_pattern", "object_assignment_pattern"):
            left = pattern.child_by_field_name("left")
            right = pattern.child_by_field_name("right")
            if isinstance(value, Const) and value.value is None and right is not None:
                value = self.evaluate(module, right, depth + 1)
            if left is not None:
                self._bind(module, left, value, bound, depth + 1)
        elif kind == "object_pattern":
            self._bind_object(module, pattern, value, bound, depth)
        else:
            for name_node in _pattern_identifiers(pattern):
                bound[text(name_node)] = Unknown(Site(module, pattern))

    def _bind_object(self, module: Module, pattern: Node, value: Value, bound: dict[str, Value], depth: int) -> None:
        """``{ a, b = 1, c: { d }, ...rest }`` bound property by property to ``value``."""
        site = Site(module, pattern)
        used: set[str] = set()
        for child in pattern.named_children:
            if child.type == "shorthand_property_identifier_pattern":
                used.add(text(child))
                bound[text(child)] = self.member(value, text(child), site)
            elif child.type == "object_assignment_pattern":
                left = child.child_by_field_name("left")
                if left is not None:
                    used.add(text(left))
                    self._bind(module, child, self.member(value, text(left), site), bound, depth + 1)
            elif child.type == "pair_pattern":
                key = child.child_by_field_name("key")
                inner = child.child_by_field_name("value")
                if key is not None and inner is not None:
                    name = _unquote(key) if key.type == "string" else text(key)
                    used.add(name or "")
                    self._bind(module, inner, self.member(value, name or "", site), bound, depth + 1)
            elif child.type == "rest_pattern" and child.named_children:
                rest = Obj(site=site, open=not isinstance(value, Obj) or value.open)
                if isinstance(value, Obj):
                    rest.props = {k: v for k, v in value.props.items() if k not in used}
                self._bind(module, child.named_children[0], rest, bound, depth + 1)

    # -- names of callees ------------------------------------------------------------
    def qualified_name(self, module: Module, node: Node, depth: int = 0) -> str:
        """A callee's canonical name (``electron.shell.openExternal``, ``child_process.exec``, ``eval``).

        Names that resolve to an imported package are canonical; anything else falls back to
        the source text with whitespace removed.
        """
        value = self.evaluate(module, node, depth)
        if isinstance(value, ModuleRef):
            return value.name
        return "".join(text(node).split())


_KEYWORD_VALUES: dict[str, object] = {"true": True, "false": False, "null": None, "undefined": None}

#: How ``Project.evaluate`` evaluates each type of expression node; any other type is unknown.
_EVALUATORS: dict[str, Callable[[Project, Module, Node, int], Value]] = {
    **dict.fromkeys(
        (
            "parenthesized_expression",
            "as_expression",
            "satisfies_expression",
            "non_null_expression",
            "type_assertion",
            "await_expression",
        ),
        Project._evaluate_inner,
    ),
    **dict.fromkeys(_KEYWORD_VALUES, Project._evaluate_keyword),
    "number": Project._evaluate_number,
    "string": Project._evaluate_string,
    "template_string": Project._evaluate_string,
    "identifier": Project._evaluate_identifier,
    "object": Project._evaluate_object,
    **dict.fromkeys(
        ("arrow_function", "function_expression", "function", "generator_function"), Project._evaluate_function
    ),
    "unary_expression": Project._evaluate_unary,
    "binary_expression": Project._evaluate_binary,
    "ternary_expression": Project._evaluate_ternary,
    "member_expression": Project._evaluate_member,
    "subscript_expression": Project._evaluate_member,
    "call_expression": Project._evaluate_call,
    "assignment_expression": Project._evaluate_assignment,
    "sequence_expression": Project._evaluate_sequence,
    "class": Project._evaluate_class,
    "new_expression": Project._evaluate_new,
}


def _pattern_path(pattern: Node, binding: Node, depth: int = 0) -> list[str] | None:
    """The property path under which ``binding`` sits in a destructuring ``pattern``."""
    if depth > _MAX_DEPTH:
        return None
    if pattern.type in ("identifier", "shorthand_property_identifier_pattern"):
        return [] if pattern == binding else None
    for child in pattern.named_children:
        if child.type == "shorthand_property_identifier_pattern" and child == binding:
            return [text(child)]
        if child.type == "object_assignment_pattern":
            left = child.child_by_field_name("left")
            if left is not None and left == binding:
                return [text(left)]
        if child.type == "pair_pattern":
            key = child.child_by_field_name("key")
            value = child.child_by_field_name("value")
            if key is None or value is None:
                continue
            inner = _pattern_path(value, binding, depth + 1)
            if inner is not None:
                name = _unquote(key) if key.type == "string" else text(key)
                return [name or "", *inner]
    return None


def _logical(op: str, left: Value, right: Value) -> Value:
    """``left || right``, ``left && right``, ``left ?? right``: one side when the left decides, else either."""
    truth = _truthiness(left)
    if op == "||" and truth is not None:
        return left if truth else right
    if op == "&&" and truth is not None:
        return right if truth else left
    if op == "??" and isinstance(left, Const):
        return right if left.value is None else left
    return Choice((left, right))


def _fold(op: str, left: object, right: object, site: Site) -> Value:
    """A binary operator on two literals: string concatenation, arithmetic and equality."""
    if op == "+" and (isinstance(left, str) or isinstance(right, str)):
        return Const(_js_string(left) + _js_string(right), site)
    if op in ("-", "*", "/", "%", "+") and _is_number(left) and _is_number(right):
        a, b = float(left), float(right)
        if op in ("/", "%") and b == 0:
            return Unknown(site)
        result = {"-": a - b, "*": a * b, "/": a / b if b else 0.0, "%": a % b if b else 0.0, "+": a + b}[op]
        return Const(result, site)
    if op in ("===", "==", "!==", "!="):
        equal = left == right
        return Const(equal if op in ("===", "==") else not equal, site)
    return Unknown(site)


def _is_number(value: object) -> TypeGuard[int | float]:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _merge_into(result: Obj, value: Value) -> None:
    for option in options(value):
        if isinstance(option, Obj):
            result.props.update(option.props)
            result.open = result.open or option.open
        elif isinstance(option, Const) and option.value is None:
            continue
        else:
            result.open = True


def _deep_copy(value: Obj) -> Obj:
    copied = Obj(site=value.site, open=value.open)
    for key, prop in value.props.items():
        inner = prop.value
        copied.props[key] = Prop(_deep_copy(inner) if isinstance(inner, Obj) else inner, prop.site)
    return copied


def _truthiness(value: Value) -> bool | None:
    if isinstance(value, Const):
        return bool(value.value) if not (isinstance(value.value, float) and value.value != value.value) else False
    if isinstance(value, (Obj, Func)):
        return True
    return None


def _js_string(value: object) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def string_value(value: Value) -> str | None:
    """The string a value certainly holds, else None."""
    if isinstance(value, Const) and isinstance(value.value, str):
        return value.value
    return None
