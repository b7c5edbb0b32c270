"""``tracemark media mark`` and ``verify``: files in and out, JSON, exit statuses, the log entry."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest
from PIL import Image

from tests.unit.media.conftest import encode, textured_image
from tracemark.cli._main import main
from tracemark.keys import Keyring, ensure_log_key, ensure_media_certificate
from tracemark.tlog import TransparencyLog


@pytest.fixture
def initialised(isolated_home: Path) -> Keyring:
    keyring = Keyring()
    keyring.create()
    ensure_log_key(keyring)
    ensure_media_certificate(keyring)
    return keyring


def _run(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, dict[str, object]]:
    status = main([*argv, "--json"])
    out = capsys.readouterr().out
    return status, json.loads(out) if out.strip() else {}


def test_mark_then_verify(initialised: Keyring, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    source = tmp_path / "in.png"
    source.write_bytes(encode(textured_image(31, 640, 640)))
    output = tmp_path / "out.jpg"
    status, marked = _run(["media", "mark", str(source), str(output), "--model-id", "org/gen@1"], capsys)
    assert status == 0
    assert output.read_bytes()[:2] == b"\xff\xd8"
    assert marked["log_index"] == 0
    with TransparencyLog.open(initialised.home / "tracemark.sqlite3") as log:
        record = log.record(0)
    assert record.kind.value == "image"
    assert record.c2pa_manifest_id == marked["manifest_id"]
    assert record.content_sha256 == marked["content_sha256"]

    status, verdict = _run(["media", "verify", str(output)], capsys)
    assert status == 0
    assert verdict["outcome"] == "trusted"
    layers = {layer["layer"]: layer["found"] for layer in verdict["article_50"]["layers"]}  # type: ignore[index]
    assert layers == {"signed-metadata": True, "watermark": True, "recovered-manifest": False, "log-entry": True}

    laundered = tmp_path / "laundered.jpg"
    picture = Image.open(output)
    picture.resize((320, 320)).save(laundered, quality=50)
    status, verdict = _run(["media", "verify", str(laundered)], capsys)
    assert status == 0
    assert verdict["outcome"] == "recovered-via-soft-binding"
    layers = {layer["layer"]: layer["found"] for layer in verdict["article_50"]["layers"]}  # type: ignore[index]
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
    status, verdict = _run(["media", "verify", str(output)], capsys)
    assert status == 7
    assert verdict["outcome"] == "invalid"
    assert "assertion.dataHash.mismatch" in verdict["codes"]  # type: ignore[operator]


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
    err = capsys.readouterr().err
    assert message in err
    assert err.count("\n") == 1
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
