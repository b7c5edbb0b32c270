"""The public surface of tracemark.tlog: sorted ``__all__``, every name resolves, primitives apart."""

from __future__ import annotations

import importlib

import pytest


def _isort_style(symbol: str) -> tuple[int, str]:
    if symbol.isupper():
        return (0, symbol)
    return (1, symbol) if symbol[0].isupper() else (2, symbol)


@pytest.mark.parametrize("name", ["tracemark.tlog", "tracemark.tlog.merkle"])
def test_all_is_sorted_and_resolves(name: str) -> None:
    module = importlib.import_module(name)
    exported = list(module.__all__)
    assert exported == sorted(exported, key=_isort_style)
    for symbol in exported:
        assert hasattr(module, symbol), symbol
        assert not symbol.startswith("_")


def test_public_callables_have_docstrings() -> None:
    for name in ("tracemark.tlog", "tracemark.tlog.merkle"):
        module = importlib.import_module(name)
        for symbol in module.__all__:
            value = getattr(module, symbol)
            if callable(value):
                assert (value.__doc__ or "").strip(), f"{name}.{symbol} has no docstring"


def test_the_library_does_not_import_the_keyring() -> None:
    import subprocess
    import sys

    code = "import sys, tracemark.tlog; print(any(m.startswith('tracemark.keys') for m in sys.modules))"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "False"
