"""A headless Chromium driven by selenium, for the console's end-to-end tests and the README's
screenshots. Uses the machine's chromium and chromedriver (Debian packages `chromium`,
`chromium-driver`): selenium is never left to download a browser or a driver. Needs the `dev`
extra (selenium)."""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

from selenium import webdriver
from selenium.common.exceptions import NoSuchElementException, StaleElementReferenceException
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.chrome.webdriver import WebDriver
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webelement import WebElement
from selenium.webdriver.support.ui import Select, WebDriverWait

BROWSER_NAMES = ("chromium", "chromium-browser", "google-chrome")
DRIVER_NAMES = ("chromedriver",)
# Waits are for a slow, shared machine and a pipeline that commits in batches, never a measure.
WAIT_S = 90.0


def find_executable(names: tuple[str, ...]) -> str | None:
    for name in names:
        path = shutil.which(name)
        if path is not None:
            return path
    return None


class ConsoleBrowser:
    """One headless Chromium window; remembers every URL the page requested (from Chrome's
    performance log), so a test can check that none left the serving origin."""

    def __init__(self, browser: str, driver: str, width: int = 1400, height: int = 1000) -> None:
        options = webdriver.ChromeOptions()
        options.binary_location = browser
        for argument in (
            "--headless=new",
            "--no-sandbox",  # CI and this machine run as root, where the sandbox cannot start
            "--disable-dev-shm-usage",
            f"--window-size={width},{height}",
            "--no-first-run",
            "--disable-background-networking",  # no update checks or field trials of its own
        ):
            options.add_argument(argument)
        options.set_capability("goog:loggingPrefs", {"performance": "ALL", "browser": "ALL"})
        self.driver: WebDriver = webdriver.Chrome(service=Service(driver), options=options)
        self.width = width
        self.height = height
        self.requested: list[str] = []

    def close(self) -> None:
        self.driver.quit()

    def get(self, url: str) -> None:
        self.driver.get(url)

    def wait_for(self, condition: Callable[[WebDriver], Any], timeout: float = WAIT_S) -> Any:
        """Until `condition` gives something truthy; an element missing or replaced by the page
        meanwhile (it redraws what it shows) only means "not yet"."""
        return WebDriverWait(
            self.driver,
            timeout,
            poll_frequency=0.25,
            ignored_exceptions=(NoSuchElementException, StaleElementReferenceException),
        ).until(condition)

    # -- the console's own controls (ids of src/omnid/console/static) ---------------------------

    def element(self, css: str) -> WebElement:
        """The first element matching `css`, waiting for it to exist."""
        found: WebElement = self.wait_for(lambda d: d.find_element(By.CSS_SELECTOR, css))
        return found

    def visible(self, css: str) -> list[WebElement]:
        return [e for e in self.driver.find_elements(By.CSS_SELECTOR, css) if e.is_displayed()]

    def cells(self, row_css: str) -> list[str]:
        """The texts of a table row's cells."""
        return [cell.text for cell in self.element(row_css).find_elements(By.TAG_NAME, "td")]

    def open_console(self, console_url: str) -> None:
        self.get(console_url)
        self.wait_for(lambda d: d.execute_script("return document.body.dataset.ready === 'true'"))

    def sign_in(self, console_url: str, token: str) -> None:
        """Opens the console and signs in with `token` (signing out a previous token first)."""
        self.open_console(console_url)
        if self.visible("#sign-out"):
            self.element("#sign-out").click()
        self.element("#token").send_keys(token)
        self.element("#sign-in").click()
        self.element("#signed-in")

    def find(self, identifier_type: str, value: str) -> None:
        """Find by `identifier_type` ("profile_id" for an id), until a profile or an answer
        saying why there is none shows."""
        Select(self.element("#find-type")).select_by_value(identifier_type)
        box = self.element("#find-value")
        box.clear()
        box.send_keys(value)
        self.element("#find-button").click()
        self.wait_for(lambda d: self.visible("#profile-id, #not-found, #candidates"))

    def requests_so_far(self) -> list[str]:
        """URLs of every request the page made since the browser started."""
        for entry in self.driver.get_log("performance"):
            message = json.loads(entry["message"])["message"]
            if message.get("method") == "Network.requestWillBeSent":
                self.requested.append(message["params"]["request"]["url"])
        return list(self.requested)

    def script_errors(self) -> list[str]:
        """Errors the page's scripts raised (answers like 404 an API gives on purpose are
        network entries, not counted)."""
        return [
            entry["message"]
            for entry in self.driver.get_log("browser")
            if entry["level"] == "SEVERE" and entry.get("source") != "network"
        ]

    def screenshot(self, path: Path) -> Path:
        """The whole page, not only the window: the window grows to the page's height."""
        path.parent.mkdir(parents=True, exist_ok=True)
        self.driver.execute_script("window.scrollTo(0, 0)")
        height = self.driver.execute_script("return document.documentElement.scrollHeight")
        self.driver.set_window_size(self.width, max(self.height, min(int(height) + 40, 6000)))
        try:
            self.driver.save_screenshot(str(path))
        finally:
            self.driver.set_window_size(self.width, self.height)
        return path
