"""The deployment file's checks, and the report's JSON and HTML forms."""

from __future__ import annotations

from html.parser import HTMLParser
from pathlib import Path

import pytest

from tests.unit.comply.conftest import EXAMPLES
from tracemark.cli._main import main
from tracemark.comply import (
    OBLIGATIONS,
    REPORT_FORMAT,
    ComplianceReport,
    Deployment,
    Fact,
    Plot,
    Row,
    Status,
    load_deployment,
    render_html,
)
from tracemark.comply._report import DeploymentInfo, Point, Series
from tracemark.errors import ComplianceError


def test_the_example_deployment_parses() -> None:
    deployment = load_deployment(EXAMPLES / "deployment.toml")
    assert isinstance(deployment, Deployment)
    assert deployment.modalities == ("text", "image")
    assert deployment.text.min_tokens == 200
    assert [p.name for p in deployment.image.inputs] == ["hills.jpg", "valley.jpg"]
    assert all(path.is_file() for path in deployment.robustness_results)
    assert deployment.models[0].path is not None
    assert (deployment.models[0].path / "config.json").is_file()


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ("[deployment]\nname = 'x'\n", "names no model"),
        ("[[models]]\nid = 'm'\nmodalities = ['smell']\n", "modalities must be some of"),
        ("[[models]]\nid = 'm'\nmodalities = ['text']\n[text]\nmin_tokens = 0\n", "min_tokens must lie"),
        ("[[models]]\nid = 'm'\nmodalities = ['text']\n[text]\nalpha = 0.9\n", "alpha must lie"),
        ("[[models]]\nid = 'm'\nmodalities = ['image']\n[image]\ninputs = ['none/*.jpg']\n", "nothing matches"),
        ("[[models]]\nid = 'm'\nmodalities = ['image']\n[image]\nwatermark = false\n", "not supported"),
        ("[[models]]\nid = 'm'\nmodalities = ['text']\n[detection]\nendpoint = 'ftp://x'\n", "http"),
        ("[[models]]\nid = 'm'\nmodalities = ['text']\n[log]\nwitness = 'yes'\n", "must be a bool"),
        ("[[models]\n", "not valid TOML"),
    ],
)
def test_bad_deployments_are_one_line_errors(tmp_path: Path, body: str, message: str) -> None:
    path = tmp_path / "deployment.toml"
    path.write_text(body)
    with pytest.raises(ComplianceError, match=message):
        load_deployment(path)


def test_image_inputs_may_be_absolute_globs(tmp_path: Path) -> None:
    path = tmp_path / "deployment.toml"
    pattern = str(EXAMPLES / "images" / "*.jpg")
    path.write_text(f"[[models]]\nid = 'm'\nmodalities = ['image']\n[image]\ninputs = ['{pattern}']\n")
    assert [p.name for p in load_deployment(path).image.inputs] == ["hills.jpg", "valley.jpg"]


def test_cli_reports_a_bad_deployment_in_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["comply", "check", "--deployment", str(tmp_path / "missing.toml")]) == ComplianceError.exit_code
    error = capsys.readouterr().err
    assert error.startswith("tracemark: error: ")
    assert error.count("\n") == 1
    assert "Traceback" not in error


class _Collector(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.ids: list[str] = []
        self.text: list[str] = []
        self.scripts = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.scripts += tag == "script"
        self.ids += [value for name, value in attrs if name == "id" and value]

    def handle_data(self, data: str) -> None:
        self.text.append(data)


def _report(rows: tuple[Row, ...]) -> ComplianceReport:
    plot = Plot(
        "length",
        "Text: detectability vs length",
        "tokens",
        "-log10 p",
        (Series("s", (Point(25, 1.0), Point(200, 20.0))),),
        reference=6.0,
        reference_label="alpha 1e-06",
    )
    return ComplianceReport(
        "2026-12-07T00:00:00Z",
        "0",
        DeploymentInfo("<b>x</b>", "p", "f", "0" * 64, ("m",), ("text",)),
        rows,
        (plot,),
        ("a limit",),
    )


def test_the_json_lists_every_obligation_with_its_citation() -> None:
    rows = (
        *tuple(Row(o, Status.PASS, "ok") for o in OBLIGATIONS[:-1]),
        Row(OBLIGATIONS[-1], Status.FAIL, "bad", ("the layer",), (Fact("n", "1"),)),
    )
    document = _report(rows).to_json()
    assert document["format"] == REPORT_FORMAT
    assert [row["id"] for row in document["obligations"]] == [o.id for o in OBLIGATIONS]
    assert all(row["article"].startswith("Art.") and row["code_measure"] for row in document["obligations"])
    assert document["summary"]["verdict"] == "fails"
    assert document["summary"]["counts"]["fail"] == 1
    assert document["summary"]["red_lines"] == [f"{OBLIGATIONS[-1].id}: bad (missing: the layer)"]
    not_assessed = _report((Row(OBLIGATIONS[0], Status.NOT_ASSESSED, "?"),))
    assert not_assessed.verdict == "incomplete"  # never rounded up to "meets"


def test_the_html_escapes_and_has_the_summary_first() -> None:
    rows = (Row(OBLIGATIONS[0], Status.FAIL, "<script>alert(1)</script>", ("text watermark",)),)
    page = render_html(_report(rows))
    parsed = _Collector()
    parsed.feed(page)
    assert parsed.scripts == 0
    assert parsed.ids.index("verdict") < parsed.ids.index(OBLIGATIONS[0].id)
    assert {"red-lines", "summary", "plot-length", "limits"} <= set(parsed.ids)
    assert "<b>x</b>" in "".join(parsed.text)  # shown as text, not markup
