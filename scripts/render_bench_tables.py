#!/usr/bin/env python3
"""Render the performance tables in README.md and docs/*.md from the benchmark results.

A rendered table sits between two marker comments, and everything between them is rewritten::

    <!-- bench:service -->
    ...table rendered from bench/results/service.json...
    <!-- /bench -->

The name after ``bench:`` picks a renderer in ``RENDERERS``; each reads one or more result files in
``bench/results/`` (the published measurements; ``--results DIR`` renders from another folder, such
as ``bench/results/quick``, to look at a bounded run).  ``--check`` rewrites nothing and exits 1 when
any block differs from what the results say (``tests/unit/test_bench_tables.py`` runs it).

    .venv/bin/python scripts/render_bench_tables.py [--check] [--results DIR]

Figures that stay in prose (sentences that quote a result, rather than tables) are listed in
``bench/README.md``; they are not checked here.
"""

from __future__ import annotations

import argparse
import difflib
import json
import math
import re
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "bench" / "results"
BLOCK = re.compile(r"(<!-- bench:(?P<name>[a-z0-9_.-]+) -->\n)(?P<body>.*?)(<!-- /bench -->)", re.DOTALL)
SUPERSCRIPT = str.maketrans("0123456789", "⁰¹²³⁴⁵⁶⁷⁸⁹")

Results = Callable[[str], dict[str, Any]]


def documents() -> list[Path]:
    """The files whose tables are rendered: README.md and docs/*.md."""
    return [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]


def loader(directory: Path) -> Results:
    """``load(name)`` reads ``<directory>/<name>.json``."""

    def load(name: str) -> dict[str, Any]:
        path = directory / f"{name}.json"
        if not path.is_file():
            raise SystemExit(f"{path} is missing: run the benchmark that writes it")
        document: dict[str, Any] = json.loads(path.read_text())
        return document

    return load


# --- number formats ---------------------------------------------------------------------------------


def sig(value: float, digits: int = 2) -> str:
    """``value`` to ``digits`` significant digits, trailing zeros kept (0.40, 0.048, 4.7, 149)."""
    if value == 0:
        return "0"
    decimals = max(0, digits - 1 - math.floor(math.log10(abs(value))))
    return f"{value:.{decimals}f}"


def power_of_ten(count: int) -> str:
    """1000000 -> 10⁶, 200000 -> 2×10⁵, anything else with thousands separators."""
    exponent = len(str(count)) - 1
    lead, rest = divmod(count, 10**exponent)
    if rest or exponent < 3:
        return f"{count:,}"
    return f"{'' if lead == 1 else f'{lead}×'}10{str(exponent).translate(SUPERSCRIPT)}"


def when(result: dict[str, Any]) -> str:
    """The time a result was recorded, as ``2026-11-27 13:11 UTC``."""
    stamp = str(result.get("recorded_at", ""))
    return stamp[:16].replace("T", " ") + " UTC" if stamp else "an unrecorded time"


def recorded(result: dict[str, Any], name: str) -> str:
    """The caption's start: when the result was recorded, and its file."""
    return f"Recorded {when(result)} (`bench/results/{name}.json`)"


def table(header: list[str], rows: list[list[str]]) -> str:
    def line(cells: list[str]) -> str:
        return "|" + "|".join(f" {cell} " if cell else " " for cell in cells) + "|"

    return "\n".join([line(header), "|" + "---|" * len(header), *map(line, rows)]) + "\n"


# --- renderers ----------------------------------------------------------------------------------------

RENDERERS: dict[str, Callable[[Results], str]] = {}


def renderer(name: str) -> Callable[[Callable[[Results], str]], Callable[[Results], str]]:
    def register(function: Callable[[Results], str]) -> Callable[[Results], str]:
        RENDERERS[name] = function
        return function

    return register


@renderer("service")
def service(load: Results) -> str:
    """docs/service.md: every scenario, worker count and connection count of ``service.json``."""
    result = load("service")
    labels = {"detect": "detect", "detect_explain": "detect + explain", "inclusion_proof": "inclusion proof"}
    order = list(labels)
    rows = sorted(result["results"], key=lambda r: (r["workers"], order.index(r["scenario"]), r["connections"]))
    before, after = result.get("load_average_before", [None])[0], result.get("load_average_after", [None])[0]
    caption = (
        f"{recorded(result, 'service')}: load generator {result.get('load_generator')}, "
        f"{result.get('duration_s'):g} s per measurement, load average {before} before and {after} after.\n\n"
    )
    return caption + table(
        ["scenario", "workers", "connections", "req/s", "p50 ms", "p99 ms", "service CPU per request"],
        [
            [labels[r["scenario"]], str(r["workers"]), str(r["connections"]), f"{r['requests_per_s']:.0f}",
             f"{r['p50_ms']:.1f}", f"{r['p99_ms']:.1f}", f"{r['server_cpu_ms_per_request']:.2f} ms"]
            for r in rows
        ],
    )  # fmt: skip


@renderer("tlog")
def tlog(load: Results) -> str:
    """docs/tlog.md: appends, proofs at two tree sizes, receipts and the bulk build of ``tlog.json``."""
    result = load("tlog")
    append, goals = result["append"], result["goals"]
    sizes = result["append_batch_sizes"]
    batching = result["append_batching_appender"]
    main, big, receipts, bulk = (
        result["proofs_main"],
        result["proofs_big"],
        result["receipts_main"],
        result["bulk_build"],
    )
    cpu_us = 1e6 * append["cpu_seconds"] / append["entries"]
    load_average = result.get("load_average", {})
    caption = (
        f"{recorded(result, 'tlog')}, load average "
        f"{load_average.get('before', ['?'])[0]} → {load_average.get('after', ['?'])[0]}:\n\n"
    )

    def proofs(name: str, proof: dict[str, Any]) -> list[list[str]]:
        at = power_of_ten(proof["tree_size"])
        return [
            [f"inclusion proof at {at}: produce / verify, p50",
             f"{sig(proof['produce']['p50_ms'])} ms / {sig(proof['verify']['p50_ms'])} ms", ""],
            [f"inclusion proof at {at}: p99 wall (CPU time)",
             f"{sig(proof['produce']['p99_ms'])} ms ({sig(proof['produce_cpu_time']['p99_ms'])} ms) / "
             f"{sig(proof['verify']['p99_ms'])} ms ({sig(proof['verify_cpu_time']['p99_ms'])} ms)",
             f"< {goals['proof_p99_ms']:g} ms"],
        ]  # fmt: skip

    ratio = main["verify_speed_ratio_vs_sigstore"]
    speed = f"{ratio:.1f}× faster" if ratio >= 1 else f"{1 / ratio:.1f}× slower"
    rows = [
        [f"durable appends, {power_of_ten(append['entries'])} records, batches of {append['batch']:,}, "
         "`synchronous=FULL`",
         f"**{append['appends_per_s']:,}/s** wall; {cpu_us:.0f} µs of CPU per record "
         f"({append['appends_per_cpu_s']:,}/s per CPU-second)", f"≥ {goals['appends_per_s']:,}/s"],
        [f"same, {power_of_ten(sizes[0]['entries'])} records, batches of "
         + " / ".join(f"{s['batch']:,}" for s in sizes), " / ".join(f"{s['appends_per_s']:,}/s" for s in sizes), ""],
        [f"`BatchingAppender`, {batching['threads']} producer threads, {power_of_ten(batching['entries'])} records",
         f"{batching['appends_per_s']:,}/s (producers and the writer share one GIL)", ""],
        *proofs("main", main),
        *proofs("big", big),
        [f"receipt at {power_of_ten(receipts['tree_size'])}: issue / verify offline (with the Ed25519 check), p50",
         f"{sig(receipts['issue']['p50_ms'])} ms / {sig(receipts['verify_offline']['p50_ms'])} ms", ""],
        ["verification vs sigstore-python's verifier (same proofs, median)", speed, ""],
        [f"building the {power_of_ten(bulk['entries'])} tree (bulk path)",
         f"{bulk['seconds']:.0f} s, {bulk['database_bytes'] / 1e6:.0f} MB", ""],
    ]  # fmt: skip
    return caption + table(["measure", "result", "goal"], rows)


@renderer("supply_scan")
def supply_scan(load: Results) -> str:
    """docs/supply.md: detection on the committed corpus by tracemark and each oracle (``supply_scan.json``)."""
    result = load("supply_scan")
    corpus, detection = result["corpus"], result["detection"]
    pins = {name: pin[0].replace("==", " ") for name, pin in result.get("oracles", {}).items()}

    def label(tool: str) -> str:
        name, _, flags = tool.partition(" ")
        return " ".join(part for part in (pins.get(name, name), f"`{flags}`" if flags else "") if part)

    known = ["tracemark", "picklescan", "modelscan", "fickling"]
    order = sorted(detection, key=lambda t: (known.index(t.split()[0]) if t.split()[0] in known else len(known), t))
    rows = []
    for tool in order:
        row = detection[tool]
        detected, flagged = str(row["malicious_detected"]), str(row["benign_flagged"])
        if tool == "tracemark":
            detected, flagged = f"**{detected}**", f"**{flagged}**"
        rows.append([label(tool), detected, flagged, str(row["other_exit_status"])])
    header = [
        "tool",
        f"malicious detected (of {corpus['malicious']})",
        f"benign flagged (of {corpus['benign']})",
        "other exit status",
    ]
    return f"{recorded(result, 'supply_scan')}:\n\n" + table(header, rows)


@renderer("media")
def media(load: Results) -> str:
    """docs/media.md: quality, speed and exact recovery per attack, ours beside the anchors (``media.json``)."""
    result = load("media")
    methods = result["methods"]
    names = [n for n in methods if not n.startswith("tracemark")] + [n for n in methods if n.startswith("tracemark")]

    def each(cell: Callable[[dict[str, Any]], str]) -> list[str]:
        return [cell(methods[name]) for name in names]

    def count(method: dict[str, Any], group: str, attack: str) -> str:
        return f"{round(method[group]['per_attack'][attack] * method['images'])}/{method['images']}"

    rows = [
        ["images", *each(lambda m: str(m["images"]))],
        ["PSNR min / median (dB)", *each(lambda m: f"{m['psnr_min']:.1f} / {m['psnr_median']:.1f}")],
        ["SSIM min / median", *each(lambda m: f"{m['ssim_min']:.4f} / {m['ssim_median']:.4f}")],
        ["embed, ms per MP (CPU, median)", *each(lambda m: f"{m['embed_ms_per_mp_median']:.0f}")],
        ["decode, ms per MP (CPU, median)", *each(lambda m: f"{m['decode_ms_per_mp_median']:.0f}")],
        ["exact recovery, robust attacks", *each(lambda m: f"{100 * m['robust']['rate']:.1f} %")],
        ["exact recovery, crops and rotations", *each(lambda m: f"{100 * m['geometric']['rate']:.1f} %")],
    ]
    for group in ("robust", "geometric"):
        for attack in methods[names[-1]][group]["per_attack"]:
            rows.append([attack, *(count(methods[name], group, attack) for name in names)])
    return f"{recorded(result, 'media')}:\n\n" + table(["", *names], rows)


@renderer("electron_corpus")
def electron_corpus(load: Results) -> str:
    """docs/electron.md: recall, precision and speed on the labelled corpus (``electron_corpus.json``)."""
    result = load("electron_corpus")
    ours, theirs = result["tracemark"], result["electronegativity"]

    def counts(side: dict[str, Any]) -> str:
        return f"{side['true_positives']} / {side['false_positives']} / {side['false_negatives']}"

    speed, our_speed = theirs["seconds_per_app"], ours["seconds_per_app"]
    rows = [
        ["tracemark", f"**{ours['recall']:.3f}**", f"**{ours['precision']:.3f}**", counts(ours),
         f"median {1000 * our_speed['median']:.1f} ms, max {1000 * our_speed['max']:.1f} ms"],
        [f"Electronegativity {theirs['version']}", f"{theirs['recall']:.3f}",
         f"{theirs['precision']:.3f} ({theirs['precision_without_unmapped_checks']:.3f} without the checks we have "
         "no rule for)", counts(theirs), f"median {speed['median_wall']:.1f} s wall, {speed['median_cpu']:.2f} s CPU"],
    ]  # fmt: skip
    caption = f"{recorded(result, 'electron_corpus')}:\n\n"
    return caption + table(["tool", "recall", "precision", "TP / FP / FN", "time per app"], rows)


@renderer("bench_run")
def bench_run(load: Results) -> str:
    """README.md: each benchmark's wall time in the last ``make bench`` (``quick/bench_run.json``)."""
    result = load("quick/bench_run")
    rows = []
    zoo = result.get("zoo")
    if zoo:
        built = "built" if zoo.get("built") else "already there"
        rows.append([f"model zoo (`{zoo.get('zoo_scale')}` scale, {built})", f"{zoo.get('seconds', 0) / 60:.1f}", ""])
    for step in result["steps"]:
        arguments = " ".join(a for a in step["arguments"] if a != "ZOO").replace("--zoo", "").strip()
        status = "" if step["status"] == "ok" else step["status"]
        rows.append(
            [f"`{step['script']} {arguments}`".replace(" `", "`"), f"{step.get('seconds', 0) / 60:.1f}", status]
        )
    rows.append([f"**total** ({result['mode']} mode, `OMP_NUM_THREADS={result.get('omp_num_threads')}`)",
                 f"**{result['total_seconds'] / 60:.0f}**", ""])  # fmt: skip
    caption = f"{recorded(result, 'quick/bench_run')} on {machine(result)}:\n\n"
    return caption + table(["benchmark (arguments)", "minutes", "failed"], rows)


def machine(result: dict[str, Any]) -> str:
    cpus = result.get("machine", {}).get("cpu_count")
    return f"a {cpus}-core machine shared with other work" if cpus else "an unrecorded machine"


# --- the documents ----------------------------------------------------------------------------------


def blocks(text: str) -> Iterator[re.Match[str]]:
    return BLOCK.finditer(text)


def render(text: str, load: Results, label: str) -> str:
    """``text`` with every block rewritten from the results."""

    def replace(match: re.Match[str]) -> str:
        name = match["name"]
        if name not in RENDERERS:
            raise SystemExit(f"{label}: no renderer named {name!r} (known: {', '.join(RENDERERS)})")
        return match.group(1) + RENDERERS[name](load) + match.group(4)

    opened, closed = text.count("<!-- bench:"), text.count("<!-- /bench -->")
    if opened != closed or opened != len(list(blocks(text))):
        raise SystemExit(f"{label}: unbalanced <!-- bench:NAME --> / <!-- /bench --> markers")
    return BLOCK.sub(replace, text)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--check", action="store_true", help="change nothing; exit 1 when a table is out of date")
    parser.add_argument("--results", type=Path, default=RESULTS, help="the results folder (default: bench/results)")
    args = parser.parse_args(argv)
    load = loader(args.results)
    stale = 0
    for path in documents():
        text = path.read_text()
        relative = str(path.relative_to(REPO))
        rendered = render(text, load, relative)
        if rendered == text:
            continue
        stale += 1
        if args.check:
            diff = difflib.unified_diff(
                text.splitlines(True), rendered.splitlines(True), relative, relative + " (rendered)"
            )
            sys.stdout.writelines(diff)
        else:
            path.write_text(rendered)
            print(f"rendered {relative}")
    if args.check and stale:
        print(f"{stale} file(s) out of date with bench/results: run scripts/render_bench_tables.py", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
