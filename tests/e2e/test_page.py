"""The web page end to end, in headless Chromium: verify, generate, browse the log, check receipts."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

from tests.e2e.conftest import RunningService, screenshot

if TYPE_CHECKING:
    from selenium.webdriver.remote.webdriver import WebDriver
    from selenium.webdriver.remote.webelement import WebElement

pytestmark = pytest.mark.slow
WAIT = 90  # seconds: the first generation loads torch and the model in the service


def _open(driver: WebDriver, service: RunningService, tab: str) -> None:
    from selenium.webdriver.common.by import By

    driver.get(service.url + "/")
    driver.find_element(By.ID, f"tab-{tab}").click()


def _wait_for(driver: WebDriver, css: str, timeout: float = WAIT) -> WebElement:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions
    from selenium.webdriver.support.ui import WebDriverWait

    element: WebElement = WebDriverWait(driver, timeout).until(
        expected_conditions.visibility_of_element_located((By.CSS_SELECTOR, css))
    )
    return element


def _paste(driver: WebDriver, element_id: str, text: str) -> None:
    """Set a field's value the way a paste does (typing 200 tokens key by key is slow)."""
    from selenium.webdriver.common.by import By

    field = driver.find_element(By.ID, element_id)
    driver.execute_script("arguments[0].value = arguments[1]; arguments[0].dispatchEvent(new Event('input'))",
                          field, text)  # fmt: skip


def test_pasted_marked_text_shows_the_verdict_and_highlights(browser: WebDriver, service: RunningService) -> None:
    from selenium.webdriver.common.by import By

    marked = service.generate()["generation"]["text"]
    _open(browser, service, "verify")
    _paste(browser, "verify-text", marked)
    browser.find_element(By.ID, "verify-button").click()
    badge = _wait_for(browser, "#verdict-badge")
    assert badge.text == "Watermark found"
    assert "of" in browser.find_element(By.ID, "verdict-tokens").text
    hits = browser.find_elements(By.CSS_SELECTOR, "#verdict-tokens-view span.hit")
    misses = browser.find_elements(By.CSS_SELECTOR, "#verdict-tokens-view span.miss")
    assert len(hits) > len(misses) > 0
    screenshot(browser, "verify")


def test_unmarked_hostile_text_is_shown_as_text(browser: WebDriver, service: RunningService) -> None:
    from selenium.webdriver.common.by import By

    hostile = "<img src=x onerror=\"document.title='pwned'\"> <script>document.title='pwned'</script> " * 20
    _open(browser, service, "verify")
    _paste(browser, "verify-text", hostile)
    browser.find_element(By.ID, "verify-button").click()
    assert _wait_for(browser, "#verdict-badge").text == "No watermark found"
    view = browser.find_element(By.ID, "verdict-tokens-view")
    assert "<img src=x" in view.text
    assert not browser.find_elements(By.CSS_SELECTOR, "#verdict img, #verdict script")
    assert browser.title != "pwned"


def test_generate_shows_a_receipt_that_verifies(browser: WebDriver, service: RunningService) -> None:
    from selenium.webdriver.common.by import By

    _open(browser, service, "generate")
    token = browser.find_element(By.ID, "api-token")
    token.clear()
    token.send_keys(service.token)
    tokens = browser.find_element(By.ID, "generate-tokens")
    tokens.clear()
    tokens.send_keys("80")
    browser.find_element(By.ID, "generate-button").click()
    receipt = _wait_for(browser, "#generation-receipt")
    assert receipt.text.startswith("c2sp.org/tlog-proof@v1")
    browser.find_element(By.ID, "generation-verify").click()
    check = _wait_for(browser, "#generation-check .badge")
    assert check.text == "Receipt valid · content matches"
    screenshot(browser, "generate")

    browser.find_element(By.ID, "check-generated").click()
    assert _wait_for(browser, "#verdict-badge").text == "Watermark found"


def test_log_tab_lists_entries_and_proves_one(browser: WebDriver, service: RunningService) -> None:
    from selenium.webdriver.common.by import By

    generated = service.generate(tokens=40)
    size = service.call("/v1/log/checkpoint")["tree_size"]
    _open(browser, service, "log")
    _wait_for(browser, "#entries-body tr.entry")
    assert browser.find_element(By.ID, "log-size").text == str(size)
    rows = browser.find_elements(By.CSS_SELECTOR, "#entries-body tr.entry")
    assert len(rows) == min(size, 20)
    newest = rows[0]
    assert newest.get_attribute("data-index") == str(generated["index"])
    newest.click()
    _wait_for(browser, "#entry-receipt")
    detail = browser.find_element(By.ID, "entry-detail").text
    assert generated["record"]["content_sha256"] in detail
    browser.find_element(By.ID, "entry-verify").click()
    assert _wait_for(browser, "#entry-check .badge").text == "Receipt valid"
    screenshot(browser, "log")


def test_receipt_tab_accepts_a_good_receipt_and_rejects_a_forged_one(
    browser: WebDriver, service: RunningService
) -> None:
    from selenium.webdriver.common.by import By

    generated = service.generate(tokens=40)
    _open(browser, service, "receipt")
    _paste(browser, "receipt-text", generated["receipt"])
    _paste(browser, "receipt-content", generated["generation"]["text"])
    browser.find_element(By.ID, "receipt-button").click()
    assert _wait_for(browser, "#receipt-check-result .badge").text == "Receipt valid · content matches"
    screenshot(browser, "receipt")

    lines = generated["receipt"].split("\n")
    lines[2] = f"index {generated['index'] + 1}"
    _paste(browser, "receipt-text", "\n".join(lines))
    browser.find_element(By.ID, "receipt-button").click()
    _wait_for(browser, "#receipt-check-result .receipt-invalid")
    assert "not valid" in browser.find_element(By.ID, "receipt-check-result").text
