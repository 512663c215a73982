"""Delivery status notifications as Postfix 3.7 writes them (the shapes below were captured
from the lab's Postfix delivering over the verified-TLS transport)."""

from __future__ import annotations

import pytest

from sealgate.mail import dsn
from sealgate.mail.dsn import Outcome


def report(*recipients: str, envid: str = "tok123",
           content_type: str = "multipart/report; report-type=delivery-status") -> bytes:
    groups = "\n".join(recipients)
    envelope = f"Original-Envelope-Id: {envid}\n" if envid else ""
    return f"""From: Mail Delivery System <MAILER-DAEMON@lab.sealgate.test>
Subject: Undelivered Mail Returned to Sender
To: sealgate-dsn@org.test
MIME-Version: 1.0
Content-Type: {content_type};
\tboundary="B1"

--B1
Content-Type: text/plain

This is the mail system at host lab.sealgate.test.

--B1
Content-Description: Delivery report
Content-Type: message/delivery-status

Reporting-MTA: dns; lab.sealgate.test
{envelope}X-Postfix-Queue-ID: CE38720C3F7
Arrival-Date: Sun, 29 Nov 2026 15:33:01 +0000 (UTC)

{groups}
--B1
Content-Type: text/rfc822-headers

From: a@org.test
Subject: hi

--B1--
""".replace("\n", "\r\n").encode()


RELAYED = """Final-Recipient: rfc822; x@good.test
Original-Recipient: rfc822;X@Good.test
Action: relayed
Status: 2.0.0
Remote-MTA: dns; mx.good.test
Diagnostic-Code: smtp; 250 2.0.0 Ok: queued as 1
"""
NOT_VERIFIED = """Final-Recipient: rfc822; y@bad.test
Original-Recipient: rfc822;y@bad.test
Action: failed
Status: 5.7.5
Remote-MTA: dns; mx.bad.test
Diagnostic-Code: X-Postfix; sealgate-retry: Server certificate not verified
"""
NO_MAILBOX = """Final-Recipient: rfc822; gone@good.test
Action: failed
Status: 5.1.1
Remote-MTA: dns; mx.good.test
Diagnostic-Code: smtp; 550 5.1.1 no such user
"""
DELAYED = """Final-Recipient: rfc822; slow@good.test
Action: delayed
Status: 4.4.1
Diagnostic-Code: X-Postfix; connect to mx.good.test: Connection refused
"""


def test_each_recipient_gets_its_outcome() -> None:
    parsed = dsn.parse(report(RELAYED, NOT_VERIFIED, NO_MAILBOX, DELAYED))
    assert parsed is not None
    assert parsed.envelope_id == "tok123"
    got = {r.address: (r.outcome, r.status) for r in parsed.recipients}
    assert got == {
        "x@good.test": (Outcome.DELIVERED, "2.0.0"),  # the original recipient, lower-cased
        "y@bad.test": (Outcome.RETRY, "5.7.5"),  # made permanent by our status filter
        "gone@good.test": (Outcome.FAILED, "5.1.1"),
        "slow@good.test": (Outcome.DELAYED, "4.4.1"),
    }
    first = parsed.recipients[0]
    assert first.remote_mta == "mx.good.test"
    assert first.diagnostic == "250 2.0.0 Ok: queued as 1"


@pytest.mark.parametrize("raw", [
    report(RELAYED, envid=""),  # not one of ours: no envelope id
    report(RELAYED, content_type="multipart/mixed"),
    b"",
    b"\x00\xff garbage",
    b"Content-Type: multipart/report; boundary=\"x\"\r\n\r\n--x\r\nContent-Type: "
    b"message/delivery-status\r\n\r\n",
    report(RELAYED) + b"x" * dsn.MAX_DSN_BYTES,
])
def test_what_is_not_a_report_of_ours_is_none(raw: bytes) -> None:
    assert dsn.parse(raw) is None


def test_recipient_groups_without_an_address_or_action_are_skipped() -> None:
    parsed = dsn.parse(report("Action: failed\nStatus: 5.0.0\n",
                              "Final-Recipient: x400; whatever\nAction: failed\n",
                              RELAYED))
    assert parsed is not None
    assert [r.address for r in parsed.recipients] == ["x@good.test"]
