"""The Python examples of the design notes run as written, from the repository root.

Only notes whose examples need nothing outside the repository are listed; ``docs/theft.md``'s
example queries a suspect endpoint and stays an illustration.
"""

from __future__ import annotations

import re
import subprocess
import sys

import pytest

from tests.conftest import REPO

RUNNABLE = ("docs/electron.md", "docs/supply.md")
_BLOCK = re.compile(r"^```python\n(.*?)^```", re.MULTILINE | re.DOTALL)


def _examples() -> list[tuple[str, int, str]]:
    return [
        (name, number, block)
        for name in RUNNABLE
        for number, block in enumerate(_BLOCK.findall((REPO / name).read_text(encoding="utf-8")), start=1)
    ]


def test_every_listed_note_has_an_example() -> None:
    assert {name for name, _, _ in _examples()} == set(RUNNABLE)


@pytest.mark.parametrize(
    ("name", "number", "code"), [pytest.param(*example, id=f"{example[0]}#{example[1]}") for example in _examples()]
)
def test_example_runs(name: str, number: int, code: str) -> None:
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=300, check=False
    )
    assert result.returncode == 0, f"{name} example {number} failed:\n{result.stderr[-2000:]}"
