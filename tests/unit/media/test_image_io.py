"""Image input: formats, modes and alpha kept; malformed, tiny and bomb images refused with a typed error."""

from __future__ import annotations

import io
import struct
import zlib

import numpy as np
import pytest
from PIL import Image

from tests.unit.media.conftest import encode, textured_image
from tracemark.errors import ImageInputError, MediaError
from tracemark.media import MAX_PIXELS, decode_image, encode_image
from tracemark.media._image_io import MIN_MARK_SIDE, format_for_path


def _png_claiming(width: int, height: int) -> bytes:
    """A tiny PNG whose header claims a huge canvas (a decompression bomb)."""
    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body) & 0xFFFFFFFF)

    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(b"\x00" * 64))
        + chunk(b"IEND", b"")
    )


@pytest.mark.parametrize("image_format", ["PNG", "JPEG", "WEBP"])
def test_formats_round_trip(image_format: str) -> None:
    pixels = textured_image(1, 300, 280)
    decoded = decode_image(encode(pixels, image_format, quality=95))
    assert decoded.format == image_format
    assert decoded.size == (280, 300)
    assert decoded.pixels.shape == (300, 280, 3)
    again = decode_image(encode_image(decoded, image_format))
    assert again.format == image_format


def test_alpha_is_kept_apart_and_written_back() -> None:
    rgba = np.dstack([textured_image(2, 260, 260), np.linspace(0, 255, 260 * 260).reshape(260, 260).astype(np.uint8)])
    decoded = decode_image(encode(rgba, "PNG"))
    assert decoded.alpha is not None
    assert decoded.pixels.shape == (260, 260, 3)
    written = Image.open(io.BytesIO(encode_image(decoded, "PNG")))
    assert written.mode == "RGBA"
    assert np.array_equal(np.asarray(written)[..., 3], rgba[..., 3])
    with pytest.raises(ImageInputError, match="no alpha"):
        encode_image(decoded, "JPEG")


def test_grey_and_palette_images() -> None:
    grey = decode_image(encode(textured_image(3, 256, 256, channels=1), "PNG"))
    assert grey.pixels.ndim == 2
    palette = Image.fromarray(textured_image(4, 256, 256)).convert("P")
    out = io.BytesIO()
    palette.save(out, "PNG")
    assert decode_image(out.getvalue()).pixels.shape == (256, 256, 3)


def test_decompression_bomb_is_refused_before_decoding() -> None:
    with pytest.raises(ImageInputError, match="decompression bomb"):
        decode_image(_png_claiming(100_000, 100_000))
    side = int(MAX_PIXELS**0.5) + 1
    with pytest.raises(ImageInputError, match="limit"):
        decode_image(_png_claiming(side, side))


@pytest.mark.parametrize(
    "data",
    [b"", b"not an image at all", b"\x89PNG\r\n\x1a\n" + b"\x00" * 40, b"GIF89a" + b"\x00" * 100],
    ids=["empty", "text", "broken-png", "gif"],
)
def test_malformed_input_is_a_typed_error(data: bytes) -> None:
    with pytest.raises(ImageInputError):
        decode_image(data)


def test_truncated_jpeg_is_refused() -> None:
    data = encode(textured_image(5, 300, 300), "JPEG", quality=90)
    with pytest.raises(MediaError):
        decode_image(data[: len(data) // 2])


def test_too_small_to_mark() -> None:
    with pytest.raises(ImageInputError, match="at least 256"):
        decode_image(encode(textured_image(6, 200, 400), "PNG"), min_side=MIN_MARK_SIDE)


def test_output_format_from_extension() -> None:
    assert format_for_path("a.JPG") == "JPEG"
    assert format_for_path("b.webp") == "WEBP"
    with pytest.raises(ImageInputError):
        format_for_path("c.gif")
