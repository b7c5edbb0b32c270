"""The benchmarks as the docs see them: rendered tables match bench/results/, and make bench runs every benchmark."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[2]


def load_script(name: str, folder: str = "scripts") -> Any:
    spec = importlib.util.spec_from_file_location(name, REPO / folder / f"{name}.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_performance_tables_match_the_results(capsys: pytest.CaptureFixture[str]) -> None:
    tables = load_script("render_bench_tables")
    status = tables.main(["--check"])
    assert status == 0, f"run scripts/render_bench_tables.py:\n{capsys.readouterr().out}"


def test_every_table_block_names_a_renderer() -> None:
    tables = load_script("render_bench_tables")
    names = {m["name"] for path in tables.documents() for m in tables.blocks(path.read_text())}
    assert names
    assert names <= set(tables.RENDERERS)


def test_check_fails_on_a_table_that_differs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    tables = load_script("render_bench_tables")
    monkeypatch.setattr(tables, "REPO", tmp_path)
    document = tmp_path / "docs" / "tlog.md"
    document.parent.mkdir()
    rendered = tables.RENDERERS["tlog"](tables.loader(tables.RESULTS))
    edited = rendered.replace("149 s", "148 s")
    assert edited != rendered
    document.write_text(f"# tlog\n\n<!-- bench:tlog -->\n{edited}<!-- /bench -->\n")
    (tmp_path / "README.md").write_text("no tables here\n")
    assert tables.main(["--check"]) == 1
    assert "+| building the 10⁷ tree (bulk path) | 149 s" in capsys.readouterr().out
    assert tables.main([]) == 0
    assert tables.main(["--check"]) == 0
    assert "149 s" in document.read_text()


def test_unbalanced_markers_are_refused() -> None:
    tables = load_script("render_bench_tables")
    with pytest.raises(SystemExit, match="unbalanced"):
        tables.render("<!-- bench:tlog -->\n| a |\n", tables.loader(tables.RESULTS), "x.md")


def test_make_bench_runs_every_benchmark() -> None:
    listed = subprocess.run(
        [sys.executable, str(REPO / "bench" / "run_benchmarks.py"), "--list"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert listed.returncode == 0, listed.stderr  # a bench_*.py missing from BENCHMARKS fails here
    scripts = [line.split()[0] for line in listed.stdout.splitlines()]
    assert len(scripts) == len(set(scripts))
    assert all((REPO / "bench" / script).is_file() for script in scripts)
    assert "bench_theft_power.py" in scripts
    assert scripts.index("bench_theft_power.py") < scripts.index("bench_theft_grid.py")  # the grid reads its result


def test_results_of_a_smaller_zoo_never_replace_the_published_ones(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    common = load_script("_common", "bench")
    monkeypatch.delenv(common.RESULTS_ENV, raising=False)
    assert common.results_dir() == common.RESULTS
    assert common.results_dir("full") == common.RESULTS
    assert common.results_dir("small") == common.RESULTS / "zoo-small"
    monkeypatch.setenv(common.RESULTS_ENV, str(tmp_path))
    assert common.results_dir("small") == tmp_path  # make bench's quick folder, whatever the scale
    path = common.write_result("example", {"figure": 1}, zoo_scale="small")
    assert path == tmp_path / "example.json"
    assert '"zoo_scale": "small"' in path.read_text()
