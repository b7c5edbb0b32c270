"""The CLI and report formats: SARIF 2.1.0, JSON, the table, exit status by severity, errors."""

from __future__ import annotations

import datetime
import json
from pathlib import Path

import pytest

from tests.unit.electron._corpus import CORPUS
from tracemark._json import as_mapping, as_sequence
from tracemark.cli import main
from tracemark.electron import RULES, audit, render_table, to_json, to_sarif

INSECURE = CORPUS / "ipc_open_external_3"
HARDENED = CORPUS / "hardened_app_0"


def test_sarif_has_rules_locations_and_help() -> None:
    log = to_sarif(audit(INSECURE))
    assert log["version"] == "2.1.0"
    run = log["runs"][0]
    rules = run["tool"]["driver"]["rules"]
    ids = [rule["id"] for rule in rules]
    assert ids == sorted(ids)
    for rule in rules:
        assert rule["help"]["text"]
        assert rule["helpUri"].startswith("https://")
        assert rule["defaultConfiguration"]["level"] in ("error", "warning", "note")
        assert float(rule["properties"]["security-severity"]) >= 0
    sinks = [result for result in run["results"] if result["ruleId"] == "ipc-sink"]
    assert len(sinks) == 1
    location = sinks[0]["locations"][0]["physicalLocation"]
    assert location["artifactLocation"] == {"uri": "main.js", "uriBaseId": "SRCROOT"}
    assert location["region"] == {"startLine": 4, "startColumn": 3}
    assert sinks[0]["level"] == "error"
    for result in run["results"]:
        assert rules[result["ruleIndex"]]["id"] == result["ruleId"]


def test_json_and_table() -> None:
    report = audit(INSECURE)
    payload = to_json(report)
    assert payload["format"] == "tracemark.electron.audit/v1"
    assert as_mapping(payload["counts"])["critical"] == 1
    assert payload["advisories_checked"] is False
    assert {as_mapping(f)["rule"] for f in as_sequence(payload["findings"])} == {
        "ipc-sink",
        "ipc-sender",
        "open-external",
        "electron-version-unchecked",
    }
    table = render_table(report)
    assert table.index("CRITICAL") < table.index("MEDIUM")
    assert "NOT checked" in table


def test_every_rule_has_help() -> None:
    for rule in RULES.values():
        assert rule.title
        assert rule.help
        assert rule.id == rule.id.lower()


def test_cli_exit_status_follows_fail_on(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["electron", "audit", str(INSECURE)]) == 1
    assert "ipc-sink" in capsys.readouterr().out
    assert main(["electron", "audit", str(INSECURE), "--fail-on", "never"]) == 0
    assert main(["electron", "audit", str(HARDENED)]) == 0
    assert main(["electron", "audit", str(HARDENED), "--fail-on", "info"]) == 1  # the unchecked-version notice


def test_cli_formats_and_output_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["electron", "audit", str(INSECURE), "--json", "--fail-on", "never"]) == 0
    assert json.loads(capsys.readouterr().out)["format"] == "tracemark.electron.audit/v1"
    out = tmp_path / "report.sarif"
    assert main(["electron", "audit", str(INSECURE), "--format", "sarif", "-o", str(out), "--fail-on", "never"]) == 0
    assert json.loads(out.read_text())["version"] == "2.1.0"
    assert capsys.readouterr().out == ""


def test_cli_markdown_and_html(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["electron", "audit", str(INSECURE), "--format", "markdown"]) == 1
    markdown = capsys.readouterr().out
    assert markdown.startswith("# tracemark electron audit: ")
    assert "| critical | [`ipc-sink`](https://www.electronjs.org/docs/latest/tutorial/security#17-" in markdown
    page = tmp_path / "audit.html"
    assert main(["electron", "audit", str(INSECURE), "--format", "html", "-o", str(page), "--fail-on", "never"]) == 0
    assert "<code>main.js:4:3</code>" in page.read_text()


def test_cli_bad_inputs(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["electron", "audit", str(tmp_path / "missing")]) == 2
    assert "no such file" in capsys.readouterr().err
    junk = tmp_path / "junk.bin"
    junk.write_bytes(b"\x7fELF not electron")
    assert main(["electron", "audit", str(junk)]) == 2
    broken = tmp_path / "app.asar"
    broken.write_bytes(b"\x04\x00\x00\x00\xff\xff\xff\x00" + b"\0" * 8)
    assert main(["electron", "audit", str(broken)]) == 10
    err = capsys.readouterr().err
    assert err.count("\n") == 2
    assert "Traceback" not in err
    assert main(["electron", "audit", str(HARDENED), "--asar-header-sha256", "xyz"]) == 2


def _osv(folder: Path, modified: str = "2026-11-20T00:00:00Z") -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    record = {
        "id": "GHSA-vmqv-hx8q-j7mg",
        "aliases": ["CVE-2025-55305"],
        "summary": "ASAR integrity bypass via V8 heap snapshots",
        "modified": modified,
        "database_specific": {"severity": "MODERATE"},
        "affected": [
            {
                "package": {"ecosystem": "npm", "name": "electron"},
                "ranges": [{"type": "SEMVER", "events": [{"introduced": "0"}, {"fixed": "35.7.5"}]}],
            }
        ],
    }
    (folder / "GHSA-vmqv-hx8q-j7mg.json").write_text(json.dumps(record))
    (folder / "osv-manifest.json").write_text(json.dumps({"exported": modified}))
    return folder


def test_version_check_against_offline_osv(tmp_path: Path) -> None:
    from tracemark.advisories import OsvDatabase

    now = datetime.datetime(2026, 11, 27, tzinfo=datetime.UTC)
    database = OsvDatabase.open(_osv(tmp_path / "osv"), now=now)
    report = audit(HARDENED, advisories=database)  # package.json: electron ^33.2.0
    advisories = [f for f in report.findings if f.rule_id == "electron-advisory"]
    assert report.advisories_checked
    assert len(advisories) == 1
    assert "CVE-2025-55305" in advisories[0].message
    assert "35.7.5" in advisories[0].message
    assert advisories[0].severity.value == "medium"
    assert not any(f.rule_id == "electron-version-unchecked" for f in report.findings)


def test_fixed_version_has_no_advisory(tmp_path: Path) -> None:
    from tracemark.advisories import OsvDatabase

    app = tmp_path / "app"
    app.mkdir()
    (app / "package.json").write_text('{"devDependencies": {"electron": "36.0.0"}}')
    database = OsvDatabase.open(_osv(tmp_path / "osv"), now=datetime.datetime(2026, 11, 27, tzinfo=datetime.UTC))
    report = audit(app, advisories=database)
    assert report.electron_version == "36.0.0"
    assert not [f for f in report.findings if f.rule_id.startswith("electron-")]


def test_unknown_version_is_said_not_silent(tmp_path: Path) -> None:
    from tracemark.advisories import OsvDatabase

    (tmp_path / "app").mkdir()
    (tmp_path / "app" / "main.js").write_text("console.log(1)\n")
    database = OsvDatabase.open(_osv(tmp_path / "osv"), now=datetime.datetime(2026, 11, 27, tzinfo=datetime.UTC))
    report = audit(tmp_path / "app", advisories=database)
    [finding] = [f for f in report.findings if f.rule_id == "electron-version-unchecked"]
    assert "could not be determined" in finding.message
    assert finding.severity.value == "medium"


def test_cli_stale_or_missing_database_fails_closed(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    stale = _osv(tmp_path / "old", modified="2020-01-01T00:00:00Z")
    assert main(["electron", "audit", str(HARDENED), "--advisories", str(stale)]) == 9
    assert "days old" in capsys.readouterr().err
    assert main(["electron", "audit", str(HARDENED), "--advisories", str(tmp_path / "none")]) == 9


def test_audit_never_opens_a_socket(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import socket

    def refuse(*_args: object, **_kwargs: object) -> None:
        raise AssertionError("the audit tried to use the network")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    monkeypatch.setattr(socket, "getaddrinfo", refuse)
    from tracemark.advisories import OsvDatabase

    database = OsvDatabase.open(_osv(tmp_path / "osv"), now=datetime.datetime(2026, 11, 27, tzinfo=datetime.UTC))
    for app in (INSECURE, HARDENED, CORPUS / "packaged_default_fuses_8"):
        assert audit(app, advisories=database).advisories_checked
    bare = audit(CORPUS / "asar_input_insecure_5" / "app.asar", advisories=database)  # declares no Electron version
    assert "electron-version-unchecked" in {f.rule_id for f in bare.findings}
