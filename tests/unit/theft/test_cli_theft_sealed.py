"""``tracemark theft radioactivity``: sealed transcripts, refused re-runs, exploratory labels, sequential looks."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.unit.theft.conftest import BiasedSuspect, run_theft
from tracemark.keys import Keyring, load_log_key


def test_a_signed_run_refuses_other_settings_and_labels_exploratory_ones(
    biased_suspect: Callable[[float, int], BiasedSuspect], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    suspect = biased_suspect(0.1, 40)
    common = suspect.options
    saved = tmp_path / "t.jsonl"
    status, verdict, _ = run_theft(
        capsys, "radioactivity", *common, "--budget", "2000", "--suspect-url", suspect.url, "--prompts",
        str(suspect.prompts), "--max-new-tokens", "64", "--save-transcript", str(saved), "--sign",
    )  # fmt: skip
    assert status == 0
    assert verdict["decision"] == "evidence"
    vkey = load_log_key(Keyring()).vkey
    status, again, _ = run_theft(capsys, "radioactivity", *common, "--budget", "2000", "--transcript", str(saved),
                           "--trusted-signer", vkey)  # fmt: skip
    assert status == 0
    assert again["p_value"] == verdict["p_value"]
    # the p-hack: the same transcript at a smaller budget
    status, _, error = run_theft(capsys, "radioactivity", *common, "--budget", "1500", "--transcript", str(saved))
    assert status == 8
    assert "pre-registration" in error
    status, exploratory, _ = run_theft(capsys, "radioactivity", *common, "--budget", "1500", "--transcript", str(saved),
                                 "--exploratory")  # fmt: skip
    assert status == 0
    assert exploratory["decision"] == "inconclusive"
    assert exploratory["reasons"][0].startswith("exploratory")
    # an edited response with its line hash recomputed: the chain no longer matches the signature line
    lines = saved.read_text().splitlines()
    record = json.loads(lines[2])
    record["response"] += " w7"
    record["response_sha256"] = hashlib.sha256(record["response"].encode()).hexdigest()
    lines[2] = json.dumps(record)
    saved.write_text("\n".join(lines) + "\n")
    status, _, error = run_theft(capsys, "radioactivity", *common, "--budget", "2000", "--transcript", str(saved),
                           "--trusted-signer", vkey)  # fmt: skip
    assert status == 2
    assert "edited" in error


def test_a_sequential_plan_from_the_command_line(
    biased_suspect: Callable[[float, int], BiasedSuspect], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    suspect = biased_suspect(0.3, 120)
    common = [*suspect.options, "--min-tuples", "200"]
    status, verdict, _ = run_theft(
        capsys, "radioactivity", *common, "--budget", "4000", "--looks", "1000,2000,4000", "--suspect-url",
        suspect.url, "--prompts", str(suspect.prompts), "--max-new-tokens", "64",
        "--save-transcript", str(tmp_path / "s.jsonl"),
    )  # fmt: skip
    assert status == 0
    assert verdict["decision"] == "evidence"
    assert verdict["counts"]["looks_taken"] == 1
    status, again, _ = run_theft(capsys, "radioactivity", *common, "--budget", "4000", "--looks", "1000,2000,4000",
                           "--transcript", str(tmp_path / "s.jsonl"))  # fmt: skip
    assert status == 0
    assert again["p_value"] == verdict["p_value"]
    status, _, error = run_theft(capsys, "radioactivity", *common, "--budget", "4000", "--looks", "500,4000",
                           "--transcript", str(tmp_path / "s.jsonl"))  # fmt: skip
    assert status == 8
    assert "plan" in error
