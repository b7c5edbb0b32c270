"""The robustness row judges images as docs/ai-act.md says: it fails below 0.95 without attack, and
attacks are listed with their rates (weak below 0.5), never averaged into the pass rule."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace
from typing import cast

from tracemark.comply._assess import Findings, _robust
from tracemark.comply._report import Point, Status
from tracemark.comply._robustness import ImageRobustness, ResultFile


def _row(rates: dict[str, float]) -> tuple[str, str, tuple[str, ...]]:
    image = ImageRobustness(
        source=ResultFile(Path("media.json"), "0" * 64, "2026-12-07T00:00:00+00:00", "media"),
        method="tracemark qim.v2 (128 data bits)",
        rates=tuple(Point(0.0, rate, name) for name, rate in rates.items()),
        overall=min(rates.values()),
    )
    findings = SimpleNamespace(
        deployment=SimpleNamespace(modalities=("image",)), text_robustness=None, image_robustness=image
    )
    row = _robust(cast(Findings, findings))
    return row.status.value, row.summary, row.missing_layers


def test_clean_decoding_decides_and_weak_attacks_are_listed() -> None:
    status, detail, missing = _row({"none": 1.0, "jpeg50": 0.96, "crop20": 0.74, "rotate3+fill": 0.42})
    assert status == Status.PASS.value
    assert "weak under 1 attacks" in detail
    assert missing == ()


def test_a_mark_that_is_not_decoded_without_attack_fails() -> None:
    status, _, missing = _row({"none": 0.9, "jpeg50": 0.9})
    assert status == Status.FAIL.value
    assert missing == ("image watermark decoded without processing",)


def test_results_without_a_clean_rate_fail_closed() -> None:
    status, _, _ = _row({"jpeg50": 1.0})
    assert status == Status.FAIL.value
