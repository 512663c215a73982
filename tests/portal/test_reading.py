"""Reading a secure message: the identity check, the sanitised body, attachments, the
message centre, print view, and what every view leaves in the audit trail."""

from __future__ import annotations

import uuid

from flask.testing import FlaskClient
from sqlalchemy import select

from sealgate.config import Config
from sealgate.lab.sink import SmtpSink
from sealgate.vault.models import AuditEvent, Recipient
from sealgate.vault.vault import Vault
from tests.portal.conftest import (
    OTHER,
    PATIENT,
    SENDER,
    deposit,
    mail_to,
    original,
    sign_in_with_code,
    text_of,
)

HOSTILE = ('<p>Dear patient</p><script>alert(1)</script><img src=x onerror="alert(2)">'
           '<a href="javascript:alert(3)">click</a><img src="https://tracker.test/p.gif">'
           '<p style="color:red">Results attached.</p>')


def actions(vault: Vault) -> list[str]:
    with vault.database.session() as db:
        return list(db.scalars(select(AuditEvent.action).order_by(AuditEvent.seq)))


def test_a_recipient_signs_in_with_a_code_and_reads_the_message(
        client: FlaskClient, vault: Vault, config: Config, sink: SmtpSink) -> None:
    message_id = deposit(vault, config, original(html=HOSTILE))
    landing = client.get(f"/m/{message_id}")
    assert landing.status_code == 200 and b"Dr Who" in landing.data
    assert b"Results attached" not in landing.data

    signed_in = sign_in_with_code(client, sink, PATIENT, f"/m/{message_id}")
    assert signed_in.status_code == 302
    assert signed_in.headers["Location"] == f"/m/{message_id}"
    page = client.get(f"/m/{message_id}")
    page.close()  # the read receipt is sent once the page is out
    assert page.status_code == 200
    assert b"Lab results" in page.data and SENDER.encode() in page.data
    assert b"1 picture(s) from the internet were not loaded" in page.data

    body = client.get(f"/m/{message_id}/body")
    assert body.status_code == 200
    assert b"Results attached." in body.data and b"Dear patient" in body.data
    lowered = body.data.lower()
    for marker in (b"<script", b"onerror", b"javascript:", b"tracker.test"):
        assert marker not in lowered
    policy = body.headers["Content-Security-Policy"]
    assert "default-src 'none'" in policy and "sandbox" in policy and "script" not in policy

    remote = client.get(f"/m/{message_id}/body?remote=1")
    assert b"https://tracker.test/p.gif" in remote.data
    assert "https:" in remote.headers["Content-Security-Policy"]

    assert "message.viewed" in actions(vault)
    receipt = mail_to(sink, SENDER)[-1]
    assert receipt["Subject"].startswith("Opened:") and PATIENT in text_of(receipt)
    with vault.database.session() as db:
        opened = db.scalars(select(Recipient.first_opened_at)).one()
    assert opened is not None


def test_attachments_stream_with_their_type_and_a_safe_disposition(
        client: FlaskClient, vault: Vault, config: Config, sink: SmtpSink) -> None:
    pdf = b"%PDF-1.7 " + bytes(range(256)) * 400
    message_id = deposit(vault, config, original(attachments=(
        ("Résultats \"final\".pdf", "application/pdf", pdf),
        ("page.html", "text/html", b"<script>alert(1)</script>"))))
    sign_in_with_code(client, sink, PATIENT)
    page = client.get(f"/m/{message_id}")
    links = [line for line in page.data.decode().split('"') if "/parts/" in line]
    assert len(links) == 2
    first = client.get(links[0])
    assert first.status_code == 200 and first.data == pdf
    assert first.headers["Content-Type"] == "application/pdf"
    disposition = first.headers["Content-Disposition"]
    assert disposition.startswith("attachment;")
    assert "filename*=UTF-8''R%C3%A9sultats%20final.pdf" in disposition
    assert first.headers["Content-Length"] == str(len(pdf))
    html = client.get(links[1])
    assert html.headers["Content-Disposition"].startswith("attachment;")
    assert "sandbox" in html.headers["Content-Security-Policy"]
    assert html.headers["X-Content-Type-Options"] == "nosniff"
    with vault.database.session() as db:
        assert db.scalars(select(Recipient.downloads)).one() == 2
    assert actions(vault).count("message.downloaded") == 2


def test_someone_else_signed_in_cannot_reach_the_message_or_its_parts(
        client: FlaskClient, vault: Vault, config: Config, sink: SmtpSink) -> None:
    message_id = deposit(vault, config, original(attachments=(
        ("a.pdf", "application/pdf", b"%PDF secret"),)))
    # The intruder holds a readable message of their own, so they can get a code.
    deposit(vault, config, recipients=(OTHER,))
    sign_in_with_code(client, sink, OTHER)
    for path in (f"/m/{message_id}", f"/m/{message_id}/body", f"/m/{message_id}/print",
                 f"/m/{message_id}/reply"):
        response = client.get(path)
        assert response.status_code == 404, path
        assert b"results are normal" not in response.data
    with vault.database.session() as db:
        from sealgate.vault.models import Part
        part = db.scalars(select(Part.id).where(Part.message_id == uuid.UUID(message_id),
                                                Part.filename == "a.pdf")).one()
    denied = client.get(f"/m/{message_id}/parts/{part}")
    assert denied.status_code == 404 and b"secret" not in denied.data
    assert "portal.denied" in actions(vault)


def test_nothing_is_reachable_without_signing_in(client: FlaskClient, vault: Vault,
                                                 config: Config) -> None:
    message_id = deposit(vault, config)
    for path in (f"/m/{message_id}/body", f"/m/{message_id}/print", "/messages",
                 f"/m/{message_id}/reply", f"/m/{message_id}/parts/{uuid.uuid4()}"):
        response = client.get(path)
        assert response.status_code == 302, path
        assert response.headers["Location"].startswith("/signin?next=")


def test_the_message_centre_lists_only_the_visitors_messages(
        client: FlaskClient, vault: Vault, config: Config, sink: SmtpSink) -> None:
    deposit(vault, config, subject="For the patient")
    deposit(vault, config, recipients=(OTHER,), subject="For the carer")
    sign_in_with_code(client, sink, PATIENT)
    centre = client.get("/messages")
    assert b"For the patient" in centre.data and b"For the carer" not in centre.data


def test_the_print_view_shows_the_sanitised_body(client: FlaskClient, vault: Vault,
                                                  config: Config, sink: SmtpSink) -> None:
    message_id = deposit(vault, config, original(html=HOSTILE))
    sign_in_with_code(client, sink, PATIENT)
    page = client.get(f"/m/{message_id}/print")
    assert page.status_code == 200 and b"Results attached." in page.data
    assert b"<script>alert" not in page.data and b"onerror" not in page.data


def test_inline_images_are_served_for_the_body(client: FlaskClient, vault: Vault,
                                               config: Config, sink: SmtpSink) -> None:
    png = b"\x89PNG\r\n\x1a\n" + b"\0" * 64
    message_id = deposit(vault, config, original(
        html='<p>Scan:</p><img src="cid:scan1@example.org" alt="scan">',
        inline=(("scan1@example.org", "image/png", png),)))
    sign_in_with_code(client, sink, PATIENT)
    body = client.get(f"/m/{message_id}/body").data.decode()
    source = body.split('src="', 1)[1].split('"', 1)[0]
    assert source.startswith(f"/m/{message_id}/parts/")
    image = client.get(source)
    assert image.data == png and image.headers["Content-Type"] == "image/png"
    assert image.headers["Content-Disposition"].startswith("inline;")
