"""The report is signed by the log key and appended to the log; the Article 12 bundle audits offline."""

from __future__ import annotations

import json
import shlex
from pathlib import Path

import pytest

from tests.unit.comply.conftest import WriteDeployment
from tracemark.cli._main import main
from tracemark.comply import REPORT_FORMAT, load_deployment, log_verifier, report_schema, run_check, verify_report
from tracemark.errors import ComplianceError, TlogError


@pytest.fixture
def report(write_deployment: WriteDeployment, tmp_path: Path) -> Path:
    run_check(load_deployment(write_deployment()), tmp_path / "report")
    return tmp_path / "report"


def test_the_signed_report_verifies_and_any_change_is_caught(report: Path) -> None:
    verified = verify_report(report, log_verifier())
    document = json.loads((report / "report.json").read_text())
    assert document["format"] == REPORT_FORMAT
    assert verified.tree_size > verified.log_index
    html = (report / "report.html").read_text()
    (report / "report.html").write_text(html.replace("pass", "PASS", 1))
    with pytest.raises(ComplianceError, match="differ from the ones signed"):
        verify_report(report, log_verifier())
    (report / "report.html").write_text(html)
    verify_report(report, log_verifier())
    signature = (report / "report.sig").read_text()
    (report / "report.sig").write_text(signature.replace("report.json sha256 ", "report.json sha256 0", 1))
    with pytest.raises((ComplianceError, TlogError)):
        verify_report(report, log_verifier())


def test_verify_report_cli_exit_status(report: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["comply", "verify-report", str(report), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["valid"] is True
    (report / "report.json").write_text((report / "report.json").read_text() + " ")
    assert main(["comply", "verify-report", str(report)]) == ComplianceError.exit_code
    assert "differ" in capsys.readouterr().err


def test_the_article_12_bundle_audits_with_tlog_audit(
    report: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    bundle = report / "log"
    vkey = (bundle / "log.vkey").read_text().strip()
    commands = [line for line in (bundle / "README.txt").read_text().splitlines() if line.startswith("tracemark ")]
    assert commands, "the README names the audit commands"
    monkeypatch.chdir(bundle)
    for command in commands:
        witness_key = (bundle / "witness.vkey").read_text().strip()
        command = command.replace('"$(cat witness.vkey)"', shlex.quote(witness_key))
        assert "--quorum 1" in command  # both checkpoints are cosigned, and the command checks it
        words = shlex.split(command.replace('"$(cat log.vkey)"', shlex.quote(vkey)))
        assert main([*words[1:], "--json"]) == 0, capsys.readouterr().err
        assert json.loads(capsys.readouterr().out)["consistent"] is True
    checkpoints = sorted(bundle.glob("checkpoint-*.note"))
    witness = (bundle / "witness.vkey").read_text().strip()
    assert len(checkpoints) == 2  # a fresh log: the empty tree that opens the period, the tree that closes it
    for checkpoint in checkpoints:  # both carry the witness's cosignature line
        assert f"— {witness.split('+')[0]} " in checkpoint.read_text()
    first, last = (str(path) for path in (checkpoints[0], checkpoints[-1]))
    proof = next(bundle.glob("consistency-*.proof"))
    args = ["tlog", "audit", first, last, "--proof", str(proof), "--log-key", vkey, "--witness", witness]
    assert main([*args, "--quorum", "1"]) == 0, capsys.readouterr().err
    # a proof that does not fit the checkpoints is refused
    proof.write_text("AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=\n")
    assert main(["tlog", "audit", first, last, "--proof", str(proof), "--log-key", vkey]) != 0


def test_the_report_follows_its_json_schema(report: Path) -> None:
    jsonschema = pytest.importorskip("jsonschema", reason="jsonschema comes with the supply extra")
    schema = json.loads(report_schema())
    jsonschema.Draft202012Validator.check_schema(schema)
    document = json.loads((report / "report.json").read_text())
    jsonschema.validate(document, schema)
    document["obligations"][0]["status"] = "rounded-up"
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(document, schema)
