"""The findings model: one ordered severity scale, the --fail-on gate, locations and fingerprints."""

from __future__ import annotations

import json

import pytest

import tracemark.report as report
from tracemark._json import JSONObject
from tracemark.report import Finding, Location, Report, Severity, Tool, fail_on_threshold


def _ruff_order(symbol: str) -> tuple[int, str]:
    if symbol.isupper():
        return (0, symbol)
    return (1, symbol) if symbol[0].isupper() else (2, symbol)


def test_all_is_sorted_and_resolves() -> None:
    exported = list(report.__all__)
    assert exported == sorted(exported, key=_ruff_order)
    for symbol in exported:
        assert hasattr(report, symbol)


def test_the_scale_is_ordered_worst_first() -> None:
    assert list(Severity) == sorted(Severity, key=lambda s: -s.rank)
    assert Severity.CRITICAL > Severity.HIGH > Severity.MEDIUM > Severity.LOW > Severity.INFO
    assert max([Severity.LOW, Severity.CRITICAL, Severity.MEDIUM]) is Severity.CRITICAL
    assert Severity("medium") is Severity.MEDIUM
    assert isinstance(Severity.HIGH, str)  # labels serialise as the strings they were
    assert json.dumps([Severity.HIGH]) == '["high"]'


def test_unknown_fails_closed_as_high() -> None:
    assert Severity.UNKNOWN.at_least(Severity.HIGH)
    assert not Severity.UNKNOWN.at_least(Severity.CRITICAL)
    assert not Severity.UNKNOWN > Severity.HIGH
    assert not Severity.UNKNOWN < Severity.HIGH
    assert Severity.UNKNOWN.sarif_level == "error"
    assert Severity.UNKNOWN.security_severity == Severity.HIGH.security_severity


@pytest.mark.parametrize(
    ("fail_on", "worst", "fails"),
    [
        ("medium", Severity.MEDIUM, True),
        ("medium", Severity.LOW, False),
        ("high", Severity.UNKNOWN, True),
        ("critical", Severity.UNKNOWN, False),
        ("info", Severity.INFO, True),
        ("never", Severity.CRITICAL, False),
    ],
)
def test_fail_on_gate(fail_on: str, worst: Severity, fails: bool) -> None:
    findings = (Finding("a", worst, "m"), Finding("b", Severity.INFO, "m"))
    assert Report(Tool("t"), findings).fails(fail_on_threshold(fail_on)) is fails


def test_counts_list_unknown_only_when_present() -> None:
    plain = Report(Tool("t"), (Finding("a", Severity.HIGH, "m"),))
    assert [s.value for s in plain.counts()] == ["critical", "high", "medium", "low", "info"]
    assert plain.counts()[Severity.HIGH] == 1
    advisory = Report(Tool("t"), (Finding("GHSA-1", Severity.UNKNOWN, "m"),))
    assert [s.value for s in advisory.counts()] == ["critical", "high", "unknown", "medium", "low", "info"]


def test_locations_name_archive_members() -> None:
    location = Location("model.tar.gz!gunzip!model/data.pkl", offset=12)
    assert (location.artifact, location.member) == ("model.tar.gz", "gunzip!model/data.pkl")
    assert str(location) == "model.tar.gz!gunzip!model/data.pkl"
    assert str(Location("main.js", 4, 3)) == "main.js:4:3"
    assert Location("main.js").member == ""


def test_fingerprints_are_stable_and_tell_findings_apart() -> None:
    def at(line: int) -> Finding:
        return Finding("ipc-sink", Severity.CRITICAL, "reaches eval", (Location("main.js", line, 3),))

    one = at(4)
    assert one.fingerprint == at(4).fingerprint
    assert one.fingerprint != at(5).fingerprint
    assert len(one.fingerprint) == 32


def test_finding_json_describes_the_primary_location() -> None:
    finding = Finding("r", Severity.LOW, "m", (Location("a.js", 2, 1), Location("b.js")), evidence=("x = 1",))
    payload = finding.to_json()
    assert (payload["path"], payload["line"], payload["column"], payload["offset"]) == ("a.js", 2, 1, None)
    assert payload["locations"] == ["a.js:2:1", "b.js"]
    assert payload["evidence"] == ["x = 1"]
    whole = Finding("r", Severity.LOW, "m").to_json()
    assert (whole["location"], whole["path"], whole["line"]) == (None, None, None)


def test_a_report_keeps_read_only_copies_of_its_facts_and_document() -> None:
    facts: JSONObject = {"target": "app", "notices": ["one"], "fuses": {"RunAsNode": "on"}}
    document: JSONObject = {"reports": [{"findings": []}], "passed": True}
    generic = Report(Tool("t"), (), facts=facts)
    own = Report(Tool("t"), (), document=document)

    def forms() -> tuple[object, ...]:
        return report.to_json(generic), report.to_sarif(generic)["runs"][0].get("properties"), report.to_json(own)

    before = forms()
    facts["target"] = "changed"
    document["passed"] = False
    notices = facts["notices"]
    assert isinstance(notices, list)
    notices.append("two")
    assert forms() == before
    assert report.to_json(generic)["notices"] == ["one"]  # lists again in the JSON form, not tuples
    with pytest.raises(TypeError):
        generic.facts["target"] = "changed"  # type: ignore[index]
