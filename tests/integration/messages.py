"""Messages the milter tests send, and what they look for in what the sink received."""

from __future__ import annotations

import re
import time
import urllib.error
import urllib.parse
import urllib.request
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


def press(link: str, choice: str) -> tuple[str, str]:
    """Open a held message's decision page in a cookie-keeping client and press one button:
    the page, and the answer (an error page's too)."""
    opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor())
    with opener.open(link, timeout=10) as page:
        html = page.read().decode()
    token = re.search(r'name="csrf_token" type="hidden" value="([^"]+)"', html)
    assert token is not None
    form = urllib.parse.urlencode({"csrf_token": token.group(1), "choice": choice}).encode()
    try:
        with opener.open(urllib.request.Request(link, data=form, method="POST"),
                         timeout=30) as answer:
            return html, answer.read().decode()
    except urllib.error.HTTPError as error:
        return html, error.read().decode()
