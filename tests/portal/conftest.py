"""The portal through Flask's test client, on SQLite and PostgreSQL, with the mail the server
sends caught by a real SMTP sink on loopback (the relay it is configured to use)."""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from email import message_from_bytes, policy
from email.message import EmailMessage
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient

from sealgate.config import Config
from sealgate.lab.sink import SmtpSink
from sealgate.server.app import create_app
from sealgate.server.deposit import deposit_message
from sealgate.vault.vault import Vault

SENDER = "doctor@example.org"
PATIENT = "patient@gmail.test"
OTHER = "carer@yahoo.test"


@pytest.fixture
def sink() -> Iterator[SmtpSink]:
    with SmtpSink() as started:
        yield started


def configured(settings: Config, sink: SmtpSink, **portal: Any) -> Config:
    """The test's settings with the relay pointed at the sink, and portal options changed."""
    return settings.model_copy(update={
        "outbound": settings.outbound.model_copy(update={"relay": f"127.0.0.1:{sink.port}"}),
        "portal": settings.portal.model_copy(update=portal)})


@pytest.fixture
def config(settings: Config, sink: SmtpSink) -> Config:
    return configured(settings, sink)


@pytest.fixture
def app(config: Config, vault: Vault) -> Flask:
    return create_app(config, vault)


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    return app.test_client()


def original(html: str | None = None, text: str = "Your results are normal.",
             attachments: tuple[tuple[str, str, bytes], ...] = (),
             to: tuple[str, ...] = (PATIENT,), subject: str = "Lab results",
             inline: tuple[tuple[str, str, bytes], ...] = ()) -> bytes:
    message = EmailMessage()
    message["From"] = f"Dr Who <{SENDER}>"
    message["To"] = ", ".join(to)
    message["Subject"] = subject
    message["Message-ID"] = "<m1@example.org>"
    message.set_content(text)
    if html is not None:
        message.add_alternative(html, subtype="html")
        body = message.get_payload()[1]  # type: ignore[index]
        for content_id, kind, data in inline:
            maintype, subtype = kind.split("/")
            body.add_related(data, maintype=maintype, subtype=subtype, cid=f"<{content_id}>")
    for name, kind, data in attachments:
        maintype, subtype = kind.split("/")
        message.add_attachment(data, maintype=maintype, subtype=subtype, filename=name)
    return message.as_bytes()


def deposit(vault: Vault, config: Config, raw: bytes | None = None,
            recipients: tuple[str, ...] = (PATIENT,), subject: str = "Lab results") -> str:
    made = deposit_message(vault, config, raw or original(to=recipients), SENDER,
                           list(recipients), subject)
    return str(made.message_id)


def csrf(page: bytes) -> str:
    found = re.search(rb'name="csrf_token" type="hidden" value="([^"]+)"', page) \
        or re.search(rb'name="csrf_token" value="([^"]+)"', page)
    assert found, "the page carries no CSRF token"
    return found.group(1).decode()


def parsed(data: bytes) -> EmailMessage:
    message = message_from_bytes(data, policy=policy.default)
    assert isinstance(message, EmailMessage)
    return message


def text_of(message: EmailMessage) -> str:
    body = message.get_body(("plain",))
    assert body is not None
    return str(body.get_content())  # type: ignore[attr-defined]


def mail_to(sink: SmtpSink, address: str, count: int = 1) -> list[EmailMessage]:
    """The messages the sink has for `address`, once there are `count` of them."""
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        found = [parsed(m.data) for m in sink.messages if address in m.rcpt_tos]
        if len(found) >= count:
            return found
        time.sleep(0.02)
    raise AssertionError(f"{count} message(s) to {address} expected; the sink has "
                         f"{[m.rcpt_tos for m in sink.messages]}")


def code_from(sink: SmtpSink, address: str) -> str:
    newest = mail_to(sink, address)[-1]
    found = re.search(r"\b(\d{6})\b", text_of(newest))
    assert found, text_of(newest)
    return found.group(1)


def sign_in_with_code(client: FlaskClient, sink: SmtpSink, address: str,
                      next_path: str = "") -> Any:
    """The recipient's way in: ask for a code, read it from the mail, type it."""
    before = len([m for m in sink.messages if address in m.rcpt_tos])
    page = client.get("/signin")
    response = client.post("/signin", data={"csrf_token": csrf(page.data), "address": address,
                                            "next": next_path})
    assert response.status_code == 302, response.data
    mail_to(sink, address, before + 1)
    code = code_from(sink, address)
    form = client.get(response.headers["Location"])
    return client.post("/signin/code", data={"csrf_token": csrf(form.data), "address": address,
                                             "code": code, "next": next_path})
