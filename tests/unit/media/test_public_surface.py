"""``tracemark.media`` exports a sorted, importable ``__all__`` and needs no torch."""

from __future__ import annotations

import subprocess
import sys

import tracemark.media


def test_all_is_sorted_and_resolves() -> None:
    exported = list(tracemark.media.__all__)
    order = sorted(exported, key=lambda s: (0 if s.isupper() else 1 if s[0].isupper() else 2, s))
    assert exported == order
    for symbol in exported:
        assert hasattr(tracemark.media, symbol)


def test_media_does_not_import_torch() -> None:
    code = "import sys, tracemark.media, tracemark.cli.media; assert 'torch' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True)
