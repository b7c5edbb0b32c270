"""Electron audit against Electronegativity on the labelled corpus: recall, precision, disagreements, speed.

Both tools audit every app of ``tests/fixtures/electron`` (58 small apps whose expected findings
are labelled in the code).  Electronegativity 1.10.3 is installed by this script with npm into
``bench/.node-electronegativity/`` (gitignored) and run per app with its online check off
(``-x AvailableSecurityFixesGlobalCheck``), as the research note prescribes.  Its check ids are
mapped to our rules with ``tests.support.electron.ELECTRONEGATIVITY``; a reported finding is a true
positive when it matches an unused label of the same rule in the same file within
``--line-tolerance`` lines (app-wide labels match anywhere).  Checks with no counterpart in the
labels (AUXCLICK, PRELOAD, ELECTRON_VERSION_JSON, ...) are false positives; precision without
them is reported too.

    .venv/bin/python bench/bench_electron.py [--skip-anchor] [--jobs 4] [--line-tolerance 3]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter, defaultdict
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from _common import REPO, write_result

sys.path.insert(0, str(REPO))
from tests.support.electron import ELECTRONEGATIVITY
from tests.unit.electron._corpus import (
    UNLABELLED_RULES,
    Label,
    Score,
    audit_target,
    corpus_apps,
    read_labels,
    score,
)

from tracemark.electron import audit

ANCHOR_VERSION = "1.10.3"
ANCHOR_DIR = REPO / "bench" / ".node-electronegativity"
SARIF_DIR = REPO / "bench" / ".node-sarif"
ANCHOR_JS = ANCHOR_DIR / "node_modules" / "@doyensec" / "electronegativity" / "dist" / "index.js"
GOAL_RECALL = 0.95
GOAL_PRECISION = 0.90
GOAL_SECONDS_PER_APP = 1.0

#: Electronegativity check id -> our rules that cover the same flaw.
ANCHOR_TO_RULES: dict[str, set[str]] = defaultdict(set)
for _rule, _checks in ELECTRONEGATIVITY.items():
    for _check in _checks:
        ANCHOR_TO_RULES[_check].add(_rule)


def install_anchor() -> None:
    """npm-install Electronegativity, and the SARIF schema the tests validate against, into gitignored folders."""
    for folder, package, marker in (
        (ANCHOR_DIR, f"@doyensec/electronegativity@{ANCHOR_VERSION}", ANCHOR_JS),
        (SARIF_DIR, "@microsoft/jest-sarif@1.0.0-beta.0", SARIF_DIR / "node_modules" / "@microsoft" / "jest-sarif"),
    ):
        if marker.exists():
            continue
        folder.mkdir(parents=True, exist_ok=True)
        done = subprocess.run(
            ["npm", "install", "--no-audit", "--no-fund", "--prefix", str(folder), package],
            capture_output=True,
            text=True,
        )
        if done.returncode != 0:
            last = (done.stderr.strip().splitlines() or ["no output"])[-1]
            raise SystemExit(
                f"npm could not install {package} into {folder.relative_to(REPO)} (the npm registry is needed once; "
                f"or pass --skip-anchor to score tracemark alone): {last}"
            )


def run_ours(app: Path) -> tuple[list[Label], float]:
    start = time.perf_counter()
    report = audit(audit_target(app))
    elapsed = time.perf_counter() - start
    reported = [
        Label(f.rule_id, f.location.path if f.location else "", f.location.line if f.location else 0)
        for f in report.findings
        if f.rule_id not in UNLABELLED_RULES
    ]
    return reported, elapsed


def run_anchor(app: Path) -> tuple[list[tuple[str, str, int]], float, float]:
    """Electronegativity's findings ``(check id, path relative to the app, line)``, wall and CPU seconds."""
    target = audit_target(app)
    with tempfile.TemporaryDirectory() as scratch:
        output = Path(scratch) / "out.sarif"
        command = [
            "node",
            str(ANCHOR_JS),
            "-i",
            str(target),
            "-r",
            "-x",
            "AvailableSecurityFixesGlobalCheck",
            "-o",
            str(output),
        ]
        start = time.perf_counter()
        process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=scratch)
        _, status, usage = os.wait4(process.pid, 0)
        wall = time.perf_counter() - start
        process.returncode = os.waitstatus_to_exitcode(status)
        cpu = usage.ru_utime + usage.ru_stime
        if not output.is_file():
            return [], wall, cpu
        log = json.loads(output.read_text())
    findings = []
    base = target if target.is_dir() else target.parent
    for result in log["runs"][0].get("results", []):
        physical = result["locations"][0]["physicalLocation"]
        uri = physical.get("artifactLocation", {}).get("uri", "")
        path = Path(uri.removeprefix("file://"))
        if target.suffix == ".asar":
            # Electronegativity extracts the archive to a temporary folder and reports paths into it.
            relative = (
                f"{target.name}/{Path(*path.parts[path.parts.index('tmp') + 2 :]).as_posix()}"
                if ("tmp" in path.parts)
                else uri
            )
        else:
            relative = path.relative_to(base).as_posix() if path.is_relative_to(base) else uri
        findings.append((result["ruleId"], relative, int(physical.get("region", {}).get("startLine", 0))))
    return findings, wall, cpu


def score_anchor(labels: list[Label], findings: list[tuple[str, str, int]], tolerance: int) -> tuple[Score, list[str]]:
    """Match each anchor finding to a label of any rule its check maps to (first unused match wins)."""
    remaining = list(labels)
    true_positives: list[Label] = []
    false_positives: list[Label] = []
    unmapped: list[str] = []
    for check, path, line in sorted(findings):
        rules = ANCHOR_TO_RULES.get(check, set())
        if not rules:
            unmapped.append(check)
        match = None
        for label in remaining:
            if label.rule in rules and (
                not label.path or (label.path == path and (label.line == 0 or abs(label.line - line) <= tolerance))
            ):
                match = label
                break
        if match is None:
            false_positives.append(Label(check, path, line))
        else:
            remaining.remove(match)
            true_positives.append(match)
    return Score(true_positives, false_positives, remaining), unmapped


def ratios(tp: int, fp: int, fn: int) -> dict[str, float]:
    return {
        "recall": round(tp / (tp + fn), 4) if tp + fn else 1.0,
        "precision": round(tp / (tp + fp), 4) if tp + fp else 1.0,
    }


def score_tracemark(
    apps: list[Path], labels: dict[str, list[Label]], line_tolerance: int
) -> tuple[dict[str, Any], dict[str, dict[str, Any]], dict[str, list[Label]]]:
    """tracemark's totals, its result per app, and the labels it found in each app."""
    ours_totals = Counter[str]()
    ours_times: list[float] = []
    per_app: dict[str, dict[str, Any]] = {}
    ours_matched: dict[str, list[Label]] = {}
    for app in apps:
        audit(audit_target(app))  # warm the parsers once per app so timings exclude first-import costs
        reported, elapsed = run_ours(app)
        result = score(labels[app.name], reported, line_tolerance)
        ours_matched[app.name] = result.true_positives
        ours_times.append(elapsed)
        ours_totals.update(
            tp=len(result.true_positives), fp=len(result.false_positives), fn=len(result.false_negatives)
        )
        per_app[app.name] = {
            "labels": len(labels[app.name]),
            "ours": {
                "tp": len(result.true_positives),
                "fp": [str(x) for x in result.false_positives],
                "fn": [str(x) for x in result.false_negatives],
                "seconds": round(elapsed, 4),
            },
        }
    ours: dict[str, Any] = {
        **ratios(ours_totals["tp"], ours_totals["fp"], ours_totals["fn"]),
        "true_positives": ours_totals["tp"],
        "false_positives": ours_totals["fp"],
        "false_negatives": ours_totals["fn"],
        "seconds_per_app": {"median": round(statistics.median(ours_times), 4), "max": round(max(ours_times), 4)},
    }
    return ours, per_app, ours_matched


def score_electronegativity(
    apps: list[Path],
    labels: dict[str, list[Label]],
    line_tolerance: int,
    jobs: int,
    per_app: dict[str, dict[str, Any]],
    ours: dict[str, Any],
    ours_matched: dict[str, list[Label]],
) -> dict[str, Any]:
    """Electronegativity's totals on the same labels, and how it compares (its result per app goes into ``per_app``)."""
    if shutil.which("node") is None or shutil.which("npm") is None:
        raise SystemExit("node and npm are needed for the Electronegativity side (or pass --skip-anchor)")
    install_anchor()
    with ThreadPoolExecutor(max_workers=jobs) as pool:
        anchor_runs = dict(zip([a.name for a in apps], pool.map(run_anchor, apps), strict=True))
    totals = Counter[str]()
    fp_by_check: Counter[str] = Counter()
    fn_by_rule: Counter[str] = Counter()
    unmapped_total = 0
    missed_by_us: list[str] = []
    walls, cpus = [], []
    for app in apps:
        findings, wall, cpu = anchor_runs[app.name]
        walls.append(wall)
        cpus.append(cpu)
        result, unmapped = score_anchor(labels[app.name], findings, line_tolerance)
        unmapped_total += len(unmapped)
        totals.update(tp=len(result.true_positives), fp=len(result.false_positives), fn=len(result.false_negatives))
        fp_by_check.update(label.rule for label in result.false_positives)
        fn_by_rule.update(label.rule for label in result.false_negatives)
        ours_set = list(ours_matched[app.name])
        for label in result.true_positives:
            if label in ours_set:
                ours_set.remove(label)
            else:
                missed_by_us.append(f"{app.name}: {label}")
        per_app[app.name]["electronegativity"] = {
            "tp": len(result.true_positives),
            "fp": [str(x) for x in result.false_positives],
            "fn": [str(x) for x in result.false_negatives],
            "wall_seconds": round(wall, 3),
        }
    anchor: dict[str, Any] = {
        "version": ANCHOR_VERSION,
        **ratios(totals["tp"], totals["fp"], totals["fn"]),
        "precision_without_unmapped_checks": ratios(totals["tp"], totals["fp"] - unmapped_total, totals["fn"])[
            "precision"
        ],
        "true_positives": totals["tp"],
        "false_positives": totals["fp"],
        "false_negatives": totals["fn"],
        "unmapped_findings": unmapped_total,
        "false_positives_by_check": dict(sorted(fp_by_check.items())),
        "false_negatives_by_rule": dict(sorted(fn_by_rule.items())),
        "seconds_per_app": {
            "median_wall": round(statistics.median(walls), 3),
            "median_cpu": round(statistics.median(cpus), 3),
        },
    }
    print(
        f"electronegativity recall {anchor['recall']:.3f}  precision {anchor['precision']:.3f}  "
        f"(tp {anchor['true_positives']}, fp {anchor['false_positives']}, fn {anchor['false_negatives']}; "
        f"precision without unmapped checks {anchor['precision_without_unmapped_checks']:.3f})  "
        f"median {anchor['seconds_per_app']['median_wall']:.2f} s/app wall, "
        f"{anchor['seconds_per_app']['median_cpu']:.2f} s CPU"
    )
    print(f"anchor true findings we miss: {len(missed_by_us)}")
    print("anchor false negatives by rule:", dict(sorted(fn_by_rule.items())))
    print("anchor false positives by check:", dict(sorted(fp_by_check.items())))
    return {
        "electronegativity": anchor,
        "anchor_true_findings_we_miss": missed_by_us,
        "speed_ratio_median_wall": round(
            anchor["seconds_per_app"]["median_wall"] / max(ours["seconds_per_app"]["median"], 1e-9), 1
        ),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--skip-anchor", action="store_true", help="score only tracemark")
    parser.add_argument("--jobs", type=int, default=4, help="Electronegativity runs in parallel (mostly idle waits)")
    parser.add_argument("--line-tolerance", type=int, default=3)
    args = parser.parse_args()
    apps = corpus_apps()
    labels = {app.name: read_labels(app) for app in apps}
    total_labels = sum(len(v) for v in labels.values())

    ours, per_app, ours_matched = score_tracemark(apps, labels, args.line_tolerance)
    payload: dict[str, Any] = {"corpus_apps": len(apps), "labels": total_labels, "tracemark": ours}
    print(f"corpus: {len(apps)} apps, {total_labels} labelled findings")
    print(
        f"tracemark         recall {ours['recall']:.3f}  precision {ours['precision']:.3f}  "
        f"(tp {ours['true_positives']}, fp {ours['false_positives']}, fn {ours['false_negatives']})  "
        f"median {ours['seconds_per_app']['median'] * 1e3:.1f} ms/app, "
        f"max {ours['seconds_per_app']['max'] * 1e3:.1f} ms"
    )

    if not args.skip_anchor:
        payload.update(
            score_electronegativity(apps, labels, args.line_tolerance, args.jobs, per_app, ours, ours_matched)
        )
    payload["goals"] = {
        "recall": {"target": GOAL_RECALL, "met": ours["recall"] >= GOAL_RECALL},
        "precision": {"target": GOAL_PRECISION, "met": ours["precision"] >= GOAL_PRECISION},
        "seconds_per_app": {
            "target": GOAL_SECONDS_PER_APP,
            "met": ours["seconds_per_app"]["max"] <= GOAL_SECONDS_PER_APP,
        },
    }
    payload["per_app"] = per_app
    path = write_result("electron_corpus", payload)
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
