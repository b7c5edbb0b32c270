"""The compliance report: one row per obligation with its status and evidence, plus the plots' data.

The JSON form is ``tracemark.comply.report/v1`` (documented in ``docs/ai-act.md``): its keys only
ever grow within v1; a change of meaning gets a new format string.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import TypedDict

from tracemark.comply._obligations import Obligation

REPORT_FORMAT = "tracemark.comply.report/v1"


def report_schema() -> str:
    """The JSON Schema (draft 2020-12) of :data:`REPORT_FORMAT`, shipped as ``comply/report.schema.json``."""
    from importlib.resources import files

    return files("tracemark.comply").joinpath("report.schema.json").read_text(encoding="utf-8")


class Status(StrEnum):
    """What the check found for one obligation.  ``not-assessed`` is never counted as a pass."""

    PASS = "pass"
    FAIL = "fail"
    NOT_APPLICABLE = "not-applicable"
    NOT_ASSESSED = "not-assessed"


@dataclass(frozen=True)
class Evidence:
    """A file the row rests on: its path relative to the report's folder and its SHA-256."""

    path: str
    sha256: str
    description: str


@dataclass(frozen=True)
class Fact:
    """One measured or read value shown in a row (``p-value``, ``tokens scored``, ``manifest state``)."""

    name: str
    value: str


@dataclass(frozen=True)
class Row:
    """One obligation's result.  ``missing_layers`` names every layer whose absence made the row fail."""

    obligation: Obligation
    status: Status
    summary: str
    missing_layers: tuple[str, ...] = ()
    facts: tuple[Fact, ...] = ()
    evidence: tuple[Evidence, ...] = ()


@dataclass(frozen=True)
class Point:
    """One point of a plot: x, y, and a label for the reader."""

    x: float
    y: float
    label: str = ""


@dataclass(frozen=True)
class Series:
    """A named line or set of bars."""

    name: str
    points: tuple[Point, ...]


@dataclass(frozen=True)
class Plot:
    """A plot's data: axes, series, an optional horizontal reference line (``alpha``, a floor) and its source."""

    id: str
    title: str
    x_label: str
    y_label: str
    series: tuple[Series, ...]
    kind: str = "line"
    reference: float | None = None
    reference_label: str = ""
    source: str = ""


class EvidenceJSON(TypedDict):
    path: str
    sha256: str
    description: str


class FactJSON(TypedDict):
    name: str
    value: str


class RowJSON(TypedDict):
    """One row of ``obligations`` in the report."""

    id: str
    title: str
    article: str
    code_measure: str
    asks: str
    status: str
    summary: str
    missing_layers: list[str]
    facts: list[FactJSON]
    evidence: list[EvidenceJSON]


class PointJSON(TypedDict):
    x: float
    y: float
    label: str


class SeriesJSON(TypedDict):
    name: str
    points: list[PointJSON]


class PlotJSON(TypedDict):
    id: str
    title: str
    kind: str
    x_label: str
    y_label: str
    reference: float | None
    reference_label: str
    source: str
    series: list[SeriesJSON]


class SummaryJSON(TypedDict):
    """Counts per status and the overall verdict: ``fails`` if any row fails, else ``incomplete`` if any
    row is not assessed, else ``meets``."""

    verdict: str
    counts: dict[str, int]
    red_lines: list[str]


@dataclass(frozen=True)
class DeploymentInfo:
    """What the report says about the deployment it checked."""

    name: str
    provider: str
    file: str
    file_sha256: str
    models: tuple[str, ...]
    modalities: tuple[str, ...]

    def to_json(self) -> DeploymentJSON:
        return {
            "name": self.name,
            "provider": self.provider,
            "file": self.file,
            "file_sha256": self.file_sha256,
            "models": list(self.models),
            "modalities": list(self.modalities),
        }


class DeploymentJSON(TypedDict):
    name: str
    provider: str
    file: str
    file_sha256: str
    models: list[str]
    modalities: list[str]


class ReportJSON(TypedDict):
    """``tracemark.comply.report/v1``."""

    format: str
    generated_at: str
    tracemark_version: str
    deployment: DeploymentJSON
    summary: SummaryJSON
    obligations: list[RowJSON]
    plots: list[PlotJSON]
    limits: list[str]


@dataclass(frozen=True)
class ComplianceReport:
    """The whole report, before it is signed and logged."""

    generated_at: str
    tracemark_version: str
    deployment: DeploymentInfo
    rows: tuple[Row, ...]
    plots: tuple[Plot, ...]
    limits: tuple[str, ...]

    def count(self, status: Status) -> int:
        """How many rows have ``status``."""
        return sum(1 for row in self.rows if row.status is status)

    @property
    def verdict(self) -> str:
        """``fails``, ``incomplete`` or ``meets`` (see :class:`SummaryJSON`)."""
        if self.count(Status.FAIL):
            return "fails"
        return "incomplete" if self.count(Status.NOT_ASSESSED) else "meets"

    def red_lines(self) -> tuple[str, ...]:
        """One line per failing row, naming the missing layers."""
        lines = []
        for row in self.rows:
            if row.status is Status.FAIL:
                missing = f" (missing: {', '.join(row.missing_layers)})" if row.missing_layers else ""
                lines.append(f"{row.obligation.id}: {row.summary}{missing}")
        return tuple(lines)

    def row(self, obligation_id: str) -> Row:
        """The row of one obligation."""
        for row in self.rows:
            if row.obligation.id == obligation_id:
                return row
        raise KeyError(obligation_id)

    def to_json(self) -> ReportJSON:
        """The report as ``tracemark.comply.report/v1``."""
        return {
            "format": REPORT_FORMAT,
            "generated_at": self.generated_at,
            "tracemark_version": self.tracemark_version,
            "deployment": self.deployment.to_json(),
            "summary": {
                "verdict": self.verdict,
                "counts": {status.value: self.count(status) for status in Status},
                "red_lines": list(self.red_lines()),
            },
            "obligations": [_row_json(row) for row in self.rows],
            "plots": [_plot_json(plot) for plot in self.plots],
            "limits": list(self.limits),
        }


def _row_json(row: Row) -> RowJSON:
    return {
        "id": row.obligation.id,
        "title": row.obligation.title,
        "article": row.obligation.article,
        "code_measure": row.obligation.code_measure,
        "asks": row.obligation.asks,
        "status": row.status.value,
        "summary": row.summary,
        "missing_layers": list(row.missing_layers),
        "facts": [{"name": f.name, "value": f.value} for f in row.facts],
        "evidence": [{"path": e.path, "sha256": e.sha256, "description": e.description} for e in row.evidence],
    }


def _plot_json(plot: Plot) -> PlotJSON:
    return {
        "id": plot.id,
        "title": plot.title,
        "kind": plot.kind,
        "x_label": plot.x_label,
        "y_label": plot.y_label,
        "reference": plot.reference,
        "reference_label": plot.reference_label,
        "source": plot.source,
        "series": [
            {"name": s.name, "points": [{"x": p.x, "y": p.y, "label": p.label} for p in s.points]} for s in plot.series
        ],
    }
