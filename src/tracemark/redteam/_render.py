"""Human forms of a watermark red-team report: a terminal table and an HTML page with plots.

The HTML page embeds PNG plots drawn with matplotlib (the ``redteam`` extra): TPR against strength
per attack, with Wilson intervals, and ROC curves (TPR against FPR over the p-value threshold) per
attack at its strongest setting.  Without matplotlib the page still renders its tables and says that
the plots need the extra.
"""

from __future__ import annotations

import base64
import html
import io
from collections import defaultdict
from collections.abc import Sequence

import numpy as np

from tracemark.redteam._results import Cell, WatermarkReport


def _fmt_rate(cell: Cell, which: str) -> str:
    value = cell.tpr if which == "tpr" else cell.fpr
    if value.value is None:
        return "n/a"
    return f"{value.value:.3f} [{value.low:.3f},{value.high:.3f}] {value.successes}/{value.trials}"


def watermark_table(report: WatermarkReport) -> str:
    """A compact table: one line per cell, then the targets."""
    rows = [("detector", "attack", "strength", "TPR [95% CI] k/n", "FPR [95% CI] k/n", "ppl")]
    for cell in report.cells:
        ppl = "" if cell.median_perplexity is None else f"{cell.median_perplexity:.1f}"
        rows.append((cell.detector, cell.attack, f"{cell.strength:g}", _fmt_rate(cell, "tpr"), _fmt_rate(cell, "fpr"),
                     ppl))  # fmt: skip
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    lines = ["  ".join(value.ljust(width) for value, width in zip(row, widths, strict=True)).rstrip() for row in rows]
    lines.insert(1, "  ".join("-" * width for width in widths))
    lines.append("")
    for target in report.targets:
        status = "n/a" if target.met is None else "MET" if target.met else "MISSED"
        lines.append(f"{status:>8}  {target.id}: {target.claim}; measured {target.measured}")
    lines.append(f"{len(report.cells)} cells in {report.seconds:.0f} s; alpha {report.alpha:g}")
    return "\n".join(lines)


def _png(figure: object) -> str:
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=90, bbox_inches="tight")  # type: ignore[attr-defined]
    return base64.b64encode(buffer.getvalue()).decode("ascii")


def _curves(report: WatermarkReport) -> list[tuple[str, str]]:
    """(title, base64 PNG) of the plots; empty without matplotlib."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        from matplotlib import pyplot
    except ImportError:
        return []
    plots: list[tuple[str, str]] = []
    for detector in report.detectors:
        by_attack: defaultdict[str, list[Cell]] = defaultdict(list)
        for cell in report.cells:
            if cell.detector == detector and cell.kind in {"scrub", "image", "spoof", "averaging"}:
                by_attack[cell.attack].append(cell)
        multi = {name: cells for name, cells in by_attack.items() if len(cells) > 1}
        if multi:
            plots.append((f"{detector}: TPR against strength, one panel per attack", _strength_grid(pyplot, multi)))
        roc = _roc_plot(pyplot, detector, report.cells)
        if roc:
            plots.append((f"{detector}: ROC at each attack's strongest setting", roc))
    return plots


def _strength_grid(pyplot: object, by_attack: dict[str, list[Cell]]) -> str:
    """One small panel per attack (each with its own strength axis), TPR with Wilson intervals."""
    columns = 4
    rows = -(-len(by_attack) // columns)
    figure, axes = pyplot.subplots(rows, columns, figsize=(12, 2.3 * rows), squeeze=False)  # type: ignore[attr-defined]
    for index, (name, cells) in enumerate(sorted(by_attack.items())):
        axis = axes[index // columns][index % columns]
        cells = sorted(cells, key=lambda c: c.strength)
        xs = [c.strength for c in cells]
        ys = [c.tpr.value or 0.0 for c in cells]
        errors = [[y - c.tpr.low for y, c in zip(ys, cells, strict=True)],
                  [c.tpr.high - y for y, c in zip(ys, cells, strict=True)]]  # fmt: skip
        axis.errorbar(xs, ys, yerr=errors, marker="o", capsize=3)
        if cells[0].kind in {"spoof", "averaging"} and min(xs) > 0:
            axis.set_xscale("log")
        axis.set_ylim(-0.05, 1.05)
        axis.set_title(name, fontsize=9)
        axis.set_xlabel(cells[0].strength_meaning[:40], fontsize=7)
        axis.tick_params(labelsize=7)
    for index in range(len(by_attack), rows * columns):
        axes[index // columns][index % columns].axis("off")
    figure.tight_layout()
    encoded = _png(figure)
    pyplot.close(figure)  # type: ignore[attr-defined]
    return encoded


def _roc_plot(pyplot: object, detector: str, cells: Sequence[Cell]) -> str | None:
    strongest: dict[str, Cell] = {}
    for cell in cells:
        usable = cell.detector == detector and cell.marked_scores and cell.unmarked_scores and cell.kind == "scrub"
        if usable and (cell.attack not in strongest or cell.strength > strongest[cell.attack].strength):
            strongest[cell.attack] = cell
    if not strongest:
        return None
    figure, axes = pyplot.subplots(figsize=(6, 5))  # type: ignore[attr-defined]
    for name, cell in sorted(strongest.items()):
        marked = np.asarray(cell.marked_scores)
        unmarked = np.asarray(cell.unmarked_scores)
        thresholds = np.unique(np.concatenate([marked, unmarked, [1.0]]))
        tpr = [(marked <= t).mean() for t in thresholds]
        fpr = [(unmarked <= t).mean() for t in thresholds]
        axes.plot(fpr, tpr, label=f"{name} {cell.strength:g}", drawstyle="steps-post")
    axes.plot([0, 1], [0, 1], linestyle=":", color="grey")
    axes.set_xlabel("FPR (unmarked flagged)")
    axes.set_ylabel("TPR (marked detected)")
    axes.set_title(f"{detector}: ROC over the p-value threshold")
    axes.legend(fontsize=6)
    encoded = _png(figure)
    pyplot.close(figure)  # type: ignore[attr-defined]
    return encoded


def watermark_html(report: WatermarkReport) -> str:
    """A self-contained HTML report: targets, plots (embedded PNG) and every cell."""
    escape = html.escape
    parts = [
        "<!doctype html><html><head><meta charset='utf-8'><title>tracemark red team: watermark</title>",
        "<style>body{font-family:sans-serif;margin:2em}table{border-collapse:collapse;font-size:13px}"
        "td,th{border:1px solid #ccc;padding:3px 6px}.met{color:#070}.missed{color:#b00;font-weight:bold}</style>",
        "</head><body>",
        f"<h1>Watermark red team ({escape(report.medium)})</h1>",
        f"<p>detectors {escape(', '.join(report.detectors))}; model {escape(report.model)}; "
        f"{report.samples_marked} marked and {report.samples_unmarked} unmarked samples per cell; "
        f"alpha {report.alpha:g}; seed {report.seed}; {report.seconds:.0f} s</p>",
        "<h2>Targets</h2><table><tr><th>id</th><th>claim</th><th>measured</th><th>status</th></tr>",
    ]
    for target in report.targets:
        status = "not judged (reduced N or informational)" if target.met is None else "met" if target.met else "MISSED"
        css = "" if target.met is None else "met" if target.met else "missed"
        parts.append(f"<tr><td>{escape(target.id)}</td><td>{escape(target.claim)}</td>"
                     f"<td>{escape(target.measured)}</td><td class='{css}'>{status}</td></tr>")  # fmt: skip
    parts.append("</table>")
    plots = _curves(report)
    if plots:
        for title, encoded in plots:
            parts.append(f"<h2>{escape(title)}</h2><img alt='{escape(title)}' src='data:image/png;base64,{encoded}'>")
    else:
        parts.append("<p><em>Plots need matplotlib: pip install 'tracemark[redteam]'.</em></p>")
    parts.append("<h2>Cells</h2><table><tr><th>detector</th><th>attack</th><th>version</th><th>strength</th>"
                 "<th>meaning</th><th>TPR [95% CI] k/n</th><th>FPR [95% CI] k/n</th><th>note</th></tr>")  # fmt: skip
    for cell in report.cells:
        parts.append(
            f"<tr><td>{escape(cell.detector)}</td><td>{escape(cell.attack)}</td><td>{escape(cell.attack_version)}</td>"
            f"<td>{cell.strength:g}</td><td>{escape(cell.strength_meaning)}</td><td>{_fmt_rate(cell, 'tpr')}</td>"
            f"<td>{_fmt_rate(cell, 'fpr')}</td><td>{escape(cell.note)}</td></tr>"
        )
    parts.append("</table>")
    parts.extend(f"<p>{escape(note)}</p>" for note in report.notes)
    parts.append("</body></html>")
    return "\n".join(parts)
