"""The committed corpus: every malicious file is refused, no benign file is flagged."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tracemark.supply import scan_path

CORPUS = Path(__file__).resolve().parents[2] / "fixtures" / "supply"
MANIFEST = json.loads((CORPUS / "manifest.json").read_text())
MALICIOUS = [entry["file"] for entry in MANIFEST if entry["label"] == "malicious"]
EXPECTED = {entry["file"]: entry["expect"] for entry in MANIFEST if entry["label"] == "malicious"}
BENIGN = [entry["file"] for entry in MANIFEST if entry["label"] == "benign"]


def test_corpus_is_large_enough() -> None:
    assert len(MALICIOUS) >= 60
    assert len(BENIGN) >= 50
    on_disk = {str(p.relative_to(CORPUS)) for p in CORPUS.glob("*/*")}
    assert on_disk == set(MALICIOUS) | set(BENIGN)


@pytest.mark.parametrize("name", MALICIOUS)
def test_malicious_file_is_refused(name: str) -> None:
    report = scan_path(CORPUS / name)
    assert report.fails("high"), f"{name} passed: {report.findings}"
    assert EXPECTED[name] in {f.rule_id for f in report.findings}, "refused, but not for the labelled reason"


@pytest.mark.parametrize("name", BENIGN)
def test_benign_file_passes(name: str) -> None:
    report = scan_path(CORPUS / name)
    assert report.findings == (), [f.message for f in report.findings]
    assert report.files, "nothing was scanned"


def test_whole_benign_folder_scans_clean() -> None:
    report = scan_path(CORPUS / "benign")
    assert report.findings == ()
    formats = {f.format for f in report.files}
    assert {"pytorch-zip", "pytorch-legacy", "pickle", "npy", "npy-object", "safetensors", "gguf", "onnx"} <= formats
