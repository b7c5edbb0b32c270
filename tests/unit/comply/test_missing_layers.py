"""A deployment with one layer switched off gets a failing row that names the missing layer.

Each test runs the real check on the real image (marked, signed, logged by the repo's own code) or on
text the bundled reference model generates, then reads the row of the obligation the switch breaks.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.unit.comply.conftest import WriteDeployment, text_model_section
from tracemark.comply import CheckResult, Row, Status, load_deployment, run_check


def _check(path: Path, tmp_path: Path) -> CheckResult:
    return run_check(load_deployment(path), tmp_path / "report")


def _row(result: CheckResult, obligation: str) -> Row:
    return result.report.row(obligation)


def test_all_image_layers_on_pass_and_the_json_says_so(write_deployment: WriteDeployment, tmp_path: Path) -> None:
    result = _check(write_deployment(detection='endpoint = "in-process"\n'), tmp_path)
    for obligation in (
        "art50.2-image-watermark",
        "art50.2-image-metadata",
        "art50.2-image-soft-binding",
        "art50.2-logged",
        "art50.2-detection-interface",
        "art12-log-integrity",
        "art50.4-label",
    ):
        row = _row(result, obligation)
        assert row.status is Status.PASS, (obligation, row.summary)
        assert row.missing_layers == ()
    detection = _row(result, "art50.2-detection-interface")
    resolved = [fact.value for fact in detection.facts if fact.name == "GET /matches/byBinding"]
    assert resolved == ["HTTP 200: 1 manifest(s), image's found: True"]  # a third party resolves the soft binding
    metadata = _row(result, "art50.2-image-metadata")
    assert any("trainedAlgorithmicMedia: yes" in fact.value for fact in metadata.facts)
    document = json.loads((tmp_path / "report" / "report.json").read_text())
    rows = {row["id"]: row for row in document["obligations"]}
    assert rows["art50.2-image-metadata"]["status"] == "pass"
    for evidence in rows["art50.2-image-metadata"]["evidence"]:
        assert (tmp_path / "report" / evidence["path"]).is_file()


def test_no_c2pa_fails_the_signed_metadata_row(write_deployment: WriteDeployment, tmp_path: Path) -> None:
    path = write_deployment(image='watermark = true\nc2pa = false\ninputs = ["images/hills.jpg"]\n')
    result = _check(path, tmp_path)
    metadata = _row(result, "art50.2-image-metadata")
    assert metadata.status is Status.FAIL
    assert metadata.missing_layers == ("C2PA signed metadata",)
    assert _row(result, "art50.2-image-soft-binding").status is Status.FAIL
    # the watermark alone is still there, and found: the other layer is not rounded down either
    assert _row(result, "art50.2-image-watermark").status is Status.PASS
    # a watermark-only image has no manifest id, so the log cannot record it: that is a red line too
    logged = _row(result, "art50.2-logged")
    assert logged.status is Status.FAIL
    assert "log entry for image-0" in logged.missing_layers
    assert result.report.verdict == "fails"
    assert any("C2PA signed metadata" in line for line in result.report.red_lines())
    verify = json.loads((tmp_path / "report" / "images" / "image-0.verify.json").read_text())
    assert verify["outcome"] == "watermark-only"


def test_unlogged_outputs_fail_the_logging_row(write_deployment: WriteDeployment, tmp_path: Path) -> None:
    path = write_deployment(log="record_outputs = false\nwitness = true\nretention_days = 190\n")
    result = _check(path, tmp_path)
    logged = _row(result, "art50.2-logged")
    assert logged.status is Status.FAIL
    assert logged.missing_layers == ("transparency log",)
    assert not (tmp_path / "report" / "receipts").exists()
    assert _row(result, "art50.2-image-metadata").status is Status.PASS


def test_a_floor_too_short_for_the_watermark_fails_the_floor_row(
    write_deployment: WriteDeployment, tmp_path: Path
) -> None:
    pytest.importorskip("torch", reason="generation needs the text extra")
    path = write_deployment(
        models=text_model_section(),
        text='watermark = true\nmin_tokens = 50\nseed = 3\nprompts = ["The documentation explains how"]\n',
    )
    result = _check(path, tmp_path)
    floor = _row(result, "art50.2-text-floor")
    assert floor.status is Status.FAIL
    assert floor.missing_layers == ("reliable text watermark at the declared floor (50 tokens)",)
    # the recorded benchmark rate at 50 tokens is what fails it, and the row cites the file
    assert any(fact.name.startswith("benchmark detection rate at 50 tokens") for fact in floor.facts)
    assert floor.evidence
    assert floor.evidence[0].path == "benchmarks/text_power.json"
    text = (tmp_path / "report" / "text" / "text-0.txt").read_text()
    verdict = json.loads((tmp_path / "report" / "text" / "text-0.verdict.json").read_text())
    assert verdict["tokens_total"] <= 60
    assert text
    assert _row(result, "art50.2-image-watermark").status is Status.NOT_APPLICABLE


def test_a_floor_above_the_codes_figure_fails(write_deployment: WriteDeployment, tmp_path: Path) -> None:
    path = write_deployment(models=text_model_section(), text="watermark = false\nmin_tokens = 300\n")
    result = _check(path, tmp_path)
    floor = _row(result, "art50.2-text-floor")
    assert floor.status is Status.FAIL
    assert "between 200 and 300" in floor.missing_layers[0]
    marked = _row(result, "art50.2-text-marked")
    assert marked.status is Status.FAIL
    assert marked.missing_layers == ("text watermark",)


def test_no_detection_endpoint_and_no_witness_are_red_lines(write_deployment: WriteDeployment, tmp_path: Path) -> None:
    path = write_deployment(log="record_outputs = true\nwitness = false\nretention_days = 30\n")
    result = _check(path, tmp_path)
    assert _row(result, "art50.2-detection-interface").missing_layers == ("detection interface",)
    assert _row(result, "art12-log-integrity").missing_layers == ("witness cosignatures",)
    assert _row(result, "art12-retention").missing_layers == ("log retention of six months",)


def test_audio_is_not_assessed_never_passed(write_deployment: WriteDeployment, tmp_path: Path) -> None:
    path = write_deployment(models='[[models]]\nid = "example/voice"\nmodalities = ["audio"]\n', image="")
    result = _check(path, tmp_path)
    row = _row(result, "art50.2-audio-video")
    assert row.status is Status.NOT_ASSESSED
    assert row.missing_layers == ("audio marking",)
    assert result.report.verdict in ("incomplete", "fails")
