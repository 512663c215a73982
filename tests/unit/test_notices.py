"""The server's own mail: headers, both alternatives, escaping, header injection, threading
and attachments, each checked on the message parsed back from its bytes."""

from __future__ import annotations

import email
import email.policy
from collections.abc import Callable
from datetime import UTC, datetime, timedelta, timezone
from email.message import EmailMessage
from typing import Any

import pytest

from sealgate.mail import notices, notification
from sealgate.mail.notification import Branding

BRANDING = Branding("St. Mary's <Hospital>", footer="1 Main St", disclaimer="Confidential.",
                    logo_url="https://cdn.stmary.test/logo.png?v=1&h=2",
                    support="help@stmary.test")
PLAIN = Branding("Acme")
FROM = "noreply@stmary.test"
TO = "bob@gmail.test"
LINK = "https://portal.stmary.test/t/abc?x=1&y=2"
HOSTILE = "<script>alert(1)</script>"
INJECTION = "Lab results\r\nBcc: x@evil.test"
OPENED = datetime(2025, 3, 14, 9, 5, tzinfo=UTC)


def parsed(msg: EmailMessage) -> EmailMessage:
    result = email.message_from_bytes(msg.as_bytes(), policy=email.policy.default)
    assert isinstance(result, EmailMessage)
    return result


def bodies(msg: EmailMessage) -> tuple[str, str]:
    text = msg.get_body(("plain",))
    html = msg.get_body(("html",))
    assert text is not None and html is not None
    return (text.get_content().replace("\r\n", "\n"),
            html.get_content().replace("\r\n", "\n"))


NOTICES: dict[str, Callable[..., EmailMessage]] = {
    "login_code": lambda b, **kw: notices.login_code(b, code="123456", minutes=10, **kw),
    "verify_address": lambda b, **kw: notices.verify_address(b, link=LINK, hours=24, **kw),
    "password_reset": lambda b, **kw: notices.password_reset(b, link=LINK, minutes=30, **kw),
    "sent_securely": lambda b, **kw: notices.sent_securely(
        b, subject="Lab results", recipients=["ann@a.test", "Bo <bo@b.test>"],
        tracking_link=LINK, **kw),
    "read_receipt": lambda b, **kw: notices.read_receipt(
        b, subject="Lab results", reader="ann@a.test", opened_at=OPENED,
        tracking_link=LINK, **kw),
}


@pytest.mark.parametrize("name", NOTICES)
def test_every_notice_has_the_headers_of_automatic_mail(name: str) -> None:
    msg = parsed(NOTICES[name](BRANDING, from_address=FROM, to=f"Bob <{TO}>"))
    assert msg["From"].addresses[0].display_name == "St. Mary's <Hospital>"
    assert msg["From"].addresses[0].addr_spec == FROM
    assert [a.addr_spec for a in msg["To"].addresses] == [TO]
    assert msg["Subject"] and msg["Date"].datetime.tzinfo is not None
    assert msg["Message-ID"].startswith("<") and msg["Message-ID"].endswith("@stmary.test>")
    assert msg["Auto-Submitted"] == "auto-generated"
    assert msg.get_content_type() == "multipart/alternative"
    assert msg["MIME-Version"] == "1.0"
    assert all(part["MIME-Version"] is None for part in msg.iter_parts())
    text, html = bodies(msg)
    for alternative in (text, html):
        assert "1 Main St" in alternative and "Confidential." in alternative
        assert "Need help?" in alternative and "help@stmary.test" in alternative
    assert 'src="https://cdn.stmary.test/logo.png?v=1&amp;h=2"' in html
    assert "St. Mary&#x27;s &lt;Hospital&gt;" in html and "<Hospital>" not in html
    assert "password" not in text.lower() or name in ("login_code", "password_reset")


@pytest.mark.parametrize("name", NOTICES)
def test_message_ids_are_fresh(name: str) -> None:
    ids = {NOTICES[name](PLAIN, from_address=FROM, to=TO)["Message-ID"] for _ in range(3)}
    assert len(ids) == 3


def test_login_code_is_in_both_alternatives_and_prominent() -> None:
    msg = parsed(notices.login_code(BRANDING, from_address=FROM, to=TO, code="123456",
                                    minutes=10))
    assert msg["Subject"] == "Your St. Mary's <Hospital> secure message code"
    assert "123456" not in msg["Subject"]
    text, html = bodies(msg)
    assert "Your code to open your secure message is 123456." in text
    assert "It works once, for 10 minutes." in text
    assert "font-size:32px" in html and ">123456</p>" in html
    assert "never ask you for it, or for your password" in text


def test_verify_address_link_and_lifetime() -> None:
    msg = parsed(notices.verify_address(PLAIN, from_address=FROM, to=TO, link=LINK, hours=1))
    text, html = bodies(msg)
    assert LINK in text and "1 hour." in text
    assert f'href="{LINK.replace("&", "&amp;")}"' in html and "Confirm my email address" in html
    assert "Confirm your email address" in msg["Subject"]


def test_password_reset_says_two_step_verification_still_applies() -> None:
    msg = parsed(notices.password_reset(PLAIN, from_address=FROM, to=TO, link=LINK,
                                        minutes=30))
    text, html = bodies(msg)
    assert LINK in text and "30 minutes" in text
    for alternative in (text, html):
        assert "only resets your password" in alternative
        assert "authenticator app" in alternative and "recovery codes" in alternative
    assert "Choose a new password" in html and LINK.replace("&", "&amp;") in html


def test_sent_securely_names_the_subject_and_recipients() -> None:
    msg = parsed(NOTICES["sent_securely"](PLAIN, from_address=FROM, to=TO))
    assert msg["Subject"] == "Sent securely: Lab results"
    text, html = bodies(msg)
    assert "Your message “Lab results” was sent securely to ann@a.test and Bo <bo@b.test>." \
        in text
    assert "Bo &lt;bo@b.test&gt;" in html
    for alternative in (text, html):
        assert "See who has opened it, or withdraw it" in alternative
    assert LINK in text and LINK.replace("&", "&amp;") in html


def test_sent_securely_shortens_a_long_recipient_list() -> None:
    recipients = [f"r{n}@x.test" for n in range(25)]
    msg = parsed(notices.sent_securely(PLAIN, from_address=FROM, to=TO, subject="",
                                       recipients=recipients, tracking_link=LINK))
    text, _ = bodies(msg)
    assert "r8@x.test and 16 others." in text and "r9@x.test" not in text
    assert "(no subject)" in text and msg["Subject"] == "Sent securely: (no subject)"


def test_read_receipt_has_reader_subject_and_a_readable_utc_date() -> None:
    msg = parsed(NOTICES["read_receipt"](PLAIN, from_address=FROM, to=TO))
    text, html = bodies(msg)
    sentence = ("ann@a.test opened your secure message “Lab results” on 14 March 2025 at "
                "09:05 UTC.")
    assert sentence in text and sentence in html
    assert msg["Subject"] == "Opened: Lab results"


def test_dates_are_converted_to_utc() -> None:
    paris = datetime(2025, 3, 14, 10, 5, tzinfo=timezone(timedelta(hours=1)))
    assert notices.human_date(paris) == "14 March 2025 at 09:05 UTC"
    assert notices.human_date(datetime(2025, 12, 1, 23, 59)) == "1 December 2025 at 23:59 UTC"


def test_user_values_are_escaped_in_html() -> None:
    hostile = Branding(HOSTILE, footer=HOSTILE, disclaimer=HOSTILE, support=HOSTILE,
                       colour="red;background:url(x)", logo_url="javascript:alert(1)")
    messages = [
        notices.sent_securely(hostile, from_address=FROM, to=TO, subject=HOSTILE,
                              recipients=[HOSTILE], tracking_link=LINK),
        notices.read_receipt(hostile, from_address=FROM, to=TO, subject=HOSTILE,
                             reader=HOSTILE, opened_at=OPENED, tracking_link=LINK),
        notices.login_code(hostile, from_address=FROM, to=TO, code=HOSTILE, minutes=5),
    ]
    for msg in messages:
        text, html = bodies(parsed(msg))
        assert "<script>" not in html and "&lt;script&gt;alert(1)&lt;/script&gt;" in html
        assert HOSTILE in text  # plain text needs no escaping
        assert "javascript:" not in html and "url(x)" not in html


@pytest.mark.parametrize("name", NOTICES)
def test_header_injection_through_the_organisation_name_is_inert(name: str) -> None:
    branding = Branding("Acme\r\nBcc: x@evil.test")
    msg = parsed(NOTICES[name](branding, from_address=FROM, to=TO))
    assert msg["Bcc"] is None and len(msg["From"].addresses) == 1
    assert "\n" not in msg["Subject"]


def test_header_injection_through_a_subject_is_inert() -> None:
    for msg in (
        notices.sent_securely(PLAIN, from_address=FROM, to=TO, subject=INJECTION,
                              recipients=[TO], tracking_link=LINK),
        notices.read_receipt(PLAIN, from_address=FROM, to=TO, subject=INJECTION,
                             reader="x\r\nBcc: y@evil.test", opened_at=OPENED,
                             tracking_link=LINK),
        _reply(subject=INJECTION, from_name="Bob\r\nBcc: x@evil.test"),
    ):
        raw = msg.as_bytes()
        back = parsed(msg)
        assert back["Bcc"] is None and b"\r\nBcc:" not in raw
        assert "Lab results" in back["Subject"] and "\n" not in back["Subject"]
        assert len(back["From"].addresses) == 1


@pytest.mark.parametrize("odd", [
    "\x00\x01\x7f\x85\u2028\u2029\v\f\x1c", "\ud800 lone surrogate", "\u202egnp.exe",
    "x" * 5000, "", "=?utf-8?q?encoded?=", "a" * 80 + " " + "é" * 300, "\t\t",
])
def test_odd_values_never_raise(odd: str) -> None:
    branding = Branding(odd, footer=odd, disclaimer=odd, support=odd, colour=odd,
                        logo_url=odd)
    for msg in (
        notices.login_code(branding, from_address=FROM, to=TO, code=odd, minutes=0),
        notices.verify_address(branding, from_address=FROM, to=TO, link=odd, hours=2),
        notices.password_reset(branding, from_address=FROM, to=TO, link=odd, minutes=1),
        notices.sent_securely(branding, from_address=FROM, to=TO, subject=odd,
                              recipients=[odd, odd], tracking_link=odd),
        notices.read_receipt(branding, from_address=FROM, to=TO, subject=odd, reader=odd,
                             opened_at=OPENED, tracking_link=odd),
        _reply(subject=odd, from_name=odd, text=odd, via_organisation=odd,
               attachments=[(odd, odd, odd.encode("utf-8", "surrogatepass"))],
               in_reply_to=odd, references=odd),
    ):
        raw = msg.as_bytes()
        assert raw.isascii()
        assert max(len(line) for line in raw.split(b"\r\n")) <= 998
        parsed(msg)


@pytest.mark.parametrize("address", [
    "", "not an address", "a@b.test, c@d.test", "jörg@example.test", "Grp: a@b.test;",
    "a@", "@b.test", "a b@c.test",
])
def test_an_invalid_address_is_a_value_error(address: str) -> None:
    with pytest.raises(ValueError, match="not a valid email address"):
        notices.login_code(PLAIN, from_address=FROM, to=address, code="1", minutes=1)
    with pytest.raises(ValueError):
        _reply(to=[address])


def test_an_internationalised_domain_is_written_in_ascii() -> None:
    msg = parsed(notices.login_code(PLAIN, from_address="noreply@exämple.test",
                                    to="Jörg <jorg@bücher.test>", code="1", minutes=1))
    assert msg["To"].addresses[0].addr_spec == "jorg@xn--bcher-kva.test"
    assert msg["To"].addresses[0].display_name == "Jörg"
    assert msg["Message-ID"].endswith("@xn--exmple-cua.test>")


def _reply(**overrides: Any) -> EmailMessage:
    values: dict[str, Any] = {
        "from_address": "bob@gmail.test", "from_name": "Bob Builder",
        "to": ["Dr Who <who@stmary.test>"], "cc": [], "subject": "Lab results",
        "text": "Thank you.\nBob", "attachments": [], "in_reply_to": "<orig@stmary.test>",
        "references": "<first@stmary.test> <second@gmail.test>",
        "via_organisation": "Acme",
    }
    values.update(overrides)
    return notices.reply_message(**values)


def test_reply_is_from_the_replier_and_threads_under_the_original() -> None:
    msg = parsed(_reply(cc=["ann@stmary.test"]))
    assert msg["From"].addresses[0].display_name == "Bob Builder"
    assert msg["From"].addresses[0].addr_spec == "bob@gmail.test"
    assert [a.addr_spec for a in msg["To"].addresses] == ["who@stmary.test"]
    assert [a.addr_spec for a in msg["Cc"].addresses] == ["ann@stmary.test"]
    assert msg["Subject"] == "Re: Lab results"
    assert msg["In-Reply-To"] == "<orig@stmary.test>"
    assert msg["References"] == "<first@stmary.test> <second@gmail.test> <orig@stmary.test>"
    assert msg["Auto-Submitted"] is None and msg["X-Sealgate-Reply"] == "yes"
    assert msg["Message-ID"].endswith("@gmail.test>")
    assert msg.get_content_type() == "text/plain"
    assert msg.get_content().replace("\r\n", "\n") == ("Thank you.\nBob\n\n-- \n"
                                 "Sent securely through Acme's secure message portal.\n")


@pytest.mark.parametrize("subject, expected", [
    ("re: Lab results", "re: Lab results"),
    ("RE:Lab results", "RE:Lab results"),
    ("Re : x", "Re : x"),
    ("Results re: lab", "Re: Results re: lab"),
    ("", "Re: "),
])
def test_reply_subject_gets_re_once(subject: str, expected: str) -> None:
    assert str(parsed(_reply(subject=subject))["Subject"]).rstrip() == expected.rstrip()


def test_reply_threading_headers_only_when_given() -> None:
    msg = parsed(_reply(in_reply_to=None, references=None, cc=[]))
    assert msg["In-Reply-To"] is None and msg["References"] is None and msg["Cc"] is None
    only_parent = parsed(_reply(in_reply_to="orig@stmary.test", references=None))
    assert only_parent["In-Reply-To"] == "<orig@stmary.test>"
    assert only_parent["References"] == "<orig@stmary.test>"
    only_references = parsed(_reply(in_reply_to=None, references="<a@x.test>\r\n <b@y.test>"))
    assert only_references["In-Reply-To"] is None
    assert only_references["References"] == "<a@x.test> <b@y.test>"
    repeated = parsed(_reply(in_reply_to="<b@y.test>", references="<b@y.test> <a@x.test>"))
    assert repeated["References"] == "<a@x.test> <b@y.test>"


def test_long_message_ids_are_never_encoded() -> None:
    long_ids = [f"<{'x' * 120}.{n}@very-long-domain.example.test>" for n in range(30)]
    msg = _reply(in_reply_to=long_ids[-1], references=" ".join(long_ids[:-1]))
    raw = msg.as_bytes()
    assert b"=?" not in raw
    back = parsed(msg)
    chain = back["References"].split()
    assert len(chain) == 20 and chain[0] == long_ids[0] and chain[-1] == long_ids[-1]
    assert back["In-Reply-To"] == long_ids[-1]


def test_reply_attachments_round_trip_with_safe_names() -> None:
    pdf = b"%PDF-1.7\n" + bytes(range(256))
    msg = parsed(_reply(attachments=[
        ("Résumé – été 2025.pdf", "application/pdf", pdf),
        ("../../etc/passwd", "text/plain; charset=utf-8", b"hello\n"),
        ("..\\evil\r\n.exe", "bogus type", b"MZ"),
        ("forwarded.eml", "message/rfc822", b"Subject: x\r\n\r\nbody\r\n"),
    ]))
    assert msg.get_content_type() == "multipart/mixed"
    parts = list(msg.iter_attachments())
    assert [(p.get_filename(), p.get_content_type()) for p in parts] == [
        ("Résumé – été 2025.pdf", "application/pdf"),
        ("passwd", "text/plain"),
        ("evil .exe", "application/octet-stream"),
        ("forwarded.eml", "application/octet-stream"),
    ]
    assert parts[0].get_payload(decode=True) == pdf
    assert parts[1].get_payload(decode=True) == b"hello\n"
    body = msg.get_body(("plain",))
    assert body is not None and "Thank you." in body.get_content()


def test_safe_filename() -> None:
    assert notices.safe_filename("") == "attachment"
    assert notices.safe_filename("...") == "attachment"
    assert notices.safe_filename("C:\\Users\\x\\.bashrc") == "bashrc"
    long_name = notices.safe_filename("a" * 400 + ".docx")
    assert len(long_name) == 150 and long_name.endswith(".docx")


def test_reply_needs_a_recipient() -> None:
    with pytest.raises(ValueError):
        _reply(to=[])


def test_clean_makes_one_safe_line() -> None:
    assert notices.clean("a\r\nb\tc\x00d\u2028e\u202ef") == "a b c d e f"
    assert notices.clean("\ud800") == "\ufffd"
    assert notices.clean("x" * 20, limit=10) == "x" * 9 + "…"


def test_the_recipient_notification_shows_the_name_not_a_remote_logo_and_support() -> None:
    # A remote image in a short HTML part is scored as image spam (tests/unit/test_dkim.py).
    built = notification.build(BRANDING, "Dr Who", "Lab results", LINK)
    mime = email.message_from_bytes(f"Content-Type: {built.content_type}\r\n\r\n".encode()
                                    + built.body, policy=email.policy.default)
    assert isinstance(mime, EmailMessage)
    text, html = bodies(mime)
    assert "<img" not in html and "cdn.stmary.test" not in html
    assert "St. Mary&#x27;s &lt;Hospital&gt;</td>" in html
    assert 'Need help? <a href="mailto:help@stmary.test">help@stmary.test</a>' in html
    assert "--\n1 Main St\nNeed help? help@stmary.test\n\nConfidential.\n" in text


@pytest.mark.parametrize("support, rendered", [
    ("https://help.stmary.test/?a=1&b=2",
     '<a href="https://help.stmary.test/?a=1&amp;b=2">https://help.stmary.test/?a=1&amp;b=2</a>'),
    ("+44 20 7946 0000", "+44 20 7946 0000"),
    ("javascript:alert(1)", "javascript:alert(1)"),
])
def test_support_is_linked_only_when_it_is_an_address_or_web_link(support: str,
                                                                   rendered: str) -> None:
    html = notification.html_frame(Branding("Acme", support=support), "<p>x</p>")
    assert f"<p>Need help? {rendered}</p>" in html


def test_without_a_logo_the_header_names_the_organisation() -> None:
    html = notification.html_frame(Branding("Acme & Co", logo_url="ftp://x.test/l.png"), "")
    assert "<img" not in html and ">Acme &amp; Co</td>" in html
    assert "Need help?" not in html and "border-top" not in html
    assert notification.text_frame(Branding("Acme"), "Body\n") == "Body\n"
