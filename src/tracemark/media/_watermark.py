"""The keyed invisible image watermark: dithered QIM on low-frequency DCT coefficients at a fixed working size.

How it works (algorithm ``io.tracemark.qim.v2``; ``docs/media.md`` has the details and the figures):

1. The luma is averaged down to a 256 x 256 working grid, whatever the image's size and aspect.  Any
   later resize lands on the same grid, which is why resizing from 0.25x to 2x does not move the mark.
2. The working grid is cut into 8 x 8 blocks; nine low-frequency AC coefficients of each block (zig-zag
   slots 1-9) form 9,216 carrier slots.  JPEG, WebP and blur barely touch such low frequencies.
3. The 128-bit payload (a 32-bit key tag and a 96-bit record id) gets a 48-bit keyed check code (HMAC),
   is convolutionally encoded (rate 1/3, K=7) and each coded bit is spread over 16-17 slots chosen by a
   keyed permutation.  Each slot is quantised onto one of two keyed, dithered lattices (QIM).
4. The quantisation step scales with the image's global contrast (so brightness and contrast changes
   scale the lattice with the picture).  A keyed template of eight sinusoids (above the carriers'
   frequencies) is added for synchronisation; where it comes out too weak for the search to find (a
   page of text, a busy photo), the picture is marked again with a stronger one if the carriers and
   the quality targets allow it.
5. The change is computed on the working grid, upsampled and added to the luma of every channel; three
   fixed-point passes absorb rounding and clipping.  It is then masked by texture, with the strongest
   flat-area floor that keeps the picture's PSNR and SSIM targets (perceptual masking; judged at full
   size up to 1 MP, on a half-size copy above).

Detection rebuilds the grid, takes a soft vote per coded bit, runs the Viterbi decoder and accepts the
payload only when the keyed check code and the key tag both match.  The probability that an unmarked
image passes is at most 2^-48 per key and geometry tried, which the detection reports as its
false-positive bound.  When the direct grid fails it is tried once more at the gain whose lattice the
carriers fit best (a brightness or contrast change the contrast factor did not follow).  Then, on a
copy of at most 1024 px a side (so the cost does not grow with the picture), the template's peaks
give the picture's rotation (up to 7 degrees) and the share of each side it kept: a cheap test on
their strength lets the search go on; a template too weak for it (a busy picture, a white page) is
backed by the carriers, whose fit is read where the template's best placement puts the picture, on a
copy of at most 512 px (most unmarked pictures stop there).  The picture is then turned back; the
template's phases propose eight offsets for the crop, and a turn proposes its own exact crops (canvas
kept, or cropped to fill); the carriers' fit ranks them and the best two are polished, each variant on
its own fit, with the angle.  Every attempt is counted in the bound.  A found mark comes with a
per-tile map of where it survives.

Pictures whose shorter side is under ``COARSE_BELOW`` (640 px) carry the **coarse variant**: the same
payload and QIM on the working grid averaged 2 x 2 (16 x 16 blocks, 2,304 slots, its own keyed layout), at
half the frequencies, so that a small picture shrunk and recompressed keeps it.  The detector reads both
variants at every geometry it tries (each is an attempt in the bound).  Marks made by earlier releases
(always the fine variant) read as before; a small picture marked by this release needs this detector.
"""

from __future__ import annotations

import functools
import hashlib
import hmac
from collections.abc import Iterator
from dataclasses import dataclass, field, replace

import numpy as np
import numpy.typing as npt
from numpy.lib.stride_tricks import sliding_window_view
from PIL import Image
from scipy.ndimage import gaussian_filter, map_coordinates, uniform_filter

from tracemark._json import JSONObject, JSONValue
from tracemark.media import _ecc

ALGORITHM = "io.tracemark.qim.v2"
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
#: A block whose nine carriers are all within this share of a step of zero is flat: its slots do not vote.
FLAT_CARRIERS = 0.05
_REFERENCE_CONTRAST = 48.0
_CONTRAST_CLAMP = (0.8, 1.0)
#: Strength left in flat areas, strongest first: the first whose result keeps the quality targets is used.
_MASK_FLOORS = (0.7, 0.5, 0.3, 0.15)
_MASK_TEXTURE = 4.0
#: The template's lowest floor in flat areas; it rises with the carriers' floor when TEMPLATE_FOLLOWS_FLOOR.
_TEMPLATE_FLOOR = 0.3
TEMPLATE_FOLLOWS_FLOOR = True
#: The most a pixel may change, in grey levels: _FLAT_LIMIT where flat, plus _TEXTURE_LIMIT x texture.
_FLAT_LIMIT = 2.0
_TEXTURE_LIMIT = 10.0
_QUALITY_SSIM = 0.98
_QUALITY_PSNR = 42.5
#: The target where the picture is judged at full size (no half-size copy reading high to allow for).
_QUALITY_PSNR_FULL_SIZE = 42.1
#: Pictures up to this many pixels choose their masking floor at full size, larger ones on a half-size copy.
_FULL_SIZE_QUALITY = 1_000_000
_PASSES = 3
#: At the lowest floor the carrier change is scaled down by 15 % at a time, at most this often and to
#: this gain, until SSIM meets its target.
_SSIM_ROUNDS = 12
_SSIM_GAIN_MIN = 0.4
_SSIM_TEMPLATE_MIN = 0.3
_SSIM_MARGIN = 0.001
#: The synchronisation template: keyed sinusoids on the working grid (cycles per grid side, both axes).
TEMPLATE_PEAKS = 8
TEMPLATE_AMPLITUDE = 0.8
_TEMPLATE_BAND = (36, 60)
#: Crops the template search covers: the kept share of each side, from 1.0 down to this.
MIN_KEPT_SIDE = 0.75
_SCALE_STEP = 0.0025
#: Pictures whose shorter side is below this carry the coarse variant: the working grid averaged 2 x 2
#: (16 x 16 blocks of 16 x 16 grid pixels, 2,304 slots), whose carriers sit at half the frequencies, so a
#: small picture shrunk and recompressed (0.5x + JPEG 50) still holds them.  The detector tries both.
COARSE_BELOW = 640
COARSE_FACTOR = 2
#: The coarse variant's QIM step against the fine one's: a quarter of the slots, so twice the step costs the
#: same distortion in all.
_COARSE_STEP_RATIO = 1.0

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
    """How the detector mapped the image onto the working grid.

    Either a rotation it undid about the centre, or a crop it undid: the share of the original's width
    and height the image kept and where it sat (its top-left corner in working-grid pixels).
    """

    rotation_degrees: float = 0.0
    kept: tuple[float, float] = (1.0, 1.0)
    offset: tuple[float, float] = (0.0, 0.0)

    def describe(self) -> str:
        parts = []
        if self.rotation_degrees != 0.0:
            parts.append(f"rotation {self.rotation_degrees:+.2f} deg")
        if self.kept != (1.0, 1.0) or self.offset != (0.0, 0.0):
            parts.append(
                f"crop: kept {self.kept[0]:.3f} x {self.kept[1]:.3f} of the sides, "
                f"at ({self.offset[0]:.2f}, {self.offset[1]:.2f}) grid px"
            )
        return ", ".join(parts) if parts else "direct"


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
    #: Where the mark survives: per tile of the original's working grid (``TILES`` x ``TILES``), the mean
    #: agreement of its slots with the decoded payload; NaN where the picture does not cover the tile.
    tiles: FloatArray | None = field(default=None, repr=False, compare=False)

    @property
    def binding_value(self) -> str | None:
        """The soft-binding value (hex of tag and record id) C2PA manifests and the repository use."""
        if not self.found or self.key_id is None or self.record_id is None:
            return None
        return self.key_id.removeprefix("tm-media-") + self.record_id

    def to_json(self) -> JSONObject:
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
            "localisation": self.localisation(),
        }

    def localisation(self) -> JSONObject | None:
        """The per-tile map: rows of agreements (null where not covered) and the share of tiles marked."""
        if self.tiles is None:
            return None
        covered = ~np.isnan(self.tiles)
        marked = covered & (np.nan_to_num(self.tiles) >= TILE_MARKED)
        rows: list[JSONValue] = [
            [None if np.isnan(value) else round(float(value), 3) for value in row] for row in self.tiles
        ]
        return {
            "tiles": [TILES, TILES],
            "agreement": rows,
            "marked_threshold": TILE_MARKED,
            "marked_tiles": int(marked.sum()),
            "covered_tiles": int(covered.sum()),
        }


# -- keyed layout -------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class _Layout:
    bit_of_slot: npt.NDArray[np.intp]
    dither: FloatArray  # per slot, in units of the step, [0, 1)
    position_dither: FloatArray  # per carrier position
    mac_key: bytes
    slot_order: npt.NDArray[np.intp]  # the slots sorted by coded bit (``_bit_sums``)
    bit_starts: npt.NDArray[np.intp]  # where each coded bit's slots start in that order
    factor: int = 1  # 1: the fine variant on the working grid; COARSE_FACTOR: on the grid averaged 2 x 2
    step_ratio: float = 1.0

    @property
    def blocks(self) -> int:
        """Blocks per side of the grid this variant reads."""
        return BLOCKS_PER_SIDE // self.factor

    @property
    def slots(self) -> int:
        return self.bit_of_slot.size


@functools.lru_cache(maxsize=16)
def _layout(secret: bytes, factor: int = 1) -> _Layout:
    # SHAKE-256 gives a platform- and version-independent keyed stream (numpy generators may change).
    label = b"tracemark.media.layout/v1\x00" if factor == 1 else b"tracemark.media.layout/coarse/v1\x00"
    slots = SLOT_COUNT // (factor * factor)
    stream = hashlib.shake_256(label + secret).digest(slots * 10)
    order = np.frombuffer(stream[: slots * 8], dtype="<u8")
    permutation = np.argsort(order, kind="stable")
    bit_of_slot = np.empty(slots, dtype=np.intp)
    bit_of_slot[permutation] = np.arange(slots) % CODED_BITS
    # Each slot's dither is its carrier position's dither plus a keyed half step (a keyed bit flip), so the
    # coded bits reach the pixels scrambled by the key.
    positions = len(CARRIER_POSITIONS)
    position_dither = np.frombuffer(stream[slots * 8 : slots * 8 + positions * 2], dtype="<u2")
    position_dither = position_dither.astype(np.float64) / 65536.0
    flips = np.unpackbits(np.frombuffer(stream[slots * 9 : slots * 9 + slots // 8], dtype=np.uint8))
    dither = (np.tile(position_dither, slots // positions) + flips.astype(np.float64) / 2.0) % 1.0
    mac_key = hmac.new(secret, b"tracemark.media.check/v1", hashlib.sha256).digest()
    ratio = 1.0 if factor == 1 else _COARSE_STEP_RATIO
    slot_order = np.argsort(bit_of_slot, kind="stable")
    bit_starts = np.searchsorted(bit_of_slot[slot_order], np.arange(CODED_BITS))
    return _Layout(bit_of_slot=bit_of_slot, dither=dither, position_dither=position_dither, mac_key=mac_key,
                   slot_order=slot_order, bit_starts=bit_starts, factor=factor, step_ratio=ratio)  # fmt: skip


def _layouts(secret: bytes) -> tuple[_Layout, _Layout]:
    """Both variants of a key, fine first (the one most pictures carry)."""
    return _layout(secret, 1), _layout(secret, COARSE_FACTOR)


def _grid(work: FloatArray, layout: _Layout) -> FloatArray:
    """The grid a variant reads: the working grid itself, or averaged ``factor`` x ``factor``."""
    if layout.factor == 1:
        return work
    side = WORK_SIZE // layout.factor
    coarse: FloatArray = work.reshape(side, layout.factor, side, layout.factor).mean(axis=(1, 3))
    return coarse


def _valid_blocks(valid: FloatArray | None, layout: _Layout) -> FloatArray | None:
    """Which of a variant's blocks the picture covers (a coarse block needs all four fine ones)."""
    if valid is None or layout.factor == 1:
        return valid
    side = layout.blocks
    coarse: FloatArray = valid.reshape(side, layout.factor, side, layout.factor).min(axis=(1, 3))
    return coarse


@dataclass(frozen=True)
class _Template:
    frequencies: FloatArray  # (peaks, 2): cycles per grid side along x and y
    phases: FloatArray
    grid: FloatArray  # the unit-amplitude template on the working grid


@functools.lru_cache(maxsize=16)
def _template(secret: bytes) -> _Template:
    """Keyed sinusoids with both frequencies in the band (so their energy misses the carrier slots)."""
    stream = hashlib.shake_256(b"tracemark.media.template/v2\x00" + secret).digest(64 * TEMPLATE_PEAKS)
    low, high = _TEMPLATE_BAND
    chosen: list[tuple[int, int]] = []
    phases: list[float] = []
    for index in range(0, len(stream), 4):
        a = low + stream[index] % (high - low + 1)
        b = (low + stream[index + 1] % (high - low + 1)) * (1 if stream[index + 2] & 1 else -1)
        # Distinct directions: no two peaks within 3 cycles of each other (their lobes would merge).
        if all(abs(a - x) + abs(b - y) > 3 for x, y in chosen):
            chosen.append((a, b))
            phases.append(2.0 * np.pi * stream[index + 3] / 256.0)
        if len(chosen) == TEMPLATE_PEAKS:
            break
    frequencies = np.array(chosen, dtype=np.float64)
    centres = np.arange(WORK_SIZE, dtype=np.float64) + 0.5
    grid = np.zeros((WORK_SIZE, WORK_SIZE))
    for (a, b), phase in zip(frequencies, phases, strict=True):
        grid += np.cos(2.0 * np.pi * (a * centres[None, :] + b * centres[:, None]) / WORK_SIZE + phase)
    return _Template(frequencies=frequencies, phases=np.array(phases), grid=grid)


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
    """(256, 256) -> (32, 32, 8, 8) orthonormal block DCT (any side that is a multiple of 8)."""
    count = work.shape[0] // BLOCK
    blocks = work.reshape(count, BLOCK, count, BLOCK).transpose(0, 2, 1, 3)
    result: FloatArray = _DCT @ blocks @ _DCT.T
    return result


def _blocks_idct(coefficients: FloatArray) -> FloatArray:
    blocks: FloatArray = _DCT.T @ coefficients @ _DCT
    side = coefficients.shape[0] * BLOCK
    return blocks.transpose(0, 2, 1, 3).reshape(side, side)


def luma(pixels: npt.NDArray[np.generic]) -> npt.NDArray[np.float32]:
    """ITU-R BT.601 luma of an RGB (H, W, 3) or grey (H, W) array, as float32."""
    if pixels.ndim == 2:
        return pixels.astype(np.float32)
    # Channel by channel, in place: a float32 copy of the whole RGB array was 12 bytes a pixel at peak
    # (588 MB for 49 MP); this is 8.  Same operations in the same order, so the same result.
    result: npt.NDArray[np.float32] = np.multiply(pixels[..., 0], np.float32(0.299), dtype=np.float32)
    result += np.multiply(pixels[..., 1], np.float32(0.587), dtype=np.float32)
    result += np.multiply(pixels[..., 2], np.float32(0.114), dtype=np.float32)
    return result


def _to_work(image_luma: npt.NDArray[np.float32]) -> FloatArray:
    """The working grid: the luma resampled to 256 x 256 with an antialiasing (bicubic) filter.

    Not PIL's box filter: at a ratio that is not a whole number (390 px to 256) it takes whole pixels by
    their centres, and on sharp text that aliases into the carriers' frequencies differently at every
    size, so a 390 x 844 chat screenshot lost every resize (its carriers moved by 0.48 of a step after a
    1.5x upscale; 0.07 with this filter)."""
    picture = Image.fromarray(image_luma, mode="F")
    if picture.size != (WORK_SIZE, WORK_SIZE):
        picture = picture.resize((WORK_SIZE, WORK_SIZE), Image.Resampling.BICUBIC)
    return np.asarray(picture, dtype=np.float64)


def _from_work(residual: FloatArray, size: tuple[int, int]) -> npt.NDArray[np.float32]:
    picture = Image.fromarray(residual.astype(np.float32), mode="F")
    if picture.size != size:
        picture = picture.resize(size, Image.Resampling.BICUBIC)
    return np.asarray(picture, dtype=np.float32)


def _texture(image_luma: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]:
    """Per-pixel texture in [0, 1]: local standard deviation over ~10 px (0 where the picture is flat)."""
    height, width = image_luma.shape
    half = (max(1, width // 2), max(1, height // 2))
    small = np.asarray(Image.fromarray(image_luma, mode="F").resize(half, Image.Resampling.BOX), dtype=np.float32)
    mean = uniform_filter(small, 5)
    spread = np.sqrt(np.maximum(uniform_filter(small * small, 5) - mean * mean, 0.0))
    texture = np.clip(spread / _MASK_TEXTURE, 0.0, 1.0).astype(np.float32)
    full = Image.fromarray(texture, mode="F").resize((width, height), Image.Resampling.BILINEAR)
    return np.asarray(full, dtype=np.float32)


def _luma_quality(
    before: npt.NDArray[np.float32], after: npt.NDArray[np.float32], *, ssim: bool = True
) -> tuple[float, float]:
    """PSNR and mean SSIM (7 x 7 uniform windows, as scikit-image) of two lumas; SSIM 1.0 unless asked."""
    difference = after - before
    mse = float(np.mean(difference * difference))
    psnr = float("inf") if mse == 0.0 else 10.0 * float(np.log10(255.0**2 / mse))
    if not ssim:
        return psnr, 1.0
    c1, c2 = (0.01 * 255.0) ** 2, (0.03 * 255.0) ** 2
    mean_a, mean_b = uniform_filter(before, 7), uniform_filter(after, 7)
    var_a = uniform_filter(before * before, 7) - mean_a * mean_a
    var_b = uniform_filter(after * after, 7) - mean_b * mean_b
    covariance = uniform_filter(before * after, 7) - mean_a * mean_b
    similarity = ((2 * mean_a * mean_b + c1) * (2 * covariance + c2)) / (
        (mean_a * mean_a + mean_b * mean_b + c1) * (var_a + var_b + c2)
    )
    return psnr, float(np.mean(similarity))


def _gaussian_ssim(before: npt.NDArray[np.float32], after: npt.NDArray[np.float32]) -> float:
    """Mean SSIM of two lumas with Gaussian windows (sigma 1.5, Wang et al. 2004)."""
    a, b = before.astype(np.float64), after.astype(np.float64)
    c1, c2 = (0.01 * 255.0) ** 2, (0.03 * 255.0) ** 2
    mean_a, mean_b = gaussian_filter(a, 1.5), gaussian_filter(b, 1.5)
    var_a = gaussian_filter(a * a, 1.5) - mean_a * mean_a
    var_b = gaussian_filter(b * b, 1.5) - mean_b * mean_b
    covariance = gaussian_filter(a * b, 1.5) - mean_a * mean_b
    similarity = ((2 * mean_a * mean_b + c1) * (2 * covariance + c2)) / (
        (mean_a * mean_a + mean_b * mean_b + c1) * (var_a + var_b + c2)
    )
    return float(np.mean(similarity))


def _contrast_scale(coefficients: FloatArray, valid: FloatArray | None = None) -> float:
    """Global contrast (spread of the block means): scales the QIM step so gain changes scale the lattice too.

    With ``valid``, only the blocks the image really covers count (a crop or rotation leaves the rest empty).
    """
    means = coefficients[:, :, 0, 0] if valid is None else coefficients[:, :, 0, 0][valid > 0]
    spread = float(np.std(means)) / BLOCK if means.size else 0.0
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
    layout = _layout(key.secret, COARSE_FACTOR if min(height, width) < COARSE_BELOW else 1)
    payload = key.tag + record_id
    coded = _ecc.encode(_bits_of(payload + _check_code(layout, payload)))
    slot_bits = coded[layout.bit_of_slot].astype(np.float64)

    image_luma = luma(pixels)
    original = _blocks_dct(_grid(_to_work(image_luma), layout))
    delta = step * layout.step_ratio * _contrast_scale(original)
    carriers = _carriers(original)
    offset = (layout.dither + slot_bits / 2.0) * delta
    target = np.round((carriers - offset) / delta) * delta + offset

    # The passes find the change that puts the carriers on their lattice points despite resampling,
    # rounding and clipping, on top of the synchronisation template; the mask then scales it down where
    # the picture is flat.  Masking after the passes keeps them from pushing the change back into flat
    # areas.  The change is the same in every channel, so early passes work on the luma alone (the
    # weights sum to 1); the last one measures the real clipped and rounded pixels.
    template = _template_pixels(key.secret, (width, height))
    total = template
    for index in range(_PASSES):
        last = index == _PASSES - 1
        current_luma = luma(_apply(pixels, total)) if last else np.clip(image_luma + total, 0.0, 255.0)
        current = _blocks_dct(_grid(_to_work(current_luma), layout))
        change = np.zeros_like(current)
        change[:, :, _ROWS, _COLS] = (target - _carriers(current)).reshape(layout.blocks, layout.blocks, -1)
        total = total + _from_work(_blocks_idct(change), (width, height))
    carriers_change = total - template
    return _apply(pixels, _masked(image_luma, template, carriers_change))


@functools.lru_cache(maxsize=4)
def _template_pixels(secret: bytes, size: tuple[int, int]) -> npt.NDArray[np.float32]:
    """The template at a picture's size (read-only; a batch of same-size pictures shares it)."""
    pixels = _from_work(TEMPLATE_AMPLITUDE * _template(secret).grid, size)
    pixels.setflags(write=False)
    return pixels


def _masked(
    image_luma: npt.NDArray[np.float32], template: npt.NDArray[np.float32], carriers: npt.NDArray[np.float32]
) -> npt.NDArray[np.float32]:
    """The change to add: template and carrier change, masked by texture with the strongest flat-area floor
    that keeps the picture's quality targets.

    A picture with large flat areas (a logo, a diagram) carries the mark mostly in those areas, so it
    gets as much strength there as its PSNR and SSIM allow; a busy picture keeps the lowest floor.
    Whatever the floor, a flat area never moves by more than ``_FLAT_LIMIT`` grey levels.  The floor is
    chosen on half-size copies of everything (four times cheaper; the change is smooth at that scale).
    """
    texture = _texture(image_luma)
    # The template's floor follows the carriers' from _TEMPLATE_FLOOR up: a busy picture keeps it low (its
    # texture hides the template anyway), a flat one (a page of text) needs it where the page is blank.
    # Pictures up to 1 MP are judged at full size: a half-size copy reads higher than the picture itself
    # (it averages the change away), and on a 0.1-0.3 MP picture that let PSNR fall to 41.6 dB.
    shrink = 2 if image_luma.size > _FULL_SIZE_QUALITY else 1
    target = _QUALITY_PSNR if shrink == 2 else _QUALITY_PSNR_FULL_SIZE
    half = (max(1, image_luma.shape[1] // shrink), max(1, image_luma.shape[0] // shrink))

    def halved(array: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]:
        if shrink == 1:
            return array
        return np.asarray(Image.fromarray(array, mode="F").resize(half, Image.Resampling.BOX), dtype=np.float32)

    small_luma, small_template, small_carriers, small_texture = (
        halved(a) for a in (image_luma, template, carriers, texture)
    )

    def change_at(
        floor: float, texture: npt.NDArray[np.float32], template: npt.NDArray[np.float32],
        carriers: npt.NDArray[np.float32], gain: float = 1.0, template_gain: float = 1.0,
    ) -> npt.NDArray[np.float32]:  # fmt: skip
        template_floor = max(_TEMPLATE_FLOOR, floor) if TEMPLATE_FOLLOWS_FLOOR else _TEMPLATE_FLOOR
        change: npt.NDArray[np.float32] = np.float32(template_gain) * template * np.maximum(texture, template_floor)
        change += np.float32(gain) * carriers * np.maximum(texture, floor)
        limit = _FLAT_LIMIT + _TEXTURE_LIMIT * texture
        return np.clip(change, -limit, limit)

    def meets(floor: float) -> bool:
        change = change_at(floor, small_texture, small_template, small_carriers)
        marked = np.clip(np.rint(small_luma + change), 0.0, 255.0)
        if _luma_quality(small_luma, marked, ssim=False)[0] < target:
            return False
        return floor == _MASK_FLOORS[-1] or _luma_quality(small_luma, marked)[1] >= _QUALITY_SSIM

    # A lower floor only lowers the change, so if even the lowest misses the PSNR target none meets it.
    floor = _MASK_FLOORS[-1]
    if meets(floor):
        floor = next(f for f in _MASK_FLOORS if meets(f))
        gain = 1.0
    else:
        # Busy everywhere and still too strong: scale the carrier change down to the PSNR target (the
        # carriers then stop short of their lattice points, which costs robustness, not correctness).  The
        # template keeps its strength: busy pictures are where it is hardest to find.
        budget = 255.0**2 / 10.0 ** (target / 10.0)
        template_power = float(np.mean(np.square(small_template * np.maximum(small_texture, _TEMPLATE_FLOOR))))
        carrier_power = float(np.mean(np.square(small_carriers * np.maximum(small_texture, floor))))
        gain = float(np.clip(np.sqrt(max(budget - template_power, 0.0) / max(carrier_power, 1e-12)), 0.5, 1.0))
    template_gain = 1.0
    if floor == _MASK_FLOORS[-1]:
        # At the lowest floor SSIM was not part of the choice: smooth gradients (a colour wheel) read under
        # the target there (Gaussian windows, as SSIM is usually measured).  The template gives way first
        # (down to _SSIM_TEMPLATE_MIN; such pictures rarely need it), then the carriers (to _SSIM_GAIN_MIN).
        for _ in range(_SSIM_ROUNDS):
            change = change_at(floor, small_texture, small_template, small_carriers, gain, template_gain)
            marked = np.clip(np.rint(small_luma + change), 0.0, 255.0)
            if _gaussian_ssim(small_luma, marked) >= _QUALITY_SSIM + _SSIM_MARGIN:
                break
            if template_gain > _SSIM_TEMPLATE_MIN:
                template_gain = max(_SSIM_TEMPLATE_MIN, template_gain * 0.75)
            elif gain > _SSIM_GAIN_MIN:
                gain = max(_SSIM_GAIN_MIN, gain * 0.85)
            else:
                break
    return change_at(floor, texture, template, carriers, gain, template_gain)


def _apply(pixels: npt.NDArray[np.uint8], change: npt.NDArray[np.float32]) -> npt.NDArray[np.uint8]:
    """The pixels plus the change (the same in every channel), rounded and clipped.

    The pixels are integers, so rounding their sum is adding the rounded change: one rounding per
    pixel instead of one per channel, and integer arithmetic for the rest.
    """
    step = np.rint(change).astype(np.int16)
    marked = pixels.astype(np.int16)
    marked += step[:, :, None] if pixels.ndim == 3 else step
    np.clip(marked, 0, 255, out=marked)
    return marked.astype(np.uint8)


# -- detection -----------------------------------------------------------------------------------------------
def _votes(work: FloatArray, layout: _Layout, step: float, valid: FloatArray | None, gains: FloatArray) -> FloatArray:
    """Each slot's vote (cos of its lattice phase) at each of ``gains``: (gains, slots).

    A slot votes 0 where the picture does not cover its block, and where its block is flat: all nine
    carriers within ``FLAT_CARRIERS`` of a step of zero.  A flat block (clipped to white by a
    brightness change, or emptied by a codec) has lost its mark, and its carriers' phase is then the
    key's dither, the same whatever the bit: as votes it would only add noise.
    """
    coefficients = _blocks_dct(_grid(work, layout))
    valid = _valid_blocks(valid, layout)
    delta = step * layout.step_ratio * _contrast_scale(coefficients, valid)
    carriers = coefficients[:, :, _ROWS, _COLS]
    live = (np.abs(carriers).max(axis=2) > FLAT_CARRIERS * delta).astype(np.float64)
    if valid is not None:
        live = live * valid
    phases = carriers.reshape(1, -1) / (delta * gains[:, None]) - layout.dither[None, :]
    votes: FloatArray = np.cos(phases * (2.0 * np.pi)) * np.repeat(live.reshape(-1), len(CARRIER_POSITIONS))
    return votes


def _slot_votes(
    work: FloatArray, layout: _Layout, step: float, valid: FloatArray | None, gain: float = 1.0
) -> FloatArray:
    """Each slot's vote at one gain (see ``_votes``)."""
    votes: FloatArray = _votes(work, layout, step, valid, np.array([gain]))[0]
    return votes


def _bit_sums(votes: FloatArray, layout: _Layout) -> FloatArray:
    """Each coded bit's soft value: the sum of its slots' votes (along the last axis)."""
    soft: FloatArray = np.add.reduceat(votes[..., layout.slot_order], layout.bit_starts, axis=-1)
    return soft


def _soft_bits(
    work: FloatArray, layout: _Layout, step: float, valid: FloatArray | None, gain: float = 1.0
) -> FloatArray:
    return _bit_sums(_slot_votes(work, layout, step, valid, gain), layout)


#: Gains (the picture's AC amplitude against the marked original's) the detector weighs when the lattice
#: step read from the picture is off: brightness and contrast changes on a picture whose contrast factor
#: was clamped, or whose highlights clipped, scale the carriers but not the step.
_GAINS = np.exp(np.linspace(np.log(0.7), np.log(1.45), 74))


def _best_gain(work: FloatArray, layout: _Layout, step: float, valid: FloatArray | None) -> tuple[float, float]:
    """The gain whose lattice the carriers fit best (soft-bit energy is high only at the marked step), and
    that fit (``_fit``'s measure)."""
    soft = _bit_sums(_votes(work, layout, step, valid, _GAINS), layout)
    energy = np.sum(soft * soft, axis=1)
    best = int(np.argmax(energy))
    return float(_GAINS[best]), float(energy[best]) / layout.slots


#: The most likely messages the list decoder checks (``_ecc.decode_soft_list``): on the direct grid at the
#: best gain, in the variant that fits best there, and on each polished crop hypothesis, in the variant
#: the polish followed.  Each message counts against the false-positive bound.
LIST_SIZE = 128


def _try_decode(
    soft: FloatArray, key: MediaKey, layout: _Layout, candidates: int = 1
) -> tuple[bytes | None, float, npt.NDArray[np.uint8], int]:
    """The record id of the first of the ``candidates`` most likely messages whose keyed check passes,
    the agreement of the soft bits with that message (or with the most likely one), the message, and
    how many messages were checked."""
    messages = _ecc.decode_soft_list(soft, MESSAGE_BITS, candidates)
    chosen, record, checked = messages[0], None, len(messages)
    for index, message in enumerate(messages):
        data = np.packbits(message).tobytes()
        payload, check = data[:PAYLOAD_BYTES], data[PAYLOAD_BYTES:]
        if hmac.compare_digest(check, _check_code(layout, payload)) and payload[:KEY_TAG_BYTES] == key.tag:
            chosen, record, checked = message, payload[KEY_TAG_BYTES:], index + 1
            break
    expected = _ecc.encode(chosen).astype(np.float64)
    agreement = float(np.sum(soft * (1.0 - 2.0 * expected)) / max(float(np.sum(np.abs(soft))), 1e-12))
    return record, agreement, chosen, checked


#: The localisation map: the working grid cut into TILES x TILES tiles (4 x 4 blocks, 144 slots each).
TILES = 8
#: A tile whose slots agree with the decoded payload by at least this much (mean vote) carries the mark;
#: an unmarked tile's mean vote is 0 +- 0.06 (one standard deviation of the mean of 144 votes).
TILE_MARKED = 0.25


def _tile_map(work: FloatArray, layout: _Layout, step: float, valid: FloatArray | None, gain: float,
              message: npt.NDArray[np.uint8]) -> FloatArray:  # fmt: skip
    """Per tile of the original's grid, the mean agreement of its slots with the decoded payload (NaN: not covered)."""
    coded = _ecc.encode(message).astype(np.float64)
    expected = 1.0 - 2.0 * coded[layout.bit_of_slot]  # +1 where the slot's bit is 0
    votes = _slot_votes(work, layout, step, valid, gain) * expected
    per_block = votes.reshape(layout.blocks, layout.blocks, len(CARRIER_POSITIONS)).mean(axis=2)
    side = layout.blocks // TILES
    tiles = per_block.reshape(TILES, side, TILES, side).mean(axis=(1, 3))
    valid = _valid_blocks(valid, layout)
    if valid is not None:
        coverage = valid.reshape(TILES, side, TILES, side).mean(axis=(1, 3))
        tiles = np.where(coverage > 0.5, tiles / np.maximum(coverage, 1e-9), np.nan)
    result: FloatArray = tiles
    return result


_HANN = np.hanning(WORK_SIZE)
_PADDED = 2 * WORK_SIZE
#: Crop offsets the template's phases propose per key (OFFSET_CANDIDATES), of which the CROP_HYPOTHESES the
#: carriers fit best are polished and tried, each with its quarter-pixel neighbours.
CROP_HYPOTHESES = 2
OFFSET_CANDIDATES = 8
#: Where around each proposed offset the carriers' fit is read (grid px): the coarse variant's bits read
#: only within about half a grid pixel of the true offset, finer than the template's phases pin it.
_OFFSET_PROBES = ((0.0, 0.0), (-0.5, -0.5), (-0.5, 0.5), (0.5, -0.5), (0.5, 0.5))
#: The share search around the template's estimate: (reach, points) per round, coarse then fine.
_POLISH = ((0.012, 9), (0.0015, 7))
_NEIGHBOURS = tuple((dy, dx) for dy in (0.0, -0.25, 0.25) for dx in (0.0, -0.25, 0.25))
#: Rotations the template search covers (degrees either way) and its coarse grid.
MAX_ROTATION = 7.0
_ANGLES = np.arange(-MAX_ROTATION, MAX_ROTATION + 1e-9, 0.25)
_COARSE_SHARES = np.arange(MIN_KEPT_SIDE - 0.01, 1.0 + 1e-9, 0.01)
#: The search runs on a copy whose long side is at most this (its cost does not grow with the image).
SEARCH_SIDE = 1024
#: The cheap test before any search: the template's whitened power on its view (``_template_view``) at its
#: best rotation and scale, summed over its eight peaks (the best of about 40,000 placements).  The 47
#: unmarked pictures of the benchmark's set, as they are, cropped by 20 % and turned by 3 degrees with
#: crop-to-fill, score 21 at the median, 30.5 at the 99th percentile and 32.7 at most; marked ones after a
#: crop or a turn 250 at the median and 41 at the 5th percentile, the busiest texture (grass) 29-34.
#: Below this the search is skipped: a miss is possible, a wrong payload is not.  At 32 only 1 of those
#: 141 unmarked inputs would pay for the search (8 at 26), but grass lost 4 of its 9 crops and turns.
SYNC_THRESHOLD = 26.0
#: Below SYNC_THRESHOLD, down to CARRIER_CHECK_BELOW, the search goes on only if the carriers fit at CARRIER_GATE
#: or more where the template's best placement puts the picture (``_carriers_show``): for a marked picture
#: whose template drowns (busy, or flat and clipped) but whose carriers are intact.
CARRIER_CHECK_BELOW = 16.0
CARRIER_GATE = 0.8
CHECK_SIDE = 512
#: Messages a full search checks per key: the direct grid at the picture's step and at the best gain, then the
#: crop hypotheses with their neighbours, each geometry read for both variants (fine and coarse), one message
#: each; and the list decoder's LIST_SIZE messages on the direct grid and on each polished crop hypothesis.
ATTEMPTS_PER_KEY = 2 * (2 + CROP_HYPOTHESES * len(_NEIGHBOURS)) + (1 + CROP_HYPOTHESES) * LIST_SIZE


def _search_copy(image_luma: npt.NDArray[np.float32], side: int = SEARCH_SIDE) -> npt.NDArray[np.float32]:
    """The picture box-averaged so that its long side is at most ``side`` (aspect kept)."""
    height, width = image_luma.shape
    scale = min(1.0, side / max(height, width))
    if scale == 1.0:
        return image_luma
    size = (max(1, round(width * scale)), max(1, round(height * scale)))
    small = Image.fromarray(image_luma, mode="F").resize(size, Image.Resampling.BOX)
    return np.asarray(small, dtype=np.float32)


def _whitened_power(work: FloatArray) -> FloatArray:
    windowed = (work - work.mean()) * np.outer(_HANN, _HANN)
    power = np.abs(np.fft.fft2(windowed, s=(_PADDED, _PADDED))) ** 2
    # A wide window: the peak's own lobe (about 4 x 4 bins) must not make its own background.
    whitened: FloatArray = power / (uniform_filter(power, 31, mode="wrap") + 1e-9)
    return whitened


#: The template test reads the grid's residual from a 5 x 5 median, clipped to this many grey levels.
TEMPLATE_VIEW_CLIP = 1.0


def _template_view(work: FloatArray) -> FloatArray:
    """The grid as the template search reads it: what a 5 x 5 median leaves (the template, at 4-7 grid px a
    period, passes whole), clipped to +-``TEMPLATE_VIEW_CLIP`` grey levels.

    The template is a fraction of a grey level; a picture's own edges are tens to hundreds, and their
    power spreads over the template's band.  Clipped, an edge counts no more than the template does
    where it is, so the template's peaks stand out of the picture they are in: a marked 390 x 844 chat
    screenshot scored 5.4 on the plain grid (as unmarked), 128 on this view; unmarked pictures score as
    before (the search's test is unchanged).
    """
    # The 5 x 5 median as a partition of each pixel's window (mirrored at the edges, as scipy's "reflect"), in
    # float32: scipy.ndimage.median_filter's values to float32 precision, at a third of its time.
    padded = np.pad(work.astype(np.float32), 2, mode="symmetric")
    windows = sliding_window_view(padded, (5, 5)).reshape(work.shape[0], work.shape[1], 25)
    median = np.partition(windows, 12, axis=-1)[..., 12]
    residual: FloatArray = work - median
    return np.clip(residual, -TEMPLATE_VIEW_CLIP, TEMPLATE_VIEW_CLIP)


def _peak_score(
    whitened: FloatArray, template: _Template, aspect: float, angles: FloatArray, shares_x: FloatArray,
    shares_y: FloatArray,
) -> FloatArray:  # fmt: skip
    """Summed whitened power at the template's peaks moved by each (angle, kept_x, kept_y): (angles, y, x).

    A picture rotated by an angle and cropped (or scaled) to shares ``kept`` of the original's sides
    shows the peak ``f`` at ``M^T f`` cycles of its own grid, ``M = R(angle)`` with the aspect ratios
    folded in: ``[[c kx, -s kx / aspect], [s ky aspect, c ky]]`` (``aspect`` = width / height).
    """
    radians = np.deg2rad(angles)[:, None, None]
    cos, sin = np.cos(radians), np.sin(radians)
    kx, ky = shares_x[None, None, :], shares_y[None, :, None]
    ratio = _PADDED / WORK_SIZE
    total = np.zeros((angles.size, shares_y.size, shares_x.size))
    for fx, fy in template.frequencies:
        columns = (cos * kx * fx + sin * ky * aspect * fy) * ratio
        rows = (-sin * kx / aspect * fx + cos * ky * fy) * ratio
        columns, rows = np.broadcast_arrays(columns, rows)
        total += map_coordinates(whitened, [rows.ravel(), columns.ravel()], order=1, mode="grid-wrap").reshape(
            total.shape
        )
    return total


def _rotation(work: FloatArray, template: _Template, aspect: float) -> tuple[float, float, tuple[float, float]]:
    """The picture's rotation read from the template (degrees, as ``Image.rotate`` turns), its score, and the
    shares of the sides kept there."""
    whitened = _whitened_power(work)
    score = _peak_score(whitened, template, aspect, _ANGLES, _COARSE_SHARES, _COARSE_SHARES)
    a, y, x = np.unravel_index(int(np.argmax(score)), score.shape)
    best = float(score[a, y, x])
    angles = _ANGLES[a] + np.arange(-0.25, 0.25 + 1e-9, 0.05)
    shares_x = _COARSE_SHARES[x] + np.arange(-0.01, 0.01 + 1e-9, 0.0025)
    shares_y = _COARSE_SHARES[y] + np.arange(-0.01, 0.01 + 1e-9, 0.0025)
    fine = _peak_score(whitened, template, aspect, angles, shares_x, shares_y)
    a, y, x = np.unravel_index(int(np.argmax(fine)), fine.shape)
    return float(angles[a]), max(best, float(fine.max())), (float(shares_x[x]), float(shares_y[y]))


def _derotated(
    picture: npt.NDArray[np.float32], degrees: float
) -> tuple[npt.NDArray[np.float32], npt.NDArray[np.float32] | None]:
    """The picture turned back by ``degrees`` about its centre (canvas kept) and where it has content."""
    if degrees == 0.0:
        return picture, None
    image = Image.fromarray(picture, mode="F")
    turned = np.asarray(image.rotate(-degrees, Image.Resampling.BICUBIC), dtype=np.float32)
    coverage = Image.new("F", image.size, 1.0).rotate(-degrees, Image.Resampling.BILINEAR)
    return turned, np.asarray(coverage, dtype=np.float32)


def _crop_shares(work: FloatArray, template: _Template) -> tuple[float, float]:
    """The share of the original's width and height this picture kept, read from the template's peaks.

    A crop keeps the template's frequencies in pixels, so on the picture's own working grid a peak at
    ``(a, b)`` cycles moves to ``(a * kept_x, b * kept_y)``: the kept shares are where the whitened
    power at all the moved peaks adds up best, refined with the exact transform at each peak.
    """
    windowed = (work - work.mean()) * np.outer(_HANN, _HANN)
    power = np.abs(np.fft.fft2(windowed, s=(_PADDED, _PADDED))) ** 2
    background = uniform_filter(power, 11, mode="wrap") + 1e-9
    shares = np.arange(MIN_KEPT_SIDE, 1.0 + 1e-9, _SCALE_STEP)
    across, down = template.frequencies[:, 0], template.frequencies[:, 1]
    ratio = _PADDED / WORK_SIZE
    columns = np.broadcast_to((across[:, None] * shares * ratio)[:, None, :], (len(across), shares.size, shares.size))
    rows = np.broadcast_to((down[:, None] * shares * ratio)[:, :, None], columns.shape)
    values = map_coordinates(power / background, [rows.ravel(), columns.ravel()], order=1, mode="grid-wrap")
    score = values.reshape(columns.shape).sum(axis=0)  # (kept_y, kept_x)
    best_y, best_x = np.unravel_index(int(np.argmax(score)), score.shape)

    centres = np.arange(WORK_SIZE, dtype=np.float64) + 0.5 - WORK_SIZE / 2
    fine = np.arange(-_SCALE_STEP, _SCALE_STEP + 1e-9, _SCALE_STEP / 5)
    fine_x, fine_y = shares[best_x] + fine, shares[best_y] + fine
    at_best = [rows[:, best_y, best_x], columns[:, best_y, best_x]]
    norms = map_coordinates(background, at_best, order=1, mode="grid-wrap")
    refined = np.zeros((fine.size, fine.size))
    for a, b, norm in zip(across, down, norms, strict=True):
        along_x = np.exp(-2j * np.pi * np.outer(a * fine_x, centres) / WORK_SIZE)  # (x, u)
        along_y = np.exp(-2j * np.pi * np.outer(b * fine_y, centres) / WORK_SIZE)  # (y, v)
        refined += np.abs(along_y @ windowed @ along_x.T) ** 2 / norm
    refined_y, refined_x = np.unravel_index(int(np.argmax(refined)), refined.shape)
    return float(fine_x[refined_x]), float(fine_y[refined_y])


def _template_offsets(work: FloatArray, template: _Template, kept: tuple[float, float]) -> list[tuple[float, float]]:
    """Where the crop's corner sat, from the template's phases: the best ``OFFSET_CANDIDATES`` offsets.

    At the kept shares each peak's phase is its offset modulo its period; the offsets where the
    peaks agree best (each weighted by its strength) pin it to a fraction of a pixel on most
    pictures.  Busy pictures drown some peaks, which is why the lattice search runs too.
    """
    kept_x, kept_y = kept
    windowed = (work - work.mean()) * np.outer(_HANN, _HANN)
    centres = np.arange(WORK_SIZE, dtype=np.float64) + 0.5 - WORK_SIZE / 2
    across, down = template.frequencies[:, 0], template.frequencies[:, 1]
    fx, fy = across * kept_x, down * kept_y
    along_x = np.exp(-2j * np.pi * np.outer(fx, centres) / WORK_SIZE)
    along_y = np.exp(-2j * np.pi * np.outer(fy, centres) / WORK_SIZE)
    peaks = np.einsum("kv,vu,ku->k", along_y, windowed, along_x)
    # Each peak's phase as if the crop's corner were at the origin, against its phase in the original.
    shift = np.angle(peaks) - np.pi * (fx + fy) - template.phases
    offsets_x = np.arange(-1.0, WORK_SIZE * (1.0 - kept_x) + 1.0 + 1e-9, 0.25)
    offsets_y = np.arange(-1.0, WORK_SIZE * (1.0 - kept_y) + 1.0 + 1e-9, 0.25)
    wave_x = np.exp(-2j * np.pi * np.outer(across, offsets_x) / WORK_SIZE)
    wave_y = np.exp(-2j * np.pi * np.outer(down, offsets_y) / WORK_SIZE)
    agreement = np.real((wave_y * (np.abs(peaks) * np.exp(1j * shift))[:, None]).T @ wave_x)  # (y, x)
    chosen: list[tuple[int, int]] = []
    for flat in np.argsort(agreement, axis=None)[::-1]:
        y, x = (int(i) for i in np.unravel_index(int(flat), agreement.shape))
        if all(abs(y - yy) > 8 or abs(x - xx) > 8 for yy, xx in chosen):  # at least 2 grid px apart
            chosen.append((y, x))
        if len(chosen) == OFFSET_CANDIDATES:
            break
    return [(float(offsets_x[x]), float(offsets_y[y])) for y, x in chosen]


def _fill_share(degrees: float, aspect: float) -> float:
    """The share of each side an editor's straighten keeps: rotate by ``degrees``, then crop the largest centred
    rectangle of the same aspect (width / height) with no empty corner."""
    cos, sin = abs(float(np.cos(np.deg2rad(degrees)))), abs(float(np.sin(np.deg2rad(degrees))))
    return min(aspect / (aspect * cos + sin), 1.0 / (aspect * sin + cos))


def _fitting_starts(
    picture: npt.NDArray[np.float32],
    coverage: npt.NDArray[np.float32] | None,
    starts: list[Geometry],
    secret: bytes,
    step: float,
) -> list[tuple[Geometry, _Layout]]:
    """The ``CROP_HYPOTHESES`` starts (each moved to its best probe) whose carriers fit best, with the variant
    that fits there.

    The template's phases often rank the true offset below a wrong one on a busy or flat picture (its
    peaks are weak there), and pin it no finer than about half a grid pixel, while the carriers' fit
    (soft-bit energy, whatever the payload) is high only near the true geometry: it ranks the proposals.
    """
    scored: list[tuple[float, Geometry, _Layout]] = []
    for start in starts:
        probes = []
        for dx, dy in _OFFSET_PROBES:
            candidate = replace(start, offset=(start.offset[0] + dx, start.offset[1] + dy))
            work, valid = _cropped_work(picture, candidate, coverage)
            probes += [(_fit(work, layout, step, valid), candidate, layout) for layout in _layouts(secret)]
        scored.append(max(probes, key=lambda entry: entry[0]))
    scored.sort(key=lambda entry: -entry[0])
    return [(geometry, layout) for _, geometry, layout in scored[:CROP_HYPOTHESES]]


def _fit(work: FloatArray, layout: _Layout, step: float, valid: FloatArray | None) -> float:
    """Soft-bit energy per slot: high only where every slot lands on its own coded bit, whatever the payload
    (per slot, so that the fine and the coarse variant compare)."""
    soft = _soft_bits(work, layout, step, valid)
    return float(np.sum(soft * soft)) / layout.slots


def _polished(
    image_luma: npt.NDArray[np.float32],
    geometry: Geometry,
    layout: _Layout,
    step: float,
    coverage: npt.NDArray[np.float32] | None = None,
) -> Geometry:
    """The geometry nearby whose soft bits carry the most energy: each share within 1.2 %, coarse then fine.

    Soft-bit energy is high only when every slot lands on its own coded bit, whatever the payload.  A
    share error moves the far edge, not the middle, so the crop's centre stays where it was.
    """

    def energy(candidate: Geometry) -> float:
        work, valid = _cropped_work(image_luma, candidate, coverage)
        return _fit(work, layout, step, valid)

    best = geometry
    for reach, points in _POLISH:
        for axis in (0, 1):
            options = []
            for change in np.linspace(-reach, reach, points):
                kept, offset = list(best.kept), list(best.offset)
                kept[axis] += float(change)
                offset[axis] -= float(change) * WORK_SIZE / 2
                options.append(replace(best, kept=(kept[0], kept[1]), offset=(offset[0], offset[1])))
            best = max(options, key=energy)
    return best


def _cropped_work(
    image_luma: npt.NDArray[np.float32], geometry: Geometry, coverage: npt.NDArray[np.float32] | None = None
) -> tuple[FloatArray, FloatArray]:
    """The original's working grid rebuilt from a crop at ``geometry``, and which blocks the crop covers.

    ``coverage`` (same shape as the picture, 1 where it has content) marks the corners a rotation emptied.
    """
    height, width = image_luma.shape
    (kept_x, kept_y), (offset_x, offset_y) = geometry.kept, geometry.offset
    u0, u1 = max(0, int(np.ceil(offset_x))), min(WORK_SIZE, int(np.floor(offset_x + WORK_SIZE * kept_x)))
    v0, v1 = max(0, int(np.ceil(offset_y))), min(WORK_SIZE, int(np.floor(offset_y + WORK_SIZE * kept_y)))
    work = np.zeros((WORK_SIZE, WORK_SIZE))
    covered = np.zeros((WORK_SIZE, WORK_SIZE))
    if u1 - u0 >= BLOCK and v1 - v0 >= BLOCK:
        to_x, to_y = width / (WORK_SIZE * kept_x), height / (WORK_SIZE * kept_y)  # image px per grid px
        box = ((u0 - offset_x) * to_x, (v0 - offset_y) * to_y, (u1 - offset_x) * to_x, (v1 - offset_y) * to_y)
        picture = Image.fromarray(image_luma, mode="F").resize((u1 - u0, v1 - v0), Image.Resampling.BICUBIC, box=box)
        work[v0:v1, u0:u1] = np.asarray(picture, dtype=np.float64)
        if coverage is None:
            covered[v0:v1, u0:u1] = 1.0
        else:
            shown = Image.fromarray(coverage, mode="F").resize((u1 - u0, v1 - v0), Image.Resampling.BOX, box=box)
            covered[v0:v1, u0:u1] = (np.asarray(shown, dtype=np.float64) > 0.99).astype(np.float64)
    blocks = covered.reshape(BLOCKS_PER_SIDE, BLOCK, BLOCKS_PER_SIDE, BLOCK).min(axis=(1, 3))
    return work, blocks


@dataclass(frozen=True)
class _Attempt:
    geometry: Geometry
    key: MediaKey
    layout: _Layout
    work: FloatArray
    valid: FloatArray | None
    gain: float = 1.0
    candidates: int = 1  # the messages checked (``_try_decode``)


def _attempts(
    image_luma: npt.NDArray[np.float32], keys: list[MediaKey], search: bool, step: float
) -> Iterator[_Attempt]:
    """Every (geometry, key) the detector tries, cheapest first.

    The direct grid at the picture's own step, then at the gain the carriers fit best; then, when the
    template passes the cheap test, the crop hypotheses on the picture turned back by the template's
    rotation.  Everything after the direct grid runs on a copy of at most ``SEARCH_SIDE`` pixels a side.
    """
    direct = _to_work(image_luma)
    for key in keys:
        for layout in _layouts(key.secret):
            yield _Attempt(Geometry(), key, layout, direct, None)
    if not search:
        return
    for key in keys:
        fits = []
        for layout in _layouts(key.secret):
            gain, fit = _best_gain(direct, layout, step, None)
            fits.append((fit, layout, gain))
            yield _Attempt(Geometry(), key, layout, direct, None, gain)
        # The list decoder, on the variant whose carriers fit best: a mark too faint for the most likely
        # message alone (a small picture compressed hard, a page whose white clipped) is often among the next.
        _, layout, gain = max(fits, key=lambda entry: entry[0])
        yield _Attempt(Geometry(), key, layout, direct, None, gain, LIST_SIZE)
    small = _search_copy(image_luma)
    small_work = _template_view(_to_work(small))
    aspect = small.shape[1] / small.shape[0]
    for key in keys:
        template = _template(key.secret)
        degrees, score, shares = _rotation(small_work, template, aspect)
        if score < CARRIER_CHECK_BELOW:
            continue
        if abs(degrees) < 0.15 + 1e-9:  # the angles are sums of 0.25 and 0.05 steps: -0.15 may be -0.15000000000000002
            degrees = 0.0
        turns: list[Geometry] = []
        if degrees != 0.0:
            # The two ways a picture gets turned, whose crop follows from the angle alone: the canvas kept
            # (corners filled), and an editor's straighten (cropped to fill, same aspect).  Exact starts
            # matter where the carriers read only very near the truth (the coarse variant).
            share = _fill_share(degrees, aspect)
            turns = [Geometry(degrees), Geometry(degrees, (share, share), ((1.0 - share) * WORK_SIZE / 2,) * 2)]
        if score < SYNC_THRESHOLD and not _carriers_show(small, degrees, shares, turns, template, key.secret, step):
            continue
        picture, coverage = _derotated(small, degrees)
        view = _template_view(_to_work(picture))
        kept = _crop_shares(view, template)
        proposed = [Geometry(degrees, kept, offset) for offset in _template_offsets(view, template, kept)]
        for start, layout in _fitting_starts(picture, coverage, proposed + turns, key.secret, step):
            # The polish follows the variant that fits best where the crop is put (the other variant's
            # energy there is noise, which would only blur the polish).
            polished = _polished(picture, start, layout, step, coverage)
            turned, turned_coverage = picture, coverage
            if degrees != 0.0:
                turned, turned_coverage, polished = _polished_rotation(small, polished, layout, step)
            yield from _around(turned, turned_coverage, polished, key, layout)


def _around(
    picture: npt.NDArray[np.float32],
    coverage: npt.NDArray[np.float32] | None,
    polished: Geometry,
    key: MediaKey,
    layout: _Layout,
) -> Iterator[_Attempt]:
    """A polished crop hypothesis and its quarter-pixel neighbours, both variants each; then the list decoder
    on the polished geometry itself, in the variant the polish followed (``layout``)."""
    central: _Attempt | None = None
    for dy, dx in _NEIGHBOURS:
        geometry = replace(polished, offset=(polished.offset[0] + dx, polished.offset[1] + dy))
        work, valid = _cropped_work(picture, geometry, coverage)
        for variant in _layouts(key.secret):
            yield _Attempt(geometry, key, variant, work, valid)
        if central is None:
            central = _Attempt(geometry, key, layout, work, valid, candidates=LIST_SIZE)
    if central is not None:
        yield central


def _carriers_show(
    small: npt.NDArray[np.float32],
    degrees: float,
    shares: tuple[float, float],
    turns: list[Geometry],
    template: _Template,
    secret: bytes,
    step: float,
) -> bool:
    """Whether the carriers fit, in either variant, where the template's best placement puts the picture (its
    two best offsets at the shares read with the angle) or at a turn's exact crops.

    The check for pictures whose template is too weak for the cheap test (a busy or a flat picture whose
    mark is intact): unmarked, the fit is about 0.3 to 0.5 wherever it is read; marked, near the true
    geometry, 1 to 2.5 and more.  It reads a copy of at most ``CHECK_SIDE`` pixels a side (the working
    grid is 256), so most unmarked pictures pay a few tens of milliseconds for it.
    """
    picture, coverage = _derotated(_search_copy(small, CHECK_SIDE), degrees)
    offsets = _template_offsets(_template_view(_to_work(picture)), template, shares)[:CROP_HYPOTHESES]
    for start in [Geometry(degrees, shares, offset) for offset in offsets] + turns:
        work, valid = _cropped_work(picture, start, coverage)
        if any(_fit(work, layout, step, valid) >= CARRIER_GATE for layout in _layouts(secret)):
            return True
    return False


def _polished_rotation(
    small: npt.NDArray[np.float32], geometry: Geometry, layout: _Layout, step: float
) -> tuple[npt.NDArray[np.float32], npt.NDArray[np.float32] | None, Geometry]:
    """The angle within 0.2 degrees of the template's whose soft bits carry the most energy."""
    picture, coverage = _derotated(small, geometry.rotation_degrees)
    best: tuple[float, npt.NDArray[np.float32], npt.NDArray[np.float32] | None, Geometry] = (
        -1.0,
        picture,
        coverage,
        geometry,
    )
    for change in (0.0, -0.1, 0.1, -0.2, 0.2):
        candidate = replace(geometry, rotation_degrees=geometry.rotation_degrees + change)
        picture, coverage = _derotated(small, candidate.rotation_degrees)
        work, valid = _cropped_work(picture, candidate, coverage)
        energy = _fit(work, layout, step, valid)
        if energy > best[0]:
            best = (energy, picture, coverage, candidate)
    return best[1], best[2], best[3]


def detect_watermark(
    pixels: npt.NDArray[np.generic],
    keys: list[MediaKey],
    *,
    step: float = DEFAULT_STEP,
    search: bool = True,
) -> WatermarkDetection:
    """Look for a payload under each key: the direct grid first, then (with ``search``) other gains and geometries.

    Returns ``found=False`` with no payload unless the keyed check passes; ``attempts`` counts every
    message checked (per key, geometry and variant: one, or the list decoder's), and the false-positive
    bound is that many times ``FALSE_POSITIVE_PER_ATTEMPT``.
    """
    image_luma = luma(pixels)
    attempts = 0
    best = 0.0
    for attempt in _attempts(image_luma, keys, search, step):
        layout = attempt.layout
        soft = _soft_bits(attempt.work, layout, step, attempt.valid, attempt.gain)
        record, agreement, message, checked = _try_decode(soft, attempt.key, layout, attempt.candidates)
        attempts += checked
        best = max(best, agreement)
        if record is not None:
            tiles = _tile_map(attempt.work, layout, step, attempt.valid, attempt.gain, message)
            return WatermarkDetection(
                found=True,
                algorithm=ALGORITHM,
                key_id=attempt.key.key_id,
                record_id=record.hex(),
                false_positive_bound=attempts * FALSE_POSITIVE_PER_ATTEMPT,
                attempts=attempts,
                confidence=agreement,
                geometry=attempt.geometry.describe(),
                tiles=tiles,
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
