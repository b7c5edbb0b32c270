"""Robustness figures from this version's benchmark results, with the attacks named.

``bench/bench_text_power.py`` records the text detector's true-positive rate at a false-positive
rate of 1e-6 per scheme, attack and length (``text_power.json``); ``bench/bench_media.py`` records
the image watermark's exact-decode rate per attack (``media.json``).  Nothing here re-measures:
the report cites the recorded figures and the file they come from (with its SHA-256).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from tracemark.comply._report import Point

#: Rate at or above which a mark counts as surviving an attack (clean detection at the floor included).
ROBUST_RATE = 0.95
#: The method name of tracemark's own watermark in media.json.
MEDIA_METHOD_PREFIX = "tracemark "


@dataclass(frozen=True)
class ResultFile:
    """A benchmark result cited by the report."""

    path: Path
    sha256: str
    recorded_at: str
    benchmark: str


@dataclass(frozen=True)
class TextRobustness:
    """True-positive rates at one length, one per attack (``clean`` included)."""

    source: ResultFile
    scheme: str
    length: int
    false_positive_rate: float
    rates: tuple[Point, ...]

    @property
    def clean_rate(self) -> float | None:
        """The rate without an attack."""
        return next((p.y for p in self.rates if p.label == "clean"), None)


@dataclass(frozen=True)
class ImageRobustness:
    """Exact-decode rates of the image watermark, one per attack, and the overall rates."""

    source: ResultFile
    method: str
    rates: tuple[Point, ...]
    overall: float

    @property
    def clean_rate(self) -> float | None:
        """The exact-decode rate without an attack (the row's pass rule, as for text)."""
        return next((p.y for p in self.rates if p.label == "none"), None)


def _load(path: Path) -> tuple[ResultFile, Mapping[str, object]] | None:
    try:
        data = path.read_bytes()
        document = json.loads(data)
    except (OSError, ValueError):
        return None
    if not isinstance(document, Mapping):
        return None
    source = ResultFile(
        path,
        hashlib.sha256(data).hexdigest(),
        str(document.get("recorded_at", "")),
        str(document.get("benchmark", path.stem)),
    )
    return source, document


def text_robustness(paths: tuple[Path, ...], scheme: str, floor: int) -> TextRobustness | None:
    """Rates for ``scheme`` at the longest measured length not above ``floor``; None when not measured."""
    for path in paths:
        loaded = _load(path)
        if loaded is None or loaded[0].benchmark != "text_power":
            continue
        source, document = loaded
        schemes = document.get("schemes")
        entry = schemes.get(scheme) if isinstance(schemes, Mapping) else None
        table = entry.get("tpr_at_fpr_1e-6") if isinstance(entry, Mapping) else None
        if not isinstance(table, Mapping):
            continue
        lengths = sorted({int(n) for rates in table.values() if isinstance(rates, Mapping) for n in rates})
        usable = [n for n in lengths if n <= floor]
        if not usable:
            return None
        length = usable[-1]
        rates = []
        for attack, by_length in sorted(table.items()):
            value = by_length.get(str(length)) if isinstance(by_length, Mapping) else None
            if isinstance(value, int | float):
                rates.append(Point(float(length), float(value), str(attack)))
        return TextRobustness(source, scheme, length, 1e-6, tuple(rates))
    return None


def image_robustness(paths: tuple[Path, ...]) -> ImageRobustness | None:
    """Per-attack exact-decode rates of tracemark's image watermark; None when not measured."""
    for path in paths:
        loaded = _load(path)
        if loaded is None or loaded[0].benchmark != "media":
            continue
        source, document = loaded
        methods = document.get("methods")
        if not isinstance(methods, Mapping):
            continue
        for method, entry in methods.items():
            if not str(method).startswith(MEDIA_METHOD_PREFIX) or not isinstance(entry, Mapping):
                continue
            rates: list[Point] = []
            overall: list[float] = []
            for group in ("robust", "geometric"):
                section = entry.get(group)
                if not isinstance(section, Mapping):
                    continue
                rate = section.get("rate")
                if isinstance(rate, int | float):
                    overall.append(float(rate))
                per_attack = section.get("per_attack")
                if isinstance(per_attack, Mapping):
                    rates += [
                        Point(0.0, float(v), str(k))
                        for k, v in sorted(per_attack.items())
                        if isinstance(v, int | float)
                    ]
            if rates:
                return ImageRobustness(source, str(method), tuple(rates), min(overall) if overall else 0.0)
    return None
