"""``tracemark theft radioactivity | identify | weights``: JSON verdicts, reports, re-runs and typed failures."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from tests.support.cli import assert_one_line_error
from tests.unit.theft.conftest import (
    BiasedSuspect,
    StubServer,
    next_token_probabilities,
    read_texts,
    run_theft,
    write_prompts,
)
from tests.unit.theft.test_weights import gpt2_state, permute_and_scale
from tracemark.cli import main
from tracemark.keys import TextKey


def test_radioactivity_from_an_endpoint_then_from_its_transcript(
    biased_suspect: Callable[[float, int], BiasedSuspect], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    suspect = biased_suspect(0.1, 40)
    common = [*suspect.options, "--budget", "2000"]
    status, verdict, _ = run_theft(
        capsys, "radioactivity", *common, "--suspect-url", suspect.url, "--prompts", str(suspect.prompts),
        "--max-new-tokens", "64", "--save-transcript", str(tmp_path / "t.jsonl"),
        "--report", str(tmp_path / "report.html"),
    )  # fmt: skip
    assert status == 0
    assert verdict["format"] == "tracemark.theft.verdict/v1"
    assert verdict["decision"] == "evidence"
    assert "EVIDENCE" in (tmp_path / "report.html").read_text()
    status, again, _ = run_theft(capsys, "radioactivity", *common, "--transcript", str(tmp_path / "t.jsonl"))
    assert status == 0
    assert again["p_value"] == verdict["p_value"]
    assert again["evidence"]["response_sha256"] == verdict["evidence"]["response_sha256"]


def test_an_unreachable_suspect_is_inconclusive(
    make_key: Callable[..., TextKey], word_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    key = make_key()
    prompt_file = write_prompts(tmp_path / "prompts.txt", 5)
    status, verdict, _ = run_theft(
        capsys, "radioactivity", "--model", str(word_dir), "--key", key.key_id, "--budget", "100",
        "--suspect-url", "http://127.0.0.1:9", "--prompts", str(prompt_file),
    )  # fmt: skip
    assert status == 0
    assert verdict["decision"] == "inconclusive"
    assert verdict["p_value"] is None


def test_identify_over_http(stub: StubServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    prompt_file = write_prompts(tmp_path / "prompts.txt", 12)
    status, verdict, _ = run_theft(
        capsys, "identify", "--endpoint-url", f"{stub.url}#served", "--reference", f"ours={stub.url}#ours",
        "--prompts", str(prompt_file), "--samples", "4", "--tokens", "16", "--permutations", "99",
        "--report", str(tmp_path / "identify.md"),
    )  # fmt: skip
    assert status == 0
    assert verdict["decision"] == "no-evidence"
    assert verdict["statistic"]["consistent_with"] == ["ours"]
    assert (tmp_path / "identify.md").read_text().startswith("# tracemark theft report: identify")


def test_identify_sends_the_api_key_to_every_url(
    stub: StubServer, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A gateway behind API tokens (tracemark's own OpenAI-compatible routes, for one) answers identify."""
    monkeypatch.setenv("ENDPOINT_KEY", "tm-token-value")
    prompt_file = write_prompts(tmp_path / "prompts.txt", 12)
    status, verdict, _ = run_theft(
        capsys, "identify", "--endpoint-url", f"{stub.url}#served", "--reference", f"ours={stub.url}#ours",
        "--prompts", str(prompt_file), "--samples", "2", "--tokens", "16", "--permutations", "99",
        "--api-key-env", "ENDPOINT_KEY", "--timeout", "5",
    )  # fmt: skip
    assert status == 0
    assert verdict["statistic"]["consistent_with"] == ["ours"]
    assert stub.authorizations
    assert set(stub.authorizations) == {"Bearer tm-token-value"}
    assert main(["theft", "identify", "--endpoint-url", stub.url, "--reference", f"ours={stub.url}",
                 "--prompts", str(prompt_file), "--timeout", "0"]) == 2  # fmt: skip


def test_weights_verb(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from safetensors.numpy import save_file

    reference = gpt2_state(0)
    for name, state in (("ref", reference), ("copy", permute_and_scale(reference, 1)), ("other", gpt2_state(5))):
        (tmp_path / name).mkdir()
        save_file({k: np.ascontiguousarray(v) for k, v in state.items()}, str(tmp_path / name / "model.safetensors"))
    args = ["--tokens", "32", "--permutations", "199"]
    status, copy, _ = run_theft(capsys, "weights", str(tmp_path / "copy"), str(tmp_path / "ref"), *args)
    assert status == 0
    assert copy["decision"] == "evidence"
    _, other, _ = run_theft(capsys, "weights", str(tmp_path / "other"), str(tmp_path / "ref"), *args)
    assert other["decision"] == "no-evidence"


def test_bad_inputs_exit_with_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "pytorch_model.bin").write_bytes(b"\x80\x04")
    assert main(["theft", "weights", str(tmp_path / "pytorch_model.bin"), str(tmp_path)]) == 8
    assert "never loads pickles" in capsys.readouterr().err
    assert main(["theft", "identify", "--endpoint-url", "http://127.0.0.1:9", "--reference", "bad",
                 "--prompts", str(tmp_path / "missing.txt")]) == 2  # fmt: skip
    assert_one_line_error(capsys.readouterr().err)


def test_open_mode_over_an_endpoint(
    stub: StubServer,
    make_key: Callable[..., TextKey],
    word_dir: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    key = make_key()
    stub.next_token = next_token_probabilities(key, 1.0)
    read = tmp_path / "read.txt"
    read.write_text("\n\n".join(read_texts(30, 50)) + "\n")
    status, verdict, _ = run_theft(
        capsys, "radioactivity", "--mode", "open", "--model", str(word_dir), "--key", key.key_id,
        "--suspect-url", stub.url, "--read", str(read), "--budget", "1500", "--min-tuples", "200",
        "--null-keys", "20", "--top-k", "8",
    )  # fmt: skip
    assert status == 0
    assert verdict["test"] == "radioactivity/open"
    assert verdict["decision"] == "evidence"
