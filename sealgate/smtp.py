"""Handing one message to an SMTP server on loopback: the milter's re-injection, the lab's
test sends. Asks for 8BITMIME / SMTPUTF8 when the message or the addresses need them."""

from __future__ import annotations

import contextlib
import smtplib
from collections.abc import Sequence


def send(host: str, port: int, mail_from: str, recipients: Sequence[str], data: bytes,
         timeout: float, local_hostname: str | None = None,
         envelope_id: str = "") -> dict[str, tuple[int, bytes]]:
    """One transaction. smtplib's exceptions propagate (they carry `smtp_code`); returns the
    recipients refused while others were accepted (empty when all were). With an
    `envelope_id` (xtext-safe), the MTA reports success and failure for each recipient to
    `mail_from` in a delivery status notification naming it (RFC 3461), headers only."""
    options = [] if data.isascii() else ["BODY=8BITMIME"]
    rcpt_options: list[str] = []
    if envelope_id:
        options += ["RET=HDRS", f"ENVID={envelope_id}"]
        rcpt_options = ["NOTIFY=SUCCESS,FAILURE"]
    if not all(address.isascii() for address in (mail_from, *recipients)):
        options.append("SMTPUTF8")
    client = smtplib.SMTP(host, port, local_hostname=local_hostname, timeout=timeout)
    try:
        return client.sendmail(mail_from, list(recipients), data, mail_options=options,
                               rcpt_options=rcpt_options)
    finally:
        with contextlib.suppress(smtplib.SMTPException, OSError):
            client.quit()
        client.close()
