"""The README's shell examples run as written.

Every block fenced as ```sh after the first one (``make run`` / ``make test``, which this
suite is part of) runs top to bottom under ``bash -euo pipefail`` in a scratch folder, with
a fresh ``TRACEMARK_HOME`` and the running interpreter's ``tracemark`` standing in for
``.venv/bin/tracemark``.  Blocks fenced as plain ``` hold placeholder paths (your model, your
key) and are illustrations, not runnable examples.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import REPO

README = REPO / "README.md"
_BLOCK = re.compile(r"^```sh\n(.*?)^```", re.MULTILINE | re.DOTALL)


def shell_blocks() -> list[str]:
    """The README's ```sh blocks after the set-up block, in order."""
    return _BLOCK.findall(README.read_text())[1:]


def test_the_readme_has_runnable_examples() -> None:
    blocks = shell_blocks()
    assert len(blocks) >= 2
    assert all(".venv/bin/tracemark" in block for block in blocks)


def test_the_readme_examples_run_as_written(tmp_path: Path) -> None:
    workdir = tmp_path / "readme"
    workdir.mkdir()
    shutil.copy(README, workdir / "README.md")
    venv_bin = workdir / ".venv" / "bin"
    venv_bin.mkdir(parents=True)
    (venv_bin / "tracemark").symlink_to(Path(sys.executable).parent / "tracemark")
    env = {**os.environ, "TRACEMARK_HOME": str(tmp_path / "home"), "OMP_NUM_THREADS": "1"}
    for number, block in enumerate(shell_blocks(), start=2):
        result = subprocess.run(
            ["bash", "-euo", "pipefail", "-c", block],
            cwd=workdir,
            env=env,
            capture_output=True,
            text=True,
            timeout=900,
            check=False,
        )
        if result.returncode != 0:
            pytest.fail(f"README sh block {number} exited {result.returncode}:\n{block}\n{result.stderr[-2000:]}")
    # what the examples promise: marked text detected as such, a receipt that verifies offline
    detect = subprocess.run(
        [str(venv_bin / "tracemark"), "text", "detect", "marked.txt"],
        cwd=workdir,
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    assert detect.stdout.startswith("marked: yes")
    assert (workdir / "receipt.txt").read_text().strip()
