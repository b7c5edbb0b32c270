"""The web page end to end, in headless Chromium: verify, generate, browse the log, check receipts.

The layout test runs at a desktop width and a phone's and saves a screenshot of every tab at each.
"""

from __future__ import annotations

import json
import re
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from tests.e2e.conftest import RunningService, Viewport, assert_fits, console_problems, picture, screenshot

if TYPE_CHECKING:
    from selenium.webdriver.remote.webdriver import WebDriver
    from selenium.webdriver.remote.webelement import WebElement

pytestmark = pytest.mark.slow
WAIT = 90  # seconds: the first generation loads torch and the model in the service
PAGE_SIZE = 20  # log entries the page shows at a time


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


def _hidden(driver: WebDriver, element_id: str) -> bool:
    from selenium.webdriver.common.by import By

    return not driver.find_element(By.ID, element_id).is_displayed()


def _entries_since(service: RunningService, start: int) -> int:
    """How many log entries there are from index ``start`` on."""
    page = service.call(f"/v1/log/entries?start={start}&limit=100")
    return len(page["entries"])


def _fill_log(service: RunningService, size: int) -> int:
    """Generate (one token each) until the log holds at least ``size`` entries; its size."""
    while (tree_size := int(service.call("/v1/log/checkpoint")["tree_size"])) < size:
        service.generate(tokens=1)
    return tree_size


def _first_entry(driver: WebDriver) -> str | None:
    """The index of the first row of the entries table (the newest on show), if there is one."""
    index: str | None = driver.execute_script(
        "const row = document.querySelector('#entries-body tr.entry'); return row ? row.dataset.index : null"
    )
    return index


def _set_token(driver: WebDriver, token: str) -> None:
    from selenium.webdriver.common.by import By

    field = driver.find_element(By.ID, "api-token")
    field.clear()
    field.send_keys(token)


def _storage(driver: WebDriver) -> dict[str, list[str]]:
    """Every value the page keeps in this tab's sessionStorage and in the device's localStorage."""
    stored: dict[str, list[str]] = driver.execute_script(
        "return {session: Object.values(sessionStorage), local: Object.values(localStorage)}"
    )
    return stored


def _in_new_tab(driver: WebDriver, service: RunningService) -> tuple[str, bool]:
    """The token field and the "remember" box as a new tab (a browser opened afresh) finds them."""
    from selenium.webdriver.common.by import By

    original = driver.current_window_handle
    driver.switch_to.new_window("tab")
    try:
        _open(driver, service, "generate")
        value = driver.find_element(By.ID, "api-token").get_attribute("value") or ""
        remembered = driver.find_element(By.ID, "token-remember").is_selected()
    finally:
        driver.close()
        driver.switch_to.window(original)
    return value, remembered


def _class_names(text: str) -> list[str]:
    """Words shaped like an exception's class name (``InvalidTokenError``, ``InvalidRequest``)."""
    return re.findall(r"\b[A-Z][a-z]+(?:[A-Z][a-z]+)+\b", text)


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
    # The log's own time and the client's claimed time are told apart (review S4).
    entry = service.call(f"/v1/log/entries/{generated['index']}")
    logged = browser.find_element(By.ID, "entry-logged").text
    assert logged.startswith(entry["integrated_time"].replace("T", " ").replace("Z", ""))
    assert "the log's clock" in logged
    assert f"{generated['record']['time']} (the client's claim)" in detail
    assert newest.find_elements(By.TAG_NAME, "td")[1].text == logged.split(" UTC")[0]
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


def test_every_tab_fits_the_screen(browser: WebDriver, service: RunningService, viewport: Viewport) -> None:
    """Each tab, with its results on show, at a desktop's and a phone's width: no sideways scrolling of
    the page, every control whole on screen and usable (the flow clicks each one)."""
    from selenium.webdriver.common.by import By

    generated = service.generate()
    _open(browser, service, "verify")
    assert_fits(browser, viewport, "tab-verify", "tab-generate", "tab-log", "tab-receipt", "tab-media", "verify-text",
                "verify-button")  # fmt: skip
    _paste(browser, "verify-text", generated["generation"]["text"])
    browser.find_element(By.ID, "verify-button").click()
    assert _wait_for(browser, "#verdict-badge").text == "Watermark found"
    assert_fits(browser, viewport, "verify-button", "verdict-badge", "verdict-p")
    screenshot(browser, f"{viewport.name}-verify", viewport)

    browser.find_element(By.ID, "tab-generate").click()
    token = browser.find_element(By.ID, "api-token")
    token.clear()
    token.send_keys(service.token)
    tokens = browser.find_element(By.ID, "generate-tokens")
    tokens.clear()
    tokens.send_keys("40")
    assert_fits(browser, viewport, "api-token", "generate-prompt", "generate-tokens", "generate-button")
    browser.find_element(By.ID, "generate-button").click()
    _wait_for(browser, "#generation-receipt")
    assert_fits(browser, viewport, "generate-button", "generated-text", "check-generated", "generation-verify",
                "generation-receipt")  # fmt: skip
    screenshot(browser, f"{viewport.name}-generate", viewport)

    browser.find_element(By.ID, "tab-log").click()
    _wait_for(browser, "#entries-body tr.entry")
    browser.find_elements(By.CSS_SELECTOR, "#entries-body tr.entry")[0].click()
    _wait_for(browser, "#entry-receipt")
    assert_fits(browser, viewport, "log-refresh", "log-older", "entries-scroll", "entry-verify", "entry-receipt")
    if viewport.mobile:  # the entries table keeps one line per entry and scrolls sideways in its own box
        table = browser.execute_script("const e = arguments[0]; return [e.scrollWidth, e.clientWidth]",
                                       browser.find_element(By.ID, "entries-scroll"))  # fmt: skip
        assert table[0] > table[1]
    screenshot(browser, f"{viewport.name}-log", viewport)

    browser.find_element(By.ID, "tab-receipt").click()
    _paste(browser, "receipt-text", generated["receipt"])
    _paste(browser, "receipt-content", generated["generation"]["text"])
    browser.find_element(By.ID, "receipt-button").click()
    assert _wait_for(browser, "#receipt-check-result .badge").text == "Receipt valid · content matches"
    assert_fits(browser, viewport, "receipt-text", "receipt-content", "receipt-button")
    screenshot(browser, f"{viewport.name}-receipt", viewport)


def test_text_too_short_to_decide_says_so(browser: WebDriver, service: RunningService) -> None:
    """A text too short for any p-value to reach the decision level is not called unmarked."""
    from selenium.webdriver.common.by import By

    verdict = service.call("/v1/text/detect", {"text": "hi"})
    gamma, alpha = verdict["null_hit_probability"], verdict["alpha"]
    _open(browser, service, "verify")
    _paste(browser, "verify-text", "hi")
    browser.find_element(By.ID, "verify-button").click()
    badge = _wait_for(browser, "#verdict-badge")
    match = re.fullmatch(r"Too short: (\d+) tokens? scored, at least (\d+) needed", badge.text)
    assert match, badge.text
    scored, needed = int(match[1]), int(match[2])
    assert scored == verdict["tokens_scored"]
    # the least number of scored tokens that, all hits, gives p <= alpha (no windows at this length)
    assert gamma**needed <= alpha < gamma ** (needed - 1)
    assert "No watermark found" not in browser.find_element(By.ID, "verdict").text
    screenshot(browser, "verify-too-short")


def test_a_double_click_generates_once(browser: WebDriver, service: RunningService) -> None:
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.by import By

    before = service.call("/v1/log/checkpoint")["tree_size"]
    _open(browser, service, "generate")
    token = browser.find_element(By.ID, "api-token")
    token.clear()
    token.send_keys(service.token)
    tokens = browser.find_element(By.ID, "generate-tokens")
    tokens.clear()
    tokens.send_keys("30")
    button = browser.find_element(By.ID, "generate-button")
    browser.execute_script("const b = arguments[0]; window.disabledStates = [];"
                           "new MutationObserver(() => window.disabledStates.push(b.disabled))"
                           ".observe(b, {attributes: true, attributeFilter: ['disabled']})", button)  # fmt: skip
    ActionChains(browser).double_click(button).perform()
    _wait_for(browser, "#generation-receipt")
    time.sleep(2.0)  # a second request, had one been sent, would have been answered by now
    assert _entries_since(service, before) == 1
    assert browser.execute_script("return window.disabledStates") == [True, False]  # off while the request ran
    assert button.is_enabled()


def test_results_go_when_their_input_changes(browser: WebDriver, service: RunningService) -> None:
    from selenium.webdriver.common.by import By

    generated = service.generate(tokens=40)
    _open(browser, service, "verify")
    _paste(browser, "verify-text", generated["generation"]["text"])
    browser.find_element(By.ID, "verify-button").click()
    _wait_for(browser, "#verdict-badge")
    browser.find_element(By.ID, "verify-text").send_keys(" and more")
    assert _hidden(browser, "verdict")

    browser.find_element(By.ID, "tab-receipt").click()
    _paste(browser, "receipt-text", generated["receipt"])
    browser.find_element(By.ID, "receipt-button").click()
    _wait_for(browser, "#receipt-check-result .badge")
    browser.find_element(By.ID, "receipt-content").send_keys("x")
    assert _hidden(browser, "receipt-check-result")


def test_errors_are_told_in_words_not_class_names(browser: WebDriver, service: RunningService) -> None:
    from selenium.webdriver.common.by import By

    request = urllib.request.Request(service.url + "/v1/text/generate", data=b'{"prompt": "x", "max_new_tokens": 5}',
                                     headers={"Content-Type": "application/json",
                                              "Authorization": "Bearer tm-not-a-token"})  # fmt: skip
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(request, timeout=30)
    error = json.loads(refused.value.read())["error"]

    _open(browser, service, "generate")
    token = browser.find_element(By.ID, "api-token")
    token.clear()
    token.send_keys("tm-not-a-token")
    browser.find_element(By.ID, "generate-button").click()
    shown = _wait_for(browser, "#generation .badge.error").text
    assert error["message"] in shown
    assert error["type"] not in shown
    assert not _class_names(shown), shown

    _open(browser, service, "verify")
    browser.find_element(By.CSS_SELECTOR, "#verify details summary").click()
    _paste(browser, "verify-key", "tm-no-such-key")
    _paste(browser, "verify-text", "Some text to check against a key that does not exist.")
    browser.find_element(By.ID, "verify-button").click()
    shown = _wait_for(browser, "#verdict .badge.error").text
    assert "tm-no-such-key" in shown
    assert not _class_names(shown), shown
    screenshot(browser, "verify-error")


def test_the_token_is_kept_for_the_tab_unless_remembered_and_forget_clears_it(
    browser: WebDriver, service: RunningService
) -> None:
    """By default the API token lives in sessionStorage (this tab only, gone when it closes); "Remember on
    this device" also keeps it in localStorage; "Forget token" clears both."""
    from selenium.webdriver.common.by import By

    _open(browser, service, "generate")
    browser.find_element(By.ID, "token-forget").click()
    _set_token(browser, service.token)
    assert not browser.find_element(By.ID, "token-remember").is_selected()
    assert _storage(browser) == {"session": [service.token], "local": []}
    assert browser.find_element(By.ID, "token-status").text == "Kept in this tab until it is closed."
    _open(browser, service, "generate")  # a reload in the same tab keeps it
    assert browser.find_element(By.ID, "api-token").get_attribute("value") == service.token
    assert _in_new_tab(browser, service) == ("", False)  # another tab, or the browser reopened, has none

    browser.find_element(By.ID, "token-remember-label").click()
    assert browser.find_element(By.ID, "token-remember").is_selected()
    assert _storage(browser) == {"session": [service.token], "local": [service.token]}
    assert browser.find_element(By.ID, "token-status").text == "Remembered on this device until you forget it."
    assert _in_new_tab(browser, service) == (service.token, True)
    screenshot(browser, "generate-token")

    browser.find_element(By.ID, "token-forget").click()
    assert browser.find_element(By.ID, "api-token").get_attribute("value") == ""
    assert not browser.find_element(By.ID, "token-remember").is_selected()
    assert _storage(browser) == {"session": [], "local": []}
    assert browser.find_element(By.ID, "token-status").text == "Forgotten: this browser keeps no token."
    _open(browser, service, "generate")
    assert browser.find_element(By.ID, "api-token").get_attribute("value") == ""
    assert _in_new_tab(browser, service) == ("", False)

    # a token an older page left in localStorage without asking moves to this tab's session
    browser.execute_script("localStorage.setItem('tracemark-token', arguments[0])", service.token)
    _open(browser, service, "generate")
    assert browser.find_element(By.ID, "api-token").get_attribute("value") == service.token
    assert _storage(browser) == {"session": [service.token], "local": []}
    browser.find_element(By.ID, "token-forget").click()


def test_enter_in_the_token_field_sends_nothing(browser: WebDriver, service: RunningService) -> None:
    """The token sits in a form (so Chromium does not flag a password field outside one) that never submits."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys

    _open(browser, service, "generate")
    console_problems(browser)
    browser.execute_script("window.stayed = true")
    _set_token(browser, service.token)
    browser.find_element(By.ID, "api-token").send_keys(Keys.ENTER)
    time.sleep(0.5)
    assert browser.execute_script("return window.stayed") is True  # no navigation
    assert browser.current_url == service.url + "/"
    assert console_problems(browser) == []  # in particular, no form-action CSP refusal


def test_a_failed_page_of_the_log_is_shown_in_the_table(browser: WebDriver, service: RunningService) -> None:
    """Older and Newer show a failed request where the entries would be, never an unhandled rejection."""
    from selenium.webdriver.common.by import By

    size = _fill_log(service, PAGE_SIZE + 1)
    _open(browser, service, "log")
    _wait_for(browser, "#entries-body tr.entry")
    console_problems(browser)
    browser.execute_script(
        "window.realFetch = window.fetch; window.fetch = (url, options) => String(url).startsWith('/v1/log/entries?')"
        " ? Promise.reject(new TypeError('Failed to fetch')) : window.realFetch(url, options)"
    )
    browser.find_element(By.ID, "log-older").click()
    shown = _wait_for(browser, "#entries-body .badge.error").text
    assert shown == "Could not reach the service: check the connection and try again"
    assert not browser.find_elements(By.CSS_SELECTOR, "#entries-body tr.entry")  # no rows of the other page
    screenshot(browser, "log-page-failed")

    browser.execute_script("window.fetch = window.realFetch")  # the connection is back
    browser.find_element(By.ID, "log-newer").click()
    newest = _wait_for(browser, "#entries-body tr.entry")
    assert newest.get_attribute("data-index") == str(size - 1)
    assert console_problems(browser) == []


def test_the_console_stays_clean_on_every_tab(browser: WebDriver, service: RunningService, tmp_path: Path) -> None:
    """Every tab used as a user would (verify; generate and verify the receipt; page through the log and
    prove an entry; check a receipt; verify, mark and re-verify an image): the browser console shows no
    error, no warning and none of Chromium's advice on the page."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    _fill_log(service, PAGE_SIZE + 1)
    generated = service.generate(tokens=40)
    console_problems(browser)  # what earlier tests left
    _open(browser, service, "verify")
    _paste(browser, "verify-text", generated["generation"]["text"])
    browser.find_element(By.ID, "verify-button").click()
    _wait_for(browser, "#verdict-badge")

    browser.find_element(By.ID, "tab-generate").click()
    _set_token(browser, service.token)
    tokens = browser.find_element(By.ID, "generate-tokens")
    tokens.clear()
    tokens.send_keys("20")
    browser.find_element(By.ID, "generate-button").click()
    _wait_for(browser, "#generation-receipt")
    browser.find_element(By.ID, "generation-verify").click()
    assert _wait_for(browser, "#generation-check .badge").text == "Receipt valid · content matches"

    browser.find_element(By.ID, "tab-log").click()
    newest = _wait_for(browser, "#entries-body tr.entry").get_attribute("data-index")
    browser.find_element(By.ID, "log-older").click()
    WebDriverWait(browser, WAIT).until(lambda driver: _first_entry(driver) == str(int(newest or 0) - PAGE_SIZE))
    browser.find_element(By.ID, "log-newer").click()
    WebDriverWait(browser, WAIT).until(lambda driver: _first_entry(driver) == newest)
    browser.find_element(By.CSS_SELECTOR, "#entries-body tr.entry").click()
    _wait_for(browser, "#entry-receipt")
    browser.find_element(By.ID, "entry-verify").click()
    assert _wait_for(browser, "#entry-check .badge").text == "Receipt valid"

    browser.find_element(By.ID, "tab-receipt").click()
    _paste(browser, "receipt-text", generated["receipt"])
    browser.find_element(By.ID, "receipt-button").click()
    assert _wait_for(browser, "#receipt-check-result .badge").text == "Receipt valid"

    browser.find_element(By.ID, "tab-media").click()
    browser.find_element(By.ID, "media-file").send_keys(str(picture(tmp_path / "plain.jpg", 4)))
    browser.find_element(By.ID, "media-model-id").send_keys("example/console-check@1")
    browser.find_element(By.ID, "media-verify-button").click()
    assert _wait_for(browser, "#media-outcome").get_attribute("data-outcome") == "unmarked"
    browser.find_element(By.ID, "media-mark-button").click()
    image = _wait_for(browser, "#media-marked-image")
    WebDriverWait(browser, WAIT).until(lambda driver: driver.execute_script("return arguments[0].complete", image))
    browser.find_element(By.ID, "media-check-marked").click()
    _wait_for(browser, "#media-outcome[data-outcome='trusted']")

    assert console_problems(browser) == []
