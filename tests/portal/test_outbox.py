"""Mail sent after the answer has gone (notices, receipts): a failure is logged, not raised."""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from email.message import EmailMessage

import pytest

from sealgate.config import Config
from sealgate.lab.sink import SmtpSink
from sealgate.mail import notices
from sealgate.server.branding import branding
from sealgate.server.outbox import send_after_response
from tests.portal.conftest import SENDER


def receipt_to(config: Config, address: str) -> EmailMessage:
    return notices.read_receipt(branding(config), from_address=config.from_address, to=address,
                                subject="Lab results", reader="patient@gmail.test",
                                opened_at=datetime.now(UTC),
                                tracking_link="https://portal.example.org/t/x")


def test_a_notice_goes_when_it_can(config: Config, sink: SmtpSink) -> None:
    send_after_response(config, lambda: receipt_to(config, SENDER), "receipt")
    assert [m.rcpt_tos for m in sink.wait_for(1)] == [(SENDER,)]


def test_an_unusable_address_or_a_closed_relay_is_logged_not_raised(
        config: Config, sink: SmtpSink, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="sealgate.server.outbox")
    send_after_response(config, lambda: receipt_to(config, ""), "receipt for a bounce")
    sink.stop()
    send_after_response(config, lambda: receipt_to(config, SENDER), "receipt, relay down")
    assert [r.getMessage().split(" not sent")[0] for r in caplog.records
            if " not sent: " in r.getMessage()] == [
        "receipt for a bounce", "receipt, relay down"]
