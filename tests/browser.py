"""A real headless Chromium (Debian's, never a downloaded one) driven by Playwright's sync API.

Registered for the whole suite by `pytest_plugins` in tests/conftest.py: any test may ask for
the `browser` (one per session) or a fresh `page`, call `screenshot(page, name)`, and collect
what the page reports with `console_errors(page)`.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from playwright.sync_api import Browser, ConsoleMessage, Error, Page, sync_playwright

CHROMIUM = os.environ.get("SEALGATE_TEST_CHROMIUM", "/usr/bin/chromium")
# The machine's network may be closed: without the background-networking flags Chromium keeps
# calling home (component updates, sync, QUIC probes) and floods the log with refused connections.
CHROMIUM_ARGS = [
    "--no-sandbox",  # the tests run as root, where Chromium's sandbox refuses to start
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",  # containers often have a small /dev/shm
]
TIMEOUT_MS = 10_000
SCREENSHOTS = Path(__file__).resolve().parent.parent / ".cache" / "screenshots"


@pytest.fixture(scope="session")
def browser() -> Iterator[Browser]:
    """Debian's Chromium, headless, launched once for the session."""
    if not os.access(CHROMIUM, os.X_OK):
        pytest.fail(f"the browser tests need Chromium at {CHROMIUM}: `make test` installs "
                    "Debian's chromium package (or point SEALGATE_TEST_CHROMIUM at one)")
    playwright = sync_playwright().start()
    try:
        launched = playwright.chromium.launch(executable_path=CHROMIUM, headless=True,
                                              args=CHROMIUM_ARGS)
    except Error:
        playwright.stop()
        raise
    yield launched
    launched.close()
    playwright.stop()


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    """A page in a context of its own (fresh cookies and storage), 10 s default timeout."""
    context = browser.new_context(ignore_https_errors=True)
    context.set_default_timeout(TIMEOUT_MS)
    opened = context.new_page()
    yield opened
    context.close()


def screenshot(page: Page, name: str) -> Path:
    """Save a full-page PNG as .cache/screenshots/<name>.png and return its path."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    return path


def console_errors(page: Page) -> list[str]:
    """A list that fills with the page's console errors (CSP violations are among them) and
    uncaught exceptions, from now on; attach it before navigating. Left out: the failure of
    /favicon.ico, which Chromium fetches on its own after the load, whatever the page says, so
    it is reported or not depending on timing."""
    errors: list[str] = []

    def on_console(message: ConsoleMessage) -> None:
        url = message.location.get("url", "")
        if message.type != "error" or urlsplit(url).path == "/favicon.ico":
            return
        errors.append(f"console: {message.text} ({url})")

    page.on("console", on_console)
    page.on("pageerror", lambda error: errors.append(f"exception: {error}"))
    return errors
