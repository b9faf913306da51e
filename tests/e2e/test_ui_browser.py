"""End to end in a real headless Chromium: the Streamlit app and the API as separate servers,
a query typed into the page, result images loaded by the browser from the API's image URLs."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e.conftest import ARTIFACTS
from tests.ui.live_api import LiveApi

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
TIMEOUT_S = 60
# Offline, reproducible, no background traffic; a fresh profile every run.
FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
    "--window-size=1400,1100",
)

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

RESULT_IMAGES_JS = """
const base = arguments[0];
return Array.from(document.querySelectorAll('img'))
  .filter(img => img.src.startsWith(base + '/files/'))
  .map(img => [img.src, img.complete, img.naturalWidth]);
"""


@pytest.fixture
def browser() -> Iterator[object]:
    if not CHROMIUM.exists():
        pytest.skip("needs /usr/bin/chromium (apt-get install chromium chromium-driver)")
    assert CHROMEDRIVER.exists(), (
        "chromium is installed but chromedriver is not: apt-get install chromium-driver"
    )
    from selenium import webdriver
    from selenium.webdriver.chrome.options import Options
    from selenium.webdriver.chrome.service import Service

    profile = tempfile.mkdtemp(prefix="ui-e2e-chromium-")
    options = Options()
    options.binary_location = str(CHROMIUM)
    for flag in (*FLAGS, f"--user-data-dir={profile}"):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(str(CHROMEDRIVER)), options=options)
    try:
        yield driver
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)


def test_text_query_shows_result_images_that_load(
    browser: object, streamlit_url: str, live_api_server: LiveApi
) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys
    from selenium.webdriver.remote.webdriver import WebDriver
    from selenium.webdriver.support import expected_conditions as ec
    from selenium.webdriver.support.ui import WebDriverWait

    driver: WebDriver = browser  # type: ignore[assignment]
    wait = WebDriverWait(driver, TIMEOUT_S)
    driver.get(streamlit_url)
    box = wait.until(
        ec.element_to_be_clickable(
            (By.CSS_SELECTOR, "input[aria-label='What are you looking for?']")
        )
    )
    # The empty state comes first.
    wait.until(ec.text_to_be_present_in_element((By.TAG_NAME, "body"), "Or try one of these"))
    box.send_keys("red cotton t-shirt", Keys.ENTER)

    def loaded(d: WebDriver) -> list[list[object]] | bool:
        imgs: list[list[object]] = d.execute_script(RESULT_IMAGES_JS, live_api_server.url)
        done = len(imgs) == len(live_api_server.items) and all(complete for _, complete, _ in imgs)
        return imgs if done else False

    images = wait.until(loaded)
    driver.save_screenshot(str(ARTIFACTS / "ui-text-search.png"))
    assert all(int(width) > 0 for _, _, width in images), images  # type: ignore[call-overload]
    body = driver.find_element(By.TAG_NAME, "body").text
    assert "Results for “red cotton t-shirt”" in body
    assert "score " in body
    assert not driver.find_elements(By.CSS_SELECTOR, "[data-testid='stException']")

    # "More like this" on the first card: an image search from that item, its picture beside.
    first_name = driver.find_elements(By.CSS_SELECTOR, "[data-testid='stMarkdown'] strong")[0].text
    more = [b for b in driver.find_elements(By.TAG_NAME, "button") if b.text == "More like this"]
    more[0].click()
    wait.until(ec.text_to_be_present_in_element((By.TAG_NAME, "body"), f"More like: {first_name}"))
    # Every other item (the API leaves the item itself out) plus its picture as the query.
    expected = len(live_api_server.items) - 1 + 1
    wait.until(ec.text_to_be_present_in_element((By.TAG_NAME, "body"), f"{expected - 1} matches"))
    wait.until(lambda d: len(d.execute_script(RESULT_IMAGES_JS, live_api_server.url)) == expected)
    wait.until(
        lambda d: all(c for _, c, _ in d.execute_script(RESULT_IMAGES_JS, live_api_server.url))
    )
    driver.save_screenshot(str(ARTIFACTS / "ui-more-like-this.png"))
    after = driver.execute_script(RESULT_IMAGES_JS, live_api_server.url)
    assert all(int(width) > 0 for _, _, width in after), after


def test_photo_upload_in_the_browser_finds_the_look_alike(
    browser: object, streamlit_url: str, live_api_server: LiveApi, tmp_path: Path
) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.remote.webdriver import WebDriver
    from selenium.webdriver.support import expected_conditions as ec
    from selenium.webdriver.support.ui import WebDriverWait

    driver: WebDriver = browser  # type: ignore[assignment]
    wait = WebDriverWait(driver, TIMEOUT_S)
    item = live_api_server.item("1003")
    photo = tmp_path / "handbag.png"
    photo.write_bytes(item.lookalike_png())
    driver.get(streamlit_url)
    tab = wait.until(
        lambda d: next(
            (
                t
                for t in d.find_elements(By.CSS_SELECTOR, "[role='tab']")
                if t.text == "Search by photo"
            ),
            False,
        )
    )
    tab.click()
    # The first uploader is the photo tab's; the upload goes through Streamlit's own upload
    # route (XSRF cookie, size cap) as in production.
    uploader = wait.until(lambda d: d.find_elements(By.CSS_SELECTOR, "input[type='file']"))[0]
    uploader.send_keys(str(photo))
    wait.until(ec.text_to_be_present_in_element((By.TAG_NAME, "body"), "handbag.png"))
    find = next(b for b in driver.find_elements(By.TAG_NAME, "button") if b.text == "Find similar")
    find.click()
    wait.until(ec.text_to_be_present_in_element((By.TAG_NAME, "body"), "Similar items"))
    wait.until(
        lambda d: (
            len(d.execute_script(RESULT_IMAGES_JS, live_api_server.url))
            == len(live_api_server.items)
        )
    )
    wait.until(
        lambda d: all(c for _, c, _ in d.execute_script(RESULT_IMAGES_JS, live_api_server.url))
    )
    driver.save_screenshot(str(ARTIFACTS / "ui-photo-search.png"))
    names = [
        e.text for e in driver.find_elements(By.CSS_SELECTOR, "[data-testid='stMarkdown'] strong")
    ]
    assert names[names.index("Your query") + 1] == item.display_name
    loaded = driver.execute_script(RESULT_IMAGES_JS, live_api_server.url)
    assert all(int(width) > 0 for _, _, width in loaded), loaded
    assert not driver.find_elements(By.CSS_SELECTOR, "[data-testid='stException']")
