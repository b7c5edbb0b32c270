"""The public surfaces of tracemark.supply and tracemark.advisories: sorted, resolvable, private modules apart."""

from __future__ import annotations

import importlib

import pytest


def _ruff_order(symbol: str) -> tuple[int, str]:
    if symbol.isupper():
        return (0, symbol)
    return (1, symbol) if symbol[0].isupper() else (2, symbol)


@pytest.mark.parametrize("name", ["tracemark.supply", "tracemark.advisories"])
def test_all_is_sorted_and_resolves(name: str) -> None:
    module = importlib.import_module(name)
    exported = list(module.__all__)
    assert exported == sorted(exported, key=_ruff_order)
    for symbol in exported:
        assert hasattr(module, symbol)
        assert not symbol.startswith("_")


def test_advisories_contract_for_other_capabilities() -> None:
    """The names the Electron audit imports stay available."""
    from tracemark.advisories import Advisory, AdvisoryDatabaseError, OsvDatabase
    from tracemark.errors import SupplyChainError, TracemarkError

    assert issubclass(AdvisoryDatabaseError, SupplyChainError)
    assert issubclass(AdvisoryDatabaseError, TracemarkError)
    fields = set(Advisory.__dataclass_fields__)
    assert fields == {"id", "aliases", "summary", "severity", "fixed", "modified"}
    assert callable(OsvDatabase.open)
    assert callable(OsvDatabase.affected)
