"""Secure replies from the portal: what the sender's mailbox gets, what is sealed in the vault,
reply-all to someone outside the organisation, the size limit, an MTA that does not answer,
the CSRF check, and messages that can no longer be answered."""

from __future__ import annotations

import io
import re
import uuid
from datetime import timedelta
from typing import Any
from urllib.parse import urlsplit

from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select, update

from sealgate.config import Config
from sealgate.lab.sink import SmtpSink
from sealgate.mail.notification import NOTIFICATION_ID_HEADER
from sealgate.server.app import create_app
from sealgate.server.links import tracking_link
from sealgate.server.portal.identity import now
from sealgate.vault.models import (
    AuditEvent,
    DeliveryMethod,
    MessageState,
    PartKind,
    SecureMessage,
)
from sealgate.vault.vault import Vault
from tests.portal.conftest import (
    OTHER,
    PATIENT,
    SENDER,
    configured,
    csrf,
    deposit,
    mail_to,
    original,
    sign_in_with_code,
    text_of,
)

REPLY_TEXT = "Thank you, doctor. The scan from Tuesday is attached."
SCAN = b"%PDF-1.7 scan " + bytes(range(256)) * 64


def events(vault: Vault, action: str) -> list[AuditEvent]:
    with vault.database.session() as db:
        return list(db.scalars(select(AuditEvent).where(AuditEvent.action == action)
                               .order_by(AuditEvent.seq)))


def replies_to(vault: Vault, message_id: str) -> list[SecureMessage]:
    with vault.database.session() as db:
        found = db.scalars(select(SecureMessage).where(
            SecureMessage.in_reply_to_id == uuid.UUID(message_id))).all()
        for message in found:
            list(message.recipients)  # loaded while the session is open
        return list(found)


def delivered_to(sink: SmtpSink, address: str) -> int:
    return len([m for m in sink.messages if address in m.rcpt_tos])


def post_reply(client: FlaskClient, message_id: str, text: str = REPLY_TEXT,
               files: tuple[tuple[str, str, bytes], ...] = (), reply_all: bool = False,
               token: str | None = None) -> Any:
    if token is None:
        page = client.get(f"/m/{message_id}/reply" + ("?all=1" if reply_all else ""))
        assert page.status_code == 200, page.data
        token = csrf(page.data)
    data: dict[str, Any] = {"csrf_token": token, "text": text,
                            "attachments": [(io.BytesIO(content), name, kind)
                                            for name, kind, content in files]}
    if reply_all:
        data["reply_all"] = "y"
    return client.post(f"/m/{message_id}/reply", data=data, content_type="multipart/form-data")


def tracking_path(config: Config, message_id: str) -> str:
    return urlsplit(tracking_link(config, uuid.UUID(message_id))).path


def test_a_reply_reaches_the_sender_threaded_with_its_attachment_and_is_sealed(
        client: FlaskClient, vault: Vault, config: Config, sink: SmtpSink) -> None:
    message_id = deposit(vault, config, original(attachments=(
        ("results.pdf", "application/pdf", b"%PDF results"),)))
    sign_in_with_code(client, sink, PATIENT)

    response = post_reply(client, message_id, files=(("scan.pdf", "application/pdf", SCAN),))
    assert response.status_code == 200, response.data
    assert b"Your reply was sent securely" in response.data and SENDER.encode() in response.data

    [delivery] = [m for m in sink.messages if SENDER in m.rcpt_tos]
    assert delivery.rcpt_tos == (SENDER,)
    mail = mail_to(sink, SENDER)[-1]
    assert mail["From"].addresses[0].addr_spec == PATIENT
    assert [a.addr_spec for a in mail["To"].addresses] == [SENDER] and mail["Cc"] is None
    assert mail["Subject"] == "Re: Lab results"
    assert mail["In-Reply-To"] == "<m1@example.org>" and mail["References"] == "<m1@example.org>"
    assert REPLY_TEXT in text_of(mail)
    [attachment] = list(mail.iter_attachments())
    assert attachment.get_filename() == "scan.pdf"
    assert attachment.get_content_type() == "application/pdf"
    assert attachment.get_content() == SCAN

    [sealed] = replies_to(vault, message_id)
    assert sealed.sender == PATIENT and sealed.subject == "Re: Lab results"
    assert sealed.header_message_id == mail["Message-ID"]
    assert [(r.address, r.delivery_method) for r in sealed.recipients] == [
        (SENDER, DeliveryMethod.INTERNAL)]
    parts = {part.kind: part for part in vault.parts(sealed.id)}
    assert vault.read_part(parts[PartKind.TEXT]).decode() == REPLY_TEXT
    assert vault.read_part(parts[PartKind.ATTACHMENT]) == SCAN
    assert parts[PartKind.ATTACHMENT].filename == "scan.pdf"
    assert b"Message-ID" in vault.read_part(parts[PartKind.ORIGINAL])

    [replied] = events(vault, "message.replied")
    assert replied.actor == PATIENT and replied.object_id == message_id
    assert replied.details["reply"] == str(sealed.id) and replied.details["attachments"] == 1

    tracking = client.get(tracking_path(config, message_id))
    assert tracking.status_code == 200 and b"Secure replies received: 1." in tracking.data


def test_reply_all_notifies_the_outside_recipient_who_can_read_it_in_the_portal(
        app: Flask, client: FlaskClient, vault: Vault, config: Config, sink: SmtpSink) -> None:
    message_id = deposit(vault, config, original(to=(PATIENT, OTHER)),
                         recipients=(PATIENT, OTHER))
    sign_in_with_code(client, sink, PATIENT)
    form = client.get(f"/m/{message_id}/reply?all=1")
    assert b"checked" in form.data and OTHER.encode() in form.data

    response = post_reply(client, message_id, reply_all=True, token=csrf(form.data))
    assert response.status_code == 200, response.data
    assert OTHER.encode() in response.data and SENDER.encode() in response.data
    [sealed] = replies_to(vault, message_id)
    assert sorted((r.address, r.delivery_method) for r in sealed.recipients) == [
        (OTHER, DeliveryMethod.PORTAL), (SENDER, DeliveryMethod.INTERNAL)]

    internal = mail_to(sink, SENDER)[-1]
    assert REPLY_TEXT in text_of(internal) and internal["Subject"] == "Re: Lab results"
    [notice] = [m for m in sink.messages if OTHER in m.rcpt_tos]
    assert notice.rcpt_tos == (OTHER,)
    assert b"Thank you, doctor" not in notice.data
    notification = mail_to(sink, OTHER)[-1]
    assert notification[NOTIFICATION_ID_HEADER] == str(sealed.id)
    assert notification["Subject"] == "Re: Lab results"
    assert notification["Reply-To"] == PATIENT
    assert REPLY_TEXT not in text_of(notification)
    assert f"{config.server.base_url}/m/{sealed.id}" in text_of(notification)

    carer = app.test_client()
    sign_in_with_code(carer, sink, OTHER)
    page = carer.get(f"/m/{sealed.id}")
    assert page.status_code == 200 and b"Re: Lab results" in page.data
    assert PATIENT.encode() in page.data
    body = carer.get(f"/m/{sealed.id}/body")
    assert body.status_code == 200 and REPLY_TEXT.encode() in body.data


def test_a_subject_with_a_line_break_still_gives_a_clean_notification(
        client: FlaskClient, vault: Vault, config: Config, sink: SmtpSink) -> None:
    """The subject a deposit carries is the decoded header: an encoded word can hold a line
    break, which must not reach a header of the reply or of its notification."""
    message_id = deposit(vault, config, original(to=(PATIENT, OTHER)),
                         recipients=(PATIENT, OTHER), subject="Lab\r\nBcc: spy@evil.test")
    sign_in_with_code(client, sink, PATIENT)
    response = post_reply(client, message_id, reply_all=True)
    assert response.status_code == 200, response.data
    for mail in (mail_to(sink, SENDER)[-1], mail_to(sink, OTHER)[-1]):
        assert mail["Subject"] == "Re: Lab Bcc: spy@evil.test" and mail["Bcc"] is None
    assert not [m for m in sink.messages if "spy@evil.test" in m.rcpt_tos]


def test_a_reply_over_the_size_limit_is_refused_and_nothing_is_sent_or_sealed(
        settings: Config, vault: Vault, sink: SmtpSink) -> None:
    config = configured(settings, sink, reply_limit_mb=1)
    client = create_app(config, vault).test_client()
    message_id = deposit(vault, config)
    sign_in_with_code(client, sink, PATIENT)
    form = client.get(f"/m/{message_id}/reply")
    assert b"Attachments up to 1 MB in all." in form.data
    # The first is refused on the request's length alone; the second only once it is read.
    for big in (b"x" * 2 * 1024 * 1024, b"x" * (1024 * 1024 + 1)):
        response = post_reply(client, message_id, files=(("big.bin", "application/zip", big),),
                              token=csrf(form.data))
        assert response.status_code == 413
        assert b"larger than 1 MB" in response.data
    assert delivered_to(sink, SENDER) == 0
    assert replies_to(vault, message_id) == [] and events(vault, "message.replied") == []
    assert len(events(vault, "message.deposited")) == 1
    # Just under the limit is fine.
    fits = post_reply(client, message_id, files=(("fits.bin", "application/zip",
                                                  b"x" * (1024 * 1024 - 100)),),
                      token=csrf(form.data))
    assert fits.status_code == 200 and delivered_to(sink, SENDER) == 1


def test_when_the_mta_does_not_answer_nothing_is_sent_and_nothing_stays_sealed(
        settings: Config, vault: Vault, sink: SmtpSink) -> None:
    config = configured(settings, sink, reply_limit_mb=5)
    client = create_app(config, vault).test_client()
    message_id = deposit(vault, config, original(to=(PATIENT, OTHER)),
                         recipients=(PATIENT, OTHER))
    sign_in_with_code(client, sink, PATIENT)
    form = client.get(f"/m/{message_id}/reply")
    sink.stop()  # the relay's port is closed from now on

    response = post_reply(client, message_id, files=(("scan.pdf", "application/pdf", SCAN),),
                          token=csrf(form.data))
    assert response.status_code == 503
    assert b"nothing was sent" in response.data
    # The same form again, to send later: the text kept, the limit and reply-all offered.
    assert REPLY_TEXT.encode() in response.data
    assert b"Attachments up to 5 MB in all." in response.data
    assert b'name="reply_all"' in response.data and OTHER.encode() in response.data
    assert replies_to(vault, message_id) == [] and events(vault, "message.replied") == []
    [deleted] = events(vault, "message.deleted")
    assert deleted.actor == PATIENT and deleted.details["reason"] == "reply not taken by the MTA"
    with vault.database.session() as db:
        assert db.scalars(select(SecureMessage.id)).all() == [uuid.UUID(message_id)]


def test_a_reply_that_reaches_only_some_is_kept_and_the_writer_told_who_is_missing(
        client: FlaskClient, vault: Vault, config: Config, sink: SmtpSink) -> None:
    message_id = deposit(vault, config, original(to=(PATIENT, OTHER)),
                         recipients=(PATIENT, OTHER))
    sign_in_with_code(client, sink, PATIENT)
    sink.refuse = frozenset({OTHER})  # the carer's notice is refused, the doctor's copy goes

    response = post_reply(client, message_id, reply_all=True)
    assert response.status_code == 200
    assert f"could not be delivered to {OTHER}".encode() in response.data
    assert delivered_to(sink, SENDER) == 1 and delivered_to(sink, OTHER) == 0
    [reply] = replies_to(vault, message_id)  # kept: the doctor's copy links nowhere else
    [partly] = events(vault, "message.reply_partly_sent")
    assert partly.details == {"reply": str(reply.id), "missing": [OTHER]}
    assert events(vault, "message.deleted") == []


def test_a_reply_without_the_csrf_token_is_refused_and_sends_nothing(
        client: FlaskClient, vault: Vault, config: Config, sink: SmtpSink) -> None:
    message_id = deposit(vault, config)
    sign_in_with_code(client, sink, PATIENT)
    response = client.post(f"/m/{message_id}/reply", data={"text": REPLY_TEXT},
                           content_type="multipart/form-data")
    assert response.status_code == 400 and b"This form has expired" in response.data
    forged = post_reply(client, message_id, token="not-" + "a" * 40)
    assert forged.status_code == 400
    assert delivered_to(sink, SENDER) == 0 and replies_to(vault, message_id) == []


def test_a_retracted_or_expired_message_cannot_be_replied_to(
        client: FlaskClient, vault: Vault, config: Config, sink: SmtpSink) -> None:
    retracted = deposit(vault, config, subject="Withdrawn one")
    expired = deposit(vault, config, subject="Old one")
    sign_in_with_code(client, sink, PATIENT)
    token = csrf(client.get("/messages").data)
    with vault.database.writing() as db:
        db.execute(update(SecureMessage).where(SecureMessage.id == uuid.UUID(retracted))
                   .values(state=MessageState.RETRACTED, state_changed_at=now()))
        db.execute(update(SecureMessage).where(SecureMessage.id == uuid.UUID(expired))
                   .values(expires_at=now() - timedelta(minutes=1)))

    for message_id, word in ((retracted, b"withdrawn"), (expired, b"expired")):
        page = client.get(f"/m/{message_id}/reply")
        assert page.status_code == 410 and word in page.data
        response = post_reply(client, message_id, token=token)
        assert response.status_code == 410 and word in response.data
        assert replies_to(vault, message_id) == []
    assert delivered_to(sink, SENDER) == 0
    assert not re.search(rb"results are normal", page.data)
