"""Unmarked text that every Python installation carries, for calibration and tests.

Two corpora of human-written text, read offline from the running interpreter:

* ``prose``: the language reference topics of ``pydoc_data`` and the docstrings of the
  standard library (parsed with ``ast``, never imported);
* ``code``: the standard library's Python source, which is repetitive by nature and
  so the hard case for a detector that forgets to de-duplicate.
"""

from __future__ import annotations

import ast
import sysconfig
from collections.abc import Iterator
from pathlib import Path


def _stdlib_files() -> list[Path]:
    root = Path(sysconfig.get_paths()["stdlib"])
    skip = {"site-packages", "test", "tests", "idlelib", "lib2to3", "__pycache__"}
    return sorted(p for p in root.rglob("*.py") if not skip.intersection(p.relative_to(root).parts))


def python_source(limit_chars: int | None = None) -> Iterator[str]:
    """Standard-library source files, in a fixed order."""
    produced = 0
    for path in _stdlib_files():
        try:
            text = path.read_text(encoding="utf-8")
        except (UnicodeDecodeError, OSError):
            continue
        yield text
        produced += len(text)
        if limit_chars is not None and produced >= limit_chars:
            return


def python_prose(limit_chars: int | None = None) -> Iterator[str]:
    """Reference-manual topics, then standard-library docstrings, in a fixed order."""
    from pydoc_data.topics import topics

    produced = 0
    for name in sorted(topics):
        yield topics[name]
        produced += len(topics[name])
        if limit_chars is not None and produced >= limit_chars:
            return
    for path in _stdlib_files():
        for doc in docstrings(path, longer_than=200):
            yield doc
            produced += len(doc)
        if limit_chars is not None and produced >= limit_chars:
            return


def docstrings(path: Path, *, longer_than: int) -> Iterator[str]:
    """The module, class and function docstrings of one Python file longer than ``longer_than`` characters.

    A file that does not parse (or is not UTF-8) gives nothing.
    """
    try:
        tree = ast.parse(path.read_text(encoding="utf-8"))
    except (SyntaxError, UnicodeDecodeError, OSError, ValueError, RecursionError):
        return
    for node in ast.walk(tree):
        if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef):
            doc = ast.get_docstring(node)
            if doc and len(doc) > longer_than:
                yield doc


CORPORA = {"prose": python_prose, "code": python_source}
