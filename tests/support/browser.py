"""Headless Chromium driven by Selenium: Debian's chromium and chromium-driver, nothing
downloaded (Selenium Manager is kept offline)."""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

from selenium import webdriver
from selenium.common.exceptions import StaleElementReferenceException, WebDriverException
from selenium.webdriver.chrome.service import Service

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
WAIT_S = 30.0
"""Bound of every wait in the browser: a hang guard, not a performance assertion."""

T = TypeVar("T")


class BrowserMissing(RuntimeError):
    """Chromium or its driver is not installed (the tests fail: .ci/run installs them)."""


def chromium(*, width: int = 1400, height: int = 1000) -> webdriver.Chrome:
    """A headless Chromium; :class:`BrowserMissing` when it is not installed."""
    for path in (CHROMIUM, CHROMEDRIVER):
        if not path.is_file():
            raise BrowserMissing(f"{path} is missing: install Debian's chromium, chromium-driver")
    os.environ["SE_OFFLINE"] = "true"  # Selenium Manager never downloads a browser or driver
    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for arg in (
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--disable-extensions",
        "--no-first-run",
        f"--window-size={width},{height}",
        "--force-device-scale-factor=1",
    ):
        options.add_argument(arg)
    return webdriver.Chrome(service=Service(executable_path=str(CHROMEDRIVER)), options=options)


def wait_until(probe: Callable[[], T | bool | None], *, what: str, timeout: float = WAIT_S) -> T:
    """Poll ``probe`` until it returns something truthy; AssertionError after ``timeout``."""
    deadline = time.monotonic() + timeout
    last: BaseException | None = None
    while time.monotonic() < deadline:
        try:
            value = probe()
            if value:
                return value  # type: ignore[return-value]
        except (StaleElementReferenceException, WebDriverException) as exc:
            last = exc
        time.sleep(0.05)
    detail = f" (last error: {last})" if last else ""
    raise AssertionError(f"timed out waiting for {what}{detail}")
