"""DLP quarantine and reports, server side: the milter's /holds and /reports, the sender's
"held" notice and decision page, and what each decision hands to the MTA (the sink)."""

from __future__ import annotations

import base64
import copy
import re
import time
import uuid
from datetime import timedelta
from email.message import EmailMessage
from typing import Any
from urllib.parse import urlsplit

import pytest
from flask.testing import FlaskClient
from itsdangerous import URLSafeSerializer
from sqlalchemy import select, update

from sealgate.config import Config
from sealgate.crypto.marks import MARK_HEADER, mark_is_valid
from sealgate.lab.sink import SmtpSink
from sealgate.mail.notification import NOTIFICATION_ID_HEADER
from sealgate.mail.rewrite import inbound, marked_original
from sealgate.mail.triggers import TAG_HEADER
from sealgate.server.app import create_app
from sealgate.server.links import held_id, hold_link, tracking_token
from sealgate.server.portal.identity import now
from sealgate.vault import holds
from sealgate.vault.models import AuditEvent, Hold, HoldDecision, MessageState, SecureMessage
from sealgate.vault.vault import Vault
from tests.portal.conftest import (
    PATIENT,
    SENDER,
    csrf,
    deposit,
    mail_to,
    original,
    parsed,
    sign_in_with_code,
    text_of,
)

CARD = "4111 1111 1111 1111"
MASKED = "**** **** **** 1111"
COLLEAGUE = "nurse@example.org"
POLICY = "PCI DSS: payment card numbers"
BODY = f"Please charge card {CARD} for the treatment."


def report(allow_send_as_is: bool = False, **changes: Any) -> dict[str, Any]:
    """As the DLP engine's Report.as_dict() makes it."""
    made: dict[str, Any] = {
        "sensitive": True, "action": "quarantine",
        "policies": [{"name": POLICY, "action": "quarantine", "count": 1,
                      "types": ["CREDIT_CARD"]}],
        "notify": False, "allow_send_as_is": allow_send_as_is,
        "findings": [{"part": "body", "type": "CREDIT_CARD", "label": "payment card number",
                      "confidence": "high", "value": MASKED}],
        "unreadable": [{"part": "terms.pdf", "problem": "encrypted",
                        "detail": "the PDF is password-protected"}]}
    made.update(changes)
    return made


def held_message(to: tuple[str, ...] = (PATIENT, COLLEAGUE)) -> bytes:
    return original(text=BODY, to=to, subject="Treatment invoice")


def post_hold(client: FlaskClient, config: Config, raw: bytes | None = None,
              recipients: tuple[str, ...] = (PATIENT, COLLEAGUE), mail_from: str = SENDER,
              **report_changes: Any) -> Any:
    response = client.post("/api/v1/internal/holds", headers=bearer(config), json={
        "mail_from": mail_from, "recipients": list(recipients), "subject": "Treatment invoice",
        "message": base64.b64encode(raw or held_message(recipients)).decode(),
        "dlp": report(**report_changes)})
    response.close()  # runs what waits for the end of the response (the notice)
    return response


def bearer(config: Config, secret: str | None = None) -> dict[str, str]:
    return {"Authorization": f"Bearer {config.internal_api.secret if secret is None else secret}"}


def new_hold(client: FlaskClient, config: Config, **kwargs: Any) -> uuid.UUID:
    response = post_hold(client, config, **kwargs)
    assert response.status_code == 201, response.data
    return uuid.UUID(response.json["hold_id"])


def page_path(config: Config, hold_id: uuid.UUID) -> str:
    return urlsplit(hold_link(config, hold_id)).path


def choose(client: FlaskClient, config: Config, hold_id: uuid.UUID, choice: str) -> Any:
    path = page_path(config, hold_id)
    page = client.get(path)
    assert page.status_code == 200, page.data
    return client.post(path, data={"csrf_token": csrf(page.data), "choice": choice})


def stored_hold(vault: Vault, hold_id: uuid.UUID) -> Hold:
    found = holds.find(vault, hold_id)
    assert found is not None
    return found


def events(vault: Vault, action: str) -> list[AuditEvent]:
    with vault.database.session() as db:
        return list(db.scalars(select(AuditEvent).where(AuditEvent.action == action)))


def delivered(sink: SmtpSink, address: str) -> list[tuple[EmailMessage, bytes]]:
    return [(parsed(m.data), m.data) for m in sink.messages if address in m.rcpt_tos]


def quiet_for_a_moment() -> None:
    time.sleep(0.3)  # mail handed over after the response would have arrived by now


# -- the milter's /holds --------------------------------------------------------------------

def test_a_held_message_is_sealed_and_its_sender_gets_one_notice_showing_masked_values(
        client: FlaskClient, config: Config, vault: Vault, sink: SmtpSink) -> None:
    hold_id = new_hold(client, config)
    hold = stored_hold(vault, hold_id)
    assert hold.decision is None and hold.sender == SENDER
    assert hold.recipients == [PATIENT, COLLEAGUE] and hold.policies == [POLICY]
    assert holds.original(vault, hold) == held_message()
    assert hold.expires_at - hold.created_at == timedelta(days=config.dlp.quarantine_days)
    with vault.database.session() as db:
        message = db.get(SecureMessage, hold.message_id)
        assert message is not None and message.state is MessageState.HELD
    assert CARD not in repr(hold.findings) and MASKED in repr(hold.findings)
    [created] = events(vault, "hold.created")
    assert created.actor == SENDER and created.details["policies"] == [POLICY]
    assert CARD not in repr(created.details) and MASKED not in repr(created.details)

    [notice] = mail_to(sink, SENDER)
    quiet_for_a_moment()
    assert len(mail_to(sink, SENDER)) == 1
    raw = next(m.data for m in sink.messages if SENDER in m.rcpt_tos)
    for hidden in (CARD, CARD.replace(" ", ""), "4111 1111", "charge card"):
        assert hidden.encode() not in raw
    assert notice["Subject"] == "Held: Treatment invoice"
    assert notice["Auto-Submitted"] == "auto-generated"
    text = text_of(notice)
    assert "Your message “Treatment invoice” to " in text and PATIENT in text
    assert f"payment card number {MASKED}" in text and f"policy {POLICY}" in text
    assert "terms.pdf" in text and "Choose what happens to it:" in text
    link = hold_link(config, hold_id)
    assert set(re.findall(r"https?://\S+", text)) == {link}
    html = notice.get_body(("html",)).get_content()  # type: ignore[union-attr]
    assert set(re.findall(r'href="([^"]+)"', html)) == {link}


def test_held_content_is_not_readable_in_the_portal(
        client: FlaskClient, config: Config, vault: Vault, sink: SmtpSink) -> None:
    held = stored_hold(vault, new_hold(client, config))
    other = deposit(vault, config)  # so that the recipient can sign in at all
    assert client.get(f"/m/{held.message_id}").status_code in (404, 410)
    sign_in_with_code(client, sink, PATIENT)
    page = client.get(f"/m/{held.message_id}")
    assert page.status_code == 404 and b"Treatment invoice" not in page.data
    centre = client.get("/messages")
    assert centre.status_code == 200 and other.encode() in centre.data
    assert b"Treatment invoice" not in centre.data  # never listed: it was never sent
    assert client.get(f"/m/{other}").status_code == 200


def test_an_outside_sender_gets_no_notice(client: FlaskClient, config: Config, vault: Vault,
                                          sink: SmtpSink) -> None:
    hold_id = new_hold(client, config, mail_from="Someone@Elsewhere.test")
    assert stored_hold(vault, hold_id).sender == "someone@elsewhere.test"
    quiet_for_a_moment()
    assert sink.messages == []


@pytest.mark.parametrize("change, reason", [
    ({"recipients": []}, "recipients"),
    ({"recipients": "patient@gmail.test"}, "recipients"),
    ({"message": "not base64!"}, "base64"),
    ({"message": ""}, "message"),
    ({"mail_from": None}, "mail_from"),
    ({"subject": 7}, "subject"),
    ({"dlp": None}, "dlp"),
    ({"dlp": {"action": "shred"}}, "dlp.action"),
    ({"dlp": {"findings": "all of them"}}, "dlp.findings"),
    ({"dlp": {"findings": [{"part": "body", "type": "CREDIT_CARD", "confidence": "high",
                            "value": CARD}]}}, "masked"),
    ({"dlp": {"findings": [{"part": "body", "type": "CREDIT_CARD", "value": MASKED}]}},
     "confidence"),
    ({"dlp": {"policies": [{"name": POLICY, "action": "quarantine", "count": True,
                            "types": []}]}}, "count"),
    ({"dlp": {"allow_send_as_is": "yes"}}, "allow_send_as_is"),
])
def test_bad_hold_requests_get_a_json_reason(client: FlaskClient, config: Config,
                                             vault: Vault, change: dict[str, Any],
                                             reason: str) -> None:
    payload = {"mail_from": SENDER, "recipients": [PATIENT], "subject": "x",
               "message": base64.b64encode(held_message()).decode(), "dlp": report()}
    payload.update(change)
    response = client.post("/api/v1/internal/holds", headers=bearer(config), json=payload)
    assert response.status_code == 400, response.data
    assert response.json["error"] == "bad_request" and reason in response.json["message"]
    with vault.database.session() as db:
        assert db.scalars(select(Hold)).all() == []


def test_holds_and_reports_need_json_and_the_secret(client: FlaskClient,
                                                    config: Config) -> None:
    for route in ("holds", "reports"):
        path = f"/api/v1/internal/{route}"
        not_json = client.post(path, headers=bearer(config), data="{oops",
                               content_type="application/json")
        assert not_json.status_code == 400 and not_json.json["error"] == "bad_request"
        wrong = client.post(path, headers=bearer(config, "wrong"), json={})
        assert wrong.status_code == 401 and wrong.json["error"] == "unauthorized"
        assert client.post(path, json={}).status_code == 401


def test_a_held_message_reads_back_as_the_mta_had_it_and_goes_out_unchanged() -> None:
    raw = (b"Received: from a.example.org\r\n\tby mx.example.org\r\n"
           b"From: Dr Who <who@example.org>\r\nSubject: =?utf-8?q?caf=C3=A9?=\r\n"
           b"Message-ID: <x@example.org>\r\n" + TAG_HEADER.encode() + b": t\r\n"
           + MARK_HEADER.encode() + b": v1; sig=forged\r\n\r\nline\r\n\r\nmore\r\n")
    message = inbound(raw, "who@example.org", (PATIENT,))
    assert message.raw() == raw
    assert message.header("received") == "from a.example.org\r\n\tby mx.example.org"
    assert message.subject == "café" and message.body == b"line\r\n\r\nmore\r\n"
    marked = marked_original(message, "s" * 32)
    head, _, body = marked.partition(b"\r\n\r\n")
    assert body == message.body and head.count(MARK_HEADER.encode()) == 1
    assert TAG_HEADER.encode() not in head and b"forged" not in head
    assert head.startswith(raw.partition(TAG_HEADER.encode())[0])  # the rest as it was
    mark = parsed(marked)[MARK_HEADER]
    assert mark_is_valid("s" * 32, mark, "<x@example.org>", body)
    assert inbound(b"Subject: x\n\nbody\n", "", ()).body == b"body\n"  # LF only too


# -- the decision page ----------------------------------------------------------------------

def test_the_decision_page_shows_the_masked_report_and_the_allowed_choices(
        client: FlaskClient, config: Config) -> None:
    strict = new_hold(client, config)
    page = client.get(page_path(config, strict))
    assert page.status_code == 200
    assert b"Treatment invoice" in page.data and PATIENT.encode() in page.data
    assert MASKED.encode() in page.data and POLICY.encode() in page.data
    assert b"terms.pdf" in page.data and CARD.encode() not in page.data
    assert b'value="send_securely"' in page.data and b'value="discard"' in page.data
    assert b'value="send_as_is"' not in page.data
    lenient = new_hold(client, config, allow_send_as_is=True)
    assert b'value="send_as_is"' in client.get(page_path(config, lenient)).data


def test_a_bad_or_foreign_token_is_a_404_page(client: FlaskClient, config: Config,
                                              vault: Vault) -> None:
    hold_id = new_hold(client, config)
    good = urlsplit(hold_link(config, hold_id)).path.rpartition("/")[2]
    assert held_id(config, good) == hold_id
    forged = [
        good[:-2] + ("AA" if not good.endswith("AA") else "BB"),
        "nonsense",
        URLSafeSerializer("another secret key of at least 32 chars!",
                          salt="sealgate.hold").dumps(str(hold_id)),
        tracking_token(config, hold_id),  # a tracking link's token is not a decision link's
        URLSafeSerializer(config.server.secret_key, salt="sealgate.hold").dumps(
            str(uuid.uuid4())),  # signed, but no such hold
    ]
    for token in forged:
        page = client.get(f"/held/{token}")
        assert page.status_code == 404 and b"Treatment invoice" not in page.data, token
        assert b"<html" in page.data  # a page, not JSON
        refused = client.post(f"/held/{token}", data={"choice": "discard"})
        assert refused.status_code in (400, 404)
    assert stored_hold(vault, hold_id).decision is None


def test_send_securely_delivers_through_the_portal_and_the_original_inside(
        client: FlaskClient, config: Config, vault: Vault, sink: SmtpSink) -> None:
    hold_id = new_hold(client, config)
    held = stored_hold(vault, hold_id)
    sink.clear()
    response = choose(client, config, hold_id, "send_securely")
    assert response.status_code == 200 and b"Sent securely" in response.data
    response.close()

    [(notification, _)] = delivered(sink, PATIENT)
    assert notification["Subject"] == "Treatment invoice"
    deposit_id = notification[NOTIFICATION_ID_HEADER]
    assert deposit_id and MARK_HEADER in notification
    assert CARD not in text_of(notification)
    assert f"/m/{deposit_id}" in text_of(notification)

    [(inside, data)] = delivered(sink, COLLEAGUE)
    assert CARD in text_of(inside) and inside["Message-ID"] == "<m1@example.org>"
    body = data.partition(b"\r\n\r\n")[2]
    assert mark_is_valid(config.internal_api.secret, inside[MARK_HEADER], "<m1@example.org>",
                         body)

    decided = stored_hold(vault, hold_id)
    assert decided.decision is HoldDecision.SENT_SECURELY and decided.message_id is None
    with vault.database.session() as db:
        assert db.get(SecureMessage, held.message_id) is None  # the held copy is gone
    [event] = events(vault, "hold.sent_securely")
    assert event.actor == SENDER and event.details == {
        "external": 1, "internal": 1, "message": deposit_id, "methods": {"portal": 1}}

    [notice] = [m for m in mail_to(sink, SENDER) if m["Subject"].startswith("Sent securely")]
    assert PATIENT in text_of(notice)

    reader = create_app(config, vault).test_client()
    sign_in_with_code(reader, sink, PATIENT)
    page = reader.get(f"/m/{deposit_id}")
    assert page.status_code == 200 and b"Treatment invoice" in page.data


def test_send_as_is_is_refused_unless_the_policy_allows_it(
        client: FlaskClient, config: Config, vault: Vault, sink: SmtpSink) -> None:
    strict = new_hold(client, config)
    sink.clear()
    refused = choose(client, config, strict, "send_as_is")
    assert refused.status_code == 403 and b"does not allow" in refused.data
    assert stored_hold(vault, strict).decision is None
    assert holds.original(vault, stored_hold(vault, strict)) == held_message()
    quiet_for_a_moment()
    assert sink.messages == []

    raw = held_message().replace(b"Message-ID: <m1@example.org>\n", b"")
    assert b"Message-ID" not in raw  # as the milter holds it: before it adds one
    lenient = new_hold(client, config, raw=raw, allow_send_as_is=True)
    sink.clear()
    response = choose(client, config, lenient, "send_as_is")
    assert response.status_code == 200 and b"Sent as is" in response.data
    [delivery] = sink.messages
    assert set(delivery.rcpt_tos) == {PATIENT, COLLEAGUE}
    sent = parsed(delivery.data)
    assert CARD in text_of(sent) and sent["Subject"] == "Treatment invoice"
    assert mark_is_valid(config.internal_api.secret, sent[MARK_HEADER], sent["Message-ID"],
                         delivery.data.partition(b"\r\n\r\n")[2])
    assert stored_hold(vault, lenient).decision is HoldDecision.SENT_AS_IS
    assert stored_hold(vault, lenient).message_id is None
    assert len(events(vault, "hold.sent_as_is")) == 1


def test_discard_deletes_the_content_and_a_second_decision_is_refused(
        client: FlaskClient, config: Config, vault: Vault, sink: SmtpSink) -> None:
    hold_id = new_hold(client, config, allow_send_as_is=True)
    message_id = stored_hold(vault, hold_id).message_id
    path = page_path(config, hold_id)
    page = client.get(path)
    token = csrf(page.data)
    sink.clear()
    response = client.post(path, data={"csrf_token": token, "choice": "discard"})
    assert response.status_code == 200 and b"Discarded" in response.data
    with vault.database.session() as db:
        assert db.get(SecureMessage, message_id) is None
    assert stored_hold(vault, hold_id).decision is HoldDecision.DISCARDED
    assert [e.actor for e in events(vault, "hold.discarded")] == [SENDER]

    again = client.post(path, data={"csrf_token": token, "choice": "send_as_is"})
    assert again.status_code == 409
    assert b"already discarded on" in again.data
    later = client.get(path)
    assert later.status_code == 200 and b"Discarded" in later.data
    assert b'value="send_securely"' not in later.data
    quiet_for_a_moment()
    assert sink.messages == []


def test_a_decision_needs_the_form_token_and_a_known_choice(
        client: FlaskClient, config: Config, vault: Vault) -> None:
    hold_id = new_hold(client, config)
    path = page_path(config, hold_id)
    assert client.post(path, data={"choice": "discard"}).status_code == 400
    token = csrf(client.get(path).data)
    assert client.post(path, data={"csrf_token": token, "choice": "shred"}).status_code == 400
    assert stored_hold(vault, hold_id).decision is None


def test_an_expired_hold_is_discarded_when_its_page_is_opened(
        client: FlaskClient, config: Config, vault: Vault, sink: SmtpSink) -> None:
    hold_id = new_hold(client, config, allow_send_as_is=True)
    path = page_path(config, hold_id)
    token = csrf(client.get(path).data)
    message_id = stored_hold(vault, hold_id).message_id
    with vault.database.writing() as db:
        db.execute(update(Hold).where(Hold.id == hold_id).values(
            expires_at=now() - timedelta(minutes=1)))
    sink.clear()
    refused = client.post(path, data={"csrf_token": token, "choice": "send_as_is"})
    assert b"has expired" in refused.data and b"cannot be sent" in refused.data
    hold = stored_hold(vault, hold_id)
    assert hold.decision is HoldDecision.EXPIRED and hold.message_id is None
    with vault.database.session() as db:
        assert db.get(SecureMessage, message_id) is None
    page = client.get(path)
    assert page.status_code == 200 and b"has expired" in page.data
    assert len(events(vault, "hold.expired")) == 1
    quiet_for_a_moment()
    assert sink.messages == []


def test_expired_holds_are_discarded_even_when_nobody_opens_them(
        client: FlaskClient, config: Config, vault: Vault) -> None:
    forgotten = new_hold(client, config)
    with vault.database.writing() as db:
        db.execute(update(Hold).where(Hold.id == forgotten).values(
            expires_at=now() - timedelta(minutes=1)))
    new_hold(client, config)  # each new hold sweeps, after its answer
    hold = stored_hold(vault, forgotten)
    assert hold.decision is HoldDecision.EXPIRED and hold.message_id is None


@pytest.mark.parametrize("choice", ["send_securely", "send_as_is"])
def test_a_relay_that_refuses_leaves_the_hold_undecided_and_its_content_kept(
        client: FlaskClient, config: Config, vault: Vault, sink: SmtpSink,
        choice: str) -> None:
    hold_id = new_hold(client, config, allow_send_as_is=True)
    sink.clear()
    sink.refuse = frozenset({PATIENT, COLLEAGUE})
    failed = choose(client, config, hold_id, choice)
    assert failed.status_code == 503 and b"try again" in failed.data
    hold = stored_hold(vault, hold_id)
    assert hold.decision is None and hold.claimed_until is None
    assert holds.original(vault, hold) == held_message()
    with vault.database.session() as db:  # no stray portal deposit either
        assert db.scalars(select(SecureMessage.state)).all() == [MessageState.HELD]
    assert sink.messages == []

    sink.refuse = frozenset()
    response = choose(client, config, hold_id, choice)
    assert response.status_code == 200
    assert stored_hold(vault, hold_id).decision is not None
    assert delivered(sink, PATIENT) and delivered(sink, COLLEAGUE)


def test_a_decision_being_carried_out_is_not_made_twice(
        client: FlaskClient, config: Config, vault: Vault) -> None:
    hold_id = new_hold(client, config)
    holds.claim(vault, hold_id, now())  # as another request in the middle of sending
    busy = choose(client, config, hold_id, "discard")
    assert busy.status_code == 409 and b"being carried out" in busy.data
    assert stored_hold(vault, hold_id).decision is None


# -- the milter's /reports ------------------------------------------------------------------

def test_a_report_is_audited_and_mailed_to_the_dlp_address_with_masked_values_only(
        config: Config, vault: Vault, sink: SmtpSink) -> None:
    address = "dlp-team@example.org"
    reporting = config.model_copy(update={
        "dlp": config.dlp.model_copy(update={"notify_address": address})})
    client = create_app(reporting, vault).test_client()
    response = client.post("/api/v1/internal/reports", headers=bearer(config), json={
        "mail_from": SENDER.upper(), "recipients": [PATIENT, COLLEAGUE],
        "subject": "Treatment invoice", "action": "block", "dlp": report()})
    assert response.status_code == 202, response.data
    assert sink.messages == []  # after the answer
    response.close()

    [event] = events(vault, "dlp.reported")
    assert event.actor == SENDER
    assert event.details["sender"] == SENDER and event.details["recipients"] == 2
    assert event.details["policies"] == [POLICY] and event.details["action"] == "block"
    assert event.details["findings"]["types"] == {"CREDIT_CARD": 1}
    assert f"CREDIT_CARD {MASKED}" in event.details["findings"]["masked"]
    assert CARD not in repr(event.details)

    [mail] = mail_to(sink, address)
    data = next(m.data for m in sink.messages if address in m.rcpt_tos)
    assert CARD.encode() not in data and CARD.replace(" ", "").encode() not in data
    text = text_of(mail)
    assert mail["Subject"] == "DLP report: refused: Treatment invoice"
    assert MASKED in text and POLICY in text and SENDER in text
    assert PATIENT in text and COLLEAGUE in text and "Treatment invoice" in text
    assert "refused: it was not sent" in text.lower()
    assert mail["Auto-Submitted"] == "auto-generated"


def test_without_a_dlp_address_a_report_is_only_audited(
        client: FlaskClient, config: Config, vault: Vault, sink: SmtpSink) -> None:
    assert not config.dlp.notify_address
    response = client.post("/api/v1/internal/reports", headers=bearer(config), json={
        "mail_from": SENDER, "recipients": [PATIENT], "subject": "x", "action": "pass",
        "dlp": report(action="notify")})
    assert response.status_code == 202
    response.close()
    assert len(events(vault, "dlp.reported")) == 1
    quiet_for_a_moment()
    assert sink.messages == []


def test_a_bad_report_gets_a_json_reason(client: FlaskClient, config: Config,
                                         vault: Vault) -> None:
    good = {"mail_from": SENDER, "recipients": [PATIENT], "subject": "x", "action": "block",
            "dlp": report()}
    for change in ({"action": None}, {"recipients": []}, {"dlp": []},
                   {"dlp": report(findings=[{"part": "body", "type": "US_SSN",
                                             "confidence": "high", "value": "123-45-6789"}])}):
        payload = copy.deepcopy(good)
        payload.update(change)
        response = client.post("/api/v1/internal/reports", headers=bearer(config),
                               json=payload)
        assert response.status_code == 400 and response.json["message"], change
    assert events(vault, "dlp.reported") == []
