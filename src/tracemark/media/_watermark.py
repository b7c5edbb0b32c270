"""The keyed invisible image watermark: dithered QIM on low-frequency DCT coefficients at a fixed working size.

How it works (algorithm ``io.tracemark.qim.v1``):

1. The luma is averaged down to a 256 x 256 working grid, whatever the image's size and aspect.  Any
   later resize lands on the same grid, which is why resizing from 0.25x to 2x does not move the mark.
2. The working grid is cut into 8 x 8 blocks; nine low-frequency AC coefficients of each block (zig-zag
   slots 1-9) form 9,216 carrier slots.  JPEG, WebP and blur barely touch such low frequencies.
3. The 128-bit payload (a 32-bit key tag and a 96-bit record id) gets a 48-bit keyed check code (HMAC),
   is convolutionally encoded (rate 1/3, K=7) and each coded bit is spread over 16-17 slots chosen by a
   keyed permutation.  Each slot is quantised onto one of two keyed, dithered lattices (QIM).
4. The quantisation step scales with the image's global contrast (so brightness and contrast changes
   scale the lattice with the picture) and each block moves only part of the way to its lattice point
   when it is flat (perceptual masking: flat areas show nothing).
5. The change is computed on the working grid, upsampled and added to the luma of every channel; three
   fixed-point passes absorb rounding and clipping.

Detection rebuilds the grid, takes a soft vote per coded bit, runs the Viterbi decoder and accepts the
payload only when the keyed check code and the key tag both match.  The probability that an unmarked
image passes is at most 2^-48 per key and geometry tried, which the detection reports as its
false-positive bound.  When the direct grid fails, a small search over rotations about the centre
(up to 3 degrees, canvas size kept) is tried, each attempt counted in the bound.  Crops are not
synchronised: a crop shifts the grid by a fraction of a pixel and QIM on large coefficients does not
survive that.
"""

from __future__ import annotations

import functools
import hashlib
import hmac
from collections.abc import Iterator
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt
from PIL import Image
from scipy.ndimage import uniform_filter

from tracemark.media import _ecc

ALGORITHM = "io.tracemark.qim.v1"
WORK_SIZE = 256
BLOCK = 8
BLOCKS_PER_SIDE = WORK_SIZE // BLOCK
#: Zig-zag positions of the carrier coefficients in each 8 x 8 block (row, column).
CARRIER_POSITIONS = ((0, 1), (1, 0), (2, 0), (1, 1), (0, 2), (0, 3), (1, 2), (2, 1), (3, 0))
SLOT_COUNT = BLOCKS_PER_SIDE * BLOCKS_PER_SIDE * len(CARRIER_POSITIONS)
KEY_TAG_BYTES = 4
RECORD_ID_BYTES = 12
PAYLOAD_BYTES = KEY_TAG_BYTES + RECORD_ID_BYTES
CHECK_BYTES = 6
MESSAGE_BITS = (PAYLOAD_BYTES + CHECK_BYTES) * 8
CODED_BITS = _ecc.coded_length(MESSAGE_BITS)
#: Chance that an unmarked image passes the 48-bit keyed check for one key and one geometry.
FALSE_POSITIVE_PER_ATTEMPT = 2.0**-48
#: Base QIM step (orthonormal DCT units at the working size) for an image of reference contrast.
DEFAULT_STEP = 20.0
_REFERENCE_CONTRAST = 48.0
_CONTRAST_CLAMP = (0.8, 1.0)
_MASK_FLOOR = 0.3
_MASK_TEXTURE = 4.0
_PASSES = 3

FloatArray = npt.NDArray[np.float64]


@dataclass(frozen=True)
class MediaKey:
    """The secret of the image watermark and its public id; ``repr`` never shows the secret."""

    key_id: str
    secret: bytes = field(repr=False)

    @classmethod
    def from_secret(cls, secret: bytes) -> MediaKey:
        """Key id ``tm-media-<8 hex>``: the first 4 bytes of a hash of the secret, which is also the embedded tag."""
        if len(secret) < 16:
            raise ValueError("a media key needs at least 128 secret bits")
        tag = hashlib.sha256(b"tracemark.media.key-tag/v1\x00" + secret).digest()[:KEY_TAG_BYTES]
        return cls(key_id=f"tm-media-{tag.hex()}", secret=secret)

    @property
    def tag(self) -> bytes:
        """The 4-byte tag embedded in every payload marked with this key."""
        return bytes.fromhex(self.key_id.removeprefix("tm-media-"))


@dataclass(frozen=True)
class Geometry:
    """How the detector mapped the image onto the working grid: the rotation it undid about the centre."""

    rotation_degrees: float = 0.0

    def describe(self) -> str:
        return "direct" if self.rotation_degrees == 0.0 else f"rotation {self.rotation_degrees:+.2f} deg"


@dataclass(frozen=True)
class WatermarkDetection:
    """The detector's answer.  ``record_id`` is set only when the keyed check passed."""

    found: bool
    algorithm: str
    key_id: str | None
    record_id: str | None
    false_positive_bound: float
    attempts: int
    confidence: float
    geometry: str | None

    @property
    def binding_value(self) -> str | None:
        """The soft-binding value (hex of tag and record id) C2PA manifests and the repository use."""
        if not self.found or self.key_id is None or self.record_id is None:
            return None
        return self.key_id.removeprefix("tm-media-") + self.record_id

    def to_json(self) -> dict[str, object]:
        return {
            "found": self.found,
            "algorithm": self.algorithm,
            "key_id": self.key_id,
            "record_id": self.record_id,
            "binding_value": self.binding_value,
            "false_positive_bound": self.false_positive_bound,
            "attempts": self.attempts,
            "confidence": round(self.confidence, 4),
            "geometry": self.geometry,
        }


# -- keyed layout -------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class _Layout:
    bit_of_slot: npt.NDArray[np.intp]
    dither: FloatArray  # per slot, in units of the step, [0, 1)
    position_dither: FloatArray  # per carrier position
    mac_key: bytes


@functools.lru_cache(maxsize=16)
def _layout(secret: bytes) -> _Layout:
    # SHAKE-256 gives a platform- and version-independent keyed stream (numpy generators may change).
    stream = hashlib.shake_256(b"tracemark.media.layout/v1\x00" + secret).digest(SLOT_COUNT * 10)
    order = np.frombuffer(stream[: SLOT_COUNT * 8], dtype="<u8")
    permutation = np.argsort(order, kind="stable")
    bit_of_slot = np.empty(SLOT_COUNT, dtype=np.intp)
    bit_of_slot[permutation] = np.arange(SLOT_COUNT) % CODED_BITS
    # Each slot's dither is its carrier position's dither plus a keyed half step (a keyed bit flip), so the
    # coded bits reach the pixels scrambled by the key.
    positions = len(CARRIER_POSITIONS)
    position_dither = np.frombuffer(stream[SLOT_COUNT * 8 : SLOT_COUNT * 8 + positions * 2], dtype="<u2")
    position_dither = position_dither.astype(np.float64) / 65536.0
    flips = np.unpackbits(np.frombuffer(stream[SLOT_COUNT * 9 : SLOT_COUNT * 9 + SLOT_COUNT // 8], dtype=np.uint8))
    dither = (np.tile(position_dither, SLOT_COUNT // positions) + flips.astype(np.float64) / 2.0) % 1.0
    mac_key = hmac.new(secret, b"tracemark.media.check/v1", hashlib.sha256).digest()
    return _Layout(bit_of_slot=bit_of_slot, dither=dither, position_dither=position_dither, mac_key=mac_key)


def _check_code(layout: _Layout, payload: bytes) -> bytes:
    return hmac.new(layout.mac_key, payload, hashlib.sha256).digest()[:CHECK_BYTES]


# -- signal processing ---------------------------------------------------------------------------------------
def _dct_matrix() -> FloatArray:
    n = np.arange(BLOCK)
    matrix: FloatArray = np.sqrt(2.0 / BLOCK) * np.cos(np.pi * (2 * n[None, :] + 1) * n[:, None] / (2 * BLOCK))
    matrix[0] /= np.sqrt(2.0)
    return matrix


_DCT = _dct_matrix()
_ROWS = np.array([p[0] for p in CARRIER_POSITIONS])
_COLS = np.array([p[1] for p in CARRIER_POSITIONS])


def _blocks_dct(work: FloatArray) -> FloatArray:
    """(256, 256) -> (32, 32, 8, 8) orthonormal block DCT."""
    blocks = work.reshape(BLOCKS_PER_SIDE, BLOCK, BLOCKS_PER_SIDE, BLOCK).transpose(0, 2, 1, 3)
    result: FloatArray = _DCT @ blocks @ _DCT.T
    return result


def _blocks_idct(coefficients: FloatArray) -> FloatArray:
    blocks: FloatArray = _DCT.T @ coefficients @ _DCT
    return blocks.transpose(0, 2, 1, 3).reshape(WORK_SIZE, WORK_SIZE)


def luma(pixels: npt.NDArray[np.generic]) -> npt.NDArray[np.float32]:
    """ITU-R BT.601 luma of an RGB (H, W, 3) or grey (H, W) array, as float32."""
    if pixels.ndim == 2:
        return pixels.astype(np.float32)
    rgb = pixels.astype(np.float32)
    return np.asarray(0.299 * rgb[..., 0] + 0.587 * rgb[..., 1] + 0.114 * rgb[..., 2], dtype=np.float32)


def _to_work(image_luma: npt.NDArray[np.float32]) -> FloatArray:
    """The working grid: area average when shrinking; bicubic when a side is below 256 (box would repeat pixels)."""
    picture = Image.fromarray(image_luma, mode="F")
    if picture.size != (WORK_SIZE, WORK_SIZE):
        small = min(picture.size) < WORK_SIZE
        picture = picture.resize((WORK_SIZE, WORK_SIZE), Image.Resampling.BICUBIC if small else Image.Resampling.BOX)
    return np.asarray(picture, dtype=np.float64)


def _from_work(residual: FloatArray, size: tuple[int, int]) -> npt.NDArray[np.float32]:
    picture = Image.fromarray(residual.astype(np.float32), mode="F")
    if picture.size != size:
        picture = picture.resize(size, Image.Resampling.BICUBIC)
    return np.asarray(picture, dtype=np.float32)


def _pixel_mask(image_luma: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]:
    """Per-pixel strength in [floor, 1]: local standard deviation over ~10 px, so flat areas get almost nothing."""
    height, width = image_luma.shape
    half = (max(1, width // 2), max(1, height // 2))
    small = np.asarray(Image.fromarray(image_luma, mode="F").resize(half, Image.Resampling.BOX), dtype=np.float32)
    mean = uniform_filter(small, 5)
    spread = np.sqrt(np.maximum(uniform_filter(small * small, 5) - mean * mean, 0.0))
    mask = np.clip(spread / _MASK_TEXTURE, _MASK_FLOOR, 1.0).astype(np.float32)
    full = Image.fromarray(mask, mode="F").resize((width, height), Image.Resampling.BILINEAR)
    return np.asarray(full, dtype=np.float32)


def _contrast_scale(coefficients: FloatArray) -> float:
    """Global contrast (spread of the block means): scales the QIM step so gain changes scale the lattice too."""
    spread = float(np.std(coefficients[:, :, 0, 0])) / BLOCK
    return float(np.clip(spread / _REFERENCE_CONTRAST, *_CONTRAST_CLAMP))


def _carriers(coefficients: FloatArray) -> FloatArray:
    carriers: FloatArray = coefficients[:, :, _ROWS, _COLS].reshape(-1)
    return carriers


def _bits_of(data: bytes) -> npt.NDArray[np.uint8]:
    return np.unpackbits(np.frombuffer(data, dtype=np.uint8))


# -- embedding -----------------------------------------------------------------------------------------------
def embed_watermark(
    pixels: npt.NDArray[np.uint8], key: MediaKey, record_id: bytes, *, step: float = DEFAULT_STEP
) -> npt.NDArray[np.uint8]:
    """Return a marked copy of ``pixels`` (uint8, (H, W) grey or (H, W, 3) RGB) carrying ``record_id``."""
    if len(record_id) != RECORD_ID_BYTES:
        raise ValueError(f"record id must be {RECORD_ID_BYTES} bytes")
    height, width = pixels.shape[:2]
    layout = _layout(key.secret)
    payload = key.tag + record_id
    coded = _ecc.encode(_bits_of(payload + _check_code(layout, payload)))
    slot_bits = coded[layout.bit_of_slot].astype(np.float64)

    image_luma = luma(pixels)
    original = _blocks_dct(_to_work(image_luma))
    delta = step * _contrast_scale(original)
    carriers = _carriers(original)
    offset = (layout.dither + slot_bits / 2.0) * delta
    quantised = np.round((carriers - offset) / delta) * delta + offset
    target = quantised
    mask = _pixel_mask(image_luma)

    # The passes find the change that puts the carriers on their lattice points despite resampling,
    # rounding and clipping; the mask then scales it down where the picture is flat.  Masking after the
    # passes keeps them from pushing the change back into flat areas.  The change is the same in every
    # channel, so early passes work on the luma alone (the weights sum to 1); the last one measures the
    # real clipped and rounded pixels.
    base = pixels.astype(np.float32)
    total = np.zeros((height, width), dtype=np.float32)
    for index in range(_PASSES):
        last = index == _PASSES - 1
        current_luma = luma(_apply(base, total)) if last else np.clip(image_luma + total, 0.0, 255.0)
        current = _blocks_dct(_to_work(current_luma))
        change = np.zeros_like(current)
        change[:, :, _ROWS, _COLS] = (target - _carriers(current)).reshape(BLOCKS_PER_SIDE, BLOCKS_PER_SIDE, -1)
        total = total + _from_work(_blocks_idct(change), (width, height))
    return _apply(base, total * mask)


def _apply(base: npt.NDArray[np.float32], change: npt.NDArray[np.float32]) -> npt.NDArray[np.uint8]:
    marked = base + (change[:, :, None] if base.ndim == 3 else change)
    np.rint(marked, out=marked)
    np.clip(marked, 0, 255, out=marked)
    return marked.astype(np.uint8)


# -- detection -----------------------------------------------------------------------------------------------
def _soft_bits(work: FloatArray, layout: _Layout, step: float, valid: FloatArray | None) -> FloatArray:
    coefficients = _blocks_dct(work)
    delta = step * _contrast_scale(coefficients)
    phase = (_carriers(coefficients) / delta - layout.dither) * (2.0 * np.pi)
    votes = np.cos(phase)
    if valid is not None:
        votes = votes * np.repeat(valid.reshape(-1), len(CARRIER_POSITIONS))
    soft: FloatArray = np.bincount(layout.bit_of_slot, weights=votes, minlength=CODED_BITS).astype(np.float64)
    return soft


def _try_decode(soft: FloatArray, key: MediaKey, layout: _Layout) -> tuple[bytes | None, float]:
    message = _ecc.decode_soft(soft, MESSAGE_BITS)
    data = np.packbits(message).tobytes()
    payload, check = data[:PAYLOAD_BYTES], data[PAYLOAD_BYTES:]
    expected = _ecc.encode(message).astype(np.float64)
    agreement = float(np.sum(soft * (1.0 - 2.0 * expected)) / max(float(np.sum(np.abs(soft))), 1e-12))
    if not hmac.compare_digest(check, _check_code(layout, payload)) or payload[:KEY_TAG_BYTES] != key.tag:
        return None, agreement
    return payload[KEY_TAG_BYTES:], agreement


def _rotated_work(image_luma: npt.NDArray[np.float32], degrees: float) -> tuple[FloatArray, FloatArray]:
    """The working grid of the image rotated back by ``degrees`` about its centre, and which blocks are real.

    The rotation happens on a copy with the image's own aspect ratio (long side at most 512): rotating
    the square working grid of a non-square image would shear it instead.
    """
    height, width = image_luma.shape
    scale = min(1.0, 2 * WORK_SIZE / max(height, width))
    size = (max(1, round(width * scale)), max(1, round(height * scale)))
    picture = Image.fromarray(image_luma, mode="F")
    if size != (width, height):
        picture = picture.resize(size, Image.Resampling.BOX)
    rotated = picture.rotate(-degrees, Image.Resampling.BILINEAR)
    coverage = Image.new("F", size, 1.0).rotate(-degrees, Image.Resampling.BILINEAR)
    work = _to_work(np.asarray(rotated, dtype=np.float32))
    covered = _to_work(np.asarray(coverage, dtype=np.float32)).reshape(BLOCKS_PER_SIDE, BLOCK, BLOCKS_PER_SIDE, BLOCK)
    return work, (covered.min(axis=(1, 3)) > 0.99).astype(np.float64)


def _search_geometries() -> Iterator[Geometry]:
    for degrees in (0.5, -0.5, 1.0, -1.0, 1.5, -1.5, 2.0, -2.0, 2.5, -2.5, 3.0, -3.0):
        yield Geometry(rotation_degrees=degrees)


def detect_watermark(
    pixels: npt.NDArray[np.generic],
    keys: list[MediaKey],
    *,
    step: float = DEFAULT_STEP,
    search: bool = True,
) -> WatermarkDetection:
    """Look for a payload under each key: the direct grid first, then (with ``search``) rotations.

    Returns ``found=False`` with no payload unless the keyed check passes; the false-positive bound
    counts every key and geometry tried.
    """
    image_luma = luma(pixels)
    attempts = 0
    best = 0.0
    geometries: list[Geometry] = [Geometry()]
    if search:
        geometries.extend(_search_geometries())
    direct = _to_work(image_luma)
    for geometry in geometries:
        if geometry == Geometry():
            work, valid = direct, None
        else:
            work, valid = _rotated_work(image_luma, geometry.rotation_degrees)
        for key in keys:
            layout = _layout(key.secret)
            attempts += 1
            record, agreement = _try_decode(_soft_bits(work, layout, step, valid), key, layout)
            best = max(best, agreement)
            if record is not None:
                return WatermarkDetection(
                    found=True,
                    algorithm=ALGORITHM,
                    key_id=key.key_id,
                    record_id=record.hex(),
                    false_positive_bound=attempts * FALSE_POSITIVE_PER_ATTEMPT,
                    attempts=attempts,
                    confidence=agreement,
                    geometry=geometry.describe(),
                )
    return WatermarkDetection(
        found=False,
        algorithm=ALGORITHM,
        key_id=None,
        record_id=None,
        false_positive_bound=attempts * FALSE_POSITIVE_PER_ATTEMPT,
        attempts=attempts,
        confidence=best,
        geometry=None,
    )
