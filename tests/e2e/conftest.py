"""End-to-end fixtures: the service in a subprocess on a free loopback port, and headless Chromium.

Nothing is installed here.  The browser is Debian's ``chromium`` driven through Debian's
``chromium-driver`` with Selenium (``apt-get install chromium chromium-driver``,
``pip install selenium``); without them the tests skip with that hint.  Selenium is told
where both binaries are and to stay offline, so it never downloads a browser or a driver.
"""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

import pytest

from tests.conftest import REFERENCE_MODEL

if TYPE_CHECKING:
    from selenium.webdriver.remote.webdriver import WebDriver

CHROMIUM = Path(os.environ.get("TRACEMARK_E2E_CHROMIUM", "/usr/bin/chromium"))
CHROMEDRIVER = Path(os.environ.get("TRACEMARK_E2E_CHROMEDRIVER", "/usr/bin/chromedriver"))
INSTALL_HINT = "apt-get install -y chromium chromium-driver && pip install selenium"
SCREENSHOTS = Path(os.environ.get("TRACEMARK_E2E_SCREENSHOTS", "/tmp"))
_BIN = Path(sys.executable).parent


@dataclass(frozen=True)
class Viewport:
    """A window the page is laid out in, in CSS pixels; ``mobile`` emulates a phone (touch, meta viewport)."""

    name: str
    width: int
    height: int
    mobile: bool


DESKTOP = Viewport("desktop", 1280, 1000, mobile=False)
PHONE = Viewport("phone", 390, 844, mobile=True)  # an iPhone 12 to 15's CSS width


@dataclass(frozen=True)
class RunningService:
    """The service under test: its base URL, an API token and its home directory."""

    url: str
    token: str
    home: Path

    def call(self, path: str, body: dict[str, Any] | None = None, *, auth: bool = False) -> dict[str, Any]:
        """A JSON request straight to the API (not through the browser)."""
        headers = {"Content-Type": "application/json", "Accept": "application/json"}
        if auth:
            headers["Authorization"] = f"Bearer {self.token}"
        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(self.url + path, data=data, headers=headers)
        with urllib.request.urlopen(request, timeout=120) as response:
            result: dict[str, Any] = json.loads(response.read())
        return result

    def generate(self, prompt: str = "The documentation explains how", tokens: int = 200) -> dict[str, Any]:
        """Marked text from the service, recorded in its log."""
        return self.call("/v1/text/generate", {"prompt": prompt, "max_new_tokens": tokens, "seed": 11}, auth=True)


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port


def _tracemark(*args: str, env: dict[str, str]) -> str:
    done = subprocess.run([str(_BIN / "tracemark"), *args], env=env, capture_output=True, text=True, timeout=120,
                          check=False)  # fmt: skip
    if done.returncode != 0:
        raise RuntimeError(f"tracemark {' '.join(args)} failed: {done.stderr.strip()}")
    return done.stdout


@pytest.fixture(scope="session")
def e2e_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The model the service serves: ``$TRACEMARK_E2E_MODEL``, else the bundled reference model (what
    ``make run`` serves), else a tiny random GPT-2 built here (strongly marked, no download)."""
    if importlib.util.find_spec("torch") is None or importlib.util.find_spec("transformers") is None:
        pytest.skip("generation needs the text extra: pip install 'tracemark[text]'")
    configured = os.environ.get("TRACEMARK_E2E_MODEL")
    if configured:
        return Path(configured)
    if (REFERENCE_MODEL / "config.json").is_file() and (REFERENCE_MODEL / "model.safetensors").is_file():
        return REFERENCE_MODEL
    from tests.unit.service._tiny_model import write_tiny_gpt2

    return write_tiny_gpt2(tmp_path_factory.mktemp("e2e-model") / "tiny-gpt2")


@pytest.fixture(scope="session")
def service(tmp_path_factory: pytest.TempPathFactory, e2e_model: Path) -> Iterator[RunningService]:
    """``tracemark keys init``, ``keys token``, then ``tracemark service run`` in a subprocess."""
    home = tmp_path_factory.mktemp("e2e-home")
    env = {**os.environ, "TRACEMARK_HOME": str(home), "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}
    _tracemark("keys", "init", "--model", str(e2e_model), env=env)
    # The whole session is one client that also fills the log in bulk: the per-client rate limits (tested in
    # tests/unit/service/test_security.py) are off for it.
    env |= {"TRACEMARK_SERVICE_RATE_LIMIT_PER_SECOND": "0", "TRACEMARK_SERVICE_HEAVY_RATE_PER_SECOND": "0"}
    token = json.loads(_tracemark("keys", "token", "--label", "e2e", "--json", env=env))["api_token"]
    port = _free_port()
    log = (home / "service.log").open("w")
    process = subprocess.Popen(
        [str(_BIN / "tracemark"), "service", "run", "--host", "127.0.0.1", "--port", str(port),
         "--model", str(e2e_model)],
        env=env, stdout=log, stderr=subprocess.STDOUT,
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                with urllib.request.urlopen(url + "/v1/health", timeout=2) as response:
                    if response.status == 200:
                        break
            except (urllib.error.URLError, ConnectionError):
                pass
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"the service did not start: {(home / 'service.log').read_text()[-2000:]}")
            time.sleep(0.2)
        yield RunningService(url=url, token=token, home=home)
    finally:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        log.close()


def _missing(reason: str) -> NoReturn:
    """Skip on a developer's machine without a browser; fail in CI, where `make test` installs one."""
    if os.environ.get("CI"):
        pytest.fail(f"end-to-end tests cannot run in CI: {reason}")
    pytest.skip(reason)


@pytest.fixture(scope="session")
def browser(tmp_path_factory: pytest.TempPathFactory) -> Iterator[WebDriver]:
    """Headless Chromium (Debian's build) through Selenium, with a fresh profile and no network of its own."""
    try:
        from selenium import webdriver
        from selenium.webdriver.chrome.service import Service
    except ImportError:
        _missing(f"selenium is not installed: {INSTALL_HINT}")
    if not CHROMIUM.is_file() or not (CHROMEDRIVER.is_file() or shutil.which("chromedriver")):
        _missing(f"no {CHROMIUM} or {CHROMEDRIVER}: {INSTALL_HINT}")
    os.environ["SE_OFFLINE"] = "true"  # Selenium Manager must never fetch a browser or a driver
    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for argument in ("--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--no-first-run",
                     "--disable-background-networking", "--disable-component-update", "--disable-sync",
                     "--disable-extensions", "--window-size=1280,1000",
                     f"--user-data-dir={tmp_path_factory.mktemp('chromium-profile')}"):  # fmt: skip
        options.add_argument(argument)
    # keep every console message (level ALL), so a test can read them with driver.get_log("browser")
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(options=options, service=Service(executable_path=str(CHROMEDRIVER)))
    driver.set_page_load_timeout(30)
    set_viewport(driver, DESKTOP)
    try:
        yield driver
    finally:
        driver.quit()


@pytest.fixture(params=[DESKTOP, PHONE], ids=lambda viewport: viewport.name)
def viewport(request: pytest.FixtureRequest, browser: WebDriver) -> Iterator[Viewport]:
    """The test runs once at a desktop width and once at a phone's; the browser is back at desktop after."""
    chosen: Viewport = request.param
    set_viewport(browser, chosen)
    try:
        yield chosen
    finally:
        set_viewport(browser, DESKTOP)


def set_viewport(driver: WebDriver, viewport: Viewport, height: int | None = None) -> None:
    """Lay the page out in ``viewport`` (Chromium's device emulation: exact CSS width, no window chrome)."""
    driver.execute_cdp_cmd("Emulation.setDeviceMetricsOverride", {
        "width": viewport.width, "height": height or viewport.height, "deviceScaleFactor": 1,
        "mobile": viewport.mobile,
    })  # fmt: skip
    driver.execute_cdp_cmd("Emulation.setTouchEmulationEnabled", {"enabled": viewport.mobile})


def assert_fits(driver: WebDriver, viewport: Viewport, *element_ids: str) -> None:
    """The document is no wider than the window, and each element is shown whole inside it; those a user
    clicks or types into (buttons, links, fields) are also big enough to hit with a finger."""
    width = int(driver.execute_script("return window.innerWidth"))
    assert width == viewport.width, f"laid out at {width} px, not {viewport.width} px (the meta viewport?)"
    scroll_width = int(driver.execute_script("return document.documentElement.scrollWidth"))
    assert scroll_width <= width, f"the page is {scroll_width} px wide in a {width} px window"
    for control_id in element_ids:
        box = driver.execute_script(
            "const e = document.getElementById(arguments[0]); if (!e) return null;"
            "const r = e.getBoundingClientRect(); const s = getComputedStyle(e);"
            "return {left: r.left, right: r.right, width: r.width, height: r.height,"
            " shown: s.display !== 'none' && s.visibility !== 'hidden' && r.width > 0,"
            " control: ['BUTTON', 'INPUT', 'TEXTAREA', 'SELECT', 'A'].includes(e.tagName)}",
            control_id,
        )
        assert box is not None, f"no #{control_id}"
        assert box["shown"], f"#{control_id} is not shown"
        assert box["left"] >= 0, f"#{control_id} sticks out on the left: {box}"
        assert box["right"] <= width, f"#{control_id} sticks out on the right: {box}"
        if box["control"]:
            assert min(box["height"], box["width"]) >= 24, f"#{control_id} is too small to use: {box}"


def console_problems(driver: WebDriver) -> list[dict[str, Any]]:
    """The browser console's errors and warnings, and Chromium's advice on the page (``[DOM] Password field
    is not contained in a form``), since the last call: each message is read once."""
    from selenium.webdriver.chromium.webdriver import ChromiumDriver

    assert isinstance(driver, ChromiumDriver), "the console log is read through Chromium's driver"
    entries: list[dict[str, Any]] = driver.get_log("browser")  # type: ignore[no-untyped-call]
    return [entry for entry in entries
            if entry["level"] in {"SEVERE", "WARNING"} or entry.get("source") == "recommendation"]  # fmt: skip


def picture(path: Path, seed: int) -> Path:
    """A 640x480 JPEG with smooth colour bands and some noise (a photograph's statistics, enough to mark)."""
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:480, 0:640] / 640
    pixels = np.stack([128 + 60 * np.sin(2 * np.pi * (3 * x + c * y)) for c in (1, 2, 3)], axis=-1)
    pixels += rng.normal(0, 5, pixels.shape)
    Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8)).save(path, "JPEG", quality=90)
    return path


def screenshot(driver: WebDriver, name: str, viewport: Viewport = DESKTOP) -> Path:
    """Save the whole page (the viewport grown to the document's height) as ``tracemark-page-<name>.png``."""
    driver.execute_script("window.scrollTo(0, 0)")
    height = int(driver.execute_script("return document.documentElement.scrollHeight"))
    set_viewport(driver, viewport, height=max(viewport.height, min(height, 6000)))
    path = SCREENSHOTS / f"tracemark-page-{name}.png"
    driver.save_screenshot(str(path))
    set_viewport(driver, viewport)
    return path
