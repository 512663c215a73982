"""One branding in the configuration, on portal pages and in the mail the server writes; and
rate-limit counters shared through Redis when configured."""

from __future__ import annotations

import base64
from pathlib import Path

import redis
from flask.testing import FlaskClient

from sealgate.config import Config
from sealgate.lab.sink import SmtpSink
from sealgate.server.app import create_app
from sealgate.vault.vault import Vault
from tests.portal.conftest import PATIENT, configured, csrf, deposit, mail_to

PNG = base64.b64decode(
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg==")


def branded(settings: Config, sink: SmtpSink, home: Path) -> Config:
    (home / "logo.png").write_bytes(PNG)
    config = configured(settings, sink)
    return config.model_copy(update={"organisation": config.organisation.model_copy(update={
        "name": "St. Mary's Hospital", "colour": "#7a1f5c", "logo": "logo.png",
        "footer": "1 Main Street, Springfield", "disclaimer": "Confidential patient data.",
        "support": "helpdesk@stmarys.example"})})


def test_pages_and_mails_carry_the_same_branding(settings: Config, vault: Vault,
                                                 sink: SmtpSink, home: Path) -> None:
    config = branded(settings, sink, home)
    client = create_app(config, vault).test_client()
    deposit(vault, config)
    page = client.get("/signin").data.decode()
    for text in ("St. Mary&#39;s Hospital", "1 Main Street, Springfield",
                 "Confidential patient data.", "helpdesk@stmarys.example", "/brand/logo"):
        assert text in page, text
    assert "#7a1f5c" in client.get("/brand.css").data.decode()
    logo = client.get("/brand/logo")
    assert logo.data == PNG and logo.headers["Content-Type"] == "image/png"

    client.post("/signin", data={"csrf_token": csrf(client.get("/signin").data),
                                 "address": PATIENT})
    mail = mail_to(sink, PATIENT)[0]
    html = mail.get_body(("html",)).get_content()  # type: ignore[union-attr]
    text = mail.get_body(("plain",)).get_content()  # type: ignore[union-attr]
    assert "St. Mary&#x27;s Hospital" in html or "St. Mary&#39;s Hospital" in html
    assert f"{config.server.base_url}/brand/logo" in html
    for fragment in ("1 Main Street, Springfield", "Confidential patient data.",
                     "helpdesk@stmarys.example"):
        assert fragment in text and fragment in html
    assert mail["From"].addresses[0].display_name == "St. Mary's Hospital"


def test_without_a_logo_none_is_served(client: FlaskClient) -> None:
    assert client.get("/brand/logo").status_code == 404
    assert b"/brand/logo" not in client.get("/signin").data


def test_rate_limits_are_shared_through_redis_when_configured(settings: Config, vault: Vault,
                                                              sink: SmtpSink) -> None:
    database = 15  # a database of the local Redis that only these tests use
    store = redis.Redis(host="127.0.0.1", port=6379, db=database)
    store.flushdb()
    config = configured(settings, sink,
                        rate_limit_storage=f"redis://127.0.0.1:6379/{database}")
    client = create_app(config, vault).test_client()
    page = client.get("/signin/password")
    try:
        statuses = [client.post("/signin/password", data={
            "csrf_token": csrf(page.data), "address": PATIENT, "password": "x"}).status_code
            for _ in range(3)]
        assert statuses == [200, 200, 200]
        keys = [key.decode() for key in store.keys("*")]
        assert any("password_sign_in" in key for key in keys), keys
    finally:
        store.flushdb()
