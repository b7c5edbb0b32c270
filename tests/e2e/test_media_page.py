"""The page's image tab end to end, in headless Chromium: verify a signed image, mark one, see the manifest."""

from __future__ import annotations

import base64
import io
import json
import urllib.request
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from PIL import Image

from tests.e2e.conftest import RunningService, Viewport, assert_fits, picture, screenshot

if TYPE_CHECKING:
    from selenium.webdriver.remote.webdriver import WebDriver
    from selenium.webdriver.remote.webelement import WebElement

pytestmark = pytest.mark.slow
WAIT = 60


def _mark(service: RunningService, data: bytes) -> dict[str, Any]:
    request = urllib.request.Request(service.url + "/v1/media/mark?format=jpeg", data=data, method="POST",
                                     headers={"Authorization": f"Bearer {service.token}",
                                              "Content-Type": "image/jpeg"})  # fmt: skip
    with urllib.request.urlopen(request, timeout=60) as response:
        result: dict[str, Any] = json.loads(response.read())
    return result


def _wait_for(driver: WebDriver, css: str) -> WebElement:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions
    from selenium.webdriver.support.ui import WebDriverWait

    element: WebElement = WebDriverWait(driver, WAIT).until(
        expected_conditions.visibility_of_element_located((By.CSS_SELECTOR, css))
    )
    return element


def _layers(driver: WebDriver) -> dict[str, bool]:
    from selenium.webdriver.common.by import By

    items = driver.find_elements(By.CSS_SELECTOR, "#media-layers li")
    return {item.get_attribute("data-layer") or "": "found" in (item.get_attribute("class") or "") for item in items}


def test_signed_image_shows_trusted_verdict_and_manifest(
    browser: WebDriver, service: RunningService, tmp_path: Path
) -> None:
    from selenium.webdriver.common.by import By

    marked = _mark(service, picture(tmp_path / "plain.jpg", 1).read_bytes())
    signed = tmp_path / "signed.jpg"
    signed.write_bytes(base64.b64decode(marked["image"]))
    browser.get(service.url + "/")
    browser.find_element(By.ID, "tab-media").click()
    browser.find_element(By.ID, "media-file").send_keys(str(signed))
    browser.find_element(By.ID, "media-verify-button").click()
    badge = _wait_for(browser, "#media-outcome")
    assert badge.get_attribute("data-outcome") == "trusted"
    layers = _layers(browser)
    assert layers["signed-metadata"]
    assert layers["watermark"]
    assert layers["log-entry"]
    manifest = browser.find_element(By.ID, "media-manifest").text
    assert "trainedAlgorithmicMedia" in manifest
    assert marked["soft_binding"]["value"] in manifest
    screenshot(browser, "media-verify")

    stripped = tmp_path / "stripped.jpg"
    smaller = Image.open(io.BytesIO(signed.read_bytes()))
    smaller.resize((smaller.width // 2, smaller.height // 2)).save(stripped, "JPEG", quality=50)
    browser.find_element(By.ID, "media-file").send_keys(str(stripped))
    browser.find_element(By.ID, "media-verify-button").click()
    _wait_for(browser, "#media-outcome[data-outcome='recovered-via-soft-binding']")
    assert _layers(browser)["recovered-manifest"]


def test_mark_on_the_page_then_verify(
    browser: WebDriver, service: RunningService, tmp_path: Path, viewport: Viewport
) -> None:
    """Verify an unmarked picture, mark it on the page (its preview shows), verify the marked copy; at a
    desktop's and a phone's width."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    browser.get(service.url + "/")
    # the page's own Content-Security-Policy must not block what the page shows
    browser.execute_script("window.blocked = []; document.addEventListener('securitypolicyviolation',"
                           " (e) => window.blocked.push(e.violatedDirective + ' ' + e.blockedURI))")  # fmt: skip
    browser.find_element(By.ID, "tab-generate").click()
    token = browser.find_element(By.ID, "api-token")
    token.clear()
    token.send_keys(service.token)
    browser.find_element(By.ID, "tab-media").click()
    browser.find_element(By.ID, "media-file").send_keys(str(picture(tmp_path / "plain.jpg", 2)))
    browser.find_element(By.ID, "media-verify-button").click()
    assert _wait_for(browser, "#media-outcome").get_attribute("data-outcome") == "unmarked"
    result = browser.find_element(By.ID, "media-result").text
    assert "null" not in result.split(), result  # no manifest: nothing shown for it, not the word "null"
    assert_fits(browser, viewport, "media-file", "media-model-id", "media-verify-button", "media-mark-button",
                "media-outcome")  # fmt: skip

    browser.find_element(By.ID, "media-mark-button").click()
    image = _wait_for(browser, "#media-marked-image")
    WebDriverWait(browser, WAIT).until(lambda driver: driver.execute_script("return arguments[0].complete", image))
    assert browser.execute_script("return arguments[0].naturalWidth", image) == 640  # the preview really shows
    assert browser.execute_script("return window.blocked") == []
    assert not browser.find_element(By.ID, "media-result").is_displayed()  # the unmarked verdict went
    assert len(browser.find_element(By.ID, "media-marked-record").text) == 24
    assert_fits(browser, viewport, "media-marked-image", "media-download", "media-check-marked")
    browser.find_element(By.ID, "media-check-marked").click()
    _wait_for(browser, "#media-outcome[data-outcome='trusted']")
    assert_fits(browser, viewport, "media-outcome", "media-manifest")
    screenshot(browser, f"{viewport.name}-media-mark", viewport)

    browser.find_element(By.ID, "media-file").send_keys(str(picture(tmp_path / "other.jpg", 3)))
    assert not browser.find_element(By.ID, "media-marked").is_displayed()  # results of the old file go with it
    assert not browser.find_element(By.ID, "media-result").is_displayed()


def test_the_model_id_typed_is_the_one_logged(browser: WebDriver, service: RunningService, tmp_path: Path) -> None:
    """The Images tab's model id reaches the log entry and the manifest of the marked image; one the log
    would refuse is explained before anything is sent; left empty, the service's default is recorded."""
    from selenium.webdriver.common.by import By

    def mark(model_id: str) -> dict[str, Any]:
        field = browser.find_element(By.ID, "media-model-id")
        browser.execute_script("arguments[0].value = arguments[1]", field, model_id)
        browser.find_element(By.ID, "media-mark-button").click()
        shown = _wait_for(browser, "#media-marked-log-index").text
        assert browser.find_element(By.ID, "media-marked-model").text == (model_id or "unspecified-image-model")
        entry: dict[str, Any] = service.call(f"/v1/log/entries/{shown.removeprefix('#')}")
        return entry

    browser.get(service.url + "/")
    browser.find_element(By.ID, "tab-generate").click()
    token = browser.find_element(By.ID, "api-token")
    token.clear()
    token.send_keys(service.token)
    browser.find_element(By.ID, "tab-media").click()
    browser.find_element(By.ID, "media-file").send_keys(str(picture(tmp_path / "plain.jpg", 5)))

    size = service.call("/v1/log/checkpoint")["tree_size"]
    charset = "only letters A-Z a-z, digits and . _ : / + = @ -"
    for bad, reason in ((" acme/imagegen", f"{charset} (found U+0020)"),
                        ("acme\timagegen", f"{charset} (found U+0009)"),
                        ("acme\u202eimagegen", f"{charset} (found U+202E)"),
                        ("m" * 257, "at most 256 characters, not 257")):  # fmt: skip
        browser.execute_script("arguments[0].value = arguments[1]", browser.find_element(By.ID, "media-model-id"), bad)
        browser.find_element(By.ID, "media-mark-button").click()
        assert _wait_for(browser, "#media-marked .badge.error").text == f"Model id: {reason}"
    assert service.call("/v1/log/checkpoint")["tree_size"] == size  # nothing was sent

    model_id = "acme/imagegen-2@2026-01+rc.1:beta"
    entry = mark(model_id)
    assert entry["record"]["kind"] == "image"
    assert entry["record"]["model_id"] == model_id
    browser.find_element(By.ID, "media-check-marked").click()
    _wait_for(browser, "#media-outcome[data-outcome='trusted']")
    manifest = json.loads(browser.find_element(By.ID, "media-manifest").get_attribute("textContent") or "{}")
    created = [action for assertion in manifest["assertions"] if assertion["label"] == "c2pa.actions.v2"
               for action in assertion["data"]["actions"] if action["action"] == "c2pa.created"]  # fmt: skip
    assert [action["softwareAgent"]["name"] for action in created] == [model_id]
    screenshot(browser, "media-model-id")

    assert mark("")["record"]["model_id"] == "unspecified-image-model"
