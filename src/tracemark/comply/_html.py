"""The report as one self-contained HTML page for a compliance officer: summary first, then each
obligation with its evidence, then the plots (inline SVG, no script, nothing fetched)."""

from __future__ import annotations

import math
from html import escape

from tracemark.comply._report import ComplianceReport, Plot, Row, Status

_STYLE = """
body{font:15px/1.5 system-ui,-apple-system,"Segoe UI",sans-serif;margin:0;color:#1b1f24;background:#f6f7f9}
main{max-width:1040px;margin:0 auto;padding:24px 16px 48px}
h1{font-size:1.6em;margin:0 0 4px}h2{font-size:1.25em;margin:32px 0 8px}h3{font-size:1.05em;margin:0 0 4px}
.meta{color:#555;margin:0 0 16px}
.verdict{padding:14px 18px;border-radius:8px;font-weight:600;margin:12px 0}
.verdict.meets{background:#e3f5e8;border:1px solid #2e7d4f}.verdict.fails{background:#fde8e8;border:1px solid #b42318}
.verdict.incomplete{background:#fff4dc;border:1px solid #a76b00}
table{border-collapse:collapse;width:100%;background:#fff}th,td{text-align:left;padding:6px 8px;
border-bottom:1px solid #e3e5e8;vertical-align:top;overflow-wrap:anywhere}
.status{display:inline-block;padding:1px 8px;border-radius:10px;font-size:.85em;font-weight:600;white-space:nowrap}
.pass{background:#d8f0e0;color:#1d5e36}.fail{background:#fbd5d5;color:#8a1c12}
.not-assessed{background:#ffedc2;color:#6b4600}.not-applicable{background:#e8e9ec;color:#444}
section.row{background:#fff;border:1px solid #e3e5e8;border-radius:8px;padding:12px 16px;margin:12px 0}
section.row.st-fail{border-left:6px solid #b42318}
section.row.st-not-assessed{border-left:6px solid #a76b00}
table.facts th{width:34%;font-weight:600}.missing{color:#8a1c12;font-weight:600}
.cite{color:#555;font-size:.9em}code{font-size:.88em;overflow-wrap:anywhere}
ul.redlines li{color:#8a1c12}figure{background:#fff;border:1px solid #e3e5e8;border-radius:8px;margin:12px 0;
padding:12px}figcaption{font-weight:600;margin-bottom:6px}svg{width:100%;height:auto}
details summary{cursor:pointer;color:#1f4e99}
"""


def _status(status: Status) -> str:
    return f'<span class="status {status.value}">{escape(status.value)}</span>'


def _summary(report: ComplianceReport) -> str:
    deployment = report.deployment
    counts = ", ".join(f"{report.count(s)} {s.value}" for s in Status)
    parts = [
        f"<h1>EU AI Act transparency report: {escape(deployment.name)}</h1>",
        f'<p class="meta">Provider {escape(deployment.provider or "-")} · models '
        f"{escape(', '.join(deployment.models))} · modalities {escape(', '.join(deployment.modalities))} · "
        f"generated {escape(report.generated_at)} by tracemark {escape(report.tracemark_version)}</p>",
        f'<div class="verdict {report.verdict}" id="verdict">Overall: {escape(report.verdict)} '
        f"({escape(counts)})</div>",
    ]
    red = report.red_lines()
    if red:
        parts.append('<h2>Red lines</h2><ul class="redlines" id="red-lines">')
        parts += [f"<li>{escape(line)}</li>" for line in red]
        parts.append("</ul>")
    parts.append(
        '<h2>Summary</h2><table id="summary"><thead><tr><th>Obligation</th><th>Article</th><th>Status</th>'
        "<th>Finding</th></tr></thead><tbody>"
    )
    for row in report.rows:
        parts.append(
            f'<tr><td><a href="#{escape(row.obligation.id)}">{escape(row.obligation.title)}</a></td>'
            f"<td>{escape(row.obligation.article)}</td><td>{_status(row.status)}</td><td>{escape(row.summary)}</td></tr>"
        )
    parts.append("</tbody></table>")
    return "\n".join(parts)


def _row(row: Row) -> str:
    obligation = row.obligation
    parts = [
        f'<section class="row st-{row.status.value}" id="{escape(obligation.id)}">',
        f"<h3>{escape(obligation.title)} {_status(row.status)}</h3>",
        f'<p class="cite">{escape(obligation.article)} · {escape(obligation.code_measure)} · '
        f"<code>{escape(obligation.id)}</code></p>",
        f"<p>{escape(obligation.asks)}</p>",
        f"<p><strong>Finding:</strong> {escape(row.summary)}</p>",
    ]
    if row.missing_layers:
        parts.append(f'<p class="missing">Missing: {escape("; ".join(row.missing_layers))}</p>')
    if row.facts:
        parts.append('<table class="facts"><tbody>')
        parts += [f"<tr><th>{escape(f.name)}</th><td>{escape(f.value)}</td></tr>" for f in row.facts]
        parts.append("</tbody></table>")
    if row.evidence:
        parts.append(f"<details><summary>Evidence ({len(row.evidence)} files)</summary><ul>")
        parts += [
            f"<li><code>{escape(e.path)}</code>: {escape(e.description)} <code>sha256 {escape(e.sha256)}</code></li>"
            for e in row.evidence
        ]
        parts.append("</ul></details>")
    parts.append("</section>")
    return "\n".join(parts)


_COLOURS = ("#1f4e99", "#b42318", "#2e7d4f", "#a76b00", "#6941c6", "#087443")
_W, _H, _L, _R, _T, _B = 720, 300, 56, 16, 16, 64


def _scale(value: float, low: float, high: float, start: float, end: float) -> float:
    if high <= low:
        return (start + end) / 2
    return start + (value - low) / (high - low) * (end - start)


def _line_plot(plot: Plot) -> str:
    points = [p for s in plot.series for p in s.points]
    xs = [p.x for p in points]
    ys = [p.y for p in points if math.isfinite(p.y)] + ([plot.reference] if plot.reference is not None else [])
    x0, x1 = min(xs, default=0.0), max(xs, default=1.0)
    y1 = max(ys, default=1.0) * 1.05 or 1.0
    svg = [_axes(plot, f"{x0:g}", f"{x1:g}", f"{y1:.3g}")]
    if plot.reference is not None:
        y = _scale(plot.reference, 0, y1, _H - _B, _T)
        svg.append(
            f'<line x1="{_L}" x2="{_W - _R}" y1="{y:.1f}" y2="{y:.1f}" stroke="#888" stroke-dasharray="5 4"/>'
            f'<text x="{_W - _R}" y="{y - 4:.1f}" text-anchor="end" font-size="11">'
            f"{escape(plot.reference_label)}</text>"
        )
    for number, series in enumerate(plot.series):
        colour = _COLOURS[number % len(_COLOURS)]
        coords = [(_scale(p.x, x0, x1, _L, _W - _R), _scale(min(p.y, y1), 0, y1, _H - _B, _T)) for p in series.points]
        if len(coords) > 1:
            path = " ".join(f"{x:.1f},{y:.1f}" for x, y in coords)
            svg.append(f'<polyline fill="none" stroke="{colour}" stroke-width="2" points="{path}"/>')
        svg += [f'<circle cx="{x:.1f}" cy="{y:.1f}" r="3" fill="{colour}"/>' for x, y in coords]
        svg.append(
            f'<text x="{_L + 8 + 110 * number}" y="{_H - 8}" font-size="11" fill="{colour}">'
            f"{escape(series.name)}</text>"
        )
    return _figure(plot, "".join(svg))


def _bar_plot(plot: Plot) -> str:
    bars = [p for s in plot.series for p in s.points]
    width = (_W - _L - _R) / max(len(bars), 1)
    svg = [_axes(plot, "", "", "1")]
    if plot.reference is not None:
        y = _scale(plot.reference, 0, 1, _H - _B, _T)
        svg.append(f'<line x1="{_L}" x2="{_W - _R}" y1="{y:.1f}" y2="{y:.1f}" stroke="#888" stroke-dasharray="5 4"/>')
    for number, bar in enumerate(bars):
        x = _L + number * width
        top = _scale(max(0.0, min(bar.y, 1.0)), 0, 1, _H - _B, _T)
        colour = "#2e7d4f" if plot.reference is None or bar.y >= plot.reference else "#b42318"
        svg.append(
            f'<rect x="{x + 2:.1f}" y="{top:.1f}" width="{max(width - 4, 1):.1f}" '
            f'height="{_H - _B - top:.1f}" fill="{colour}"><title>{escape(bar.label)}: {bar.y:.3g}</title></rect>'
            f'<text transform="translate({x + width / 2:.1f},{_H - _B + 8}) rotate(50)" font-size="10">'
            f"{escape(bar.label)}</text>"
        )
    return _figure(plot, "".join(svg))


def _axes(plot: Plot, x_low: str, x_high: str, y_high: str) -> str:
    return (
        f'<line x1="{_L}" y1="{_H - _B}" x2="{_W - _R}" y2="{_H - _B}" stroke="#333"/>'
        f'<line x1="{_L}" y1="{_T}" x2="{_L}" y2="{_H - _B}" stroke="#333"/>'
        f'<text x="{_L - 4}" y="{_T + 4}" text-anchor="end" font-size="11">{escape(y_high)}</text>'
        f'<text x="{_L - 4}" y="{_H - _B}" text-anchor="end" font-size="11">0</text>'
        f'<text x="{_L}" y="{_H - _B + 14}" font-size="11">{escape(x_low)}</text>'
        f'<text x="{_W - _R}" y="{_H - _B + 14}" text-anchor="end" font-size="11">{escape(x_high)}</text>'
        f'<text x="14" y="{(_H - _B + _T) / 2:.0f}" font-size="11" transform="rotate(-90 14 {(_H - _B + _T) / 2:.0f})"'
        f' text-anchor="middle">{escape(plot.y_label)}</text>'
        f'<text x="{(_W + _L) / 2:.0f}" y="{_H - 24}" font-size="11" text-anchor="middle">{escape(plot.x_label)}</text>'
    )


def _figure(plot: Plot, body: str) -> str:
    source = f'<p class="cite">Source: {escape(plot.source)}</p>' if plot.source else ""
    return (
        f'<figure id="plot-{escape(plot.id)}"><figcaption>{escape(plot.title)}</figcaption>'
        f'<svg viewBox="0 0 {_W} {_H}" role="img" aria-label="{escape(plot.title)}">{body}</svg>{source}</figure>'
    )


def render_html(report: ComplianceReport) -> str:
    """The whole page."""
    plots = [(_bar_plot(p) if p.kind == "bar" else _line_plot(p)) for p in report.plots]
    limits = "".join(f"<li>{escape(line)}</li>" for line in report.limits)
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>EU AI Act report: {escape(report.deployment.name)}</title><style>{_STYLE}</style></head>"
        f"<body><main>{_summary(report)}<h2>Obligations</h2>{''.join(_row(row) for row in report.rows)}"
        f"<h2>Plots</h2>{''.join(plots) or '<p>No plot: no text or image output was assessed.</p>'}"
        f'<h2>What this report cannot show</h2><ul id="limits">{limits}</ul>'
        f'<p class="cite">Format tracemark.comply.report/v1; the signed JSON (report.json) is the reference, '
        "this page is its reading copy.</p></main></body></html>\n"
    )
