"""The sender's side: the signed tracking link (who opened, how, downloads), withdrawing a
message, its expiry, a question a recipient must answer first, the "sent securely" notice
and the read receipts that carry the link."""

from __future__ import annotations

import base64
import re
import uuid
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

from flask import Flask
from flask.testing import FlaskClient
from itsdangerous import URLSafeSerializer
from sqlalchemy import select, update

from sealgate.config import Config
from sealgate.lab.sink import SmtpSink
from sealgate.server.app import create_app
from sealgate.server.deposit import deposit_message
from sealgate.server.links import tracking_link, tracking_token
from sealgate.server.portal.identity import now
from sealgate.vault.models import AuditEvent, MessageState, Part, Recipient, SecureMessage
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

PDF = b"%PDF-1.7 results"


def tracking_path(config: Config, message_id: str) -> str:
    return urlsplit(tracking_link(config, uuid.UUID(message_id))).path


def form_token(page: bytes, prefix: str) -> str:
    """The CSRF token of one of the tracking page's forms (each has its own field prefix)."""
    found = re.search(rf'name="{prefix}-csrf_token" type="hidden" value="([^"]+)"'.encode(),
                      page)
    assert found, f"the page has no {prefix}- form"
    return found.group(1).decode()


def row_of(page: bytes, address: str) -> str:
    [row] = [r for r in page.decode().split("<tr>") if f">{address}</td>" in r]
    return row


def events(vault: Vault, action: str) -> list[AuditEvent]:
    with vault.database.session() as db:
        return list(db.scalars(select(AuditEvent).where(AuditEvent.action == action)
                               .order_by(AuditEvent.seq)))


def stored(vault: Vault, message_id: str) -> SecureMessage:
    with vault.database.session() as db:
        found = db.get(SecureMessage, uuid.UUID(message_id))
        assert found is not None
        return found


def recipient(vault: Vault, message_id: str, address: str) -> Recipient:
    with vault.database.session() as db:
        found: Recipient = db.scalars(select(Recipient).where(
            Recipient.message_id == uuid.UUID(message_id), Recipient.address == address)).one()
        return found


def mail_count(sink: SmtpSink, address: str, subject_start: str) -> int:
    return len([m for m in mail_to(sink, address, 0) if m["Subject"].startswith(subject_start)])


def test_the_tracking_page_lists_each_recipient_how_and_when_they_opened_and_downloads(
        client: FlaskClient, vault: Vault, config: Config, sink: SmtpSink) -> None:
    message_id = deposit(vault, config, original(to=(PATIENT, OTHER), attachments=(
        ("results.pdf", "application/pdf", PDF),)), recipients=(PATIENT, OTHER))
    path = tracking_path(config, message_id)
    page = client.get(path)
    assert page.status_code == 200 and b"Lab results" in page.data
    for address in (PATIENT, OTHER):
        row = row_of(page.data, address)
        assert "secure portal" in row and "not yet" in row
        assert '<td data-label="Downloads">0</td>' in row
    assert b"it does not expire" in page.data and b"Secure replies" not in page.data

    reader = create_app(config, vault).test_client()
    sign_in_with_code(reader, sink, PATIENT)
    before = now().replace(microsecond=0)
    assert reader.get(f"/m/{message_id}").status_code == 200
    with vault.database.session() as db:
        part = db.scalars(select(Part.id).where(Part.message_id == uuid.UUID(message_id),
                                                Part.filename == "results.pdf")).one()
    for _ in range(2):
        assert reader.get(f"/m/{message_id}/parts/{part}").data == PDF

    page = client.get(path)
    opened = row_of(page.data, PATIENT)
    assert "not yet" not in opened and '<td data-label="Downloads">2</td>' in opened
    found = re.search(r'<time datetime="([^"]+)">', opened)
    assert found and before <= datetime.fromisoformat(found.group(1)) <= now()
    untouched = row_of(page.data, OTHER)
    assert "not yet" in untouched and '<td data-label="Downloads">0</td>' in untouched


def test_a_forged_or_altered_tracking_link_shows_nothing(
        client: FlaskClient, vault: Vault, config: Config) -> None:
    message_id = deposit(vault, config)
    good = tracking_token(config, uuid.UUID(message_id))
    payload, _, signature = good.rpartition(".")

    def changed(text: str, at: int) -> str:
        return text[:at] + ("A" if text[at] != "A" else "B") + text[at + 1:]

    forged = [
        f"{payload}.{changed(signature, 3)}",  # the signature altered
        f"{changed(payload, 5)}.{signature}",  # the message id altered
        URLSafeSerializer("another secret key of at least 32 chars!",
                          salt="sealgate.tracking").dumps(message_id),
        URLSafeSerializer(config.server.secret_key).dumps(message_id),  # no tracking salt
        tracking_token(config, uuid.uuid4()),  # well signed, for a message that is not here
        "x" * 2000,
    ]
    page = client.get(f"/t/{good}")
    assert page.status_code == 200 and b"Lab results" in page.data
    token = form_token(page.data, "r")
    for token_ in forged:
        for response in (client.get(f"/t/{token_}"),
                         client.post(f"/t/{token_}/retract", data={"r-csrf_token": token})):
            assert response.status_code == 404, token_
            assert b"Lab results" not in response.data and PATIENT.encode() not in response.data
    assert stored(vault, message_id).state is MessageState.ACTIVE
    assert len(events(vault, "portal.denied")) == 2 * (len(forged) - 1)


def test_withdrawing_a_message_shuts_out_its_recipients_everywhere(
        client: FlaskClient, app: Flask, vault: Vault, config: Config, sink: SmtpSink) -> None:
    message_id = deposit(vault, config, original(attachments=(
        ("results.pdf", "application/pdf", PDF),)))
    reader = app.test_client()
    sign_in_with_code(reader, sink, PATIENT)
    with vault.database.session() as db:
        part = db.scalars(select(Part.id).where(Part.message_id == uuid.UUID(message_id),
                                                Part.filename == "results.pdf")).one()
    path = tracking_path(config, message_id)
    page = client.get(path)

    refused = client.post(f"{path}/retract")
    assert refused.status_code == 400 and b"This form has expired" in refused.data
    assert stored(vault, message_id).state is MessageState.ACTIVE
    assert reader.get(f"/m/{message_id}").status_code == 200

    done = client.post(f"{path}/retract", data={"r-csrf_token": form_token(page.data, "r")})
    assert done.status_code == 302 and done.headers["Location"] == path
    message = stored(vault, message_id)
    assert message.state is MessageState.RETRACTED and message.state_changed_at is not None
    [retracted] = events(vault, "message.retracted")
    assert retracted.actor == SENDER and retracted.object_id == message_id
    page = client.get(path)
    assert b"Withdrawn: recipients can no longer open it." in page.data
    assert b"Withdraw it now" not in page.data

    for target in (f"/m/{message_id}", f"/m/{message_id}/body", f"/m/{message_id}/print",
                   f"/m/{message_id}/parts/{part}", f"/m/{message_id}/reply"):
        response = reader.get(target)
        assert response.status_code == 410, target
        assert b"withdrawn" in response.data
        assert b"results are normal" not in response.data and PDF not in response.data
    anonymous = app.test_client().get(f"/m/{message_id}")
    assert anonymous.status_code == 410 and b"withdrawn" in anonymous.data
    assert b"Email me a code" not in anonymous.data


def test_the_sender_sets_an_expiry_and_an_expired_message_cannot_be_read(
        client: FlaskClient, app: Flask, vault: Vault, config: Config, sink: SmtpSink) -> None:
    message_id = deposit(vault, config)
    path = tracking_path(config, message_id)
    token = form_token(client.get(path).data, "e")
    for wrong in ("-1", "3651", "soon", ""):
        response = client.post(f"{path}/expiry", data={"e-csrf_token": token, "e-days": wrong})
        assert response.status_code == 400, wrong
    assert stored(vault, message_id).expires_at is None

    done = client.post(f"{path}/expiry", data={"e-csrf_token": token, "e-days": "1"})
    assert done.status_code == 302
    expires = stored(vault, message_id).expires_at
    assert expires is not None
    assert abs(expires - (now() + timedelta(days=1))) < timedelta(minutes=1)
    assert b"Recipients can open it until" in client.get(path).data
    [set_] = events(vault, "message.expiry_set")
    assert set_.actor == SENDER and set_.details == {"days": 1}

    reader = app.test_client()
    sign_in_with_code(reader, sink, PATIENT)
    assert reader.get(f"/m/{message_id}").status_code == 200
    with vault.database.writing() as db:
        db.execute(update(SecureMessage).where(SecureMessage.id == uuid.UUID(message_id))
                   .values(expires_at=now() - timedelta(minutes=1)))
    for target in (f"/m/{message_id}", f"/m/{message_id}/body"):
        response = reader.get(target)
        assert response.status_code == 410 and b"has expired" in response.data
        assert b"results are normal" not in response.data
    assert b"Expired: recipients can no longer open it." in client.get(path).data

    cleared = client.post(f"{path}/expiry", data={"e-csrf_token": token, "e-days": "0"})
    assert cleared.status_code == 302 and stored(vault, message_id).expires_at is None
    assert reader.get(f"/m/{message_id}").status_code == 200


def test_the_organisation_default_expiry_applies_to_every_deposit(
        settings: Config, vault: Vault, sink: SmtpSink) -> None:
    config = configured(settings, sink, expiry_days=7)
    before = now()
    made = deposit_message(vault, config, original(), SENDER, [PATIENT], "Lab results")
    after = now()
    expires = stored(vault, str(made.message_id)).expires_at
    assert expires is not None
    assert before + timedelta(days=7) <= expires <= after + timedelta(days=7)
    assert stored(vault, deposit(vault, configured(settings, sink))).expires_at is None


def set_question(client: FlaskClient, config: Config, vault: Vault, message_id: str,
                 answer: str) -> Any:
    path = tracking_path(config, message_id)
    token = form_token(client.get(path).data, "q")
    return client.post(f"{path}/question", data={
        "q-csrf_token": token, "q-recipient": str(recipient(vault, message_id, PATIENT).id),
        "q-question": "Your date of birth?", "q-answer": answer})


def answer(client: FlaskClient, message_id: str, text: str) -> Any:
    # The session's token, from a page that always has a form (a locked question has none).
    token = csrf(client.get("/messages").data)
    return client.post(f"/m/{message_id}/question", data={"csrf_token": token, "answer": text})


def test_a_recipient_must_answer_the_senders_question_first(
        client: FlaskClient, app: Flask, vault: Vault, config: Config, sink: SmtpSink) -> None:
    message_id = deposit(vault, config)
    set_ = set_question(client, config, vault, message_id, "12 March 1980")
    assert set_.status_code == 302
    assert b"Your date of birth?" in client.get(tracking_path(config, message_id)).data
    row = recipient(vault, message_id, PATIENT)
    assert row.question == "Your date of birth?" and row.answer_hash is not None
    assert row.answer_hash.startswith("$argon2id$")
    assert "1980" not in row.answer_hash and "march" not in row.answer_hash.lower()
    [audited] = events(vault, "message.question_set")
    assert audited.details == {"recipient": PATIENT} and "1980" not in str(audited.details)

    reader = app.test_client()
    signed_in = sign_in_with_code(reader, sink, PATIENT, f"/m/{message_id}")
    assert signed_in.headers["Location"] == f"/m/{message_id}"
    for target in (f"/m/{message_id}", f"/m/{message_id}/body", f"/m/{message_id}/reply"):
        response = reader.get(target)
        assert response.status_code == 302, target
        assert response.headers["Location"] == f"/m/{message_id}/question"
    page = reader.get(f"/m/{message_id}/question")
    assert page.status_code == 200 and b"Your date of birth?" in page.data

    wrong = answer(reader, message_id, "1 January 1970")
    assert wrong.status_code == 200 and b"That answer is not right." in wrong.data
    [failed] = events(vault, "portal.login_failed")
    assert failed.actor == PATIENT and failed.details["how"] == "question"
    assert reader.get(f"/m/{message_id}").status_code == 302

    right = answer(reader, message_id, "  12 MARCH   1980 ")
    assert right.status_code == 302 and right.headers["Location"] == f"/m/{message_id}"
    page = reader.get(f"/m/{message_id}")
    assert page.status_code == 200 and b"Lab results" in page.data
    assert reader.get(f"/m/{message_id}/body").status_code == 200
    assert len(events(vault, "portal.question_answered")) == 1


def test_too_many_wrong_answers_lock_the_question_until_the_sender_sets_it_again(
        settings: Config, vault: Vault, sink: SmtpSink) -> None:
    config = configured(settings, sink, lockout_failures=3)
    app = create_app(config, vault)
    sender, reader = app.test_client(), app.test_client()
    message_id = deposit(vault, config)
    assert set_question(sender, config, vault, message_id, "blue heron").status_code == 302
    sign_in_with_code(reader, sink, PATIENT)

    statuses = [answer(reader, message_id, f"guess {n}").status_code for n in range(3)]
    assert statuses == [200, 200, 403]
    locked = answer(reader, message_id, "blue heron")
    assert locked.status_code == 403 and b"Too many wrong answers" in locked.data
    assert reader.get(f"/m/{message_id}/question").status_code == 403
    assert reader.get(f"/m/{message_id}").status_code == 302
    assert len(events(vault, "portal.login_failed")) == 4  # the locked right answer too
    assert recipient(vault, message_id, PATIENT).answer_failures == 3

    assert set_question(sender, config, vault, message_id, "blue heron").status_code == 302
    assert answer(reader, message_id, "Blue Heron").status_code == 302
    assert reader.get(f"/m/{message_id}").status_code == 200


def test_an_answer_of_only_spaces_or_one_character_is_refused(
        client: FlaskClient, vault: Vault, config: Config) -> None:
    """Case and spaces do not count when the recipient answers, so they must not count when
    the sender sets the answer either: "  " would let any answer of spaces in."""
    message_id = deposit(vault, config)
    for weak in ("   ", " 7 ", "a"):
        response = set_question(client, config, vault, message_id, weak)
        assert response.status_code == 400, weak
        assert b"at least two characters" in response.data
    assert recipient(vault, message_id, PATIENT).answer_hash is None


def deposit_through_the_api(client: FlaskClient, config: Config,
                            mail_from: str = SENDER) -> Any:
    return client.post("/api/v1/internal/deposits", headers={
        "Authorization": f"Bearer {config.internal_api.secret}"}, json={
        "mail_from": mail_from, "recipients": [PATIENT, OTHER], "subject": "Lab results",
        "message": base64.b64encode(original(to=(PATIENT, OTHER))).decode()})


def test_the_sender_is_told_the_message_went_out_securely_unless_that_is_turned_off(
        settings: Config, client: FlaskClient, vault: Vault, config: Config,
        sink: SmtpSink) -> None:
    response = deposit_through_the_api(client, config)
    assert response.status_code == 201, response.data
    message_id = response.json["message_id"]
    assert sink.messages == []  # the notice waits until the milter has its answer
    response.close()

    [notice] = mail_to(sink, SENDER)
    assert notice["Subject"] == "Sent securely: Lab results"
    assert notice["Auto-Submitted"] == "auto-generated"
    text = text_of(notice)
    assert PATIENT in text and OTHER in text
    link = tracking_link(config, uuid.UUID(message_id))
    assert link in text
    page = client.get(urlsplit(link).path)
    assert page.status_code == 200
    assert b"Lab results" in page.data and PATIENT.encode() in page.data

    quiet = configured(settings, sink, notify_sender=False)
    response = deposit_through_the_api(create_app(quiet, vault).test_client(), quiet)
    assert response.status_code == 201
    response.close()
    assert stored(vault, response.json["message_id"]).subject == "Lab results"
    assert len(sink.messages) == 1  # still only the first notice


def test_the_tracking_link_goes_only_to_an_internal_envelope_sender(
        client: FlaskClient, config: Config, sink: SmtpSink) -> None:
    """The From header says doctor@example.org, but the envelope sender is outside: the link
    that can withdraw the message is not mailed out of the organisation."""
    response = deposit_through_the_api(client, config, mail_from="someone@elsewhere.test")
    assert response.status_code == 201
    response.close()
    assert sink.messages == []


def test_a_withdrawn_messages_question_is_not_asked(client: FlaskClient, vault: Vault,
                                                   config: Config, sink: SmtpSink) -> None:
    message_id = deposit(vault, config)
    with vault.database.writing() as db:
        row = db.scalars(select(Recipient).where(Recipient.address == PATIENT)).one()
        row.question, row.answer_hash = "Your date of birth?", "$argon2id$unused"
        db.get(SecureMessage, uuid.UUID(message_id)).state = MessageState.RETRACTED  # type: ignore[union-attr]
    deposit(vault, config, subject="Another one")  # so that the patient can still sign in
    sign_in_with_code(client, sink, PATIENT)
    asked = client.get(f"/m/{message_id}/question")
    assert asked.status_code == 302
    assert client.get(asked.headers["Location"]).status_code == 410


def test_the_first_opening_sends_one_read_receipt_unless_they_are_turned_off(
        settings: Config, client: FlaskClient, vault: Vault, config: Config,
        sink: SmtpSink) -> None:
    message_id = deposit(vault, config)
    sign_in_with_code(client, sink, PATIENT)
    assert mail_count(sink, SENDER, "Opened:") == 0
    # The receipt goes once the page has been sent, when the response is closed.
    client.get(f"/m/{message_id}").close()
    [receipt] = mail_to(sink, SENDER)
    assert receipt["Subject"] == "Opened: Lab results"
    assert f"{PATIENT} opened your secure message" in text_of(receipt)
    link = tracking_link(config, uuid.UUID(message_id))
    assert link in text_of(receipt)
    assert b"Lab results" in client.get(urlsplit(link).path).data

    client.get(f"/m/{message_id}").close()
    client.get(f"/m/{message_id}/print")
    assert mail_count(sink, SENDER, "Opened:") == 1
    assert len(events(vault, "message.viewed")) == 2

    quiet = configured(settings, sink, read_receipts=False)
    reader = create_app(quiet, vault).test_client()
    unread = deposit(vault, quiet)
    sign_in_with_code(reader, sink, PATIENT)
    opened = reader.get(f"/m/{unread}")
    opened.close()
    assert opened.status_code == 200
    assert mail_count(sink, SENDER, "") == 1
    assert recipient(vault, unread, PATIENT).first_opened_at is not None
