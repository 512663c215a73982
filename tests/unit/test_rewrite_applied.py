"""`applied`: the message as the MTA delivers it after the milter's changes, which a DKIM
signature made by the milter must cover exactly."""

from __future__ import annotations

from sealgate.mail.message import InboundMessage
from sealgate.mail.rewrite import Changes, applied


def test_changes_are_applied_the_way_the_milter_protocol_applies_them() -> None:
    message = InboundMessage("a@example.org", ("b@gmail.test",), (
        ("Received", "from one"), ("X-Tag", "first"), ("Subject", "encrypt/ Hi"),
        ("X-Tag", "second")), b"old body\r\n")
    changes = Changes(delete_headers=[("X-Tag", 2)], set_headers=[("Subject", "Hi"),
                                                                  ("MIME-Version", "1.0")],
                      add_headers=[("X-Sealgate-Message-Id", "m1")],
                      body=b"line one\nline two\r\n")
    result = applied(message, changes, added=[("Message-ID", "<x@example.org>")])
    assert result == (b"Received: from one\r\nX-Tag: first\r\nSubject: Hi\r\n"
                      b"MIME-Version: 1.0\r\nMessage-ID: <x@example.org>\r\n"
                      b"X-Sealgate-Message-Id: m1\r\n\r\nline one\r\nline two\r\n")


def test_without_changes_the_message_is_as_received() -> None:
    message = InboundMessage("a@example.org", ("b@gmail.test",), (("Subject", "Hi"),),
                             b"body\r\n")
    assert applied(message, Changes()) == message.raw()
