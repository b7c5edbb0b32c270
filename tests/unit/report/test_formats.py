"""Every format renders the same report; SARIF is validated against the official 2.1.0 schema."""

from __future__ import annotations

import json

import pytest

from tests.support.sarif import sarif_validator, schema_errors
from tracemark.errors import InvalidInputError
from tracemark.report import FORMAT_NAMES, Finding, Location, Report, Rule, Severity, Tool, render, to_json, to_sarif

RULES = (
    Rule("prompt-leak", "The system prompt is echoed", Severity.HIGH, "Do not echo it.", "https://example.com/leak"),
)
FINDINGS = (
    Finding("prompt-leak", Severity.HIGH, "echoes <system> | 'secret'", (Location("runs/a.jsonl", 12, 5),)),
    Finding("pickle.global-denied", Severity.CRITICAL, "references os.system", (Location("m.pt!archive/data.pkl"),)),
    Finding("file.raw", Severity.MEDIUM, "raw bytes", (Location("w.bin", offset=7),), title="Raw file"),
    Finding("GHSA-aaaa-bbbb-cccc", Severity.UNKNOWN, "requests 2.0", (Location("/abs/requirements.txt"),)),
    Finding("version-unchecked", Severity.INFO, "the version was NOT checked"),
)
REPORT = Report(
    Tool("tracemark-test", "tracemark test run", "https://example.com/tool"),
    FINDINGS,
    RULES,
    subject="fixtures",
    schema="tracemark.test/v1",
    facts={"target": "fixtures", "files": 3},
    heading=("tracemark test run: fixtures",),
    summary=("FAIL: 3 files",),
    notices=("one thing was skipped",),
)


def test_every_format_renders_every_finding() -> None:
    assert FORMAT_NAMES == ("table", "json", "sarif", "markdown", "html")
    for name in FORMAT_NAMES:
        text = render(REPORT, name)
        assert not text.endswith("\n")
        for finding in FINDINGS:
            assert finding.rule_id in text, (name, finding.rule_id)


def test_unknown_format_is_bad_input() -> None:
    with pytest.raises(InvalidInputError, match="unknown report format"):
        render(REPORT, "xml")


def test_table_is_worst_first_with_counts_summary_and_notes() -> None:
    lines = render(REPORT, "table").splitlines()
    assert lines[0] == "tracemark test run: fixtures"
    assert lines[1].split() == ["SEVERITY", "RULE", "LOCATION", "MESSAGE"]
    # unknown ranks as high: the two are ordered by place (/abs/... before runs/...)
    assert [line.split()[0] for line in lines[2:7]] == ["CRITICAL", "UNKNOWN", "HIGH", "MEDIUM", "INFO"]
    assert lines[6].split()[2] == "-"  # a finding about the whole target
    assert lines[7] == "1 critical, 1 high, 1 unknown, 1 medium, 0 low, 1 info"
    assert lines[8:] == ["FAIL: 3 files", "note: one thing was skipped"]
    assert render(Report(Tool("t"), ()), "table").splitlines()[0] == "no findings"


def test_generic_json_and_a_capability_document() -> None:
    payload = json.loads(render(REPORT, "json"))
    assert payload["format"] == "tracemark.test/v1"
    assert payload["files"] == 3
    assert payload["counts"]["unknown"] == 1
    assert [f["rule"] for f in payload["findings"]] == [f.rule_id for f in FINDINGS]
    own = Report(Tool("t"), FINDINGS, document={"reports": [], "passed": False})
    assert to_json(own) == {"reports": [], "passed": False}


def test_markdown_escapes_cells_and_links_help() -> None:
    text = render(REPORT, "markdown")
    assert text.startswith("# tracemark test run: fixtures")
    assert "[`prompt-leak`](https://example.com/leak)" in text
    assert "echoes <system> \\| 'secret'" in text
    assert "> note: one thing was skipped" in text


def test_html_escapes_everything_and_loads_nothing() -> None:
    text = render(REPORT, "html")
    assert "echoes &lt;system&gt; | &#x27;secret&#x27;" in text
    assert "<system>" not in text
    assert "default-src 'none'" in text
    assert "<script" not in text
    assert '<a href="https://example.com/leak">prompt-leak</a>' in text


def test_sarif_rules_results_and_locations() -> None:
    log = to_sarif(REPORT)
    (run,) = log["runs"]
    rules = run["tool"]["driver"]["rules"]
    assert [rule["id"] for rule in rules] == sorted(f.rule_id for f in FINDINGS)
    by_id = {rule["id"]: rule for rule in rules}
    assert by_id["prompt-leak"]["helpUri"] == "https://example.com/leak"
    assert by_id["prompt-leak"]["help"]["text"] == "Do not echo it."
    assert by_id["file.raw"]["shortDescription"]["text"] == "Raw file"  # from the finding, not in the catalogue
    assert by_id["GHSA-aaaa-bbbb-cccc"]["defaultConfiguration"]["level"] == "error"
    results = {result["ruleId"]: result for result in run["results"]}
    for result in run["results"]:
        assert rules[result["ruleIndex"]]["id"] == result["ruleId"]
        assert len(result["partialFingerprints"]["tracemark/v1"]) == 32
    line = results["prompt-leak"]["locations"][0]["physicalLocation"]
    assert line == {
        "artifactLocation": {"uri": "runs/a.jsonl", "uriBaseId": "SRCROOT"},
        "region": {"startLine": 12, "startColumn": 5},
    }
    member = results["pickle.global-denied"]
    assert member["locations"][0]["physicalLocation"]["artifactLocation"]["uri"] == "m.pt"
    assert member["locations"][0]["logicalLocations"] == [
        {"fullyQualifiedName": "m.pt!archive/data.pkl", "kind": "member"}
    ]
    assert member["message"]["text"] == "m.pt!archive/data.pkl: references os.system"
    assert results["file.raw"]["locations"][0]["physicalLocation"]["region"] == {"byteOffset": 7}
    assert results["GHSA-aaaa-bbbb-cccc"]["locations"][0]["physicalLocation"]["artifactLocation"] == {
        "uri": "/abs/requirements.txt"
    }
    assert results["version-unchecked"]["locations"][0]["physicalLocation"]["artifactLocation"]["uri"] == "."
    assert run["properties"] == {"target": "fixtures", "files": 3}


def test_sarif_is_schema_valid() -> None:
    validator = sarif_validator()
    for report in (REPORT, Report(Tool("t"), ())):
        log = json.loads(render(report, "sarif"))
        errors = schema_errors(validator, log)
        assert errors == [], errors[0].message if errors else ""
