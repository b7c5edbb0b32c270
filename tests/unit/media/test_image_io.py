"""Image input: formats, modes and alpha kept; malformed, tiny and bomb images refused with a typed error."""

from __future__ import annotations

import io
import struct
import threading
import time
import warnings
import zlib
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
from PIL import Image

from tests.unit.media.conftest import encode, textured_image
from tracemark.errors import ImageInputError, MediaError
from tracemark.media import MAX_PIXELS, MediaKey, decode_image, encode_image, verify_image
from tracemark.media._image_io import DETECT_SIDE, MIN_MARK_SIDE, declared_size, format_for_path
from tracemark.media._watermark import detect_watermark, embed_watermark


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


@pytest.mark.parametrize(("size", "expected"), [((4000, 3000), (2000, 1500)), ((2047, 5000), (2047, 5000)),
                                                ((7000, 7000), (1166, 1166)), ((1500, 900), (1500, 900))])  # fmt: skip
def test_detection_reads_a_reduced_copy_of_large_images(size: tuple[int, int], expected: tuple[int, int]) -> None:
    flat = Image.new("RGB", size, (120, 130, 140))
    out = io.BytesIO()
    flat.save(out, "PNG")
    decoded = decode_image(out.getvalue(), detect_side=DETECT_SIDE)
    assert decoded.size == expected
    assert decoded.pixels[0, 0].tolist() == [120, 130, 140]
    assert decode_image(out.getvalue()).size == size  # marking still gets every pixel


@pytest.mark.parametrize(("mode", "image_format"), [("RGB", "JPEG"), ("L", "JPEG"), ("RGBA", "PNG"), ("P", "PNG"),
                                                    ("RGB", "WEBP")])  # fmt: skip
def test_reduction_keeps_modes_and_alpha(mode: str, image_format: str) -> None:
    picture = Image.fromarray(textured_image(3, 2300, 2100)).convert(mode)
    if mode == "RGBA":
        picture.putalpha(200)
    out = io.BytesIO()
    picture.save(out, image_format, **({"quality": 90} if image_format != "PNG" else {}))
    decoded = decode_image(out.getvalue(), detect_side=DETECT_SIDE)
    assert decoded.size == (1050, 1150)
    assert decoded.pixels.shape[:2] == (1150, 1050)
    if mode == "RGBA":
        assert decoded.alpha is not None
        assert decoded.alpha.shape == (1150, 1050)
        assert int(decoded.alpha.min()) == 200


def test_a_mark_is_found_on_the_reduced_copy() -> None:
    key = MediaKey.from_secret(bytes(range(32)))
    base = Image.fromarray(textured_image(7, 512, 512)).resize((2600, 2500), Image.Resampling.BICUBIC)
    marked = embed_watermark(np.asarray(base), key, bytes(range(12)))
    for data in (encode(marked, "PNG"), encode(marked[100:-100, 110:-110], "PNG"), encode(marked, "JPEG", quality=90)):
        reduced = decode_image(data, detect_side=DETECT_SIDE)
        assert max(reduced.size) < 1400  # reduced by 2
        assert detect_watermark(reduced.pixels, [key]).found


def test_verifying_a_flat_large_png_costs_little_cpu() -> None:
    """Review S1: a 56 KiB flat 4000 x 4000 PNG cost 6 s of CPU (a 7000 x 7000 one 20 s) in verification."""
    flat = Image.new("RGB", (4000, 4000), (120, 130, 140))
    out = io.BytesIO()
    flat.save(out, "PNG", optimize=True)
    key = MediaKey.from_secret(bytes(range(32)))
    started = time.thread_time()
    verdict = verify_image(out.getvalue(), keys=[key], trust_anchors_pem=None)
    spent = time.thread_time() - started
    assert verdict.outcome.value == "unmarked"
    assert spent < 2.5, f"{spent:.2f} s of CPU"  # 0.7 s here with the reduced copy, 6 s without


def test_concurrent_decoding_refuses_every_bomb_and_leaves_the_warning_filters_alone() -> None:
    """The service decodes in threads: the bomb check must not rely on process-wide warning filters, which one
    thread's ``warnings.catch_warnings`` would switch off (or leave switched on) under another's decoding."""
    side = int(MAX_PIXELS**0.5) + 1  # over the budget, under Pillow's hard 2x error: Pillow itself only warns
    bomb = _png_claiming(side, side)
    good = encode(textured_image(7, 700, 700), "PNG")
    outcomes: list[str] = []
    start = threading.Barrier(8)

    def work(index: int) -> None:
        start.wait()
        for round_ in range(12):
            if (index + round_) % 2:
                try:
                    decode_image(bomb)
                except ImageInputError as exc:
                    outcomes.append("refused" if "limit" in str(exc) else f"other: {exc}")
                else:
                    outcomes.append("decoded a bomb")
            else:
                outcomes.append("decoded" if decode_image(good).size == (700, 700) else "wrong size")

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        filters_before = list(warnings.filters)
        with ThreadPoolExecutor(max_workers=8) as pool:
            list(pool.map(work, range(8)))
        filters_after = list(warnings.filters)
        bomb_warnings = [w for w in caught if issubclass(w.category, Image.DecompressionBombWarning)]
    assert sorted(set(outcomes)) == ["decoded", "refused"]
    assert outcomes.count("refused") == outcomes.count("decoded") == 48
    assert bomb_warnings == []  # refused by our own header check: Pillow was never asked to open a bomb
    assert filters_after == filters_before  # nothing leaked into the process-wide filters


def _webp(lossless: bool, alpha: bool) -> bytes:
    pixels = textured_image(8, 300, 420)
    if alpha:  # a varying alpha plane: a constant one is dropped and the file stays a simple VP8
        pixels = np.dstack([pixels, np.linspace(0, 255, 300 * 420).reshape(300, 420).astype(np.uint8)])
    data = _save(Image.fromarray(pixels), "WEBP", lossless=lossless, quality=90)
    assert data[12:16] == (b"VP8X" if alpha else b"VP8L" if lossless else b"VP8 ")
    return data


def _save(picture: Image.Image, image_format: str, **options: object) -> bytes:
    out = io.BytesIO()
    picture.save(out, image_format, **options)
    return out.getvalue()


@pytest.mark.parametrize(
    "data",
    [
        encode(textured_image(9, 300, 420), "PNG"),
        encode(textured_image(9, 300, 420), "JPEG", quality=90),
        _save(Image.fromarray(textured_image(9, 300, 420)), "JPEG", quality=90, progressive=True),
        _webp(lossless=False, alpha=False),
        _webp(lossless=True, alpha=False),
        _webp(lossless=False, alpha=True),
    ],
    ids=["png", "jpeg", "progressive-jpeg", "webp-lossy", "webp-lossless", "webp-extended"],
)
def test_the_declared_size_is_what_pillow_reads(data: bytes) -> None:
    assert declared_size(data) == Image.open(io.BytesIO(data)).size == (420, 300)


def _claiming_jpeg(width: int, height: int) -> bytes:
    """A real JPEG whose start-of-frame segment was edited to claim another size."""
    data = bytearray(encode(textured_image(10, 64, 64), "JPEG", quality=80))
    sof = data.index(b"\xff\xc0")
    data[sof + 5 : sof + 9] = struct.pack(">HH", height, width)
    return bytes(data)


def _claiming_webp(width: int, height: int) -> bytes:
    """An extended WebP whose VP8X canvas was edited to claim another size."""
    data = bytearray(_webp(lossless=False, alpha=True))
    data[24:30] = (width - 1).to_bytes(3, "little") + (height - 1).to_bytes(3, "little")
    return bytes(data)


@pytest.mark.parametrize("claiming", [_png_claiming, _claiming_jpeg, _claiming_webp], ids=["png", "jpeg", "webp"])
def test_a_bomb_is_refused_from_its_header_before_pillow_sees_it(
    claiming: Callable[[int, int], bytes], monkeypatch: pytest.MonkeyPatch
) -> None:
    def no_pillow(*args: object, **kwargs: object) -> None:
        raise AssertionError("Pillow was asked to open a file whose header is over the limit")

    monkeypatch.setattr(Image, "open", no_pillow)
    for width, height in ((8000, 7000), (12_000, 12_000)):  # over the budget; over Pillow's own hard limit
        data = claiming(width, height)
        assert declared_size(data) == (width, height)
        with pytest.raises(ImageInputError, match=f"{width}x{height} = {width * height} pixels; the limit is"):
            decode_image(data)


def test_a_lower_pillow_limit_set_by_the_host_is_honoured(monkeypatch: pytest.MonkeyPatch) -> None:
    data = encode(textured_image(11, 300, 420), "PNG")
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 100_000)
    with pytest.raises(ImageInputError, match="the limit is 100000"):
        decode_image(data)
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", None)  # switched off by the host: our own budget still holds
    assert decode_image(data).size == (420, 300)
    with pytest.raises(ImageInputError, match=f"the limit is {MAX_PIXELS}"):
        decode_image(_png_claiming(8000, 7000))
