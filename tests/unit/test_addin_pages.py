"""The add-in's static files under /addin/, through Flask's test client: the right types, the
headers Outlook needs to frame them (and nothing wider), and nothing outside addin/src/."""

from __future__ import annotations

import re
from collections.abc import Iterator
from html.parser import HTMLParser
from pathlib import Path

import pytest
from flask import Flask
from flask.testing import FlaskClient

from sealgate import config
from sealgate.server import addin_pages
from sealgate.server.addin_manifest import render_manifest
from sealgate.server.addin_pages import (
    ADDIN_CONTENT_SECURITY_POLICY,
    ADDIN_DIR,
    OUTLOOK_FRAME_ANCESTORS,
)
from sealgate.server.app import create_app

BASE_URL = "https://sealgate.example.org"
OFFICE_JS = "https://appsforoffice.microsoft.com/lib/1/hosted/office.js"
CLIENT_ID = "3f2a8c1e-0b7d-4e5f-9a6b-1c2d3e4f5a6b"
OUTSIDE = ADDIN_DIR.parents[1] / "sealgate" / "server" / "static" / "portal.js"


@pytest.fixture
def app(home: Path) -> Iterator[Flask]:
    settings = config.load(home, {"SEALGATE_SERVER__BASE_URL": BASE_URL,
                                  "SEALGATE_ADDIN__CLIENT_ID": CLIENT_ID})
    made = create_app(settings)
    yield made
    made.extensions["sealgate"].vault.close()


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    return app.test_client()


def directives(policy: str) -> dict[str, list[str]]:
    found = {}
    for directive in policy.split(";"):
        name, *values = directive.split()
        found[name] = values
    return found


@pytest.mark.parametrize(("path", "content_type"), [
    ("taskpane.html", "text/html; charset=utf-8"),
    ("commands.html", "text/html; charset=utf-8"),
    ("commands.js", "text/javascript; charset=utf-8"),
    ("taskpane.js", "text/javascript; charset=utf-8"),
    ("taskpane.css", "text/css; charset=utf-8"),
    ("assets/icon-16.png", "image/png"),
    ("assets/icon-128.png", "image/png"),
])
def test_the_files_are_served_with_their_types(client: FlaskClient, path: str,
                                               content_type: str) -> None:
    response = client.get(f"/addin/{path}")
    assert response.status_code == 200
    assert response.headers["Content-Type"] == content_type
    assert response.data == (ADDIN_DIR / path).read_bytes()


def test_the_headers_let_outlook_frame_the_pages_and_nothing_more(client: FlaskClient) -> None:
    response = client.get("/addin/taskpane.html")
    policy = directives(response.headers["Content-Security-Policy"])
    assert response.headers["Content-Security-Policy"] == ADDIN_CONTENT_SECURITY_POLICY
    assert policy["frame-ancestors"] == list(OUTLOOK_FRAME_ANCESTORS)
    assert all(re.fullmatch(r"https://outlook\.[a-z0-9.]+", host) for host in
               policy["frame-ancestors"])  # named hosts, no wildcard, no 'self'
    assert policy["script-src"] == ["'self'", "https://appsforoffice.microsoft.com"]
    assert policy["default-src"] == ["'self'"] and policy["object-src"] == ["'none'"]
    assert "X-Frame-Options" not in response.headers
    assert not [name for name, _ in response.headers.items() if name.startswith("Access-Control")]
    assert response.headers["Cache-Control"] == "public, max-age=300"
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert response.headers["Strict-Transport-Security"] == "max-age=31536000"


def test_a_missing_addin_file_is_not_framable_either_way(client: FlaskClient) -> None:
    response = client.get("/addin/nothing.html")
    assert response.status_code == 404
    assert "frame-ancestors 'none'" not in response.headers["Content-Security-Policy"]
    assert "X-Frame-Options" not in response.headers


@pytest.mark.parametrize("path", ["/", "/signin", "/no/such/page", "/addin/", "/addin"])
def test_the_portal_keeps_frame_ancestors_none(client: FlaskClient, path: str) -> None:
    response = client.get(path)
    assert "frame-ancestors 'none'" in response.headers["Content-Security-Policy"]
    assert response.headers["X-Frame-Options"] == "DENY"


class _Tags(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.scripts: list[str | None] = []
        self.styles: list[str] = []
        self.inline_styles = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        attributes = dict(attrs)
        if tag == "script":
            self.scripts.append(attributes.get("src"))
        if tag == "link" and attributes.get("rel") == "stylesheet":
            self.styles.append(attributes.get("href") or "")
        if tag == "style" or "style" in attributes:
            self.inline_styles += 1


@pytest.mark.parametrize(("page", "script"), [("commands.html", "commands.js"),
                                              ("taskpane.html", "taskpane.js")])
def test_the_pages_load_office_js_from_microsoft_and_nothing_inline(page: str,
                                                                    script: str) -> None:
    tags = _Tags()
    tags.feed((ADDIN_DIR / page).read_text(encoding="utf-8"))
    assert tags.scripts == [OFFICE_JS, script]  # no inline script: the CSP would block it
    assert tags.inline_styles == 0 and all(not href.startswith(("http:", "https:", "//"))
                                           for href in tags.styles)


def test_every_addin_url_in_the_manifest_is_served(app: Flask, client: FlaskClient) -> None:
    text = render_manifest(app.extensions["sealgate"].config, BASE_URL)  # init set its id
    urls = set(re.findall(rf'"({re.escape(BASE_URL)}/addin/[^"]+)"', text))
    assert len(urls) >= 8
    for url in sorted(urls):
        response = client.get(url.removeprefix(BASE_URL))
        assert response.status_code == 200, url
        assert "X-Frame-Options" not in response.headers


def test_classic_outlook_may_give_commands_js_tokens(client: FlaskClient) -> None:
    response = client.get("/.well-known/microsoft-officeaddins-allowed.json")
    assert response.status_code == 200 and response.mimetype == "application/json"
    assert response.get_json() == {"allowed": [f"{BASE_URL}/addin/commands.js"]}
    assert not [name for name, _ in response.headers.items() if name.startswith("Access-Control")]


@pytest.mark.parametrize("path", [
    "/addin/../sealgate.toml",
    "/addin/%2e%2e/sealgate.toml",
    "/addin/..%2fsealgate.toml",
    "/addin/%2e%2e%2fsealgate.toml",
    "/addin/%252e%252e%252fsealgate.toml",
    # A file outside addin/src/ of a kind that is served: only the path checks stand in the way.
    "/addin/../../sealgate/server/static/portal.js",
    "/addin/%2e%2e/%2e%2e/sealgate/server/static/portal.js",
    "/addin/..%2f..%2fsealgate%2fserver%2fstatic%2fportal.js",
    "/addin/assets/../../../sealgate/server/static/portal.js",
    "/addin/.%2e/.%2e/sealgate/server/static/portal.js",
    "/addin/..\\..\\sealgate\\server\\static\\portal.js",
    "/addin/%2fetc%2fpasswd.js",
    "/addin//etc/passwd.js",
])
def test_nothing_outside_the_addin_folder_is_served(client: FlaskClient, path: str) -> None:
    response = client.get(path, follow_redirects=True)
    assert response.status_code == 404, (path, response.status_code)
    assert OUTSIDE.read_bytes()[:100] not in response.data


def test_only_known_kinds_of_file_are_served(client: FlaskClient, tmp_path: Path,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("page.html", "secret.toml", "tool.py", ".hidden.js", "notes.md"):
        (tmp_path / name).write_text("x")
    (tmp_path / ".git").mkdir()
    (tmp_path / ".git" / "hook.js").write_text("x")
    (tmp_path / "folder.js").mkdir()
    monkeypatch.setattr(addin_pages, "ADDIN_DIR", tmp_path)
    assert client.get("/addin/page.html").status_code == 200
    for name in ("secret.toml", "tool.py", ".hidden.js", "notes.md", ".git/hook.js",
                 "folder.js"):
        assert client.get(f"/addin/{name}").status_code == 404, name


def test_a_server_without_the_addin_files_says_so(client: FlaskClient, tmp_path: Path,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(addin_pages, "ADDIN_DIR", tmp_path / "missing")
    response = client.get("/addin/taskpane.html")
    assert response.status_code == 404
    assert b"add-in&#39;s files are not installed" in response.data or \
        b"add-in's files are not installed" in response.data
