"""The image watermark: payload round trip, robustness, quality, and no payload from unmarked images."""

from __future__ import annotations

import io
from collections.abc import Callable

import numpy as np
import numpy.typing as npt
import pytest
from PIL import Image, ImageEnhance, ImageFilter

from tests.unit.media.conftest import textured_image
from tracemark.media import ALGORITHM, MediaKey, detect_watermark, embed_watermark
from tracemark.media._watermark import ATTEMPTS_PER_KEY, FALSE_POSITIVE_PER_ATTEMPT, LIST_SIZE, MESSAGE_BITS

RECORD = bytes.fromhex("00112233445566778899aabb")


def _psnr(a: npt.NDArray[np.uint8], b: npt.NDArray[np.uint8]) -> float:
    mse = float(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2))
    return float(10 * np.log10(255.0**2 / mse))


def _jpeg(picture: Image.Image, quality: int) -> Image.Image:
    out = io.BytesIO()
    picture.save(out, "JPEG", quality=quality)
    return Image.open(io.BytesIO(out.getvalue())).convert(picture.mode)


@pytest.fixture(scope="module")
def marked() -> tuple[npt.NDArray[np.uint8], npt.NDArray[np.uint8], MediaKey]:
    key = MediaKey.from_secret(bytes(range(32)))
    original = textured_image(11, 640, 640)
    return original, embed_watermark(original, key, RECORD), key


def test_payload_is_at_least_128_data_bits_plus_check() -> None:
    assert MESSAGE_BITS - 48 >= 128


def test_round_trip_reports_payload_and_bound(
    marked: tuple[npt.NDArray[np.uint8], npt.NDArray[np.uint8], MediaKey],
) -> None:
    original, watermarked, key = marked
    assert _psnr(original, watermarked) >= 42.0
    found = detect_watermark(watermarked, [key])
    assert found.found
    assert found.algorithm == ALGORITHM
    assert found.record_id == RECORD.hex()
    assert found.key_id == key.key_id
    assert found.binding_value == key.tag.hex() + RECORD.hex()
    assert found.false_positive_bound == pytest.approx(FALSE_POSITIVE_PER_ATTEMPT)
    assert found.geometry == "direct"


ATTACKS: dict[str, Callable[[Image.Image], Image.Image]] = {
    "jpeg30": lambda p: _jpeg(p, 30),
    "jpeg90": lambda p: _jpeg(p, 90),
    "half-then-jpeg50": lambda p: _jpeg(p.resize((p.width // 2, p.height // 2), Image.Resampling.BICUBIC), 50),
    "double": lambda p: p.resize((p.width * 2, p.height * 2), Image.Resampling.BICUBIC),
    "blur": lambda p: p.filter(ImageFilter.GaussianBlur(1.5)),
    "brighter": lambda p: ImageEnhance.Brightness(p).enhance(1.2),
    "less-contrast": lambda p: ImageEnhance.Contrast(p).enhance(0.8),
    "rotate-2.3": lambda p: p.rotate(2.3, Image.Resampling.BICUBIC),
    "crop-12%-off-centre": lambda p: p.crop((70, 8, 70 + p.width * 88 // 100, 8 + p.height * 88 // 100)),
    "crop-20%-corner": lambda p: p.crop((0, p.height // 5, p.width * 4 // 5, p.height)),
}


@pytest.mark.parametrize("attack", sorted(ATTACKS))
def test_survives(attack: str, marked: tuple[npt.NDArray[np.uint8], npt.NDArray[np.uint8], MediaKey]) -> None:
    _, watermarked, key = marked
    attacked = np.asarray(ATTACKS[attack](Image.fromarray(watermarked)))
    found = detect_watermark(attacked, [key])
    assert found.found, attack
    assert found.record_id == RECORD.hex()
    if attack.startswith("crop"):
        assert found.geometry is not None
        assert found.geometry.startswith("crop: kept")


@pytest.mark.parametrize("seed", range(4))
def test_unmarked_images_do_not_decode(seed: int, key: MediaKey) -> None:
    result = detect_watermark(textured_image(100 + seed, 320, 384), [key])
    assert not result.found
    assert result.record_id is None
    assert result.binding_value is None
    # Direct grid at two gains, the list decoder's 128 messages, then (when the template test passes)
    # 2 crop offsets x 9 quarter-pixel neighbours, each read for the fine and the coarse variant, and
    # the list decoder on each offset: every message checked is in the bound.
    assert result.attempts in (4 + LIST_SIZE, ATTEMPTS_PER_KEY)
    assert (LIST_SIZE, ATTEMPTS_PER_KEY) == (128, 424)
    assert result.false_positive_bound == pytest.approx(result.attempts * FALSE_POSITIVE_PER_ATTEMPT)


def test_wrong_key_finds_nothing(marked: tuple[npt.NDArray[np.uint8], npt.NDArray[np.uint8], MediaKey]) -> None:
    _, watermarked, _ = marked
    other = MediaKey.from_secret(b"another secret of 32 bytes......")
    assert not detect_watermark(watermarked, [other], search=False).found


def test_several_keys_are_tried(marked: tuple[npt.NDArray[np.uint8], npt.NDArray[np.uint8], MediaKey]) -> None:
    _, watermarked, key = marked
    other = MediaKey.from_secret(b"another secret of 32 bytes......")
    found = detect_watermark(watermarked, [other, key], search=False)
    assert found.found
    assert found.key_id == key.key_id
    assert found.attempts == 3  # the other key's fine and coarse variants, then this key's fine one


def test_flat_areas_are_left_almost_untouched(key: MediaKey) -> None:
    picture = textured_image(5, 384, 384)
    picture[:, :192] = 90  # left half perfectly flat
    watermarked = embed_watermark(picture, key, RECORD)
    change = np.abs(watermarked.astype(np.int16) - picture.astype(np.int16))
    flat, busy = change[24:-24, 24:168], change[24:-24, 216:-24]
    # Flat areas get a weaker, smooth change (the floor is the strongest the quality targets allow),
    # never more than two grey levels.
    assert float(flat.mean()) < 0.8 * float(busy.mean())
    assert int(flat.max()) <= 2


def test_grey_images(key: MediaKey) -> None:
    grey = textured_image(3, 400, 300, channels=1)
    watermarked = embed_watermark(grey, key, RECORD)
    assert watermarked.shape == grey.shape
    assert detect_watermark(watermarked, [key], search=False).record_id == RECORD.hex()


def test_record_id_length_is_checked(key: MediaKey) -> None:
    with pytest.raises(ValueError, match="record id"):
        embed_watermark(textured_image(1, 256, 256), key, b"short")


def test_media_key_needs_128_bits() -> None:
    with pytest.raises(ValueError, match="128 secret bits"):
        MediaKey.from_secret(b"too short")
    assert "secret" not in repr(MediaKey.from_secret(bytes(32)))


def test_images_shrunk_below_the_working_grid(key: MediaKey) -> None:
    """A quarter-size copy of a 1 MP image is smaller than the 256 x 256 grid: it is upsampled smoothly."""
    watermarked = embed_watermark(textured_image(13, 1000, 1000), key, RECORD)
    small = Image.fromarray(watermarked).resize((250, 250), Image.Resampling.BICUBIC)
    found = detect_watermark(np.asarray(small), [key], search=False)
    assert found.record_id == RECORD.hex()
