"""Playwright (Python) driving Debian's headless chromium; `playwright install` cannot download browsers here.

Every page a journey opens (`page`, and `open_page` for another person's browser) is watched for what the
Content-Security-Policy blocks: a journey fails on any violation, as every page of test_every_page.py does.
"""

import os
import shutil

import pytest

from tests.browser import pages

CHROMIUM = os.environ.get("CHROMIUM_PATH") or shutil.which("chromium") or "/usr/bin/chromium"
CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


@pytest.fixture(scope="package")
def browser():
    if not os.path.exists(CHROMIUM):
        message = "browser tests need Debian's chromium: apt-get install chromium (or set CHROMIUM_PATH)"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    from playwright.sync_api import sync_playwright

    # Playwright's sync API runs an event loop in the test thread; the tests' own ORM calls must still work
    # there. Only for these tests: elsewhere Django's guard catches database access from async code.
    os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"
    try:
        with sync_playwright() as playwright:
            chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_FLAGS)
            yield chromium
            chromium.close()
    finally:
        del os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"]


@pytest.fixture
def csp_violations():
    """What the Content-Security-Policy blocked on the journey's pages; checked once their browsers are closed
    (the last messages have come in by then)."""
    found = []
    yield found
    assert not found, "the Content-Security-Policy blocked:\n" + "\n".join(found)


@pytest.fixture
def open_page(browser, live_server, csp_violations):
    """Opens a page in a browser of its own (another person's: no cookies shared), watched for what the policy
    blocks; `options` go to the browser context (a viewport, say). Closed after the test."""
    contexts = []

    def open_page(**options):
        contexts.append(browser.new_context(base_url=live_server.url, **options))
        page = contexts[-1].new_page()
        page.set_default_timeout(15_000)
        pages.watch_csp(page, csp_violations)
        return page

    yield open_page
    for context in contexts:
        context.close()


@pytest.fixture
def page(open_page):
    return open_page()
