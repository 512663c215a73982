"""Messages the milter tests send, and what they look for in what the sink received."""

from __future__ import annotations

import time
from email import message_from_bytes, policy
from email.message import EmailMessage

from sealgate.lab.sink import Delivered

SECRET_TEXT = "Diagnosis: the results of the biopsy are in."
SECRET_BYTES = b"%PDF-1.7 confidential report"


def compose(subject: str, to: str = "patient@gmail.test", body: str = SECRET_TEXT,
            **headers: str) -> EmailMessage:
    message = EmailMessage()
    message["From"] = "Dr Who <who@example.org>"
    message["To"] = to
    message["Subject"] = subject
    message["Message-ID"] = f"<{time.monotonic_ns()}@example.org>"
    for name, value in headers.items():
        message[name.replace("_", "-")] = value
    message.set_content(body)
    return message


def parsed(delivered: Delivered) -> EmailMessage:
    message = message_from_bytes(delivered.data, policy=policy.default)
    assert isinstance(message, EmailMessage)
    return message


def assert_no_secret(delivered: Delivered) -> None:
    assert SECRET_TEXT.encode() not in delivered.data
    assert b"biopsy" not in delivered.data
    assert SECRET_BYTES not in delivered.data


def notification_link(message: EmailMessage) -> str:
    body = message.get_body(("plain",))
    assert body is not None
    text: str = body.get_content()
    return next(line for line in text.splitlines() if line.startswith("http"))
