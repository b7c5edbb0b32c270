"""``tracemark comply check`` on the example deployment, as from a fresh clone, and its report in Chromium.

The check generates text with the bundled reference model, marks and signs the example images,
logs every output, asks the service's detection routes and writes the signed report; the page is
then rendered in headless Chromium at a desktop and a phone width, with no console message.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from tests.conftest import REPO
from tests.e2e.conftest import DESKTOP, PHONE, assert_fits, console_problems, screenshot, set_viewport

if TYPE_CHECKING:
    from selenium.webdriver.remote.webdriver import WebDriver

pytestmark = pytest.mark.slow
_BIN = Path(sys.executable).parent


@dataclass(frozen=True)
class CheckRun:
    """The finished check: its exit status, output, folder and the environment it ran in."""

    status: int
    stdout: str
    stderr: str
    folder: Path
    env: dict[str, str]


@pytest.fixture(scope="module")
def check_run(tmp_path_factory: pytest.TempPathFactory) -> CheckRun:
    """The command the README gives, in a home with no keyring yet (keys are made by the check)."""
    pytest.importorskip("torch", reason="the example generates text: pip install 'tracemark[text]'")
    home = tmp_path_factory.mktemp("comply-home")
    folder = tmp_path_factory.mktemp("comply") / "report"
    env = {**os.environ, "TRACEMARK_HOME": str(home), "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}
    done = subprocess.run(
        [str(_BIN / "tracemark"), "comply", "check", "--deployment", "examples/deployment.toml", "--out", str(folder)],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )
    return CheckRun(done.returncode, done.stdout, done.stderr, folder, env)


def test_the_example_check_writes_a_signed_report(check_run: CheckRun) -> None:
    assert check_run.status == 0, check_run.stderr  # every row passes or is honestly not assessed
    document = json.loads((check_run.folder / "report.json").read_text())
    statuses = {row["id"]: row["status"] for row in document["obligations"]}
    for obligation in (
        "art50.2-text-marked",
        "art50.2-text-floor",
        "art50.2-image-metadata",
        "art50.2-logged",
        "art50.2-detection-interface",
        "art12-log-integrity",
        "art50.4-label",
    ):
        assert statuses[obligation] == "pass", (obligation, check_run.stdout)
    assert statuses["art50.2-detection-access"] == "not-assessed"
    assert document["summary"]["verdict"] == "incomplete"
    assert {plot["id"] for plot in document["plots"]} == {"length", "text-attacks", "image-attacks"}
    verified = subprocess.run(
        [str(_BIN / "tracemark"), "comply", "verify-report", str(check_run.folder), "--json"],
        env=check_run.env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert verified.returncode == 0, verified.stderr
    assert json.loads(verified.stdout)["valid"] is True


def test_the_report_renders_without_console_errors(browser: WebDriver, check_run: CheckRun) -> None:
    from selenium.webdriver.common.by import By

    page = (check_run.folder / "report.html").as_uri()
    console_problems(browser)  # drop what earlier tests left
    for viewport in (DESKTOP, PHONE):
        set_viewport(browser, viewport)
        browser.get(page)
        assert browser.title.startswith("EU AI Act report")
        verdict = browser.find_element(By.ID, "verdict")
        assert verdict.is_displayed()
        assert "incomplete" in verdict.text
        sections = browser.find_elements(By.CSS_SELECTOR, "section.row")
        assert len(sections) == 13
        svgs = browser.find_elements(By.CSS_SELECTOR, "figure svg")
        assert len(svgs) == 3
        assert all(svg.size["height"] > 50 for svg in svgs), "the plots are laid out"
        assert_fits(browser, viewport, "verdict", "summary")
        screenshot(browser, f"comply-report-{viewport.name}", viewport)
        assert console_problems(browser) == []
    set_viewport(browser, DESKTOP)
