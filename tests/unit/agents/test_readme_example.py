"""The README's agent guard example runs as written (its ``python`` block under "Agent guard")."""

from __future__ import annotations

import re
import subprocess
import sys

from tests.conftest import REPO


def test_readme_guard_example_runs() -> None:
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    section = readme.split("## Agent guard", 1)[1].split("\n## ", 1)[0]
    block = re.findall(r"^```python\n(.*?)^```", section, re.MULTILINE | re.DOTALL)[0]
    result = subprocess.run([sys.executable, "-c", block], capture_output=True, text=True, timeout=120, check=False)
    assert result.returncode == 0, result.stderr
    assert "sent to bob@example.com" in result.stdout
    assert "refused: tool call send_email deny" in result.stdout
    assert "tool:read_inbox#2!instruction" in result.stdout
