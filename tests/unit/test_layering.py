"""Layering: no module imports a private module (or private name) of another tracemark package.

A package's private modules (``tracemark.tlog._note``) are its implementation; other packages use
what its ``__init__`` exports.  Root-level private modules (``tracemark._fs``, ``tracemark._stats``)
are shared by every package and may be imported anywhere.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import tracemark

SOURCE = Path(tracemark.__file__).parent

#: Known violations in files being moved by other work; each entry is (importing file, imported module).
#: Remove an entry when its file imports the public name instead.
ALLOWED: frozenset[tuple[str, str]] = frozenset()


def _package(relative: Path) -> str:
    """The tracemark package a source file belongs to ("" for a root-level module)."""
    return relative.parts[0] if len(relative.parts) > 1 else ""


def _imported_modules(tree: ast.Module, module_name: str, is_package: bool) -> Iterator[tuple[int, str]]:
    """(line, dotted name) of every module or name imported, relative imports resolved."""
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = module_name.split(".")
                anchor = parts if is_package else parts[:-1]
                anchor = anchor[: len(anchor) - (node.level - 1)]
                base = ".".join([*anchor, base]) if base else ".".join(anchor)
            for alias in node.names:
                yield node.lineno, f"{base}.{alias.name}"


def _private_target(dotted: str) -> str | None:
    """The private part of ``dotted`` inside a tracemark subpackage, as ``tracemark.<pkg>._x``; else None."""
    parts = dotted.split(".")
    if parts[0] != "tracemark" or len(parts) < 3 or parts[1].startswith("_"):
        return None
    for index in range(2, len(parts)):
        if parts[index].startswith("_") and not parts[index].startswith("__"):
            return ".".join(parts[: index + 1])
    return None


def _violations() -> list[tuple[str, int, str]]:
    found: set[tuple[str, int, str]] = set()
    for path in sorted(SOURCE.rglob("*.py")):
        relative = path.relative_to(SOURCE)
        is_package = path.name == "__init__.py"
        module_parts = relative.with_suffix("").parts
        module_name = ".".join(["tracemark", *(module_parts[:-1] if is_package else module_parts)])
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        for line, dotted in _imported_modules(tree, module_name, is_package):
            target = _private_target(dotted)
            if target is not None and target.split(".")[1] != _package(relative):
                found.add((relative.as_posix(), line, target))
    return sorted(found)


def test_no_module_imports_another_packages_private_module() -> None:
    unexpected = [v for v in _violations() if (v[0], v[2]) not in ALLOWED]
    assert not unexpected, "import the package's public name instead:\n" + "\n".join(
        f"  src/tracemark/{file}:{line}: {target}" for file, line, target in unexpected
    )


def test_allow_list_has_no_stale_entries() -> None:
    still_needed = {(file, target) for file, _, target in _violations()}
    assert not ALLOWED - still_needed, f"remove from ALLOWED: {sorted(ALLOWED - still_needed)}"


def test_the_check_sees_every_form_of_import() -> None:
    source = (
        "import tracemark.tlog._note\n"
        "from tracemark.tlog._merkle import as_hash\n"
        "from tracemark.tlog import _receipt\n"
        "from tracemark.tlog.merkle import hash_leaf\n"
        "from tracemark._fs import atomic_write\n"
        "def f():\n    from tracemark.text._units import bulk_scheme\n"
    )
    found = [_private_target(d) for _, d in _imported_modules(ast.parse(source), "tracemark.cli.x", is_package=False)]
    assert found == [
        "tracemark.tlog._note",
        "tracemark.tlog._merkle",
        "tracemark.tlog._receipt",
        None,
        None,
        "tracemark.text._units",
    ]
