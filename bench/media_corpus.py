"""The media benchmark's natural-image set: licence-clean pictures at their native size, built into a cache.

Nothing large is committed: ``bench/media_corpus.json`` lists every picture (where it comes from, its
licence, size and SHA-256) and this script rebuilds the set from what the registries ship:

* PyPI: scikit-image's bundled data (in ``.bench-venv-media``, which ``bench_media.py`` creates) and
  scikit-learn's two sample photos (in tracemark's own ``.venv``);
* Debian: ``plasma-workspace-wallpapers`` (``apt-get download`` + ``dpkg -x``; photos and renders,
  LGPL-3 / GPL-2+ per the package's metadata and copyright file);
* rendered here: text-heavy screenshots drawn with Pillow in DejaVu Sans (``fonts-dejavu-core``).

Every file is checked against its recorded SHA-256 (a rendered screenshot depends on Pillow's and
FreeType's versions: a mismatch there is reported, and the file is still used, with ``--strict`` refusing).

    .venv/bin/python bench/media_corpus.py [--cache DIR] [--strict]   # build and check the set
"""

from __future__ import annotations

import argparse
import hashlib
import json
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageDraw, ImageFont

REPO = Path(__file__).resolve().parents[1]
MANIFEST = REPO / "bench" / "media_corpus.json"
CACHE = REPO / ".bench-cache" / "media-corpus"
ANCHOR_VENV = REPO / ".bench-venv-media"
FONT_DIR = Path("/usr/share/fonts/truetype/dejavu")

Pixels = np.ndarray


def _site_packages(venv: Path) -> Path:
    found = sorted(venv.glob("lib/python3*/site-packages"))
    if not found:
        raise SystemExit(f"{venv} has no site-packages: run bench/bench_media.py once to create it")
    return found[0]


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


# -- rendered screenshots -------------------------------------------------------------------------------------
_TEXT = (
    "provenance watermark manifest signature certificate verify image record binding repository log entry "
    "model output content credentials trust anchor digest payload detection attack crop rotation resize "
    "quality benchmark recovery false positive bound the a of to and in is for with on that by from"
)
_WORDS = _TEXT.split()


def _paragraph(rng: np.random.Generator, words: int) -> str:
    chosen = [_WORDS[int(i)] for i in rng.integers(0, len(_WORDS), words)]
    return " ".join(chosen).capitalize() + "."


def render_screenshot(style: str, width: int, height: int, seed: int) -> Image.Image:
    """A text-heavy page (documentation, code editor, chat, table) drawn deterministically with Pillow."""
    rng = np.random.default_rng(seed)
    dark = style in ("editor", "terminal")
    page = Image.new("RGB", (width, height), (30, 30, 36) if dark else (255, 255, 255))
    draw = ImageDraw.Draw(page)
    mono = style in ("editor", "terminal", "table")
    font_file = FONT_DIR / ("DejaVuSansMono.ttf" if mono else "DejaVuSans.ttf")
    size = max(11, round(height / 60))
    font = ImageFont.truetype(str(font_file), size)
    bold = ImageFont.truetype(str(FONT_DIR / "DejaVuSans-Bold.ttf"), round(size * 1.6))
    ink = (220, 220, 210) if dark else (30, 30, 30)
    # A title bar and a side panel, as a browser or an IDE shows them.
    draw.rectangle((0, 0, width, round(height * 0.05)), fill=(60, 63, 70) if dark else (232, 234, 237))
    margin = round(width * 0.04)
    if style in ("docs", "editor") and width > 800:
        panel = round(width * 0.18)
        draw.rectangle((0, round(height * 0.05), panel, height), fill=(40, 42, 50) if dark else (246, 247, 249))
        y = round(height * 0.08)
        while y < height - size:
            draw.text((margin // 2, y), _paragraph(rng, 2)[:18], font=font, fill=ink)
            y += round(size * 1.8)
        margin = panel + margin
    y = round(height * 0.08)
    if style == "docs" or style == "chat":
        draw.text((margin, y), _paragraph(rng, 4), font=bold, fill=ink)
        y += round(size * 3)
    colours = ((86, 156, 214), (206, 145, 120), (106, 153, 85), (197, 134, 192))
    line = 0
    while y < height - size * 2:
        if style == "table":
            cells = 5
            cell_w = (width - 2 * margin) // cells
            for column in range(cells):
                text = _paragraph(rng, 2)[:14] if line % 8 else f"column {column}"
                draw.text((margin + column * cell_w + 4, y), text, font=font, fill=ink)
            draw.line((margin, y + round(size * 1.5), width - margin, y + round(size * 1.5)), fill=(200, 200, 200))
            y += round(size * 2)
        elif style in ("editor", "terminal"):
            indent = int(rng.integers(0, 4)) * size * 2
            x = margin + indent
            for word in _paragraph(rng, int(rng.integers(2, 9))).split():
                colour = colours[int(rng.integers(0, len(colours)))] if style == "editor" else ink
                draw.text((x, y), word, font=font, fill=colour)
                x += round(draw.textlength(word + " ", font=font))
                if x > width - margin:
                    break
            y += round(size * 1.5)
        else:
            if style == "chat" and line % 4 == 0:
                draw.rounded_rectangle((margin, y - 4, width - margin, y + size * 4), radius=10, fill=(225, 238, 255))
            text = _paragraph(rng, int(rng.integers(30, 60)))
            x = margin
            for word in text.split():
                advance = round(draw.textlength(word + " ", font=font))
                if x + advance > width - margin:
                    x, y = margin, y + round(size * 1.45)
                    if y >= height - size * 2:
                        break
                draw.text((x, y), word, font=font, fill=ink)
                x += advance
            y += round(size * 2.6)
        line += 1
    return page


SCREENSHOTS = {
    "screenshot-docs-1280x800": ("docs", 1280, 800, 1),
    "screenshot-editor-1920x1080": ("editor", 1920, 1080, 2),
    "screenshot-chat-390x844": ("chat", 390, 844, 3),
    "screenshot-table-800x600": ("table", 800, 600, 4),
    "screenshot-terminal-1440x900": ("terminal", 1440, 900, 5),
    "screenshot-docs-2560x1440": ("docs", 2560, 1440, 6),
}


# -- building -------------------------------------------------------------------------------------------------
def _debian_tree(package: str, version: str, scratch: Path) -> Path:
    target = scratch / package
    if not target.exists():
        subprocess.run(["apt-get", "download", f"{package}={version}"], cwd=scratch, check=True,
                       stdout=subprocess.DEVNULL)  # fmt: skip
        deb = next(scratch.glob(f"{package}_*.deb"))
        subprocess.run(["dpkg", "-x", str(deb), str(target)], check=True)
        deb.unlink()
    return target


def build(cache: Path = CACHE, *, strict: bool = False, check: bool = True) -> dict[str, Path]:
    """Build the set into ``cache`` (what is there and matches its hash is kept) and return name -> file."""
    manifest = json.loads(MANIFEST.read_text())
    cache.mkdir(parents=True, exist_ok=True)
    files: dict[str, Path] = {}
    mismatched: list[str] = []
    with tempfile.TemporaryDirectory() as folder:
        scratch = Path(folder)
        for entry in manifest["images"]:
            name, source = entry["name"], entry["source"]
            target = cache / f"{name}{Path(source.get('path', '.png')).suffix or '.png'}"
            if not (target.exists() and _sha256(target) == entry.get("sha256")):
                if source["kind"] == "pypi":
                    venv = REPO / source["venv"]
                    origin = _site_packages(venv) / source["path"]
                    target.write_bytes(origin.read_bytes())
                elif source["kind"] == "debian":
                    tree = _debian_tree(source["package"], source["version"], scratch)
                    target.write_bytes((tree / source["path"].lstrip("/")).read_bytes())
                else:
                    style, width, height, seed = SCREENSHOTS[name]
                    render_screenshot(style, width, height, seed).save(target, "PNG", optimize=False)
            if check and _sha256(target) != entry["sha256"]:
                mismatched.append(name)
            files[name] = target
    if mismatched:
        message = f"SHA-256 differs from bench/media_corpus.json for: {', '.join(mismatched)}"
        rendered = all(e["source"]["kind"] == "rendered" for e in manifest["images"] if e["name"] in mismatched)
        if strict or not rendered:
            raise SystemExit(message)
        print(f"warning: {message} (rendered here: another Pillow/FreeType draws them differently)", file=sys.stderr)
    return files


def load(cache: Path = CACHE, *, limit: int | None = None, names: list[str] | None = None) -> dict[str, Pixels]:
    """The set as RGB uint8 arrays at native size (grey and alpha pictures converted to RGB)."""
    files = build(cache)
    chosen = names if names is not None else list(files)[:limit]
    return {name: np.asarray(Image.open(files[name]).convert("RGB"), dtype=np.uint8) for name in chosen}


def record(cache: Path = CACHE) -> None:
    """Fill in size and SHA-256 of every entry from the built files (run once when the list changes)."""
    manifest = json.loads(MANIFEST.read_text())
    build(cache, check=False)
    for entry in manifest["images"]:
        path = next(cache.glob(f"{entry['name']}.*"))
        with Image.open(path) as picture:
            entry["width"], entry["height"], entry["mode"] = picture.width, picture.height, picture.mode
        entry["bytes"] = path.stat().st_size
        entry["megapixels"] = round(entry["width"] * entry["height"] / 1e6, 3)
        entry["sha256"] = _sha256(path)
    MANIFEST.write_text(json.dumps(manifest, indent=2) + "\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cache", type=Path, default=CACHE)
    parser.add_argument("--strict", action="store_true", help="refuse rendered screenshots whose hash differs")
    parser.add_argument("--record", action="store_true", help="rewrite sizes and hashes in the manifest")
    args = parser.parse_args()
    if args.record:
        record(args.cache)
    files = build(args.cache, strict=args.strict)
    manifest: dict[str, Any] = json.loads(MANIFEST.read_text())
    total = sum(e["megapixels"] for e in manifest["images"])
    print(f"{len(files)} images, {total:.1f} MP in all, in {args.cache} (hashes checked)")


if __name__ == "__main__":
    main()
