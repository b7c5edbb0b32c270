"""Electron audit against Electronegativity on real apps whose sources ship in the npm registry.

The apps (the Messenger client ``caprine`` and GitHub's official ``electron-api-demos``, at fixed
versions) are fetched with ``npm pack`` into ``bench/.node-apps/`` (gitignored; never in a test) and
unpacked; nothing is installed or run.  Both tools audit each package folder, Electronegativity with
its online check off as in ``bench_electron.py``.  Every finding either tool reports was checked by
hand once, against the app's code, and the verdict is recorded in
``bench/results/electron_real_checked.json``: ``true`` (the flaw is there), ``false`` (it is not),
or ``duplicate`` (a flaw already reported at another place, e.g. the same code in compiled
JavaScript).  Each true finding names the issue it is, so the tools' recall is counted per issue over
the union of issues either tool found.  A finding without a verdict is listed as unchecked (the run
prints it; record a verdict before publishing the results).

    .venv/bin/python bench/bench_electron_real.py [--skip-anchor]
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tarfile
import time
from pathlib import Path
from typing import Any

from _common import REPO, RESULTS, write_result

sys.path.insert(0, str(REPO))
from bench_electron import ANCHOR_VERSION, install_anchor, run_anchor
from tracemark.electron import audit

APPS = (("caprine", "2.55.4"), ("electron-api-demos", "2.0.1"))
APPS_DIR = REPO / "bench" / ".node-apps"
VERDICTS = RESULTS / "electron_real_checked.json"
#: Rules that are statements about the run, not about the app.
NOT_FINDINGS = frozenset({"electron-version-unchecked"})


def fetch(name: str, version: str) -> Path:
    """``npm pack`` the app's published tarball and unpack it (once); its package folder."""
    folder = APPS_DIR / f"{name}-{version}"
    package = folder / "package"
    if package.is_dir():
        return package
    folder.mkdir(parents=True, exist_ok=True)
    done = subprocess.run(
        ["npm", "pack", "--silent", f"{name}@{version}", "--pack-destination", str(folder)],
        capture_output=True,
        text=True,
    )
    tarballs = sorted(folder.glob("*.tgz"))
    if done.returncode != 0 or not tarballs:
        last = (done.stderr.strip().splitlines() or ["no tarball"])[-1]
        raise SystemExit(f"npm could not fetch {name}@{version} (the npm registry is needed once): {last}")
    with tarfile.open(tarballs[0]) as archive:
        archive.extractall(folder, filter="data")
    return package


def ours(package: Path) -> tuple[list[str], float]:
    audit(package)  # warm the parsers so the timing excludes first-import costs
    start = time.perf_counter()
    report = audit(package)
    elapsed = time.perf_counter() - start
    found = [
        f"{f.rule_id} {f.location.path if f.location else ''}:{f.location.line if f.location else 0}"
        for f in report.findings
        if f.rule_id not in NOT_FINDINGS
    ]
    return found, elapsed


def anchor(package: Path) -> tuple[list[str], float]:
    findings, wall, _ = run_anchor(package)
    return [f"{check} {path}:{line}" for check, path, line in findings], wall


def judge(found: list[str], verdicts: dict[str, dict[str, str]]) -> dict[str, Any]:
    """Counts of true, false, duplicate and unchecked findings, precision, and the issues found."""
    counts = {"true": 0, "false": 0, "duplicate": 0}
    unchecked: list[str] = []
    issues: set[str] = set()
    for finding in found:
        verdict = verdicts.get(finding)
        if verdict is None:
            unchecked.append(finding)
            continue
        counts[verdict["verdict"]] += 1
        if verdict["verdict"] == "true":
            issues.add(verdict["issue"])
    judged = sum(counts.values())
    return {
        "findings": len(found),
        **counts,
        "unchecked": unchecked,
        "precision": round(counts["true"] / judged, 4) if judged else 1.0,
        "issues": sorted(issues),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--skip-anchor", action="store_true", help="audit with tracemark only")
    args = parser.parse_args()
    if shutil.which("npm") is None:
        raise SystemExit("npm is needed to fetch the apps")
    checked = json.loads(VERDICTS.read_text()) if VERDICTS.is_file() else {}
    if not args.skip_anchor:
        install_anchor()
    payload: dict[str, Any] = {"anchor": f"electronegativity {ANCHOR_VERSION}", "apps": {}}
    for name, version in APPS:
        key = f"{name}@{version}"
        package = fetch(name, version)
        record = checked.get(key, {})
        runs = {"tracemark": ours(package)}
        if not args.skip_anchor:
            runs["electronegativity"] = anchor(package)
        result: dict[str, Any] = {}
        for tool, (found, seconds) in runs.items():
            result[tool] = {**judge(found, record.get(tool, {})), "seconds": round(seconds, 3)}
        every_issue = sorted(set().union(*(set(r["issues"]) for r in result.values())))
        for tool_result in result.values():
            tool_result["recall"] = round(len(tool_result["issues"]) / len(every_issue), 4) if every_issue else 1.0
            tool_result["issues_missed"] = sorted(set(every_issue) - set(tool_result["issues"]))
        result["issues"] = len(every_issue)
        payload["apps"][key] = result
        for tool, tool_result in result.items():
            if not isinstance(tool_result, dict):
                continue
            print(
                f"{key:28} {tool:17} findings {tool_result['findings']:3}  true {tool_result['true']:3}  "
                f"false {tool_result['false']:3}  duplicate {tool_result['duplicate']:3}  "
                f"precision {tool_result['precision']:.3f}  recall {tool_result['recall']:.3f} "
                f"(of {len(every_issue)} issues)  {tool_result['seconds']:.2f} s"
            )
            for finding in tool_result["unchecked"]:
                print(f"  UNCHECKED {tool}: {finding}")
    path = write_result("electron_real", payload)
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
