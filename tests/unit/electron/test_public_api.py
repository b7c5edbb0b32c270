"""The public surface of tracemark.electron: a sorted ``__all__`` of names that exist."""

from __future__ import annotations

import tracemark.electron as electron


def _ruff_order(symbol: str) -> tuple[int, str]:
    if symbol.isupper():
        return (0, symbol)
    return (1, symbol) if symbol[0].isupper() else (2, symbol)


def test_all_is_sorted_and_resolves() -> None:
    exported = list(electron.__all__)
    assert exported == sorted(exported, key=_ruff_order)
    for symbol in exported:
        assert hasattr(electron, symbol)
        assert not symbol.startswith("_")
