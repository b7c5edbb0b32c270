"""Make the two example images (synthetic scenes, no third-party data): python examples/images/make_images.py."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFilter


def scene(seed: int, width: int = 640, height: int = 480) -> Image.Image:
    """A sky gradient, hills, a sun and some texture: enough structure for the watermark's masking."""
    rng = np.random.default_rng(seed)
    y, _x = np.mgrid[0:height, 0:width].astype(float)
    sky = np.stack([90 + 80 * y / height, 140 + 60 * y / height, 230 - 40 * y / height], axis=-1)
    picture = Image.fromarray(np.clip(sky, 0, 255).astype(np.uint8))
    draw = ImageDraw.Draw(picture)
    sun = rng.uniform(0.15, 0.85) * width, rng.uniform(0.1, 0.3) * height
    draw.ellipse((sun[0] - 40, sun[1] - 40, sun[0] + 40, sun[1] + 40), fill=(250, 220, 120))
    for layer in range(3):
        base = height * (0.55 + 0.12 * layer)
        phase, amplitude = rng.uniform(0, 6), rng.uniform(20, 50)
        ridge = [(i, base - amplitude * np.sin(i / width * rng.uniform(4, 9) + phase)) for i in range(0, width + 8, 8)]
        colour = (40 + 30 * layer, 110 + 25 * layer, 50 + 10 * layer)
        draw.polygon([*ridge, (width, height), (0, height)], fill=colour)
    pixels = np.asarray(picture.filter(ImageFilter.GaussianBlur(1.2))).astype(float)
    pixels += rng.normal(0, 6, pixels.shape)
    return Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8))


if __name__ == "__main__":
    folder = Path(__file__).parent
    for name, seed in (("hills", 3), ("valley", 8)):
        scene(seed).save(folder / f"{name}.jpg", "JPEG", quality=90)
