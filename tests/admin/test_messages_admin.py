"""Message lookup in the console and the API: search by sender, recipient (address or
domain) and date, metadata only, and retraction that the portal then enforces and the audit
trail records with the administrator, the reason and the state before and after."""

from __future__ import annotations

import uuid
from datetime import timedelta, timezone

from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select, update

from sealgate.config import Config
from sealgate.lab.sink import SmtpSink
from sealgate.server.deposit import deposit_message
from sealgate.server.portal.identity import now
from sealgate.vault.models import AuditEvent, MessageState, SecureMessage
from sealgate.vault.vault import Vault
from tests.admin.conftest import ADMIN, bearer, make_key
from tests.portal.conftest import OTHER, PATIENT, SENDER, csrf, original, sign_in_with_code
from tests.portal.test_holds import new_hold

API = "/api/v1/admin/messages"
NURSE = "nurse@example.org"
BODY = "The biopsy shows nothing to worry about."


def sent(vault: Vault, config: Config, sender: str, recipients: tuple[str, ...],
         subject: str, days_ago: int = 0) -> str:
    raw = original(text=BODY, to=recipients, subject=subject).replace(
        SENDER.encode(), sender.encode())
    made = deposit_message(vault, config, raw, sender, list(recipients), subject)
    if days_ago:
        with vault.database.writing() as db:
            db.execute(update(SecureMessage).where(SecureMessage.id == made.message_id)
                       .values(created_at=now() - timedelta(days=days_ago)))
    return str(made.message_id)


def audited(vault: Vault, action: str) -> list[AuditEvent]:
    with vault.database.session() as db:
        return list(db.scalars(select(AuditEvent).where(AuditEvent.action == action)))


def test_messages_are_found_by_sender_recipient_and_date(
        api: FlaskClient, config: Config, vault: Vault) -> None:
    old = sent(vault, config, SENDER, (PATIENT,), "Old results", days_ago=40)
    recent = sent(vault, config, SENDER, (OTHER,), "Recent results", days_ago=2)
    other = sent(vault, config, NURSE, (PATIENT, OTHER), "Rota")
    new_hold(api, config)  # held: in the quarantine, never in the lookup
    token = make_key(vault, ["messages:read"])

    def ids(query: str) -> list[str]:
        answer = api.get(f"{API}?{query}", headers=bearer(token))
        assert answer.status_code == 200, answer.json
        return [m["id"] for m in answer.json["messages"]]

    assert ids("") == [other, recent, old]  # newest first
    assert ids(f"sender={SENDER}") == [recent, old]
    assert ids(f"sender={SENDER.upper()}") == [recent, old]
    assert ids("sender=example.org") == [other, recent, old]
    assert ids("sender=@example.org") == [other, recent, old]
    assert ids("sender=ample.org") == []  # a domain, not the end of one
    assert ids(f"recipient={PATIENT}") == [other, old]
    assert ids("recipient=yahoo.test") == [other, recent]
    assert ids(f"sender={SENDER}&recipient={PATIENT}") == [old]
    day = (now() - timedelta(days=2)).date().isoformat()
    assert ids(f"since={day}&until={day}") == [recent]
    assert ids(f"until={(now() - timedelta(days=30)).date().isoformat()}") == [old]
    three_days_ago = now() - timedelta(days=3)
    assert ids(f"since={three_days_ago:%Y-%m-%dT%H:%MZ}") == [other, recent]
    assert ids(f"since={three_days_ago.isoformat()}") == [other, recent]  # "+" unencoded
    assert ids(f"until={three_days_ago.astimezone(timezone(timedelta(hours=-5))):%Y-%m-%dT%H:%M%z}"
               .replace("-0500", "-05:00")) == [old]
    limited = api.get(f"{API}?limit=2", headers=bearer(token)).json
    assert [m["id"] for m in limited["messages"]] == [other, recent] and limited["more"]

    listed = api.get(f"{API}?sender={NURSE}", headers=bearer(token)).json["messages"][0]
    assert listed["subject"] == "Rota" and listed["state"] == "active"
    assert [(r["address"], r["delivery_method"], r["first_opened_at"])
            for r in listed["recipients"]] == [(PATIENT, "portal", None), (OTHER, "portal", None)]


def test_bad_search_values_get_a_clear_400(api: FlaskClient, console: FlaskClient,
                                           vault: Vault) -> None:
    token = make_key(vault, ["messages:read"])
    for query, says in (("since=2024-13-01", "since: '2024-13-01' is not an ISO date"),
                        ("until=yesterday", "until: 'yesterday' is not an ISO date"),
                        ("since=2024-05-02&until=2024-05-01", "until: must be later than since"),
                        ("limit=0", "limit: a whole number from 1 to 500"),
                        ("limit=ten", "limit: a whole number"),
                        ("recipient=@", "is neither an address nor a domain"),
                        ("sender=" + "x" * 400, "sender: at most 320 characters")):
        answer = api.get(f"{API}?{query}", headers=bearer(token))
        assert answer.status_code == 400, query
        assert answer.json["error"] == "bad_request" and says in answer.json["message"], query
    page = console.get("/admin/messages?since=31/05/2024")
    assert page.status_code == 400 and b"is not an ISO date" in page.data


def test_the_console_shows_metadata_and_never_the_content(
        console: FlaskClient, app: Flask, config: Config, vault: Vault, sink: SmtpSink) -> None:
    message_id = sent(vault, config, SENDER, (PATIENT,), "Lab results")
    reader = app.test_client()
    sign_in_with_code(reader, sink, PATIENT)
    assert reader.get(f"/m/{message_id}").status_code == 200  # opened once

    found = console.get(f"/admin/messages?recipient={PATIENT}")
    assert found.status_code == 200 and b"Lab results" in found.data
    assert f"/admin/messages/{message_id}".encode() in found.data
    page = console.get(f"/admin/messages/{message_id}")
    assert page.status_code == 200
    for shown in (SENDER, PATIENT, "portal", "Lab results", "active"):
        assert shown.encode() in page.data, shown
    assert b"not yet" not in page.data  # the first opening is shown
    assert BODY.encode() not in page.data and BODY.encode() not in found.data
    token = make_key(vault, ["messages:read"])
    detail = console.get(f"{API}/{message_id}", headers=bearer(token))
    assert detail.status_code == 200 and BODY not in detail.get_data(as_text=True)
    assert detail.json["recipients"][0]["first_opened_at"] is not None
    assert detail.json["readable"] is True and detail.json["attachments"] == 0
    assert console.get(f"/admin/messages/{uuid.uuid4()}").status_code == 404
    assert console.get(f"{API}/nonsense", headers=bearer(token)).status_code == 404


def test_retract_in_the_console_is_enforced_by_the_portal_and_audited(
        console: FlaskClient, app: Flask, config: Config, vault: Vault, sink: SmtpSink) -> None:
    message_id = sent(vault, config, SENDER, (PATIENT,), "Lab results")
    reader = app.test_client()
    sign_in_with_code(reader, sink, PATIENT)
    assert reader.get(f"/m/{message_id}").status_code == 200
    page = console.get(f"/admin/messages/{message_id}")
    token = csrf(page.data)
    empty = console.post(f"/admin/messages/{message_id}/retract",
                         data={"csrf_token": token, "reason": ""})
    assert empty.status_code == 400 and b"Say why it is retracted." in empty.data
    no_token = console.post(f"/admin/messages/{message_id}/retract",
                            data={"reason": "sent to the wrong patient"})
    assert no_token.status_code == 400
    assert audited(vault, "message.retracted") == []

    done = console.post(f"/admin/messages/{message_id}/retract",
                        data={"csrf_token": token, "reason": "sent to the wrong patient"})
    assert done.status_code == 302
    after = console.get(done.headers["Location"])
    assert b"retracted" in after.data and b"Retract the message" not in after.data
    [event] = audited(vault, "message.retracted")
    assert event.actor == ADMIN and event.object_id == message_id
    assert event.details["reason"] == "sent to the wrong patient"
    assert event.details["state"] == {"before": "active", "after": "retracted"}
    assert event.details["by"] == "administrator"

    refused = reader.get(f"/m/{message_id}")
    assert refused.status_code == 410 and BODY.encode() not in refused.data
    again = console.post(f"/admin/messages/{message_id}/retract",
                         data={"csrf_token": token, "reason": "twice"})
    assert again.status_code == 409 and b"already retracted" in again.data


def test_retract_through_the_api_needs_the_write_scope_and_a_reason(
        api: FlaskClient, config: Config, vault: Vault) -> None:
    message_id = sent(vault, config, SENDER, (PATIENT,), "Lab results")
    reader = make_key(vault, ["messages:read"])
    writer = make_key(vault, ["messages:write"], name="writer")
    path = f"{API}/{message_id}/retract"
    forbidden = api.post(path, headers=bearer(reader), json={"reason": "mistake"})
    assert forbidden.status_code == 403 and forbidden.json["error"] == "insufficient_scope"
    for body in ({}, {"reason": "   "}, {"reason": 7}, {"reason": "x" * 501}):
        bad = api.post(path, headers=bearer(writer), json=body)
        assert bad.status_code == 400 and bad.json["error"] == "bad_request", body
    with vault.database.session() as db:
        message = db.get(SecureMessage, uuid.UUID(message_id))
        assert message is not None and message.state is MessageState.ACTIVE

    done = api.post(path, headers=bearer(writer), json={"reason": "wrong  recipient"})
    assert done.status_code == 200 and done.json["state"] == "retracted"
    assert done.json["readable"] is False
    [event] = audited(vault, "message.retracted")
    assert event.actor.startswith("api-key:") and event.details["reason"] == "wrong recipient"
    again = api.post(path, headers=bearer(writer), json={"reason": "again"})
    assert again.status_code == 409 and "already retracted" in again.json["message"]
    missing = api.post(f"{API}/{uuid.uuid4()}/retract", headers=bearer(writer),
                       json={"reason": "x"})
    assert missing.status_code == 404 and missing.json["error"] == "not_found"
    assert len(audited(vault, "message.retracted")) == 1
