"""Image folder scans: look for this keyring's watermark in every image, resumably.

Each image is decoded reduced for detection (as :func:`verify_image` does) and tested with
:func:`detect_watermark` under the keyring's media key; one JSON row per image is appended to
the results file, so a scan that stops is resumed by running it again with the same output.

The watermark test is a keyed check, not a score: an image is marked when a payload decodes
and its check passes, and the detector bounds the chance of that on an unmarked image
(``false_positive_bound``: attempts x the per-attempt bound).  A row's ``p_value`` is that
bound for a marked image and 1 otherwise, a valid p-value (an unmarked image reaches
``p <= b`` with probability at most ``b``), so the corpus summary gives the same view as a
text scan: the expected number of false positives (the sum of the bounds: also a bound on
the chance of any false positive, the Bonferroni/union bound) and the Benjamini-Hochberg
discoveries at a chosen false discovery rate.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TypedDict

import numpy as np

from tracemark._stats import benjamini_hochberg
from tracemark.errors import InvalidInputError, TracemarkError
from tracemark.media._image_io import DETECT_SIDE, MAX_IMAGE_BYTES, decode_image
from tracemark.media._watermark import ALGORITHM, MediaKey, detect_watermark

MEDIA_SCAN_ROW_FORMAT = "tracemark.media.scan-row/v1"
MEDIA_SCAN_SUMMARY_FORMAT = "tracemark.media.scan-summary/v1"
#: Files a folder scan picks up (a file named on the command line is read whatever its name).
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".webp")


class MediaScanRow(TypedDict):
    """One image's result; ``error`` rows carry no verdict."""

    format: str
    id: str
    marked: bool | None
    p_value: float | None
    false_positive_bound: float | None
    record_id: str | None
    binding_value: str | None
    geometry: str | None
    key_id: str
    algorithm: str
    error: str | None


class MediaScanSummaryJSON(TypedDict):
    """:meth:`MediaScanSummary.to_json`."""

    format: str
    out: str
    key_id: str
    algorithm: str
    images: int
    images_tested: int
    errors: int
    marked: int
    expected_false_positives: float
    fdr: float
    benjamini_hochberg_discoveries: int
    resumed_images: int
    multiple_testing: str


@dataclass(frozen=True)
class MediaScanSummary:
    """What a whole image results file says."""

    out: str
    key_id: str
    images: int
    images_tested: int
    errors: int
    marked: int
    expected_false_positives: float
    fdr: float
    benjamini_hochberg_discoveries: int
    resumed_images: int

    def to_json(self) -> MediaScanSummaryJSON:
        return MediaScanSummaryJSON(
            format=MEDIA_SCAN_SUMMARY_FORMAT, out=self.out, key_id=self.key_id, algorithm=ALGORITHM,
            images=self.images, images_tested=self.images_tested, errors=self.errors, marked=self.marked,
            expected_false_positives=self.expected_false_positives, fdr=self.fdr,
            benjamini_hochberg_discoveries=self.benjamini_hochberg_discoveries, resumed_images=self.resumed_images,
            multiple_testing=self.multiple_testing,
        )  # fmt: skip

    @property
    def multiple_testing(self) -> str:
        return (
            f"each image's false-positive bound holds on its own; over {self.images_tested} images at most "
            f"{self.expected_false_positives:.3g} false positives are expected if none is marked, and the chance "
            f"of any is at most that sum (Bonferroni); Benjamini-Hochberg at FDR {self.fdr:g}: "
            f"{self.benjamini_hochberg_discoveries} discoveries"
        )


def _image_files(inputs: Iterable[Path | str]) -> Iterator[Path]:
    for item in inputs:
        path = Path(item)
        if path.is_dir():
            yield from sorted(p for p in path.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
        elif path.exists():
            yield path
        else:
            raise InvalidInputError(f"{path}: no such file or folder")


def _row(image_id: str, key: MediaKey, **values: object) -> MediaScanRow:
    row: dict[str, object] = {
        "format": MEDIA_SCAN_ROW_FORMAT, "id": image_id, "marked": None, "p_value": None,
        "false_positive_bound": None, "record_id": None, "binding_value": None, "geometry": None,
        "key_id": key.key_id, "algorithm": ALGORITHM, "error": None,
    }  # fmt: skip
    row.update(values)
    return row  # type: ignore[return-value]


def scan_image(path: Path, key: MediaKey, *, search: bool = True) -> MediaScanRow:
    """The row of one image file (an unreadable or undecodable image gives an error row)."""
    try:
        size = path.stat().st_size
        if size > MAX_IMAGE_BYTES:  # refused before reading: a folder may hold a file of any size
            return _row(str(path), key, error=f"image is {size} bytes; the limit is {MAX_IMAGE_BYTES}")
        data = path.read_bytes()
    except OSError as exc:
        return _row(str(path), key, error=f"cannot be read ({type(exc).__name__})")
    try:
        image = decode_image(data, detect_side=DETECT_SIDE)
    except TracemarkError as exc:
        return _row(str(path), key, error=exc.diagnostics())
    found = detect_watermark(image.pixels, [key], search=search)
    return _row(
        str(path), key, marked=found.found, p_value=found.false_positive_bound if found.found else 1.0,
        false_positive_bound=found.false_positive_bound, record_id=found.record_id,
        binding_value=found.binding_value, geometry=found.geometry,
    )  # fmt: skip


def _written(out: Path) -> list[MediaScanRow]:
    rows: list[MediaScanRow] = []
    if not out.exists():
        return rows
    with out.open("rb") as handle:
        for line in handle:
            if not line.endswith(b"\n"):
                break  # torn by a killed run: cut off and redone
            try:
                row = json.loads(line)
            except ValueError:
                raise InvalidInputError(f"{out}: a line is not a scan row; use a new --out") from None
            if not isinstance(row, dict) or row.get("format") != MEDIA_SCAN_ROW_FORMAT:
                raise InvalidInputError(f"{out} is not an image scan results file; use a new --out")
            rows.append(row)  # type: ignore[arg-type]
    return rows


def _summarize(rows: Sequence[MediaScanRow], key: MediaKey, out: Path, fdr: float, resumed: int) -> MediaScanSummary:
    tested = [r for r in rows if r["error"] is None and r["p_value"] is not None]
    discoveries, _ = benjamini_hochberg(np.array([float(r["p_value"] or 1.0) for r in tested]), fdr)
    return MediaScanSummary(
        out=str(out), key_id=key.key_id, images=len(rows), images_tested=len(tested), errors=len(rows) - len(tested),
        marked=sum(bool(r["marked"]) for r in tested),
        expected_false_positives=float(sum(r["false_positive_bound"] or 0.0 for r in tested)), fdr=fdr,
        benjamini_hochberg_discoveries=discoveries,
        resumed_images=resumed,
    )  # fmt: skip


def scan_images(
    inputs: Sequence[Path | str],
    key: MediaKey,
    out: Path | str,
    *,
    fdr: float = 0.05,
    search: bool = True,
    progress: Callable[[int, int, float], None] | None = None,
) -> MediaScanSummary:
    """Test every image of ``inputs`` (files, folders walked in name order) and append JSON rows to ``out``.

    Images whose path ``out`` already holds are skipped.  ``progress(images, marked, seconds)``
    is called after each image.
    """
    if not 0.0 < fdr < 1.0:
        raise InvalidInputError("fdr must lie strictly between 0 and 1")
    target = Path(out)
    previous = _written(target)
    done = {r["id"] for r in previous}
    if target.exists():  # cut a torn last line before appending
        data = target.read_bytes()
        with target.open("r+b") as handle:
            handle.truncate(data.rfind(b"\n") + 1)
    started, count, marked = time.monotonic(), 0, 0
    with target.open("a", encoding="utf-8") as handle:
        for path in _image_files(inputs):
            if str(path) in done:
                continue
            done.add(str(path))
            row = scan_image(path, key, search=search)
            handle.write(json.dumps(row, ensure_ascii=False) + "\n")
            handle.flush()
            count, marked = count + 1, marked + bool(row["marked"])
            if progress is not None:
                progress(count, marked, time.monotonic() - started)
    return _summarize(_written(target), key, target, fdr, len(previous))
