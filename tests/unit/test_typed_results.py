"""Typed results: no ``dict[str, Any]`` anywhere in the package.

A result, row or JSON form with a fixed shape is a frozen dataclass or a ``TypedDict``; one whose
shape is open (a C2PA manifest, a scheme's parameters, parsed hostile JSON) is typed with
``tracemark._json.JSONObject`` / ``JSONValue`` and narrowed with ``isinstance`` before use.
``dict[str, Any]`` would switch mypy off for every value read from it, so it is not allowed.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import tracemark

SOURCE = Path(tracemark.__file__).parent


def _untyped_mappings(tree: ast.Module) -> Iterator[int]:
    """Line of every ``dict[str, Any]`` / ``Dict[str, Any]`` / ``Mapping[str, Any]`` subscript."""
    for node in ast.walk(tree):
        if not isinstance(node, ast.Subscript):
            continue
        base = node.value
        name = base.id if isinstance(base, ast.Name) else base.attr if isinstance(base, ast.Attribute) else ""
        if name not in {"dict", "Dict", "Mapping", "MutableMapping"}:
            continue
        arguments = node.slice
        if isinstance(arguments, ast.Tuple) and len(arguments.elts) == 2:
            key, value = arguments.elts
            if not (isinstance(key, ast.Name) and key.id == "str"):
                continue  # e.g. the pickle analyser's memo of simulated objects: not a JSON-like record
            if (isinstance(value, ast.Name) and value.id == "Any") or (
                isinstance(value, ast.Attribute) and value.attr == "Any"
            ):
                yield node.lineno


def _annotation_strings(tree: ast.Module) -> Iterator[tuple[int, ast.Module]]:
    """Annotations written as strings (``"dict[str, Any]"``), parsed, with their line."""
    for node in ast.walk(tree):
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and "Any]" in node.value:
            try:
                yield node.lineno, ast.parse(node.value)
            except SyntaxError:
                continue


def test_the_check_finds_each_spelling() -> None:
    sample = ast.parse("a: dict[str, Any]\nb: typing.Dict[str, typing.Any]\nc: Mapping[str, Any]\nd: dict[str, int]\n")
    assert sorted(_untyped_mappings(sample)) == [1, 2, 3]


def test_no_untyped_string_keyed_mappings_in_the_package() -> None:
    found: list[str] = []
    for path in sorted(SOURCE.rglob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        relative = path.relative_to(SOURCE.parent)
        found += [f"{relative}:{line}" for line in _untyped_mappings(tree)]
        found += [f"{relative}:{line}" for line, parsed in _annotation_strings(tree) if any(_untyped_mappings(parsed))]
    assert found == [], "type these as a TypedDict, a frozen dataclass or tracemark._json.JSONObject:\n" + "\n".join(
        found
    )
