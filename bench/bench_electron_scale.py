"""The Electron audit's cost on very large and hostile source files, beside Electronegativity.

Issue 20 point 8: a bundled main process is often 5-20 MB, and hostile code must have a bounded
cost per file.  Each case is one generated ``main.js`` audited in a fresh process, so its peak
memory (``ru_maxrss`` of the child) and CPU time are its own: bundles of 4 MB (parsed whole) and
20 MB (over the 8 MiB parse limit: scanned piece by piece and reported ``audit-incomplete``), and
the hostile shapes of ``tests/unit/electron/test_coverage.py`` grown to about 4 MB.
Electronegativity audits the same folders with a time limit (its online check off).

    .venv/bin/python bench/bench_electron_scale.py [--skip-anchor] [--timeout 300]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from _common import REPO, write_result

sys.path.insert(0, str(REPO))
from tests.unit.electron.test_coverage import HOSTILE

from bench_electron import ANCHOR_JS, ANCHOR_VERSION, install_anchor

_HEADER = "const { BrowserWindow, ipcMain } = require('electron');\n"
_UNIT = (
    "var m{i} = function(e, t, n) {{ 'use strict'; var r = n({i}), o = {{ a: r.b, c: [1, 2, 3], d: 'k{i}' }};\n"
    "  function f{i}(x) {{ if (x && x.y) {{ return o.a + x.y; }} return e.exports.call(this, x, 'k{i}'); }}\n"
    "  t.on('evt{i}', function(a, b) {{ return f{i}(b); }}); e.exports = {{ f: f{i}, o: o }}; }};\n"
)
_INSECURE = "new BrowserWindow({webPreferences: {nodeIntegration: !0, contextIsolation: !1}});\n"
#: (case, hostile shape or "bundle", size in MB, run the anchor too)
CASES = (
    ("bundle-4MB", "bundle", 4.0, True),
    ("bundle-20MB", "bundle", 20.0, True),
    ("assignments-4MB", "assignments", 3.8, True),
    ("many-handlers-4MB", "many-handlers", 3.8, True),
    ("spread-chain-4MB", "spread-chain", 3.8, False),
    ("deep-nesting-200k", "deep-nesting", 0.0, False),
    ("fan-out", "fan-out", 0.0, False),
)
_CHILD = """
import json, resource, sys, time
sys.path.insert(0, {src!r})
from tracemark.electron import audit
start = time.process_time()
wall = time.perf_counter()
report = audit({folder!r})
print(json.dumps({{"cpu_seconds": time.process_time() - start, "wall_seconds": time.perf_counter() - wall,
    "max_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    "rules": sorted({{f.rule_id for f in report.findings}})}}))
"""


def generate(shape: str, megabytes: float) -> str:
    if shape == "bundle":
        parts, size, index = [_HEADER], 0, 0
        while size < megabytes * 1e6:
            unit = _UNIT.format(i=index)
            parts.append(unit)
            size += len(unit)
            index += 1
        return "".join(parts) + _INSECURE
    if shape == "deep-nesting":
        return _HEADER + HOSTILE[shape](200_000)
    if shape == "fan-out":
        return _HEADER + HOSTILE[shape](60)
    count = 16
    while True:
        source = _HEADER + HOSTILE[shape](count)
        if len(source) >= megabytes * 1e6:
            return source
        count = int(count * max(1.2, min(10.0, megabytes * 1e6 / len(source))))


def run_ours(folder: Path) -> dict[str, Any]:
    code = _CHILD.format(src=str(REPO / "src"), folder=str(folder))
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return {key: round(value, 2) if isinstance(value, float) else value for key, value in result.items()}


def run_anchor(folder: Path, timeout: float) -> dict[str, Any]:
    """Electronegativity's wall time and the checks it reported (or that it ran out of time)."""
    with tempfile.TemporaryDirectory() as scratch:
        output = Path(scratch) / "out.sarif"
        command = ["node", str(ANCHOR_JS), "-i", str(folder), "-r", "-x", "AvailableSecurityFixesGlobalCheck"]
        start = time.perf_counter()
        try:
            subprocess.run([*command, "-o", str(output)], capture_output=True, cwd=scratch, timeout=timeout)
        except subprocess.TimeoutExpired:
            return {"timed_out": True, "wall_seconds": round(timeout, 1)}
        wall = time.perf_counter() - start
        checks: list[str] = []
        if output.is_file():
            log = json.loads(output.read_text())
            checks = sorted({result["ruleId"] for result in log["runs"][0].get("results", [])})
        return {"timed_out": False, "wall_seconds": round(wall, 2), "checks": checks}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--skip-anchor", action="store_true")
    parser.add_argument("--timeout", type=float, default=300.0, help="seconds Electronegativity gets per case")
    args = parser.parse_args()
    if not args.skip_anchor:
        install_anchor()
    results: dict[str, Any] = {}
    with tempfile.TemporaryDirectory() as scratch:
        for name, shape, megabytes, with_anchor in CASES:
            folder = Path(scratch) / name
            folder.mkdir()
            source = generate(shape, megabytes)
            (folder / "main.js").write_text(source)
            entry: dict[str, Any] = {"bytes": len(source), "tracemark": run_ours(folder)}
            if with_anchor and not args.skip_anchor:
                entry["electronegativity"] = run_anchor(folder, args.timeout)
            results[name] = entry
            ours = entry["tracemark"]
            anchor = entry.get("electronegativity", {})
            line = (
                f"{name:20} {len(source) / 1e6:6.2f} MB  tracemark {ours['cpu_seconds']:6.2f} s CPU "
                f"{ours['max_rss_mb']:7.1f} MB  {','.join(ours['rules'])}"
            )
            if anchor:
                late = " TIMEOUT" if anchor["timed_out"] else ""
                line += f"  | electronegativity {anchor['wall_seconds']} s{late}"
            print(line)
            (folder / "main.js").unlink()
    path = write_result("electron_scale", {"anchor": f"electronegativity {ANCHOR_VERSION}", "cases": results})
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
