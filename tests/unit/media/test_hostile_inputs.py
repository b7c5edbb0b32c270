"""Every input path of ``media mark``, ``media verify`` and ``media scan`` against awkward files (#21 point 4).

Files that cannot be used (truncated, empty, animated, another format) are bad input: exit status 2 and
one line on stderr for ``mark`` and ``verify``, an error row for ``scan``; never ``invalid`` provenance
(exit 7), never a traceback, never a silently flattened animation.  Files that can be used (CMYK,
16-bit, palette, alpha, EXIF-rotated, a JPEG named ``.png``) are marked and verify as ``trusted``, with
their pixels read the way the file means them.
"""

from __future__ import annotations

import io
import json
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from tests.support.cli import assert_one_line_error
from tests.unit.media.conftest import encode, textured_image
from tracemark.cli._main import main
from tracemark.keys import Keyring
from tracemark.media import decode_image

PIXELS = textured_image(71, 320, 288)


def _save(picture: Image.Image, image_format: str, **options: object) -> bytes:
    out = io.BytesIO()
    picture.save(out, image_format, **options)
    return out.getvalue()


def _animated(image_format: str) -> bytes:
    frames = [Image.fromarray(PIXELS), Image.fromarray(255 - PIXELS)]
    if image_format == "GIF":
        frames = [frame.convert("P") for frame in frames]
    return _save(frames[0], image_format, save_all=True, append_images=frames[1:], duration=100, loop=0)


def _truncated(image_format: str) -> bytes:
    whole = encode(PIXELS, image_format)
    return whole[: len(whole) // 2]


def _rotated_jpeg() -> bytes:
    exif = Image.Exif()
    exif[0x0112] = 6  # EXIF orientation 6: the stored pixels are to be turned 90 degrees clockwise
    return _save(Image.fromarray(PIXELS), "JPEG", quality=95, exif=exif)


#: name -> (file name, bytes, what the message must say)
REFUSED: dict[str, tuple[str, Callable[[], bytes], str]] = {
    "truncated-png": ("t.png", lambda: _truncated("PNG"), "truncated"),
    "truncated-jpeg": ("t.jpg", lambda: _truncated("JPEG"), "truncated"),
    "truncated-webp": ("t.webp", lambda: _truncated("WEBP"), "truncated"),
    "zero-bytes": ("z.png", lambda: b"", "empty"),
    "animated-webp": ("a.webp", lambda: _animated("WEBP"), "animated WEBP (2 frames)"),
    "animated-png": ("a.png", lambda: _animated("PNG"), "animated PNG (2 frames)"),
    "animated-gif-named-png": ("a.png", lambda: _animated("GIF"), "GIF is not supported"),
    "text-named-jpg": ("x.jpg", lambda: b"hello, not an image at all", "not a JPEG, PNG or WebP"),
}

#: name -> (file name, bytes): files whose pixels mean something definite (checked against Pillow read directly)
ACCEPTED: dict[str, tuple[str, Callable[[], bytes]]] = {
    "jpeg-named-png": ("j.png", lambda: encode(PIXELS, "JPEG", quality=95)),
    "cmyk-jpeg": ("c.jpg", lambda: _save(Image.fromarray(PIXELS).convert("CMYK"), "JPEG", quality=95)),
    "sixteen-bit-png": ("g.png", lambda: _save(Image.fromarray(PIXELS[..., 0].astype(np.uint16) * 257), "PNG")),
    "palette-png": ("p.png", lambda: _save(Image.fromarray(PIXELS).convert("P"), "PNG")),
    "alpha-png": ("r.png", lambda: _save(Image.fromarray(PIXELS).convert("RGBA"), "PNG")),
    "exif-rotated-jpeg": ("e.jpg", _rotated_jpeg),
}


@pytest.mark.parametrize("case", sorted(REFUSED))
def test_unusable_files_are_bad_input_for_mark_and_verify(
    case: str, initialised: Keyring, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    name, make, message = REFUSED[case]
    source = tmp_path / name
    source.write_bytes(make())
    output = tmp_path / "out" / "marked.png"
    for argv in (["media", "mark", str(source), str(output)], ["media", "verify", str(source)]):
        assert main(argv) == 2, argv
        captured = capsys.readouterr()
        assert captured.out == ""
        assert message in assert_one_line_error(captured.err)
    assert not output.parent.exists()
    assert not (initialised.home / "tracemark.sqlite3").exists() or _nothing_recorded(initialised)


def _nothing_recorded(keyring: Keyring) -> bool:
    import sqlite3

    with sqlite3.connect(keyring.home / "tracemark.sqlite3") as db:
        tables = {row[0] for row in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        return "media_soft_bindings" not in tables or not list(db.execute("SELECT 1 FROM media_soft_bindings"))


def test_a_scan_gives_unusable_files_error_rows_and_tests_the_rest(
    initialised: Keyring, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = tmp_path / "corpus"
    folder.mkdir()
    for case, (name, make, _) in REFUSED.items():
        (folder / f"{case}-{name}").write_bytes(make())
    for case, (name, make) in ACCEPTED.items():
        (folder / f"{case}-{name}").write_bytes(make())
    out = tmp_path / "scan.jsonl"
    assert main(["media", "scan", str(folder), "--out", str(out), "--no-search", "--quiet", "--json"]) == 0
    rows = {Path(row["id"]).name: row for row in map(json.loads, out.read_text().splitlines())}
    assert len(rows) == len(REFUSED) + len(ACCEPTED)
    for case, (name, _, message) in REFUSED.items():
        row = rows[f"{case}-{name}"]
        assert row["marked"] is None
        assert message in row["error"], (case, row["error"])
    for case, (name, _) in ACCEPTED.items():
        row = rows[f"{case}-{name}"]
        assert row["error"] is None, (case, row["error"])
        assert row["marked"] is False  # tested, and none of them carries the mark
    summary = json.loads(capsys.readouterr().out)
    assert summary["errors"] == len(REFUSED)


def test_a_file_over_the_size_limit_is_an_error_row_without_being_read(
    initialised: Keyring, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder = tmp_path / "corpus"
    folder.mkdir()
    (folder / "big.png").write_bytes(encode(PIXELS))
    monkeypatch.setattr("tracemark.media._scan.MAX_IMAGE_BYTES", 1000)

    def no_read(self: Path) -> bytes:
        raise AssertionError(f"{self} was read")

    monkeypatch.setattr(Path, "read_bytes", no_read)
    from tracemark.media import media_key, scan_images

    summary = scan_images([folder], media_key(initialised), tmp_path / "scan.jsonl", search=False)
    assert summary.errors == 1


def _meant_pixels(data: bytes) -> np.ndarray:
    """What the file means, read by Pillow directly: EXIF orientation applied, 16 bits scaled by 257, RGB."""
    from PIL import ImageOps

    picture = ImageOps.exif_transpose(Image.open(io.BytesIO(data)))
    if picture.mode.startswith("I"):
        return np.round(np.asarray(picture, dtype=np.float64) / 257.0).astype(np.uint8)
    return np.asarray(picture.convert("RGB"))


@pytest.mark.parametrize("case", sorted(ACCEPTED))
def test_awkward_but_valid_files_are_marked_and_verify(
    case: str, initialised: Keyring, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    name, make = ACCEPTED[case]
    data = make()
    source = tmp_path / name
    source.write_bytes(data)
    decoded = decode_image(data)
    meant = _meant_pixels(data)
    assert decoded.pixels.shape == meant.shape
    assert np.abs(decoded.pixels.astype(int) - meant.astype(int)).max() <= 1
    output = tmp_path / "marked.png"
    assert main(["media", "mark", str(source), str(output), "--json"]) == 0
    capsys.readouterr()
    marked = decode_image(output.read_bytes())
    assert marked.pixels.shape == decoded.pixels.shape  # upright, same size, grey stays grey
    assert (marked.alpha is not None) == (decoded.alpha is not None)
    # The mark is invisible: the marked pixels stay close to what the file meant (a 16-bit picture is not
    # re-read as 8-bit, a rotated one is not turned back, CMYK is not inverted).
    assert np.abs(marked.pixels.astype(float) - meant.astype(float)).mean() < 3.0
    assert main(["media", "verify", str(output), "--json", "--no-search"]) == 0
    assert json.loads(capsys.readouterr().out)["outcome"] == "trusted"


def test_a_dark_sixteen_bit_picture_stays_dark() -> None:
    dark = (np.arange(300 * 300).reshape(300, 300) % 200).astype(np.uint16)  # at most 200 of 65,535
    assert (
        decode_image(_save(Image.fromarray(dark), "PNG")).pixels.max() <= 1
    )  # before: read as 8-bit, up to 200 of 255


def test_a_large_sixteen_bit_picture_reduced_for_detection_keeps_its_levels() -> None:
    ramp = (np.arange(2048 * 2048).reshape(2048, 2048) % 60000).astype(np.uint16)
    data = _save(Image.fromarray(ramp), "PNG")
    full = decode_image(data).pixels.astype(float)
    reduced = decode_image(data, detect_side=1024).pixels.astype(float)
    assert reduced.shape == (1024, 1024)  # grey stays grey
    assert abs(reduced.mean() - full.mean()) < 1.0  # before: clipped to white (mean 254 of 255)
