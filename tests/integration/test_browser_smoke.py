"""The real server under gunicorn, seen by a real headless Chromium."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from playwright.sync_api import Page

from tests.browser import console_errors, screenshot
from tests.conftest import run_cli
from tests.integration.helpers import serving


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    home = tmp_path_factory.mktemp("smoke") / "home"
    run_cli("--home", str(home), "init")
    with serving(home) as base:
        yield base


def test_the_home_page_renders_under_its_policy(server: str, page: Page) -> None:
    errors = console_errors(page)  # CSP violations are reported as console errors
    response = page.goto(f"{server}/")
    assert response is not None and response.status == 200
    assert "Example Organisation" in page.title()
    policy = response.header_value("Content-Security-Policy")
    assert policy and "default-src 'self'" in policy
    page.wait_for_load_state("load")
    assert screenshot(page, "home").stat().st_size > 0
    assert errors == []


# Every visible form control must be named for a screen reader.
UNLABELLED = """() => [...document.querySelectorAll('input, select, textarea')]
  .filter(e => e.type !== 'hidden')
  .filter(e => !(e.labels && e.labels.length) && !e.getAttribute('aria-label'))
  .map(e => e.name || e.id)"""


@pytest.mark.parametrize("path", ["/", "/signin", "/signin/password", "/register", "/forgot"])
def test_sign_in_pages_are_usable_with_a_keyboard_and_a_screen_reader(
        server: str, page: Page, path: str) -> None:
    page.goto(f"{server}{path}")
    assert page.locator("html").get_attribute("lang") == "en"
    assert page.locator("h1").count() == 1
    assert page.evaluate(UNLABELLED) == []
    assert page.locator("img:not([alt])").count() == 0
    # The first thing to focus is the skip link, which leads past the header to the content.
    first = ("document.querySelector('a[href], button, input:not([type=hidden]), select, "
             "textarea').className")
    assert page.evaluate(first) == "skip"
    # Every form can be completed from the keyboard: Tab reaches its submit button.
    if page.locator("main form").count():
        for _ in range(12):
            page.keyboard.press("Tab")
            if page.evaluate("document.activeElement.type") == "submit":
                break
        else:
            raise AssertionError(f"Tab never reached the submit button on {path}")


def test_pages_fit_a_phone_screen(server: str, page: Page) -> None:
    page.set_viewport_size({"width": 360, "height": 740})
    for path in ("/", "/signin", "/register"):
        page.goto(f"{server}{path}")
        assert page.evaluate(
            "document.documentElement.scrollWidth <= window.innerWidth + 1"), path
