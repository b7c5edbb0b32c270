"""Marking a large picture computes the mark on a copy reduced to a pixel budget (#21 point 3).

The embedder holds several float copies of the picture (about 50 bytes a pixel): a 49 MP image took
2.5 GB to mark.  Above ``MARK_WORK_PIXELS`` the mark is computed on a reduced copy and its change scaled
back up, band by band, into the full picture.  These tests shrink the budget so the path runs on small
pictures: the mark is still found, the quality holds, the bands leave no seam, and memory is measured.
"""

from __future__ import annotations

import tracemalloc

import numpy as np
import numpy.typing as npt
import pytest
from PIL import Image

from tests.unit.media.conftest import textured_image
from tracemark.media import MediaKey, detect_watermark, embed_watermark
from tracemark.media import _provenance as provenance

RECORD = bytes(range(12))


def _photo(height: int, width: int) -> npt.NDArray[np.uint8]:
    small = textured_image(91, height // 4, width // 4)
    return np.asarray(Image.fromarray(small).resize((width, height), Image.Resampling.BICUBIC)).copy()


def _psnr(a: npt.NDArray[np.uint8], b: npt.NDArray[np.uint8]) -> float:
    mse = float(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2))
    return float(10.0 * np.log10(255.0**2 / mse))


def test_a_picture_within_the_budget_is_marked_directly(key: MediaKey, monkeypatch: pytest.MonkeyPatch) -> None:
    pixels = _photo(512, 512)
    monkeypatch.setattr(provenance, "MARK_WORK_PIXELS", 512 * 512)
    assert np.array_equal(
        provenance._embed_within_budget(pixels.copy(), key, RECORD), embed_watermark(pixels, key, RECORD)
    )


@pytest.mark.parametrize("shape", [(1536, 1024, 3), (1100, 1700, 3), (1200, 1200)])
def test_a_picture_over_the_budget_keeps_its_mark_and_quality(
    key: MediaKey, monkeypatch: pytest.MonkeyPatch, shape: tuple[int, ...]
) -> None:
    pixels = _photo(shape[0], shape[1])
    if len(shape) == 2:
        pixels = pixels[:, :, 1].copy()
    monkeypatch.setattr(provenance, "MARK_WORK_PIXELS", 400_000)  # about a quarter of these pictures
    marked = provenance._embed_within_budget(pixels.copy(), key, RECORD)
    assert marked.shape == pixels.shape
    assert _psnr(pixels, marked) >= 42.0
    found = detect_watermark(marked, [key], search=False)
    assert found.found
    assert found.record_id == RECORD.hex()


def test_the_bands_leave_no_seam(key: MediaKey, monkeypatch: pytest.MonkeyPatch) -> None:
    pixels = _photo(1100, 900)
    monkeypatch.setattr(provenance, "MARK_WORK_PIXELS", 300_000)
    monkeypatch.setattr(provenance, "_BAND_ROWS", 10_000)
    whole = provenance._embed_within_budget(pixels.copy(), key, RECORD)
    monkeypatch.setattr(provenance, "_BAND_ROWS", 97)  # bands that cut the reduced rows anywhere
    banded = provenance._embed_within_budget(pixels.copy(), key, RECORD)
    assert np.abs(whole.astype(int) - banded.astype(int)).max() <= 1  # float rounding only, no seam


def _peak_bytes(work: object) -> int:
    tracemalloc.start()
    try:
        work()  # type: ignore[operator]
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def test_marking_over_the_budget_needs_a_fraction_of_the_memory(key: MediaKey, monkeypatch: pytest.MonkeyPatch) -> None:
    # numpy's buffers are traced by tracemalloc; the picture itself (4.7 MB) is allocated before tracing.
    pixels = _photo(1536, 1024)
    direct = _peak_bytes(lambda: embed_watermark(pixels, key, RECORD))
    monkeypatch.setattr(provenance, "MARK_WORK_PIXELS", 100_000)
    budgeted = _peak_bytes(lambda: provenance._embed_within_budget(pixels.copy(), key, RECORD))
    assert direct > 30 * pixels.shape[0] * pixels.shape[1]  # the embedder's float copies: > 30 bytes a pixel
    assert budgeted < direct / 4  # measured: 77 MB direct, 15 MB here (the 4.7 MB copy included)
