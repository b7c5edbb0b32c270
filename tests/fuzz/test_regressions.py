"""Every input a fuzzer found a crash with, replayed through its target (``regressions/<target>/<name>``).

Each file is committed with the fix it drove; the test fails again if the crash comes back.
``crashes/`` holds inputs whose fix belongs to code owned elsewhere; they are not replayed here.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.fuzz._harness import run_bounded
from tests.fuzz._targets import TARGETS

REGRESSIONS = Path(__file__).resolve().parent / "regressions"
CASES = sorted(path for path in REGRESSIONS.glob("*/*") if path.is_file() and path.name != "README.md")


@pytest.mark.parametrize("path", CASES, ids=[f"{path.parent.name}/{path.name}" for path in CASES])
def test_regression_input_holds_the_property(path: Path) -> None:
    run_bounded(TARGETS[path.parent.name], path.read_bytes())


def test_regression_folders_name_targets() -> None:
    assert CASES
    assert {path.parent.name for path in CASES} <= set(TARGETS)
