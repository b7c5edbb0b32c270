"""The anchor side of the media benchmark, run inside ``.bench-venv-media`` (never imported by tracemark).

python bench_media_anchor.py images OUT.npz           scikit-image's colour images, about 1 megapixel
python bench_media_anchor.py run IN.npz OUT.json      invisible-watermark dwtDct / dwtDctSvd, all attacks
"""

from __future__ import annotations

import json
import sys
import time
from typing import Any

import numpy as np

from bench_media_attacks import ATTACKS, attack, psnr, ssim

COLOUR_IMAGES = ("astronaut", "coffee", "chelsea", "rocket", "hubble_deep_field", "retina",
                 "immunohistochemistry", "cat", "colorwheel", "logo")  # fmt: skip
BITS = 32
METHODS = ("dwtDct", "dwtDctSvd")


def export_images(out: str) -> None:
    import skimage.data  # type: ignore[import-not-found]
    from PIL import Image

    images: dict[str, Any] = {}
    for name in COLOUR_IMAGES:
        picture = Image.fromarray(getattr(skimage.data, name)()).convert("RGB")
        scale = (1_000_000 / (picture.width * picture.height)) ** 0.5
        size = (round(picture.width * scale / 8) * 8, round(picture.height * scale / 8) * 8)
        images[name] = np.asarray(picture.resize(size, Image.Resampling.LANCZOS), dtype=np.uint8)
    np.savez_compressed(out, **images)


def run(source: str, out: str) -> None:
    import types

    import cv2  # type: ignore[import-not-found]

    # imwatermark imports its RivaGAN method (and torch) at import time; the DWT methods need neither,
    # so a placeholder module stands in for it and torch stays out of the anchor's environment.
    placeholder = types.ModuleType("imwatermark.rivaGan")
    placeholder.RivaWatermark = None  # type: ignore[attr-defined]
    sys.modules["imwatermark.rivaGan"] = placeholder
    from imwatermark import WatermarkDecoder, WatermarkEncoder  # type: ignore[import-not-found]

    corpus = np.load(source)
    results: dict[str, Any] = {}
    rng = np.random.default_rng(2026)
    for method in METHODS:
        rows = []
        for index, name in enumerate(corpus.files):
            rgb = corpus[name]
            bits = [int(b) for b in rng.integers(0, 2, BITS)]
            encoder = WatermarkEncoder()
            encoder.set_watermark("bits", bits)
            started = time.process_time()
            marked_bgr = encoder.encode(cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR), method)
            embed_s = time.process_time() - started
            marked = cv2.cvtColor(marked_bgr, cv2.COLOR_BGR2RGB)
            row: dict[str, Any] = {"image": name, "megapixels": rgb.shape[0] * rgb.shape[1] / 1e6,
                                   "embed_s": embed_s, "psnr": psnr(rgb, marked), "ssim": ssim(rgb, marked),
                                   "attacks": {}}  # fmt: skip
            for attack_name in ATTACKS:
                attacked = attack(attack_name, marked, index)
                decoder = WatermarkDecoder("bits", BITS)
                started = time.process_time()
                try:
                    decoded = decoder.decode(cv2.cvtColor(attacked, cv2.COLOR_RGB2BGR), method)
                except RuntimeError:  # it refuses images under 256 x 256 (the 0.25x resize): no payload
                    decoded = [1 - b for b in bits]
                elapsed = time.process_time() - started
                decoded_bits = [int(b) for b in decoded]
                accuracy = float(np.mean(np.array(decoded_bits) == np.array(bits)))
                row["attacks"][attack_name] = {"exact": decoded_bits == bits, "bit_accuracy": accuracy}
                if attack_name == "none":
                    row["decode_s"] = elapsed
            rows.append(row)
        results[method] = {"bits": BITS, "rows": rows}
    with open(out, "w") as handle:
        json.dump(results, handle)


if __name__ == "__main__":
    if sys.argv[1] == "images":
        export_images(sys.argv[2])
    else:
        run(sys.argv[2], sys.argv[3])
