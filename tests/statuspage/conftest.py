"""Fixtures of the status page's browser tests: a real ``opsmap run`` (see
:mod:`page_site`) and headless Chromium."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from browser import BrowserMissing, chromium
from e2e_support import Processes
from page_site import TRUSTED, Site, start_site
from selenium import webdriver


@pytest.fixture(scope="module")
def processes() -> Iterator[Processes]:
    started = Processes()
    try:
        yield started
    finally:
        started.close()


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory, processes: Processes) -> Iterator[Site]:
    """``opsmap run`` with no identity header: the page is the same for everyone."""
    started = start_site(tmp_path_factory.mktemp("site"), processes, extra_args=[])
    try:
        yield started
    finally:
        started.listener.close()


@pytest.fixture(scope="module")
def trusted_site(tmp_path_factory: pytest.TempPathFactory, processes: Processes) -> Iterator[Site]:
    """``opsmap run`` behind a (pretend) authenticating proxy on 127.0.0.1."""
    started = start_site(
        tmp_path_factory.mktemp("trusted"),
        processes,
        extra_args=TRUSTED,
        headers={"X-Forwarded-Email": "root@example.com"},
    )
    try:
        yield started
    finally:
        started.listener.close()


@pytest.fixture(scope="module")
def browser() -> Iterator[webdriver.Chrome]:
    """Headless Chromium; the test fails (never skips) when it is not installed."""
    try:
        driver = chromium()
    except BrowserMissing as exc:
        pytest.fail(str(exc))
    try:
        yield driver
    finally:
        driver.quit()
