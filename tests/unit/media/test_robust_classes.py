"""Regression tests for the failure classes measured on the natural-picture set (issue #21).

Small pictures (0.3 MP or less) lost the mark after 0.5x + JPEG 50 (8/16 on the set): their fine carriers
sit near the picture's own resolution.  They now carry the coarse variant (the working grid averaged
2 x 2).  Rotation then crop-to-fill lost it on flower.jpg (and on busy or large pictures whose template
was too weak); the template's flat-area floor now follows the carriers'.  The pictures are rendered here or
ship with scikit-learn, never the benchmark's cache.
"""

from __future__ import annotations

import io

import numpy as np
import numpy.typing as npt
import pytest
from PIL import Image

from tests.support.keys import fixed_secret
from tracemark.media import MediaKey, detect_watermark, embed_watermark
from tracemark.media import _watermark as watermark
from tracemark.redteam._image_redteam import rotate_fill

Pixels = npt.NDArray[np.uint8]


def _photo(seed: int, height: int = 300, width: int = 420) -> Pixels:
    """A small photo-like picture: smooth colour fields with a 1/f^1.5 amplitude spectrum and sensor noise."""
    rng = np.random.default_rng(seed)
    fy, fx = np.fft.fftfreq(height)[:, None], np.fft.rfftfreq(width)[None, :]
    radius = np.sqrt(fx * fx + fy * fy)
    radius[0, 0] = 1.0

    def field() -> npt.NDArray[np.float64]:
        spectrum = (rng.normal(size=radius.shape) + 1j * rng.normal(size=radius.shape)) / radius**1.5
        values: npt.NDArray[np.float64] = np.fft.irfft2(spectrum, s=(height, width))
        return values

    shared = field()
    picture = np.empty((height, width, 3))
    for channel in range(3):
        mixed = shared + 0.4 * field()
        picture[..., channel] = 128 + 45 * mixed / mixed.std()
    picture += rng.normal(0, 1.5, picture.shape)
    return np.clip(np.round(picture), 0, 255).astype(np.uint8)


def _half_then_jpeg50(pixels: Pixels) -> Pixels:
    picture = Image.fromarray(pixels)
    half = picture.resize((round(picture.width * 0.5), round(picture.height * 0.5)), Image.Resampling.BICUBIC)
    out = io.BytesIO()
    half.save(out, "JPEG", quality=50)
    return np.asarray(Image.open(io.BytesIO(out.getvalue())).convert("RGB"))


def _psnr(a: Pixels, b: Pixels) -> float:
    mse = float(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2))
    return float(10 * np.log10(255.0**2 / mse))


def _recovered_after_half_and_jpeg(key: MediaKey) -> int:
    count = 0
    for seed in range(20):
        record = bytes([seed]) * 12
        picture = _photo(seed)
        marked = embed_watermark(picture, key, record)
        assert _psnr(picture, marked) >= 42.0
        count += detect_watermark(_half_then_jpeg50(marked), [key]).record_id == record.hex()
    return count


def test_small_pictures_survive_half_size_then_jpeg50(monkeypatch: pytest.MonkeyPatch) -> None:
    key = MediaKey.from_secret(fixed_secret("small pictures"))
    # 20 rendered 420 x 300 pictures (0.13 MP): the coarse variant recovered 19-20 of them (checked for
    # several keys); the fine variant alone, what such pictures carried before, recovered none.
    assert _recovered_after_half_and_jpeg(key) >= 16
    monkeypatch.setattr(watermark, "COARSE_BELOW", 0)
    assert _recovered_after_half_and_jpeg(key) <= 4


@pytest.mark.parametrize("degrees", [-3.0, 3.0, 1.0])
def test_rotation_then_crop_to_fill_of_a_small_photo(degrees: float) -> None:
    # flower.jpg (640 x 427) lost the mark after 1 and 3 degrees + crop-to-fill on the benchmark's set.
    from sklearn.datasets import load_sample_image  # type: ignore[import-untyped]  # sklearn ships no type stubs

    photo = load_sample_image("flower.jpg")
    for index in range(3):
        key = MediaKey.from_secret(fixed_secret(f"flower {index}"))
        record = bytes([index + 1]) * 12
        marked = embed_watermark(photo, key, record)
        attacked = np.asarray(rotate_fill(Image.fromarray(marked), degrees))
        found = detect_watermark(attacked, [key])
        assert found.record_id == record.hex(), (degrees, index)
        assert found.geometry is not None
        assert found.geometry.startswith("rotation")
