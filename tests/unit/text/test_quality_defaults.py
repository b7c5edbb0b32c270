"""The defaults are the point of the recorded quality-detectability curve the docs chose, and the docs show it (#23)."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from tracemark.text._schemes import kgw, native

REPO = Path(__file__).resolve().parents[3]


def _curve() -> dict[str, dict[str, Any]]:
    settings: dict[str, dict[str, Any]] = json.loads((REPO / "bench/results/text_quality.json").read_text())["settings"]
    return settings


@pytest.mark.parametrize(
    ("scheme", "gamma", "delta"),
    [
        ("native", native.DEFAULT_PARAMS["gamma"], native.DEFAULT_PARAMS["delta"]),
        ("kgw", kgw.DEFAULT_PARAMS["greenlist_ratio"], kgw.DEFAULT_PARAMS["bias"]),
    ],
)
def test_defaults_sit_at_the_knee_of_the_recorded_curve(scheme: str, gamma: float, delta: float) -> None:
    # before #23 the defaults were not measured against quality; the curve put them at gamma 0.25, delta 2:
    # every 100-token answer detected, where delta 1 finds under half and delta 3 costs far more perplexity
    curve = _curve()
    chosen = curve[f"{scheme} g={gamma:g} d={delta:.1f}"]
    weaker = curve[f"{scheme} g={gamma:g} d={delta - 1:.1f}"]
    stronger = curve[f"{scheme} g={gamma:g} d={delta + 1:.1f}"]
    assert chosen["detected_at_100"] == 1.0
    assert weaker["detected_at_100"] < 0.5
    assert stronger["perplexity_ratio_to_unmarked"] - 1 > 2 * (chosen["perplexity_ratio_to_unmarked"] - 1)


def test_the_docs_table_is_the_recorded_curve() -> None:
    doc = (REPO / "docs/text-watermark.md").read_text()
    section = doc[doc.index("## Quality against detectability") :]
    rows = {
        cells[0]: cells[1:]
        for line in section.splitlines()
        if line.startswith("| ") and not line.startswith("| setting")
        for cells in [[c.strip() for c in line.strip("|").split("|")]]
    }
    for name, measured in _curve().items():
        assert name in rows, name
        perplexity, ratio, at_50, log_50, at_100, log_100 = rows[name]
        assert float(perplexity) == pytest.approx(measured["median_perplexity"], abs=0.0501)
        assert float(ratio) == pytest.approx(measured["perplexity_ratio_to_unmarked"], abs=0.00501)
        if "detected_at_50" not in measured:  # the unmarked row: perplexity only
            assert {at_50, log_50, at_100, log_100} == {"—"}
            continue
        assert float(at_50) == pytest.approx(measured["detected_at_50"], abs=0.000501)
        assert float(at_100) == pytest.approx(measured["detected_at_100"], abs=0.000501)
        assert float(re.sub("−", "-", log_100)) == pytest.approx(measured["median_log10_p_at_100"], abs=0.0501)
        assert float(re.sub("−", "-", log_50)) == pytest.approx(measured["median_log10_p_at_50"], abs=0.0501)
