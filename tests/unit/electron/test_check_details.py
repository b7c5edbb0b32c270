"""Details of single checks that the corpus apps do not pin down: Electron's own parsing rules."""

from __future__ import annotations

from pathlib import Path

import pytest

from tracemark.electron import audit


def _rules(tmp_path: Path, files: dict[str, str], rule: str) -> list[int]:
    for name, text in files.items():
        (tmp_path / name).write_text(text)
    return sorted(f.location.line for f in audit(tmp_path).findings if f.rule_id == rule and f.location)


@pytest.mark.parametrize(
    ("preferences", "expected"),
    [
        ("experimentalFeatures", [1]),  # a bare key means yes
        ("experimentalFeatures   =1", [1]),
        ("experimentalCanvasFeatures=yes", [1]),
        ("experimentalFeatures=no", []),
        ("somethingElse", []),
    ],
)
def test_webview_features_string(tmp_path: Path, preferences: str, expected: list[int]) -> None:
    html = f'<webview src="https://example.com" webpreferences="{preferences}"></webview>\n'
    assert _rules(tmp_path, {"index.html": html}, "experimental-features") == expected


def test_http_urls_built_at_run_time(tmp_path: Path) -> None:
    code = (
        "const win = new BrowserWindow({});\n"
        "win.loadURL(`   HttP://${host}/`);\n"
        "win.loadURL('http://' + host);\n"
        "win.loadURL(`https://${host}/`);\n"
        "win.loadURL('http://localhost:3000/');\n"
    )
    assert _rules(tmp_path, {"main.js": code}, "http-resource") == [2, 3]


def test_string_timers_and_eval(tmp_path: Path) -> None:
    code = (
        "function f(a) {\n"
        "  const code = 'show(' + a + ')';\n"
        "  setTimeout(code, 10);\n"
        "  setTimeout(() => show(a), 10);\n"
        "  const fixed = 'show(1)';\n"
        "  setInterval(fixed, 10);\n"
        "  window.setImmediate(`run(${a})`);\n"
        "  eval(a);\n"
        "  eval('1 + 1');\n"
        "}\n"
    )
    assert _rules(tmp_path, {"main.js": code}, "dangerous-function") == [3, 7, 8]


def test_constant_arithmetic_and_truthiness(tmp_path: Path) -> None:
    code = (
        "new BrowserWindow({ webPreferences: { nodeIntegration: !!(2 - 1) } });\n"
        "new BrowserWindow({ webPreferences: { nodeIntegration: !!(1 - 1) } });\n"
        "new BrowserWindow({ webPreferences: { nodeIntegration: 1 } });\n"
        "new BrowserWindow({ webPreferences: { nodeIntegration: 0 } });\n"
    )
    assert _rules(tmp_path, {"main.js": code}, "node-integration") == [1, 3]
