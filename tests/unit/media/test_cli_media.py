"""``tracemark media mark`` and ``verify``: files in and out, JSON, exit statuses, the log entry."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from PIL import Image

from tests.support.cli import assert_one_line_error, run_cli_json
from tests.unit.media.conftest import encode, textured_image
from tracemark.cli._main import main
from tracemark.keys import Keyring
from tracemark.tlog import TransparencyLog


def test_mark_then_verify(initialised: Keyring, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    source = tmp_path / "in.png"
    source.write_bytes(encode(textured_image(31, 640, 640)))
    output = tmp_path / "out.jpg"
    status, marked, _ = run_cli_json(capsys, "media", "mark", str(source), str(output), "--model-id", "org/gen@1")
    assert status == 0
    assert output.read_bytes()[:2] == b"\xff\xd8"
    assert marked["log_index"] == 0
    with TransparencyLog.open(initialised.home / "tracemark.sqlite3") as log:
        record = log.record(0)
    assert record.kind.value == "image"
    assert record.c2pa_manifest_id == marked["manifest_id"]
    assert record.content_sha256 == marked["content_sha256"]

    status, verdict, _ = run_cli_json(capsys, "media", "verify", str(output))
    assert status == 0
    assert verdict["outcome"] == "trusted"
    layers = {layer["layer"]: layer["found"] for layer in verdict["article_50"]["layers"]}
    assert layers == {"signed-metadata": True, "watermark": True, "recovered-manifest": False, "log-entry": True}

    laundered = tmp_path / "laundered.jpg"
    picture = Image.open(output)
    picture.resize((320, 320)).save(laundered, quality=50)
    status, verdict, _ = run_cli_json(capsys, "media", "verify", str(laundered))
    assert status == 0
    assert verdict["outcome"] == "recovered-via-soft-binding"
    layers = {layer["layer"]: layer["found"] for layer in verdict["article_50"]["layers"]}
    assert layers["log-entry"]
    assert layers["recovered-manifest"]


def test_human_output_and_unmarked_exit_status(
    initialised: Keyring, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    plain = tmp_path / "plain.png"
    plain.write_bytes(encode(textured_image(32, 300, 300)))
    assert main(["media", "verify", str(plain), "--no-search"]) == 1
    assert "outcome: unmarked" in capsys.readouterr().out


def test_tampered_file_exits_7(initialised: Keyring, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    source = tmp_path / "in.png"
    source.write_bytes(encode(textured_image(33, 300, 300)))
    output = tmp_path / "out.jpg"
    assert main(["media", "mark", str(source), str(output), "--no-log"]) == 0
    data = bytearray(output.read_bytes())
    data[-3000] ^= 0x20
    output.write_bytes(bytes(data))
    capsys.readouterr()
    status, verdict, _ = run_cli_json(capsys, "media", "verify", str(output))
    assert status == 7
    assert verdict["outcome"] == "invalid"
    assert "assertion.dataHash.mismatch" in verdict["codes"]


@pytest.mark.parametrize(
    ("content", "message"),
    [(b"GIF89a...", "not a JPEG, PNG or WebP"), (b"", "empty")],
)
def test_bad_input_is_one_line_and_exit_2(
    initialised: Keyring, tmp_path: Path, capsys: pytest.CaptureFixture[str], content: bytes, message: str
) -> None:
    bad = tmp_path / "bad.png"
    bad.write_bytes(content)
    assert main(["media", "mark", str(bad), str(tmp_path / "o.png")]) == 2  # bad input, not broken provenance
    assert message in assert_one_line_error(capsys.readouterr().err)
    assert not (tmp_path / "o.png").exists()


def test_alpha_needs_a_format_with_alpha(
    initialised: Keyring, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    rgba = Image.fromarray(textured_image(34, 300, 300)).convert("RGBA")
    rgba.putalpha(Image.linear_gradient("L").resize((300, 300)))
    source = tmp_path / "in.png"
    buffer = io.BytesIO()
    rgba.save(buffer, "PNG")
    source.write_bytes(buffer.getvalue())
    assert main(["media", "mark", str(source), str(tmp_path / "o.jpg")]) == 2
    assert "alpha" in capsys.readouterr().err
    assert main(["media", "mark", str(source), str(tmp_path / "o.webp"), "--no-log"]) == 0
    assert Image.open(tmp_path / "o.webp").mode == "RGBA"


def test_without_keyring_mark_says_what_to_run(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    source = tmp_path / "in.png"
    source.write_bytes(encode(textured_image(35, 300, 300)))
    assert main(["media", "mark", str(source), str(tmp_path / "o.png")]) == 3
    assert "tracemark keys init" in capsys.readouterr().err
