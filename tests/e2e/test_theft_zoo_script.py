"""The zoo script builds every model the theft benchmarks name, and ``--resume`` completes a zoo bit for bit."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("torch")
pytest.importorskip("transformers")

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "build_theft_zoo.py"


def build(out: Path, *extra: str) -> None:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1"}
    command = [sys.executable, str(SCRIPT), "--out", str(out), "--scale", "smoke", *extra]
    subprocess.run(command, check=True, env=env, capture_output=True, timeout=600)


@pytest.mark.slow
def test_smoke_zoo_and_resume(tmp_path: Path) -> None:
    zoo = tmp_path / "zoo"
    build(zoo)
    manifest = json.loads((zoo / "manifest.json").read_text())
    assert manifest["complete"] is True
    assert manifest["scale_name"] == "smoke"  # what the benchmarks record instead of the zoo's path
    models = dict(manifest["models"])
    students = {n for n, card in models.items() if card["role"] == "student"}
    for width in (1, 2):
        for share in (0, 5, 10, 100):
            assert {f"student-w{width}-{share}pct-1ep", f"student-w{width}-{share}pct-3ep"} <= students
    assert {"teacher-finetuned", "teacher-permuted", "teacher-int8", "teacher-pruned"} <= set(models)
    assert {"base", "independent-a", "independent-b", "independent-c"} <= set(models)
    assert set(manifest["keys"]) == {"w1", "w2"}

    # a zoo missing a 3-epoch student and an independent model is completed, the same bytes as before
    lost = ("student-w2-10pct-3ep", "independent-b")
    before = {name: (zoo / name / "model.safetensors").read_bytes() for name in lost}
    for name in lost:
        del manifest["models"][name]
    (zoo / "manifest.json").write_text(json.dumps(manifest))
    build(zoo, "--resume")
    resumed = json.loads((zoo / "manifest.json").read_text())
    assert resumed["complete"] is True
    assert set(resumed["models"]) == set(models)
    assert resumed["keys"] == manifest["keys"]
    for name in lost:
        assert (zoo / name / "model.safetensors").read_bytes() == before[name]
    assert resumed["models"]["student-w2-10pct-1ep"]["identical_to_earlier_build"] is True
    assert "student-w1-100pct-3ep" in resumed["resumed"]  # kept, not trained again
