"""The package metadata a library should have, checked on the installed distribution.

The install matrix (``scripts/ci/install_matrix.py``) runs this suite against the built wheel, so
these checks hold for what users download, not only for the editable checkout.
"""

from __future__ import annotations

import importlib.util
import re
import tomllib
from importlib import metadata
from types import ModuleType

import pytest

import tracemark
from tests.conftest import REPO

DIST = metadata.distribution("tracemark")


def _requirements() -> list[str]:
    return DIST.requires or []


def _load_script(name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(name, REPO / "scripts" / "ci" / f"{name}.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_one_version() -> None:
    """The version lives in tracemark/__init__.py; the build reads it from there."""
    assert DIST.version == tracemark.__version__
    pyproject = tomllib.loads((REPO / "pyproject.toml").read_text())
    assert "version" in pyproject["project"]["dynamic"]
    assert "version" not in pyproject["project"]


def test_the_changelog_has_this_version() -> None:
    changelog = (REPO / "CHANGELOG.md").read_text()
    assert re.search(rf"^## \[{re.escape(tracemark.__version__)}\]", changelog, re.MULTILINE)


def test_licence() -> None:
    assert DIST.metadata["License-Expression"] == "Apache-2.0"
    text = (REPO / "LICENSE").read_text()
    assert "Apache License" in text
    assert "Version 2.0, January 2004" in text
    assert "END OF TERMS AND CONDITIONS" in text


def test_no_exact_pins_and_no_development_tools() -> None:
    """Extras take ranges (the CPU torch wheel is chosen by a constraints file); dev tools are a group."""
    pinned = [r for r in _requirements() if re.search(r"(===?)\s*[0-9]", r.split(";")[0])]
    assert pinned == []
    extras = set(DIST.metadata.get_all("Provides-Extra") or [])
    assert extras == {
        "text", "service", "supply", "electron", "media", "postgres", "scale", "agents", "redteam", "all"
    }  # fmt: skip
    names = {re.split(r"[\s\[<>=!~;]", r, maxsplit=1)[0].lower() for r in _requirements()}
    assert names.isdisjoint({"pytest", "mypy", "ruff", "hypothesis", "selenium", "httpx", "uvloop", "httptools"})


def test_every_dependency_has_a_lower_bound_the_matrix_tests() -> None:
    lowest = _load_script("lowest_constraints")
    pyproject = tomllib.loads((REPO / "pyproject.toml").read_text())
    bounds = lowest.lower_bounds(pyproject)
    for requirement in _requirements():
        name = re.split(r"[\s\[<>=!~;]", requirement, maxsplit=1)[0].lower().replace("_", "-")
        if name != "tracemark":
            assert name in bounds, requirement


def test_lowest_constraints_take_the_highest_lower_bound() -> None:
    lowest = _load_script("lowest_constraints")
    project = {
        "name": "demo",
        "dependencies": ["numpy>=1.26", "Tokenizers >=0.20 ; python_version >= '3.11'"],
        "optional-dependencies": {"a": ["tokenizers>=0.23.1,<1", "demo[b]"], "b": ["cyclonedx-python-lib[x]>=11,<12"]},
    }
    assert lowest.lower_bounds({"project": project}) == {
        "numpy": "1.26",
        "tokenizers": "0.23.1",
        "cyclonedx-python-lib": "11",
    }
    project["dependencies"] = ["scipy"]
    with pytest.raises(ValueError, match="lower bound"):
        lowest.lower_bounds({"project": project})


def test_the_held_torch_is_inside_the_text_range() -> None:
    held = re.search(r"^torch==([0-9.]+)$", (REPO / "scripts/ci/constraints-torch-cpu.txt").read_text(), re.MULTILINE)
    assert held is not None
    torch = next(r for r in _requirements() if r.startswith("torch"))
    low = re.search(r">=([0-9.]+)", torch)
    assert low is not None
    as_tuple = [tuple(int(p) for p in v.split(".")) for v in (held[1], low[1])]
    assert as_tuple[0] >= as_tuple[1]
