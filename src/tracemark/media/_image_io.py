"""Reading and writing JPEG, PNG and WebP images safely, with limits checked before any pixel is decoded.

Images come from strangers: a few kilobytes of PNG can claim a 100,000 x 100,000 canvas (a decompression
bomb).  The canvas size is read from the file's own header (:func:`declared_size`) and checked against
:data:`MAX_PIXELS` before Pillow opens it, then checked again on what Pillow reports before any pixel is
decoded (Pillow's own bomb limit, ``Image.MAX_IMAGE_PIXELS``, is lowered to the same figure when this module
is imported, and a lower one set by the host application is honoured).  No warning filter is touched: the
service decodes in threads, and ``warnings.catch_warnings`` swaps process-wide state that another thread's
decoding would see (or be left with).  Any decoder failure becomes an
:class:`~tracemark.errors.ImageInputError`.  A file that ends before its image data does is refused as
truncated, an animated WebP or PNG as animated (marking its first frame alone would silently flatten it).
Grey, colour, palette, 16-bit, CMYK and alpha images are accepted; the alpha channel is kept apart and
written back untouched.
"""

from __future__ import annotations

import io
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
from PIL import Image, ImageOps, UnidentifiedImageError

from tracemark.errors import ImageInputError

#: Largest encoded image accepted (bytes).
MAX_IMAGE_BYTES = 64 * 1024 * 1024
#: Largest canvas accepted (pixels); Pillow's own bomb check is set to the same figure.
MAX_PIXELS = 50_000_000
#: Smallest side an image to be marked may have.
MIN_MARK_SIDE = 256
#: Smallest side an image to be checked may have (marked images may have been shrunk to a quarter).
MIN_DETECT_SIDE = 64
#: Shortest side kept when an image is reduced for watermark detection (``decode_image(detect_side=...)``):
#: four pixels per cell of the detector's 256 x 256 grid, so crops are still located to a quarter cell.
DETECT_SIDE = 1024

if Image.MAX_IMAGE_PIXELS is None or Image.MAX_IMAGE_PIXELS > MAX_PIXELS:
    Image.MAX_IMAGE_PIXELS = MAX_PIXELS  # Pillow warns above this and refuses above 2x; decode_image refuses first

FORMATS = {"JPEG": "image/jpeg", "PNG": "image/png", "WEBP": "image/webp"}
_EXTENSIONS = {".jpg": "JPEG", ".jpeg": "JPEG", ".png": "PNG", ".webp": "WEBP"}


@dataclass(frozen=True)
class DecodedImage:
    """Pixels as uint8 (H, W) grey or (H, W, 3) RGB, the alpha plane if any, and the source format."""

    pixels: npt.NDArray[np.uint8]
    alpha: npt.NDArray[np.uint8] | None
    format: str

    @property
    def mime_type(self) -> str:
        return FORMATS[self.format]

    @property
    def size(self) -> tuple[int, int]:
        """(width, height)."""
        return int(self.pixels.shape[1]), int(self.pixels.shape[0])


def format_for_path(name: str) -> str:
    """The output format named by a file extension (``.jpg``, ``.png``, ``.webp``)."""
    for extension, image_format in _EXTENSIONS.items():
        if name.lower().endswith(extension):
            return image_format
    raise ImageInputError(f"{name}: unknown image extension; use .jpg, .png or .webp")


def decode_image(data: bytes, *, min_side: int = MIN_DETECT_SIDE, detect_side: int | None = None) -> DecodedImage:
    """Decode ``data`` (JPEG, PNG or WebP) under the size limits; EXIF orientation is applied.

    The pixel budget :data:`MAX_PIXELS` is checked against the header's size before any pixel is
    decoded.  With ``detect_side``, an image whose shorter side is at least twice that is reduced by
    the largest integer factor that keeps both sides at least ``detect_side`` (a box filter; JPEG is
    decoded reduced by its DCT scaling straight away): what watermark detection needs, at a fraction
    of the work on a large image.
    """
    if len(data) > MAX_IMAGE_BYTES:
        raise ImageInputError(f"image is {len(data)} bytes; the limit is {MAX_IMAGE_BYTES}")
    if not data:
        raise ImageInputError("image is empty")
    truncated = truncation(data)
    if truncated is not None:
        raise ImageInputError(f"truncated image: {truncated}")
    limit = pixel_limit()
    declared = declared_size(data)
    if declared is not None:
        _check_pixels(*declared, limit)  # before Pillow opens it: Pillow would warn (or raise) on its own
    try:
        picture = Image.open(io.BytesIO(data), formats=list(FORMATS))
        width, height = picture.size
        _check_pixels(width, height, limit)  # what Pillow read is what it decodes, whatever the header parse
        if min(width, height) < min_side:
            raise ImageInputError(f"image is {width}x{height}; each side must be at least {min_side} pixels")
        image_format = str(picture.format)
        frames = int(getattr(picture, "n_frames", 1) or 1)
        if frames > 1:
            raise ImageInputError(
                f"animated {image_format} ({frames} frames): only still images are marked and verified "
                "(export the frame you mean as a still image)"
            )
        sixteen_bit = picture.mode.startswith("I")
        factor = _reduction(width, height, detect_side)
        if factor > 1 and image_format == "JPEG":
            picture.draft(picture.mode, (width // factor, height // factor))  # DCT scaling: 1/2, 1/4 or 1/8
        picture.load()
        loaded: Image.Image = _reduced(picture, factor, (width, height)) if factor > 1 else picture
        upright: Image.Image = ImageOps.exif_transpose(loaded)
    except ImageInputError:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:  # the warning: a host's -W error
        raise ImageInputError(f"image refused as a decompression bomb: {exc}") from None
    except UnidentifiedImageError:
        named = _other_format(data)
        raise ImageInputError(
            f"not a JPEG, PNG or WebP image{f' ({named} is not supported)' if named else ''}"
        ) from None
    except (OSError, ValueError, SyntaxError, EOFError, MemoryError) as exc:
        if isinstance(exc, EOFError) or "truncated" in str(exc).lower():
            raise ImageInputError(f"truncated image: {exc}") from None
        raise ImageInputError(f"malformed image: {exc}") from None
    return _split_alpha(upright, image_format, sixteen_bit=sixteen_bit)


def pixel_limit() -> int:
    """The largest canvas decode_image accepts: :data:`MAX_PIXELS`, or Pillow's limit where the host set it lower."""
    pillow = Image.MAX_IMAGE_PIXELS
    return MAX_PIXELS if pillow is None else min(MAX_PIXELS, int(pillow))


def _check_pixels(width: int, height: int, limit: int) -> None:
    if width * height > limit:
        raise ImageInputError(
            f"image is {width}x{height} = {width * height} pixels; the limit is {limit} (decompression bomb?)"
        )


def declared_size(data: bytes) -> tuple[int, int] | None:
    """(width, height) as the header of a PNG, JPEG or WebP file declares it, read without decoding; None when
    the header is not one of these or cannot be read (then Pillow's reading is checked instead)."""
    if data.startswith(b"\x89PNG\r\n\x1a\n") and data[12:16] == b"IHDR" and len(data) >= 24:
        return int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")
    if data.startswith(b"\xff\xd8"):
        return _jpeg_size(data)
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP" and len(data) >= 30:
        return _webp_size(data)
    return None


#: JPEG start-of-frame markers (baseline, progressive, lossless, arithmetic): they carry the frame's size.
_SOF_MARKERS = frozenset(range(0xC0, 0xD0)) - {0xC4, 0xC8, 0xCC}


def _jpeg_size(data: bytes) -> tuple[int, int] | None:
    """The largest frame size among the start-of-frame segments before the first scan."""
    position, found = 2, None
    while position + 4 <= len(data):
        if data[position] != 0xFF:
            return found  # not a marker where one must be: leave the rest to Pillow
        marker = data[position + 1]
        if marker == 0xFF:  # fill byte
            position += 1
            continue
        if marker == 0x01 or 0xD0 <= marker <= 0xD7:  # standalone markers carry no length
            position += 2
            continue
        if marker in (0xD9, 0xDA):  # end of image, start of scan: no frame header comes after
            return found
        length = int.from_bytes(data[position + 2 : position + 4], "big")
        if marker in _SOF_MARKERS and position + 9 <= len(data):
            height = int.from_bytes(data[position + 5 : position + 7], "big")
            width = int.from_bytes(data[position + 7 : position + 9], "big")
            if found is None or width * height > found[0] * found[1]:
                found = (width, height)
        position += 2 + length
    return found


def _webp_size(data: bytes) -> tuple[int, int] | None:
    """The canvas of an extended WebP (VP8X), or the frame of a simple lossy (VP8) or lossless (VP8L) one."""
    chunk = data[12:16]
    if chunk == b"VP8X":
        return 1 + int.from_bytes(data[24:27], "little"), 1 + int.from_bytes(data[27:30], "little")
    if chunk == b"VP8 " and data[23:26] == b"\x9d\x01\x2a":
        return int.from_bytes(data[26:28], "little") & 0x3FFF, int.from_bytes(data[28:30], "little") & 0x3FFF
    if chunk == b"VP8L" and data[20] == 0x2F:
        bits = int.from_bytes(data[21:25], "little")
        return 1 + (bits & 0x3FFF), 1 + ((bits >> 14) & 0x3FFF)
    return None


def truncation(data: bytes) -> str | None:
    """Why ``data`` ends before its image does (the container's own structure says so), or None.

    Decoder-independent, so a truncated download is told apart from corrupt data: a PNG without its
    ``IEND`` chunk or whose last chunk runs past the end, a JPEG with no end-of-image marker after its
    last scan, a WebP shorter than its RIFF header says.
    """
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        return _png_truncation(data)
    if data.startswith(b"\xff\xd8") and data.rfind(b"\xff\xd9") < data.rfind(b"\xff\xda"):
        # A scan stuffs every 0xFF byte, so no end-of-image marker can hide inside it.
        return f"the JPEG ends after {len(data)} bytes inside its image data (no end-of-image marker)"
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP" and int.from_bytes(data[4:8], "little") + 8 > len(data):
        return f"the WebP header declares {int.from_bytes(data[4:8], 'little') + 8} bytes, the file has {len(data)}"
    return None


def _png_truncation(data: bytes) -> str | None:
    position = 8
    while position + 8 <= len(data):
        length = int.from_bytes(data[position : position + 4], "big")
        kind = data[position + 4 : position + 8]
        end = position + 12 + length
        if end > len(data):
            return f"the PNG chunk {kind.decode('latin-1')!r} needs {end} bytes, the file has {len(data)}"
        if kind == b"IEND":
            return None
        position = end
    return f"the PNG ends after {len(data)} bytes without its IEND chunk"


def _other_format(data: bytes) -> str | None:
    """The name of a common image format tracemark does not read, for the refusal's message."""
    for magic, name in ((b"GIF8", "GIF"), (b"II*\x00", "TIFF"), (b"MM\x00*", "TIFF"), (b"BM", "BMP")):
        if data.startswith(magic):
            return name
    if data[4:12] in (b"ftypavif", b"ftypheic", b"ftypmif1"):
        return "AVIF/HEIF"
    return None


def _reduction(width: int, height: int, detect_side: int | None) -> int:
    """The integer reduction factor that keeps both sides at least ``detect_side`` (1: none)."""
    if detect_side is None or detect_side < 1:
        return 1
    return max(1, min(width, height) // detect_side)


def _reduced(picture: Image.Image, factor: int, size: tuple[int, int]) -> Image.Image:
    """``picture`` (perhaps already reduced by a JPEG draft) reduced to ``size // factor`` with a box filter."""
    width, height = size
    target = (max(1, width // factor), max(1, height // factor))
    if picture.mode.startswith("I;16"):
        picture = picture.convert("I")  # value-preserving; a conversion to RGB would clip at 255
    elif picture.mode not in ("L", "LA", "RGB", "RGBA", "I", "F"):
        picture = picture.convert("RGBA" if "A" in picture.getbands() or "transparency" in picture.info else "RGB")
    step = min(picture.size[0] // target[0], picture.size[1] // target[1])
    if step > 1:
        picture = picture.reduce(step)
    if picture.size != target:  # a draft's or a reduction's remainder: a last box resize onto the target
        picture = picture.resize(target, Image.Resampling.BOX)
    return picture


def _split_alpha(picture: Image.Image, image_format: str, *, sixteen_bit: bool = False) -> DecodedImage:
    mode = picture.mode
    if mode == "P":
        picture = picture.convert("RGBA" if "transparency" in picture.info else "RGB")
    elif mode in ("I;16", "I;16B", "I;16L", "I", "F") and sixteen_bit:
        # The file says 16 bits: scale by the depth, not by the brightest pixel (a dark picture stays dark).
        array16 = np.asarray(picture, dtype=np.float64)
        picture = Image.fromarray(np.clip(np.round(array16 / 257.0), 0, 255).astype(np.uint8), mode="L")
    elif mode == "1":
        picture = picture.convert("L")
    elif mode in ("CMYK", "YCbCr", "F"):
        picture = picture.convert("RGB")
    mode = picture.mode
    alpha: npt.NDArray[np.uint8] | None = None
    if mode in ("RGBA", "LA", "PA", "RGBa", "La"):
        alpha = np.asarray(picture.getchannel("A"), dtype=np.uint8).copy()
        picture = picture.convert("L" if mode.startswith("L") else "RGB")
    if picture.mode not in ("L", "RGB"):
        picture = picture.convert("RGB")
    return DecodedImage(pixels=np.asarray(picture, dtype=np.uint8).copy(), alpha=alpha, format=image_format)


def encode_image(image: DecodedImage, image_format: str, *, quality: int = 92) -> bytes:
    """Encode pixels (and alpha) as ``image_format``; JPEG cannot hold alpha and says so."""
    if image_format not in FORMATS:
        raise ImageInputError(f"cannot write {image_format}; use JPEG, PNG or WEBP")
    grey = image.pixels.ndim == 2
    picture = Image.fromarray(image.pixels, mode="L" if grey else "RGB")
    if image.alpha is not None:
        if image_format == "JPEG":
            raise ImageInputError("JPEG has no alpha channel: write the image as .png or .webp")
        picture.putalpha(Image.fromarray(image.alpha, mode="L"))
    out = io.BytesIO()
    if image_format == "JPEG":
        picture.save(out, "JPEG", quality=quality, subsampling=0)
    elif image_format == "WEBP":
        picture.save(out, "WEBP", quality=quality, method=4)
    else:
        picture.save(out, "PNG", optimize=False)
    return out.getvalue()
