"""Human forms of a theft verdict: Markdown and a self-contained HTML page (the JSON form is ``to_json``)."""

from __future__ import annotations

import html
import json
import math
from collections.abc import Mapping

from tracemark._json import FrozenJSON, thaw
from tracemark.theft._verdict import TheftVerdict

_DECISION_TEXT = {
    "evidence": "EVIDENCE: the null hypothesis is rejected",
    "no-evidence": "NO EVIDENCE: the null hypothesis is not rejected (a miss is not proof of innocence)",
    "inconclusive": "INCONCLUSIVE: not decided (see the reasons: the test could not run as pre-registered, "
    "or its p-value is suggestive and needs more budget)",
}


#: What each test cannot show, whatever its decision (the last clause of the report's summary sentence).
_DOES_NOT_SHOW = {
    "radioactivity": (
        "It does not show that the suspect never used our outputs: paraphrased or unmarked outputs, or too "
        "small a share of them for this budget, leave no trace it can see, and its p-value is not a probability "
        "of guilt."
    ),
    "identify": (
        "It does not show where a different model came from (a distilled or fine-tuned copy differs too), "
        "only whether the endpoint's outputs can be told apart from each reference's at this budget."
    ),
    "weight-provenance": (
        "It does not show distillation: a model trained on our outputs from other weights shares none of them."
    ),
}


def _count(verdict: TheftVerdict, name: str) -> str:
    value = verdict.counts.get(name)
    return str(value) if isinstance(value, int | float) and not isinstance(value, bool) else "?"


def summary_sentence(verdict: TheftVerdict) -> str:
    """One sentence on what was tested and on how much, then one on what the test does not show."""
    suspect = verdict.evidence.get("suspect")
    who = f"the suspect {suspect}" if isinstance(suspect, str) and suspect else "the suspect"
    if verdict.test == "radioactivity/closed":
        amount = (
            f"{_count(verdict, 'response_tokens')} response tokens to {_count(verdict, 'queries')} prompts "
            f"({_count(verdict, 'distinct_tuples')} distinct scored tuples)"
        )
        looks = verdict.statistic.get("looks")
        if isinstance(looks, tuple):
            amount += f", looked at {len(looks)} time(s) under a pre-registered spending plan"
        tested = f"whether {who} was trained on text watermarked with our key, from {amount}"
    elif verdict.test == "radioactivity/open":
        amount = f"{_count(verdict, 'read_tokens')} read tokens ({_count(verdict, 'scored_contexts')} scored contexts)"
        tested = f"whether {who} was trained on text watermarked with our key, from its probabilities over {amount}"
    else:
        counted = ", ".join(f"{k} {_number(v)}" for k, v in list(verdict.counts.items())[:3])
        tested = f"{verdict.question[0].lower() + verdict.question[1:].rstrip('?')}, on {counted or 'no data'}"
    family = verdict.test.split("/")[0]
    return (
        f"Tested {tested}; decision {verdict.decision} at alpha {verdict.alpha:g}. "
        f"{_DOES_NOT_SHOW.get(family, 'A miss is not proof of innocence.')}"
    )


def _is_container(value: FrozenJSON) -> bool:
    return isinstance(value, tuple | list | Mapping)


def _number(value: FrozenJSON) -> str:
    if _is_container(value):
        return str(thaw(value))  # as the list or dict it was built from
    if isinstance(value, float):
        if not math.isfinite(value):
            return "-inf" if value < 0 else "inf"
        return f"{value:.4g}"
    if value is None:
        return "-"
    return str(value)


def _summary_rows(verdict: TheftVerdict) -> list[tuple[str, str]]:
    rows = [
        ("question", verdict.question),
        ("null hypothesis", verdict.h0),
        ("decision", _DECISION_TEXT[verdict.decision]),
        ("alpha", _number(verdict.alpha)),
        ("p-value", _number(verdict.p_value)),
        ("log10 p-value", _number(verdict.log10_p_value)),
        ("p-value method", verdict.p_value_method),
        ("correction", ", ".join(f"{k}: {_number(v)}" for k, v in verdict.correction.items())),
    ]
    rows += [(f"statistic {k}", _number(v)) for k, v in verdict.statistic.items()]
    rows += [(f"effect {k}", _number(v)) for k, v in verdict.effect.items()]
    rows += [(f"count {k}", _number(v)) for k, v in verdict.counts.items()]
    if verdict.null_check is not None:
        rows.append(("null check", json.dumps(thaw(verdict.null_check), sort_keys=True)))
    rows += [("reason", reason) for reason in verdict.reasons]
    return rows


def _detail_columns(verdict: TheftVerdict) -> list[str]:
    columns: list[str] = []
    for row in verdict.details:
        for name, value in row.items():
            if name not in columns and not _is_container(value):
                columns.append(name)
    return columns


def _headline(verdict: TheftVerdict) -> str:
    """The answer to the question asked where the test states one (identity), else the decision in words."""
    stated = verdict.statistic.get("headline")
    return stated if isinstance(stated, str) and stated else _DECISION_TEXT[verdict.decision]


def render_markdown(verdict: TheftVerdict) -> str:
    """A Markdown report: summary table, per-key/reference/invariant details, evidence pointers."""
    lines = [
        f"# tracemark theft report: {verdict.test}",
        "",
        f"**{_headline(verdict)}**",
        "",
        summary_sentence(verdict),
        "",
        "| field | value |",
        "|---|---|",
    ]
    lines += [f"| {name} | {value.replace('|', '/')} |" for name, value in _summary_rows(verdict)]
    columns = _detail_columns(verdict)
    if columns:
        lines += ["", "## Details", "", "| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
        for row in verdict.details:
            lines.append("| " + " | ".join(_number(row.get(c)) for c in columns) + " |")
    lines += ["", "## Evidence pack", "", "```json", json.dumps(verdict.to_json()["evidence"], indent=2), "```", ""]
    return "\n".join(lines)


def render_html(verdict: TheftVerdict) -> str:
    """A self-contained HTML page with the same content as :func:`render_markdown`."""
    colour = {"evidence": "#b00020", "no-evidence": "#1b5e20", "inconclusive": "#8d6e00"}[verdict.decision]
    parts = [
        "<!doctype html><html><head><meta charset='utf-8'>",
        f"<title>tracemark theft report: {html.escape(verdict.test)}</title>",
        "<style>body{font-family:sans-serif;max-width:60em;margin:2em auto}"
        "table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:.3em .6em;text-align:left}"
        "pre{background:#f5f5f5;padding:1em;overflow:auto}</style></head><body>",
        f"<h1>tracemark theft report: {html.escape(verdict.test)}</h1>",
        f"<p style='font-size:1.3em;color:{colour}'><strong>{html.escape(_headline(verdict))}</strong></p>",
        f"<p>{html.escape(summary_sentence(verdict))}</p><table>",
    ]
    parts += [
        f"<tr><th>{html.escape(name)}</th><td>{html.escape(value)}</td></tr>" for name, value in _summary_rows(verdict)
    ]
    parts.append("</table>")
    columns = _detail_columns(verdict)
    if columns:
        parts.append("<h2>Details</h2><table><tr>" + "".join(f"<th>{html.escape(c)}</th>" for c in columns) + "</tr>")
        for row in verdict.details:
            cells = "".join(f"<td>{html.escape(_number(row.get(c)))}</td>" for c in columns)
            parts.append(f"<tr>{cells}</tr>")
        parts.append("</table>")
    evidence = json.dumps(verdict.to_json()["evidence"], indent=2)
    parts += ["<h2>Evidence pack</h2><pre>", html.escape(evidence), "</pre></body></html>"]
    return "\n".join(parts)
