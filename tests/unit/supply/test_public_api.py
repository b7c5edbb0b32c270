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


def test_the_cli_loads_without_the_supply_extra() -> None:
    """The tracemark CLI imports every capability; the supply verbs must not need their extras to load."""
    import subprocess
    import sys

    code = (
        "import sys\n"
        "class Block:\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        "        if name.split('.')[0] in ('packaging', 'model_signing', 'cyclonedx', 'jsonschema', 'OpenSSL'):\n"
        "            raise ImportError(name)\n"
        "sys.meta_path.insert(0, Block())\n"
        "import tracemark.supply, tracemark.advisories, tracemark.cli.supply\n"
        "from tracemark.supply import scan_bytes\n"
        "print(scan_bytes(b'\\x80\\x02cos\\nsystem\\n)R.').findings[0].rule_id)\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60)
    assert result.stdout.strip() == "pickle.global-denied"
