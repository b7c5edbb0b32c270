"""The public surface: each package's ``__all__`` is sorted, importable and private modules stay private."""

from __future__ import annotations

import importlib

import pytest


def _isort_style(symbol: str) -> tuple[int, str]:
    """Ruff's RUF022 order: CONSTANTS, then CamelCase, then everything else."""
    if symbol.isupper():
        return (0, symbol)
    return (1, symbol) if symbol[0].isupper() else (2, symbol)


PUBLIC_PACKAGES = ["tracemark", "tracemark.errors", "tracemark.keys", "tracemark.text", "tracemark.cli"]


@pytest.mark.parametrize("name", PUBLIC_PACKAGES)
def test_all_is_sorted_and_resolves(name: str) -> None:
    module = importlib.import_module(name)
    exported = list(module.__all__)
    assert exported == sorted(exported, key=_isort_style), f"{name}.__all__ is not sorted"
    for symbol in exported:
        assert hasattr(module, symbol), f"{name}.{symbol} is listed in __all__ but missing"
        assert not symbol.startswith("_") or symbol == "__version__"


def test_every_error_descends_from_the_root() -> None:
    from tracemark import errors

    for symbol in errors.__all__:
        cls = getattr(errors, symbol)
        assert issubclass(cls, errors.TracemarkError)
        assert isinstance(cls.exit_code, int)
        assert cls.exit_code > 0


def test_detection_does_not_import_torch() -> None:
    import subprocess
    import sys

    code = "import sys, tracemark.text, tracemark.text._detect; print('torch' in sys.modules)"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "False"
