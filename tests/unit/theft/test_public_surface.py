"""``tracemark.theft`` exposes a sorted, importable ``__all__`` and keeps torch out of its import."""

from __future__ import annotations

import subprocess
import sys

import tracemark.theft


def test_all_is_sorted_and_resolves() -> None:
    exported = list(tracemark.theft.__all__)
    order = [(0 if s.isupper() else 1 if s[0].isupper() else 2, s) for s in exported]
    assert order == sorted(order)
    for symbol in exported:
        assert hasattr(tracemark.theft, symbol)


def test_importing_theft_does_not_import_torch() -> None:
    code = "import sys, tracemark.theft; print('torch' in sys.modules)"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "False"
