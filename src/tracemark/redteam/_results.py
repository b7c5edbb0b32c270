"""One result schema for every watermark attack (``tracemark.redteam.watermark/v1``).

Every cell is a pair of rates measured on the same detector at the same threshold: the share of
attacked *marked* samples still detected (TPR; for spoofing, the share of forged samples the detector
accepts) and the share of attacked *unmarked* samples flagged (FPR), each with its Wilson 95 %
interval and counts.  A target is a claim about cells, judged from them and stated met or missed.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TypedDict

from tracemark.redteam._intervals import Rate

WATERMARK_FORMAT = "tracemark.redteam.watermark/v1"


class RateJSON(TypedDict):
    """A rate: ``value`` is null for 0/0 (never a silent 0)."""

    value: float | None
    successes: int
    trials: int
    low: float
    high: float


class CellJSON(TypedDict):
    """One (detector, attack, strength) cell."""

    kind: str
    detector: str
    attack: str
    attack_version: str
    level: str
    strength: float
    strength_meaning: str
    alpha: float
    tpr: RateJSON
    fpr: RateJSON
    median_tokens: float | None
    median_perplexity: float | None
    marked_log10_p: list[float]
    unmarked_log10_p: list[float]
    note: str


class TargetJSON(TypedDict):
    """A goal of the issue judged from the cells."""

    id: str
    claim: str
    measured: str
    met: bool | None


class WatermarkReportJSON(TypedDict):
    """The whole report (``format`` ``tracemark.redteam.watermark/v1``)."""

    format: str
    medium: str
    detectors: list[str]
    model: str
    samples_marked: int
    samples_unmarked: int
    tokens: int
    alpha: float
    seed: int
    seconds: float
    cells: list[CellJSON]
    targets: list[TargetJSON]
    notes: list[str]


def rate_json(value: Rate) -> RateJSON:
    return {
        "value": None if value.value is None else round(value.value, 6),
        "successes": value.successes,
        "trials": value.trials,
        "low": round(value.low, 6),
        "high": round(value.high, 6),
    }


@dataclass(frozen=True)
class Cell:
    """The measured pair (TPR, FPR) of one detector under one attack at one strength."""

    kind: str  # "scrub", "spoof", "image", "averaging"
    detector: str
    attack: str
    attack_version: str
    level: str
    strength: float
    strength_meaning: str
    alpha: float
    tpr: Rate
    fpr: Rate
    median_tokens: float | None = None
    median_perplexity: float | None = None
    #: Evidence per sample (log10 p-value, or for images the detector's confidence), for ROC curves.
    marked_scores: tuple[float, ...] = field(default=(), repr=False)
    unmarked_scores: tuple[float, ...] = field(default=(), repr=False)
    note: str = ""

    def to_json(self) -> CellJSON:
        return {
            "kind": self.kind,
            "detector": self.detector,
            "attack": self.attack,
            "attack_version": self.attack_version,
            "level": self.level,
            "strength": self.strength,
            "strength_meaning": self.strength_meaning,
            "alpha": self.alpha,
            "tpr": rate_json(self.tpr),
            "fpr": rate_json(self.fpr),
            "median_tokens": self.median_tokens,
            "median_perplexity": None if self.median_perplexity is None else round(self.median_perplexity, 3),
            "marked_log10_p": [round(v, 3) for v in self.marked_scores],
            "unmarked_log10_p": [round(v, 3) for v in self.unmarked_scores],
            "note": self.note,
        }


@dataclass(frozen=True)
class Target:
    """An issue goal and whether the cells meet it (``None``: not measured in this run)."""

    id: str
    claim: str
    measured: str
    met: bool | None

    def to_json(self) -> TargetJSON:
        return {"id": self.id, "claim": self.claim, "measured": self.measured, "met": self.met}


@dataclass(frozen=True)
class WatermarkReport:
    """A watermark red-team run: its settings, its cells and the targets judged from them."""

    medium: str  # "text" or "image"
    detectors: tuple[str, ...]
    model: str
    samples_marked: int
    samples_unmarked: int
    tokens: int
    alpha: float
    seed: int
    seconds: float
    cells: tuple[Cell, ...]
    targets: tuple[Target, ...]
    notes: tuple[str, ...] = ()

    def to_json(self) -> WatermarkReportJSON:
        return {
            "format": WATERMARK_FORMAT,
            "medium": self.medium,
            "detectors": list(self.detectors),
            "model": self.model,
            "samples_marked": self.samples_marked,
            "samples_unmarked": self.samples_unmarked,
            "tokens": self.tokens,
            "alpha": self.alpha,
            "seed": self.seed,
            "seconds": round(self.seconds, 2),
            "cells": [cell.to_json() for cell in self.cells],
            "targets": [target.to_json() for target in self.targets],
            "notes": list(self.notes),
        }

    def cells_of(self, kind: str) -> Sequence[Cell]:
        return [cell for cell in self.cells if cell.kind == kind]
