"""Image attacks and quality metrics shared by the media benchmark and its anchor runner.

Only numpy, scipy and Pillow: the same file runs in tracemark's environment and in the anchor's
(``.bench-venv-media``), so both methods face byte-identical attacks.
"""

from __future__ import annotations

import io
from collections.abc import Callable

import numpy as np
import numpy.typing as npt
from PIL import Image, ImageEnhance, ImageFilter
from scipy.ndimage import gaussian_filter

Pixels = npt.NDArray[np.uint8]


def _codec(picture: Image.Image, image_format: str, quality: int) -> Image.Image:
    out = io.BytesIO()
    picture.save(out, image_format, quality=quality)
    return Image.open(io.BytesIO(out.getvalue())).convert("RGB")


def _resize(picture: Image.Image, factor: float) -> Image.Image:
    size = (max(1, round(picture.width * factor)), max(1, round(picture.height * factor)))
    return picture.resize(size, Image.Resampling.BICUBIC)


def _noise(picture: Image.Image, sigma: float, seed: int) -> Image.Image:
    pixels = np.asarray(picture, dtype=np.float64)
    noisy = pixels + np.random.default_rng(seed).normal(0.0, sigma, pixels.shape)
    return Image.fromarray(np.clip(np.round(noisy), 0, 255).astype(np.uint8))


def _crop(picture: Image.Image, fraction: float, seed: int) -> Image.Image:
    """Remove ``fraction`` of the width and of the height, split randomly between the two sides."""
    rng = np.random.default_rng(seed)
    cut_w, cut_h = round(picture.width * fraction), round(picture.height * fraction)
    left, top = int(rng.integers(0, cut_w + 1)), int(rng.integers(0, cut_h + 1))
    return picture.crop((left, top, left + picture.width - cut_w, top + picture.height - cut_h))


def _rotate_fill(picture: Image.Image, degrees: float) -> Image.Image:
    """Rotate, crop the largest centred rectangle of the same aspect with no empty corner, resize back."""
    width, height = picture.size
    angle = np.deg2rad(abs(degrees))
    cos, sin = float(np.cos(angle)), float(np.sin(angle))
    share = min(width / (width * cos + height * sin), height / (width * sin + height * cos))
    kept_w, kept_h = width * share, height * share
    left, top = (width - kept_w) / 2, (height - kept_h) / 2
    rotated = picture.rotate(degrees, Image.Resampling.BICUBIC)
    box = (left, top, left + kept_w, top + kept_h)
    return rotated.resize((width, height), Image.Resampling.BICUBIC, box=box)


def _screenshot(picture: Image.Image, seed: int) -> Image.Image:
    """A screen capture: shown at 80 % (bilinear), the selection 0-2 % inside each edge, saved as PNG."""
    shown = picture.resize((round(picture.width * 0.8), round(picture.height * 0.8)), Image.Resampling.BILINEAR)
    rng = np.random.default_rng(seed)
    insets = [int(rng.integers(0, max(1, round(side * 0.02)) + 1)) for side in (shown.width, shown.height) * 2]
    box = (insets[0], insets[1], shown.width - insets[2], shown.height - insets[3])
    out = io.BytesIO()
    shown.crop(box).save(out, "PNG")
    return Image.open(io.BytesIO(out.getvalue())).convert("RGB")


#: name -> (group, attack(picture, seed)).  Groups: "robust" (goal 99%), "geometric" (goal 95%).
ATTACKS: dict[str, tuple[str, Callable[[Image.Image, int], Image.Image]]] = {
    "none": ("robust", lambda p, s: p),
    "jpeg30": ("robust", lambda p, s: _codec(p, "JPEG", 30)),
    "jpeg50": ("robust", lambda p, s: _codec(p, "JPEG", 50)),
    "jpeg70": ("robust", lambda p, s: _codec(p, "JPEG", 70)),
    "jpeg90": ("robust", lambda p, s: _codec(p, "JPEG", 90)),
    "webp50": ("robust", lambda p, s: _codec(p, "WEBP", 50)),
    "resize0.25": ("robust", lambda p, s: _resize(p, 0.25)),
    "resize0.5": ("robust", lambda p, s: _resize(p, 0.5)),
    "resize1.5": ("robust", lambda p, s: _resize(p, 1.5)),
    "resize2": ("robust", lambda p, s: _resize(p, 2.0)),
    "blur1": ("robust", lambda p, s: p.filter(ImageFilter.GaussianBlur(1.0))),
    "noise5": ("robust", lambda p, s: _noise(p, 5.0, s)),
    "brightness+20": ("robust", lambda p, s: ImageEnhance.Brightness(p).enhance(1.2)),
    "brightness-20": ("robust", lambda p, s: ImageEnhance.Brightness(p).enhance(0.8)),
    "contrast+20": ("robust", lambda p, s: ImageEnhance.Contrast(p).enhance(1.2)),
    "contrast-20": ("robust", lambda p, s: ImageEnhance.Contrast(p).enhance(0.8)),
    "brightness+10": ("robust", lambda p, s: ImageEnhance.Brightness(p).enhance(1.1)),
    "brightness-10": ("robust", lambda p, s: ImageEnhance.Brightness(p).enhance(0.9)),
    "contrast+10": ("robust", lambda p, s: ImageEnhance.Contrast(p).enhance(1.1)),
    "contrast-10": ("robust", lambda p, s: ImageEnhance.Contrast(p).enhance(0.9)),
    "resize0.5+jpeg50": ("robust", lambda p, s: _codec(_resize(p, 0.5), "JPEG", 50)),
    "crop10": ("geometric", lambda p, s: _crop(p, 0.10, s)),
    "crop20": ("geometric", lambda p, s: _crop(p, 0.20, s)),
    "rotate1": ("geometric", lambda p, s: p.rotate(1.0, Image.Resampling.BICUBIC)),
    "rotate-2": ("geometric", lambda p, s: p.rotate(-2.0, Image.Resampling.BICUBIC)),
    "rotate3": ("geometric", lambda p, s: p.rotate(3.0, Image.Resampling.BICUBIC)),
    "rotate5": ("geometric", lambda p, s: p.rotate(5.0, Image.Resampling.BICUBIC)),
    "rotate1+fill": ("geometric", lambda p, s: _rotate_fill(p, 1.0)),
    "rotate3+fill": ("geometric", lambda p, s: _rotate_fill(p, -3.0)),
    "screenshot": ("geometric", _screenshot),
}


def attack(name: str, pixels: Pixels, seed: int) -> Pixels:
    """Apply the named attack to RGB pixels."""
    return np.asarray(ATTACKS[name][1](Image.fromarray(pixels), seed).convert("RGB"), dtype=np.uint8)


def psnr(a: Pixels, b: Pixels) -> float:
    mse = float(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2))
    return float("inf") if mse == 0 else float(10.0 * np.log10(255.0**2 / mse))


def ssim(a: Pixels, b: Pixels) -> float:
    """SSIM of the BT.601 luma (Wang et al. 2004: Gaussian window sigma 1.5, K1 0.01, K2 0.03)."""
    weights = np.array([0.299, 0.587, 0.114])
    x, y = a.astype(np.float64) @ weights, b.astype(np.float64) @ weights
    c1, c2 = (0.01 * 255) ** 2, (0.03 * 255) ** 2
    mx, my = gaussian_filter(x, 1.5), gaussian_filter(y, 1.5)
    sxx = gaussian_filter(x * x, 1.5) - mx * mx
    syy = gaussian_filter(y * y, 1.5) - my * my
    sxy = gaussian_filter(x * y, 1.5) - mx * my
    index = ((2 * mx * my + c1) * (2 * sxy + c2)) / ((mx * mx + my * my + c1) * (sxx + syy + c2))
    return float(np.mean(index))


def synthetic_image(seed: int, height: int = 1024, width: int = 1024) -> Pixels:
    """A synthetic 'render': smooth colour waves, solid discs and a gradient sky, with mild noise."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:height, 0:width] / max(height, width)
    image = np.zeros((height, width, 3))
    for channel in range(3):
        waves = np.sin(2 * np.pi * (x * rng.uniform(1, 5) + y * rng.uniform(1, 5)) + rng.uniform(0, 6))
        image[..., channel] = 128 + 60 * waves
    sky = y < rng.uniform(0.1, 0.3)
    image[sky] = np.array(rng.uniform(60, 220, 3)) * (0.6 + 0.4 * y[sky, None] / 0.3)
    for _ in range(int(rng.integers(8, 24))):
        cx, cy, radius = rng.uniform(0, 1), rng.uniform(0, 1), rng.uniform(0.02, 0.2)
        image[(x - cx) ** 2 + (y - cy) ** 2 < radius**2] = rng.uniform(0, 255, 3)
    image += rng.normal(0, rng.uniform(1, 6), image.shape)
    return np.clip(np.round(image), 0, 255).astype(np.uint8)
