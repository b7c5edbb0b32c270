"""Code inside model formats, read as code: TorchScript sources and Jinja chat templates.

A TorchScript archive (``torch.jit.save``) carries the model's program as Python-syntax source
under ``code/``; ``torch.jit.load`` compiles it and the program runs on every ``forward``.  Its
calls are read from the syntax tree (:mod:`ast`), never matched as text, and calls that reach
files or processes (``torch.from_file``, ``torch.save``, ``torch.load``, ``open``) are findings.

A chat template (GGUF ``tokenizer.chat_template``, ``tokenizer_config.json``) is a Jinja program
that runs on every chat request.  It is parsed with jinja2's own lexer and parser, so string
literals are compared after Jinja decodes their escapes (``"\\x5f\\x5fclass\\x5f\\x5f"``), names
assembled with ``~`` or ``+`` are folded, and the ``attr`` filter and computed subscripts are seen
for what they do; any dunder attribute, or an attribute reached through a name the template
computes, is template injection.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Iterator
from typing import Any

Issue = tuple[str, str, str]

#: The last part of a call's dotted name that reads or writes files, loads code or starts processes.
_TORCHSCRIPT_IO = frozenset(
    {
        "from_file",
        "save",
        "load",
        "open",
        "system",
        "popen",
        "load_library",
        "remove",
        "unlink",
        "rename",
        "mkdir",
        "rmdir",
        "listdir",
        "read_file",
        "write_file",
        "_save_for_lite_interpreter",
        "_load_for_mobile",
        "exec",
        "eval",
    }
)
_TORCHSCRIPT_ROOTS = frozenset({"torch", "ops", "os", "builtins"})
_BARE_CALLS = frozenset({"open", "exec", "eval", "__import__"})
_DUNDER = re.compile(r"__\w+__")
#: Names a chat template has no reason to reach, even without a dunder.
_TEMPLATE_NAMES = frozenset({"os", "subprocess", "popen", "system", "eval", "exec", "import", "lipsum", "cycler"})


def _dotted(node: ast.expr) -> str | None:
    parts = []
    while isinstance(node, ast.Attribute):
        parts.append(node.attr)
        node = node.value
    if isinstance(node, ast.Name):
        parts.append(node.id)
        return ".".join(reversed(parts))
    return None


def torchscript_issues(source: str, where: str) -> list[Issue]:
    """Calls in TorchScript source that reach files or processes when the model runs."""
    try:
        tree = ast.parse(source)
    except (SyntaxError, ValueError, RecursionError, MemoryError) as exc:
        return [("torchscript.unparsable", "high", f"{where}: TorchScript code does not parse ({exc})"[:300])]
    issues: list[Issue] = []
    for node in ast.walk(tree):
        if not isinstance(node, ast.Call):
            continue
        name = _dotted(node.func)
        if name is None:
            continue
        root, _, _ = name.partition(".")
        last = name.rpartition(".")[2]
        if (root in _TORCHSCRIPT_ROOTS and last in _TORCHSCRIPT_IO) or name in _BARE_CALLS:
            issues.append(
                (
                    "torchscript.code-io",
                    "critical",
                    f"{where}:{node.lineno}: TorchScript code calls {name}, which reaches files or processes",
                )
            )
    return issues


def chat_template_issues(template: str, where: str) -> list[Issue]:
    """What a Jinja chat template reaches beyond the messages it formats, from jinja2's parse tree."""
    try:
        import jinja2
        from jinja2 import nodes
    except ImportError:  # without jinja2, fall back to reading the text: never pass unread
        return _template_text_issues(template, where)
    try:
        tree = jinja2.Environment(extensions=["jinja2.ext.loopcontrols", "jinja2.ext.do"]).parse(template)
    except (jinja2.TemplateError, RecursionError, MemoryError, ValueError, OverflowError) as exc:
        return [("gguf.template-code", "high", f"{where}: the chat template does not parse ({exc})"[:300])]
    reasons = sorted(set(_template_reasons(tree, nodes)))
    if not reasons:
        return []
    more = f" (and {len(reasons) - 4} more)" if len(reasons) > 4 else ""
    return [("gguf.template-code", "critical", f"{where}: the template " + "; ".join(reasons[:4]) + more)]


def _template_reasons(tree: Any, nodes: Any) -> Iterator[str]:
    for node in tree.find_all(nodes.Node):
        if isinstance(node, nodes.Getattr) and (_DUNDER.search(node.attr) or node.attr in _TEMPLATE_NAMES):
            yield f"reads the attribute {node.attr!r}"
        elif isinstance(node, nodes.Getitem):
            yield from _subscript_reasons(node, nodes)
        elif isinstance(node, nodes.Filter) and node.name == "attr":
            yield "uses the attr filter (attribute access by a computed name)"
        elif isinstance(node, nodes.Const) and isinstance(node.value, str) and _DUNDER.search(node.value):
            yield f"holds the string {node.value!r} (a Python internal name after decoding)"
        elif isinstance(node, (nodes.Concat, nodes.Add)):
            folded = _fold(node, nodes)
            if folded is not None and _DUNDER.search(folded):
                yield f"builds the name {folded!r}"
        elif isinstance(node, nodes.Name) and node.name in _TEMPLATE_NAMES:
            yield f"uses the name {node.name!r}"


def _subscript_reasons(node: Any, nodes: Any) -> Iterator[str]:
    key = node.arg
    if isinstance(key, nodes.Const):
        if isinstance(key.value, str) and (_DUNDER.search(key.value) or key.value in _TEMPLATE_NAMES):
            yield f"reads the item {key.value!r}"
    elif isinstance(key, (nodes.Concat, nodes.Add, nodes.Filter, nodes.Mod)):
        yield "reads an item whose name the template computes"


def _fold(node: Any, nodes: Any) -> str | None:
    """The string a ``~``/``+`` chain of constants makes, or None when a part is not a constant."""
    if isinstance(node, nodes.Const):
        # Only strings spell names; str() of a huge integer constant would raise (digit limit).
        return node.value if isinstance(node.value, str) else None
    if isinstance(node, nodes.Concat):
        parts = [_fold(item, nodes) for item in node.nodes]
        return None if any(part is None for part in parts) else "".join(part or "" for part in parts)
    if isinstance(node, nodes.Add):
        left, right = _fold(node.left, nodes), _fold(node.right, nodes)
        return None if left is None or right is None else left + right
    return None


_TEMPLATE_TEXT = re.compile(
    r"__\w+__|\battr\b|\\x5f|\\u005f|\bos\.|popen|subprocess|\beval\s*\(|\bexec\s*\(|\bimport\b", re.IGNORECASE
)


def _template_text_issues(template: str, where: str) -> list[Issue]:
    if _TEMPLATE_TEXT.search(template):
        return [("gguf.template-code", "critical", f"{where}: reaches Python internals (jinja2 not installed)")]
    return []
