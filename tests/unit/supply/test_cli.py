"""``tracemark supply``: exit status by severity, table/JSON/SARIF output, sign and verify."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from tracemark.cli import main

CORPUS = Path(__file__).resolve().parents[2] / "fixtures" / "supply"
EVIL = str(CORPUS / "malicious" / "pytorch_zip_renamed.bin")
GOOD = str(CORPUS / "benign" / "torch_linear_state_dict.pt")


def test_scan_exit_status_follows_severity(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["supply", "scan", GOOD]) == 0
    assert "PASS" in capsys.readouterr().out
    assert main(["supply", "scan", GOOD, EVIL]) == 1
    out = capsys.readouterr().out
    assert "FAIL" in out
    assert "pytorch_zip_renamed.bin!archive/data.xyz" in out
    traversal = str(CORPUS / "malicious" / "zip_path_traversal.zip")
    assert main(["supply", "scan", traversal, "--fail-on", "critical"]) == 0
    assert main(["supply", "scan", traversal, "--fail-on", "high"]) == 1


def test_scan_json(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["supply", "scan", "--json", EVIL]) == 1
    payload = json.loads(capsys.readouterr().out)
    assert payload["passed"] is False
    (finding,) = payload["reports"][0]["findings"]
    assert finding["rule"] == "pickle.global-denied"
    assert finding["severity"] == "critical"


def test_scan_sarif(tmp_path: Path) -> None:
    out = tmp_path / "scan.sarif"
    assert main(["supply", "scan", "--format", "sarif", "-o", str(out), EVIL, GOOD]) == 1
    log = json.loads(out.read_text())
    assert log["version"] == "2.1.0"
    (run,) = log["runs"]
    rules = run["tool"]["driver"]["rules"]
    (result,) = run["results"]
    assert rules[result["ruleIndex"]]["id"] == result["ruleId"] == "pickle.global-denied"
    assert result["level"] == "error"
    assert result["locations"][0]["physicalLocation"]["artifactLocation"]["uri"] == "pytorch_zip_renamed.bin"
    assert result["message"]["text"]


def test_scan_markdown_html_and_fail_on_never(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["supply", "scan", "--format", "markdown", "--fail-on", "never", EVIL]) == 0
    row = "| critical | `pickle.global-denied` | `pytorch_zip_renamed.bin!archive/data.xyz` |"
    assert row in capsys.readouterr().out
    page = tmp_path / "scan.html"
    assert main(["supply", "scan", "--format", "html", "-o", str(page), EVIL]) == 1
    assert "<code>pytorch_zip_renamed.bin!archive/data.xyz</code>" in page.read_text()
    assert main(["supply", "scan", "--fail-on", "info", GOOD]) == 0


def test_missing_path_is_a_one_line_error(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    assert main(["supply", "scan", str(tmp_path / "absent")]) == 2
    assert capsys.readouterr().err.startswith("tracemark: error:")


def test_sign_and_verify(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    model = tmp_path / "model"
    model.mkdir()
    (model / "weights.bin").write_bytes(b"weights")
    key = ec.generate_private_key(ec.SECP256R1())
    (tmp_path / "k.pem").write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    (tmp_path / "k.pub").write_bytes(
        key.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    )
    sig = str(tmp_path / "model.sig")
    assert main(["supply", "sign", str(model), "--signature", sig, "--private-key", str(tmp_path / "k.pem")]) == 0
    capsys.readouterr()
    verify = ["supply", "verify", str(model), "--signature", sig, "--public-key", str(tmp_path / "k.pub")]
    assert main([*verify, "--json"]) == 0
    payload = json.loads(capsys.readouterr().out)
    assert payload["verified"] is True
    assert [f["name"] for f in payload["files"]] == ["weights.bin"]
    (model / "evil.pkl").write_bytes(b"\x80\x02.")
    assert main(verify) == 9
    assert "evil.pkl" in capsys.readouterr().err
