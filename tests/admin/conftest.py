"""The admin console and API through Flask's test client, on SQLite and PostgreSQL: an
administrator signed in with password and authenticator, and API keys with chosen scopes."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

import pyotp
import pytest
from flask import Flask
from flask.testing import FlaskClient

from sealgate.vault import admins
from sealgate.vault.vault import Vault
from tests.portal.conftest import app as app  # the fixtures, for this folder
from tests.portal.conftest import client as client
from tests.portal.conftest import config as config
from tests.portal.conftest import csrf
from tests.portal.conftest import sink as sink

ADMIN = "it@example.org"
PASSWORD = "correct horse battery staple 42"


def add_admin(vault: Vault, address: str = ADMIN, password: str = PASSWORD) -> None:
    with vault.database.writing() as db:
        admins.add(db, address, password)


def totp_secret(page: bytes) -> str:
    marker = b'id="totp-key">'
    start = page.index(marker) + len(marker)
    return page[start:page.index(b"<", start)].decode()


def code_after(secret: str, vault: Vault, address: str = ADMIN) -> str:
    """A code for a step later than the last one accepted (each code counts once)."""
    with vault.database.session() as db:
        found = admins.find(db, address)
        assert found is not None
        last = found.totp_last_step
    totp = pyotp.TOTP(secret)
    step = max(int(datetime.now(UTC).timestamp()) // 30 - 1, (last or 0) + 1)
    return totp.generate_otp(step)


def sign_in(browser_client: FlaskClient, vault: Vault, address: str = ADMIN,
            password: str = PASSWORD) -> str:
    """Password, then the authenticator (set up at the first sign-in); the TOTP secret."""
    client = browser_client
    page = client.get("/admin/signin")
    response = client.post("/admin/signin", data={"csrf_token": csrf(page.data),
                                                   "address": address, "password": password})
    assert response.status_code == 302, response.data
    assert "/admin/signin/authenticator" in response.headers["Location"]
    page = client.get("/admin/signin/authenticator")
    secret = totp_secret(page.data)
    response = client.post("/admin/signin/authenticator", data={
        "csrf_token": csrf(page.data), "code": pyotp.TOTP(secret).now()})
    assert response.status_code == 302, response.data
    return secret


@pytest.fixture
def console(client: FlaskClient, vault: Vault) -> FlaskClient:
    """A test client signed in as an administrator."""
    add_admin(vault)
    sign_in(client, vault)
    return client


def make_key(vault: Vault, scopes: Iterable[str], name: str = "automation") -> str:
    with vault.database.writing() as db:
        _, token = admins.create_key(db, name, scopes, ADMIN, datetime.now(UTC))
    return token


def bearer(token: str) -> dict[str, Any]:
    return {"Authorization": f"Bearer {token}"}


@pytest.fixture
def api(app: Flask, vault: Vault) -> FlaskClient:
    return app.test_client()


