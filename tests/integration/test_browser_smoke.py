"""The real server under gunicorn, seen by a real headless Chromium."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Page

from tests.browser import console_errors, screenshot
from tests.integration.helpers import serving


@pytest.fixture
def server(home: Path) -> Iterator[str]:
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
