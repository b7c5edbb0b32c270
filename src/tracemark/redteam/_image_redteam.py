"""The image watermark red team: signal-processing attacks and the averaging (collusion) attack.

Every attack is applied to marked and to unmarked pictures; a marked picture counts as detected when
the detector recovers the exact payload it carries, an unmarked one as a false positive when the
detector reports any payload.  The pictures are synthetic renders (smooth waves, discs, gradients,
texture noise) generated from a seed: held-in images any clone can rebuild without a download.

The averaging attack (Kutter et al. 2000; "collusion"): an attacker holding ``N`` pictures marked with
the same key estimates the mark as the mean of their high-pass residuals (picture minus its blurred
self: the picture content averages out, whatever is common to all marks does not), then

* **removal**: subtracts the estimate (times a gain) from a marked picture, and
* **forgery**: adds it to a clean picture, hoping the detector reads a valid payload there.

The attacker picks the best gain of a few; nothing is tuned down.
"""

from __future__ import annotations

import io
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
from PIL import Image, ImageEnhance, ImageFilter, ImageOps
from scipy.ndimage import gaussian_filter

from tracemark.media import MediaKey, detect_watermark, embed_watermark
from tracemark.redteam._intervals import rate
from tracemark.redteam._results import Cell, Target, WatermarkReport

Pixels = npt.NDArray[np.uint8]
Progress = Callable[[str, int, int], None]
_RECORD_BYTES = 12
#: Gains the averaging attacker tries (the best one is reported).
AVERAGING_GAINS = (1.0, 2.0, 4.0)
#: Victims per averaging cell below which the forgery target is reported but not judged.
MIN_JUDGED_TRIALS = 20
#: A removed mark counts only when the attacked picture keeps this PSNR (dB) to the marked one.
REMOVAL_MIN_PSNR = 35.0


def synthetic_image(seed: int, size: int = 320) -> Pixels:
    """A deterministic synthetic 'photo': waves, a gradient, discs and sensor-like noise."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:size, 0:size] / size
    image = np.zeros((size, size, 3))
    for channel in range(3):
        image[..., channel] = 128 + 50 * np.sin(2 * np.pi * (x * rng.uniform(0.5, 4) + y * rng.uniform(0.5, 4))
                                                + rng.uniform(0, 6)) + rng.uniform(-40, 40) * (x - y)  # fmt: skip
    for _ in range(int(rng.integers(4, 16))):
        cx, cy, radius = rng.uniform(0, 1), rng.uniform(0, 1), rng.uniform(0.03, 0.25)
        image[(x - cx) ** 2 + (y - cy) ** 2 < radius**2] = rng.uniform(0, 255, 3)
    image = gaussian_filter(image, sigma=(rng.uniform(0.3, 1.5), rng.uniform(0.3, 1.5), 0))
    image += rng.normal(0, rng.uniform(1, 6), image.shape)
    return np.clip(np.round(image), 0, 255).astype(np.uint8)


def _codec(picture: Image.Image, image_format: str, quality: float) -> Image.Image:
    out = io.BytesIO()
    picture.save(out, image_format, quality=int(quality))
    return Image.open(io.BytesIO(out.getvalue())).convert("RGB")


def _resize(picture: Image.Image, factor: float) -> Image.Image:
    size = (max(8, round(picture.width * factor)), max(8, round(picture.height * factor)))
    return picture.resize(size, Image.Resampling.BICUBIC)


def _crop(picture: Image.Image, fraction: float, seed: int) -> Image.Image:
    rng = np.random.default_rng(seed)
    cut_w, cut_h = round(picture.width * fraction), round(picture.height * fraction)
    left, top = int(rng.integers(0, cut_w + 1)), int(rng.integers(0, cut_h + 1))
    return picture.crop((left, top, left + picture.width - cut_w, top + picture.height - cut_h))


def rotate_fill(picture: Image.Image, degrees: float, _seed: int = 0) -> Image.Image:
    """Straighten as editors do: rotate, keep the largest centred rectangle of the picture's aspect
    with no empty corner, scale it back to the picture's size."""
    width, height = picture.size
    cos, sin = abs(np.cos(np.deg2rad(degrees))), abs(np.sin(np.deg2rad(degrees)))
    share = min(width / (width * cos + height * sin), height / (width * sin + height * cos))
    left, top = width * (1 - share) / 2, height * (1 - share) / 2
    box = (left, top, left + width * share, top + height * share)
    return picture.rotate(degrees, Image.Resampling.BICUBIC).resize(picture.size, Image.Resampling.BICUBIC, box=box)


def _noise(picture: Image.Image, sigma: float, seed: int) -> Image.Image:
    pixels = np.asarray(picture, dtype=np.float64)
    noisy = pixels + np.random.default_rng(seed).normal(0.0, sigma, pixels.shape)
    return Image.fromarray(np.clip(np.round(noisy), 0, 255).astype(np.uint8))


def _screenshot(picture: Image.Image, scale: float, _seed: int) -> Image.Image:
    """A screenshot pipeline: displayed at ``scale``, gamma and colour management, PNG grab, shared as JPEG 85."""
    shown = _resize(picture, scale)
    pixels = np.asarray(shown, dtype=np.float64) / 255.0
    managed = np.clip(255.0 * pixels ** (1 / 1.1) * np.array([1.0, 0.98, 1.03]), 0, 255).astype(np.uint8)
    grabbed = Image.open(io.BytesIO(_png(Image.fromarray(managed)))).convert("RGB")
    return _codec(grabbed, "JPEG", 85)


def _png(picture: Image.Image) -> bytes:
    out = io.BytesIO()
    picture.save(out, "PNG")
    return out.getvalue()


@dataclass(frozen=True)
class ImageAttack:
    """One image attack: a family, a version, what its strength is, the strengths a run measures."""

    name: str
    version: str
    strength_meaning: str
    strengths: tuple[float, ...]
    group: str  # "signal", "geometric", "combination"
    transform: Callable[[Image.Image, float, int], Image.Image]

    def apply(self, pixels: Pixels, strength: float, seed: int) -> Pixels:
        picture = Image.fromarray(pixels)
        return np.asarray(self.transform(picture, strength, seed).convert("RGB"), dtype=np.uint8)


#: Every image attack by name, in the order reports list them.
IMAGE_ATTACKS: dict[str, ImageAttack] = {
    attack.name: attack
    for attack in (
        ImageAttack("none", "1", "none", (0.0,), "signal", lambda p, s, r: p),
        ImageAttack("jpeg", "1", "JPEG quality", (90, 70, 50, 30), "signal", lambda p, s, r: _codec(p, "JPEG", s)),
        ImageAttack("webp", "1", "WebP quality", (80, 50), "signal", lambda p, s, r: _codec(p, "WEBP", s)),
        ImageAttack("resize", "1", "scale factor", (0.5, 0.75, 1.5), "signal", lambda p, s, r: _resize(p, s)),
        ImageAttack("noise", "1", "Gaussian sigma (grey levels)", (2, 5, 10), "signal", _noise),
        ImageAttack("blur", "1", "Gaussian radius (px)", (0.5, 1.0, 2.0), "signal",
                    lambda p, s, r: p.filter(ImageFilter.GaussianBlur(s))),
        ImageAttack("brightness", "1", "brightness factor", (0.8, 1.2), "signal",
                    lambda p, s, r: ImageEnhance.Brightness(p).enhance(s)),
        ImageAttack("contrast", "1", "contrast factor", (0.7, 1.3), "signal",
                    lambda p, s, r: ImageEnhance.Contrast(p).enhance(s)),
        ImageAttack("saturation", "1", "colour saturation factor", (0.0, 1.5), "signal",
                    lambda p, s, r: ImageEnhance.Color(p).enhance(s)),
        ImageAttack("screenshot", "1", "display scale", (1.0, 0.8), "signal", _screenshot),
        ImageAttack("crop", "1", "share of each side removed", (0.05, 0.1, 0.2), "geometric", _crop),
        ImageAttack("rotation", "1", "degrees", (1.0, 2.0, 3.0, 5.0), "geometric",
                    lambda p, s, r: p.rotate(s, Image.Resampling.BICUBIC)),
        ImageAttack("rotation+fill", "1", "degrees, then cropped to fill and scaled back", (-3.0, 1.0, 3.0),
                    "geometric", rotate_fill),
        ImageAttack("flip", "1", "0 = horizontal, 1 = vertical", (0.0, 1.0), "geometric",
                    lambda p, s, r: ImageOps.mirror(p) if s == 0.0 else ImageOps.flip(p)),
        ImageAttack("resize+jpeg", "1", "JPEG quality after 0.5x", (70, 50), "combination",
                    lambda p, s, r: _codec(_resize(p, 0.5), "JPEG", s)),
        ImageAttack("crop+jpeg", "1", "JPEG quality after a 10 % crop", (70,), "combination",
                    lambda p, s, r: _codec(_crop(p, 0.1, r), "JPEG", s)),
        ImageAttack("rotation+jpeg", "1", "JPEG quality after 1 degree", (70,), "combination",
                    lambda p, s, r: _codec(p.rotate(1.0, Image.Resampling.BICUBIC), "JPEG", s)),
    )
}  # fmt: skip


@dataclass(frozen=True)
class ImageRedTeamOptions:
    """Sizes of an image run (reduced by default; ``make bench`` runs 200 per cell)."""

    images: int = 20
    size: int = 320
    seed: int = 20260101
    attacks: tuple[str, ...] = tuple(IMAGE_ATTACKS)
    #: Numbers of marked pictures the averaging attacker holds; empty skips it.
    averaging: tuple[int, ...] = (10, 100)
    averaging_trials: int = 20


def _silent(_stage: str, _done: int, _total: int) -> None:
    return None


def _record(index: int) -> bytes:
    return index.to_bytes(_RECORD_BYTES, "big")


class ImageRedTeam:
    """Marks synthetic pictures under one key and attacks them."""

    def __init__(self, key: MediaKey, options: ImageRedTeamOptions, progress: Progress = _silent) -> None:
        self.key = key
        self.options = options
        self.progress = progress

    def _found(self, pixels: Pixels, record: bytes | None) -> bool:
        detection = detect_watermark(pixels, [self.key])
        if record is None:
            return detection.found
        return detection.found and detection.record_id == record.hex()

    def run(self) -> WatermarkReport:
        started = time.monotonic()
        options = self.options
        originals = [synthetic_image(options.seed + i, options.size) for i in range(options.images)]
        unmarked = [synthetic_image(options.seed + 10_000 + i, options.size) for i in range(options.images)]
        marked = []
        for index, picture in enumerate(originals):
            self.progress("marking", index, len(originals))
            marked.append(embed_watermark(picture, self.key, _record(index)))
        cells = self._attack_cells(marked, unmarked)
        for holders in options.averaging:
            cells.extend(self._averaging_cells(holders))
        return WatermarkReport(
            medium="image", detectors=("qim",), model=f"synthetic {options.size}x{options.size} renders",
            samples_marked=len(marked), samples_unmarked=len(unmarked), tokens=0, alpha=2.0**-48,
            seed=options.seed, seconds=time.monotonic() - started, cells=tuple(cells),
            targets=image_targets(cells),
            notes=("TPR: share of attacked marked pictures whose exact payload is recovered; FPR: share of attacked "
                   "unmarked pictures where any payload is read (the detector's bound is 2^-48 per attempt).",),
        )  # fmt: skip

    def _attack_cells(self, marked: Sequence[Pixels], unmarked: Sequence[Pixels]) -> list[Cell]:
        cells = []
        plan = [(a, s) for name in self.options.attacks if (a := IMAGE_ATTACKS.get(name)) for s in a.strengths]
        for step, (attack, strength) in enumerate(plan):
            self.progress("image attacks", step, len(plan))
            hits = [
                self._found(attack.apply(p, strength, self.options.seed + i), _record(i)) for i, p in enumerate(marked)
            ]
            false = [
                self._found(attack.apply(p, strength, self.options.seed + i), None) for i, p in enumerate(unmarked)
            ]
            cell = Cell(kind="image", detector="qim", attack=attack.name, attack_version=attack.version,
                        level=attack.group, strength=float(strength), strength_meaning=attack.strength_meaning,
                        alpha=2.0**-48, tpr=rate(sum(hits), len(hits)), fpr=rate(sum(false), len(false)))  # fmt: skip
            cells.append(cell)
        self.progress("image attacks", len(plan), len(plan))
        return cells

    def _averaging_cells(self, holders: int) -> list[Cell]:
        """Removal and forgery with the mark estimated from ``holders`` pictures the attacker holds."""
        options = self.options
        base = options.seed + 50_000
        estimate = np.zeros((options.size, options.size, 3))
        for index in range(holders):
            self.progress(f"averaging N={holders}: estimating", index, holders)
            picture = embed_watermark(synthetic_image(base + index, options.size), self.key, _record(10**6 + index))
            estimate += _residual(picture)
        estimate /= holders
        trials = options.averaging_trials
        removed = [False] * trials
        forged = [False] * trials
        for trial in range(trials):
            self.progress(f"averaging N={holders}: attacking", trial, trials)
            victim = embed_watermark(synthetic_image(base - 1 - trial, options.size), self.key, _record(trial))
            clean = synthetic_image(base - 10_000 - trial, options.size)
            for gain in AVERAGING_GAINS:
                attacked = _shift(victim, -gain * estimate)
                # A removal counts only when the picture stays usable (PSNR to the marked picture >= 35 dB).
                if _psnr(attacked, victim) >= REMOVAL_MIN_PSNR:
                    removed[trial] |= not self._found(attacked, _record(trial))
                forged[trial] |= self._found(_shift(clean, gain * estimate), None)
        clean_rate = rate(0, 0)
        gains = "/".join(f"{g:g}" for g in AVERAGING_GAINS)
        return [
            Cell(kind="averaging", detector="qim", attack="averaging-removal", attack_version="1", level="collusion",
                 strength=float(holders), strength_meaning="marked pictures averaged (N)", alpha=2.0**-48,
                 tpr=rate(trials - sum(removed), trials), fpr=clean_rate,
                 note=f"TPR = marks surviving removal (best of gains {gains} keeping PSNR >= {REMOVAL_MIN_PSNR:g} dB); "
                      f"{trials} victims"),
            Cell(kind="averaging", detector="qim", attack="averaging-forgery", attack_version="1", level="collusion",
                 strength=float(holders), strength_meaning="marked pictures averaged (N)", alpha=2.0**-48,
                 tpr=rate(sum(forged), trials), fpr=clean_rate,
                 note=f"TPR = clean pictures accepted as marked after adding the estimate (best of gains {gains})"),
        ]  # fmt: skip


def _residual(pixels: Pixels) -> npt.NDArray[np.float64]:
    values = pixels.astype(np.float64)
    return values - gaussian_filter(values, sigma=(2.0, 2.0, 0))


def _psnr(a: Pixels, b: Pixels) -> float:
    mse = float(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2))
    return float("inf") if mse == 0 else float(10.0 * np.log10(255.0**2 / mse))


def _shift(pixels: Pixels, change: npt.NDArray[np.float64]) -> Pixels:
    return np.clip(np.round(pixels.astype(np.float64) + change), 0, 255).astype(np.uint8)


def image_targets(cells: Sequence[Cell]) -> tuple[Target, ...]:
    """The averaging goal: forging needs >= 1,000 pictures (no forgery from fewer)."""
    forgeries = [c for c in cells if c.attack == "averaging-forgery"]
    removals = [c for c in cells if c.attack == "averaging-removal"]
    targets = []
    if forgeries:
        below = [c for c in forgeries if c.strength < 1000]
        measured = ", ".join(f"N={c.strength:g}: forged {c.tpr.successes}/{c.tpr.trials}" for c in forgeries)
        # Judged only on enough victims to mean something (a Wilson upper bound near 0.15 or below).
        enough = below and all(c.tpr.trials >= MIN_JUDGED_TRIALS for c in below)
        met = all(c.tpr.successes == 0 for c in below) if enough else None
        targets.append(Target("image-averaging-forgery", "the averaging attack needs >= 1,000 images to forge the mark",
                              measured, met))  # fmt: skip
    if removals:
        measured = ", ".join(f"N={c.strength:g}: mark survived {c.tpr.successes}/{c.tpr.trials}" for c in removals)
        targets.append(Target("image-averaging-removal", "reported: marks surviving removal by averaging", measured,
                              None))  # fmt: skip
    return tuple(targets)
