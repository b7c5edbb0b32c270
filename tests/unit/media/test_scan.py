"""Image folder scans: marked images found with their record ids, unmarked not, resumable, bad files as rows."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.unit.media.conftest import encode, textured_image
from tracemark.cli import main
from tracemark.errors import InvalidInputError
from tracemark.media import MediaKey, embed_watermark, scan_images


def _rows(path: Path) -> dict[str, dict[str, object]]:
    return {row["id"]: row for row in map(json.loads, path.read_text().splitlines())}


def _folder(tmp_path: Path, key: MediaKey) -> Path:
    folder = tmp_path / "images"
    (folder / "sub").mkdir(parents=True)
    for i in range(2):
        marked = embed_watermark(textured_image(i, 256, 256), key, bytes([i + 1]) * 12)
        (folder / f"marked{i}.png").write_bytes(encode(marked))
    (folder / "sub" / "plain.png").write_bytes(encode(textured_image(7, 256, 256)))
    (folder / "sub" / "plain.jpg").write_bytes(encode(textured_image(8, 256, 256), "JPEG", quality=90))
    (folder / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n not really")
    (folder / "notes.txt").write_text("not an image: a folder scan skips it")
    return folder


def test_scan_finds_marked_images_and_their_record_ids(tmp_path: Path, key: MediaKey) -> None:
    folder = _folder(tmp_path, key)
    out = tmp_path / "r.jsonl"
    summary = scan_images([folder], key, out, search=False)
    rows = _rows(out)
    assert set(rows) == {str(folder / n) for n in ("marked0.png", "marked1.png", "sub/plain.png", "sub/plain.jpg",
                                                  "broken.png")}  # fmt: skip
    assert rows[str(folder / "marked0.png")]["marked"] is True
    assert rows[str(folder / "marked1.png")]["record_id"] == (bytes([2]) * 12).hex()
    assert rows[str(folder / "sub/plain.png")]["marked"] is False
    assert rows[str(folder / "sub/plain.png")]["p_value"] == 1.0
    assert rows[str(folder / "broken.png")]["error"]
    bound = rows[str(folder / "marked0.png")]["false_positive_bound"]
    assert isinstance(bound, float)
    assert 0.0 < bound < 1e-6
    assert (summary.images, summary.images_tested, summary.errors, summary.marked) == (5, 4, 1, 2)
    assert summary.benjamini_hochberg_discoveries == 2
    assert 0.0 < summary.expected_false_positives < 1e-5


def test_scan_resumes_without_rescanning(tmp_path: Path, key: MediaKey) -> None:
    folder = _folder(tmp_path, key)
    out = tmp_path / "r.jsonl"

    def stop_after_two(images: int, marked: int, seconds: float) -> None:
        if images == 2:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        scan_images([folder], key, out, search=False, progress=stop_after_two)
    assert len(_rows(out)) == 2
    with out.open("a") as handle:
        handle.write('{"format": "tracemark.media.scan-row/v1", "id": "torn')
    summary = scan_images([folder], key, out, search=False)
    lines = out.read_text().splitlines()
    assert len(lines) == len(set(lines)) == 5
    assert (summary.resumed_images, summary.images, summary.marked) == (2, 5, 2)
    with pytest.raises(InvalidInputError, match="no such file"):
        scan_images([tmp_path / "missing"], key, tmp_path / "x.jsonl")


def test_cli_media_scan(capsys: pytest.CaptureFixture[str], tmp_path: Path, keyring_key: MediaKey) -> None:
    folder = _folder(tmp_path, keyring_key)
    out = tmp_path / "r.jsonl"
    assert main(["media", "scan", str(folder), "--out", str(out), "--no-search", "--json"]) == 0
    captured = capsys.readouterr()
    summary = json.loads(captured.out)
    assert summary["format"] == "tracemark.media.scan-summary/v1"
    assert (summary["images"], summary["marked"]) == (5, 2)
    assert "scanned 1 images" in captured.err
