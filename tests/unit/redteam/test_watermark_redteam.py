"""tracemark redteam watermark at a tiny N: the report's schema, its cells, targets, table and HTML."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

from tracemark.cli import main

pytest.importorskip("torch")

HAS_MATPLOTLIB = importlib.util.find_spec("matplotlib") is not None


def test_text_red_team_on_the_reference_model(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out, page = tmp_path / "r.json", tmp_path / "r.html"
    status = main(["redteam", "watermark", "--scheme", "native", "--samples", "12", "--tokens", "64",
                   "--attack", "zero-width", "--attack", "homoglyph", "--attack", "span-in-human-text",
                   "--no-emoji-generation", "--threads", "1", "--spoof-samples", "10", "--spoof-texts", "4", "--quiet",
                   "--output", str(out), "--html", str(page)])  # fmt: skip
    assert status == 0
    table = capsys.readouterr().out
    assert "zero-width" in table
    assert "TPR" in table
    report = json.loads(out.read_text())
    assert report["format"] == "tracemark.redteam.watermark/v1"
    assert report["medium"] == "text"
    cells = {(c["attack"], c["strength"]): c for c in report["cells"]}
    clean = cells[("none", 0.0)]
    assert clean["tpr"]["trials"] == 12
    assert clean["fpr"]["trials"] == 12
    assert clean["tpr"]["value"] >= 0.9
    assert clean["fpr"]["value"] == 0.0  # 64 marked tokens at p <= 1e-6
    assert cells[("zero-width", 1.0)]["tpr"]["value"] == clean["tpr"]["value"]  # canonicalisation undoes it
    assert ("regeneration", 0.5) in cells
    assert ("stealing", 10.0) in cells
    assert cells[("stealing", 10.0)]["kind"] == "spoof"
    assert cells[("stealing", 10.0)]["tpr"]["trials"] == 4
    for cell in report["cells"]:
        for side in ("tpr", "fpr"):
            rate = cell[side]
            assert rate["low"] <= (rate["value"] or 0.0) <= rate["high"]
    assert {t["id"] for t in report["targets"]} >= {"text-character-tpr/native", "text-spoof/native"}
    assert all(t["met"] is None for t in report["targets"])  # reduced N: targets are not judged
    html = page.read_text()
    assert "Targets" in html
    assert "zero-width" in html
    assert ("data:image/png;base64," in html) == HAS_MATPLOTLIB


def test_image_red_team_and_averaging(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    pytest.importorskip("PIL")
    from tracemark.media import MediaKey
    from tracemark.redteam import ImageRedTeam, ImageRedTeamOptions

    options = ImageRedTeamOptions(images=2, size=256, attacks=("none", "jpeg", "flip"), averaging=(3,),
                                  averaging_trials=1)  # fmt: skip
    report = ImageRedTeam(MediaKey.from_secret(bytes(range(32))), options).run()
    cells = {(c.attack, c.strength): c for c in report.cells}
    assert cells[("none", 0.0)].tpr.successes == 2
    assert cells[("none", 0.0)].fpr.successes == 0
    assert cells[("jpeg", 90.0)].tpr.successes == 2
    assert all(c.fpr.successes == 0 for c in report.cells)
    assert {"averaging-removal", "averaging-forgery"} <= {c.attack for c in report.cells}
    assert report.to_json()["medium"] == "image"
    assert [t.id for t in report.targets] == ["image-averaging-forgery", "image-averaging-removal"]
