"""The quarantine in the console and the API: held messages listed with masked findings, and
an administrator's decision carried out by the sender's own machinery (made once, mail to
the real SMTP sink, content deleted, a refusing relay leaving the message held)."""

from __future__ import annotations

import base64
import uuid
from datetime import timedelta

from flask.testing import FlaskClient
from sqlalchemy import select, update
from werkzeug.test import TestResponse

from sealgate.config import Config
from sealgate.lab.pki import TestCa
from sealgate.lab.sink import SmtpSink
from sealgate.mail.notification import NOTIFICATION_ID_HEADER
from sealgate.server.app import create_app
from sealgate.server.portal.identity import now
from sealgate.vault import holds
from sealgate.vault.models import Hold, HoldDecision, SecureMessage
from sealgate.vault.vault import Vault
from tests.admin.conftest import ADMIN, add_admin, bearer, make_key, sign_in
from tests.portal.conftest import PATIENT, SENDER, csrf, text_of
from tests.portal.test_holds import (
    CARD,
    COLLEAGUE,
    MASKED,
    POLICY,
    delivered,
    events,
    held_message,
    new_hold,
    quiet_for_a_moment,
    stored_hold,
)

API = "/api/v1/admin/quarantine"


def console_decide(console: FlaskClient, hold_id: uuid.UUID, choice: str) -> TestResponse:
    page = console.get("/admin/quarantine")
    assert page.status_code == 200
    return console.post(f"/admin/quarantine/{hold_id}",
                        data={"csrf_token": csrf(page.data), "choice": choice})


def test_held_messages_are_listed_with_masked_findings_only(
        console: FlaskClient, config: Config, vault: Vault) -> None:
    strict = new_hold(console, config)
    lenient = new_hold(console, config, allow_send_as_is=True)
    page = console.get("/admin/quarantine")
    assert page.status_code == 200
    for shown in (SENDER, PATIENT, COLLEAGUE, "Treatment invoice", MASKED, POLICY, "terms.pdf",
                  f'/admin/quarantine/{strict}', f'/admin/quarantine/{lenient}',
                  "Send as is (override the policy)"):
        assert shown.encode() in page.data, shown
    assert CARD.encode() not in page.data and b"charge card" not in page.data

    token = make_key(vault, ["quarantine:read"])
    listed = console.get(API, headers=bearer(token))
    assert listed.status_code == 200
    by_id = {h["id"]: h for h in listed.json["holds"]}
    assert set(by_id) == {str(strict), str(lenient)}
    hold = by_id[str(strict)]
    assert hold["sender"] == SENDER and hold["recipients"] == [PATIENT, COLLEAGUE]
    assert hold["policies"] == [POLICY] and hold["state"] == "held"
    assert hold["findings"][0]["value"] == MASKED and hold["allow_send_as_is"] is False
    assert hold["decision"] is None and hold["expires_at"] > hold["created_at"]
    assert CARD not in listed.get_data(as_text=True)
    one = console.get(f"{API}/{strict}", headers=bearer(token))
    assert one.status_code == 200 and one.json["id"] == str(strict)
    assert console.get(f"{API}/{uuid.uuid4()}", headers=bearer(token)).status_code == 404
    assert console.get(f"{API}/not-an-id", headers=bearer(token)).status_code == 404

    # Decided ones leave the default list and show under "decided".
    holds.decide(vault, lenient, HoldDecision.DISCARDED, SENDER, now())
    assert [h["id"] for h in console.get(API, headers=bearer(token)).json["holds"]] == [
        str(strict)]
    decided = console.get(f"{API}?state=decided", headers=bearer(token)).json["holds"]
    assert [(h["id"], h["state"]) for h in decided] == [(str(lenient), "discarded")]
    assert len(console.get(f"{API}?state=all", headers=bearer(token)).json["holds"]) == 2
    bad = console.get(f"{API}?state=lost", headers=bearer(token))
    assert bad.status_code == 400 and "state: one of held, decided, all" in bad.json["message"]
    assert console.get("/admin/quarantine?state=lost").status_code == 400


def test_an_administrator_may_send_as_is_against_the_policy_and_it_is_audited_as_such(
        console: FlaskClient, config: Config, vault: Vault, sink: SmtpSink) -> None:
    hold_id = new_hold(console, config)  # the policy does not allow send as is
    held = stored_hold(vault, hold_id)
    sink.clear()
    done = console_decide(console, hold_id, "send_as_is")
    assert done.status_code == 200, done.data
    assert b"Sent as is, to every recipient." in done.data
    [delivery] = sink.messages
    assert set(delivery.rcpt_tos) == {PATIENT, COLLEAGUE} and CARD.encode() in delivery.data
    decided = stored_hold(vault, hold_id)
    assert decided.decision is HoldDecision.SENT_AS_IS and decided.message_id is None
    with vault.database.session() as db:
        assert db.get(SecureMessage, held.message_id) is None
    [event] = events(vault, "hold.sent_as_is")
    assert event.actor == ADMIN and event.details["by"] == "administrator"
    assert "does not allow" in event.details["override"]
    assert event.details["state"] == {"before": "held", "after": "sent_as_is"}
    assert events(vault, "hold.refused") == []


def test_send_securely_through_the_api_reaches_each_recipient_the_secure_way(
        api: FlaskClient, config: Config, vault: Vault, sink: SmtpSink) -> None:
    hold_id = new_hold(api, config)
    token = make_key(vault, ["quarantine:read", "quarantine:write"])
    sink.clear()
    answer = api.post(f"{API}/{hold_id}", headers=bearer(token),
                      json={"decision": "send_securely"})
    assert answer.status_code == 200, answer.json
    assert answer.json["outcome"] == "sent_securely"
    assert answer.json["message"].startswith("Sent securely")
    assert answer.json["hold"]["state"] == "sent_securely"
    answer.close()
    [(notification, _)] = delivered(sink, PATIENT)  # through the portal: a link, no card
    assert notification[NOTIFICATION_ID_HEADER] and CARD not in text_of(notification)
    [(inside, _)] = delivered(sink, COLLEAGUE)  # a colleague gets it as it is
    assert CARD in text_of(inside)
    [event] = events(vault, "hold.sent_securely")
    assert event.actor.startswith("api-key:") and event.details["methods"] == {"portal": 1}
    assert "override" not in event.details


def test_discard_deletes_the_content_and_a_second_decision_is_a_409(
        api: FlaskClient, config: Config, vault: Vault, sink: SmtpSink) -> None:
    hold_id = new_hold(api, config, allow_send_as_is=True)
    message_id = stored_hold(vault, hold_id).message_id
    token = make_key(vault, ["quarantine:write"])
    sink.clear()
    gone = api.post(f"{API}/{hold_id}", headers=bearer(token), json={"decision": "discard"})
    assert gone.status_code == 200 and gone.json["outcome"] == "discarded"
    with vault.database.session() as db:
        assert db.get(SecureMessage, message_id) is None
    hold = stored_hold(vault, hold_id)
    assert hold.decision is HoldDecision.DISCARDED and hold.message_id is None
    again = api.post(f"{API}/{hold_id}", headers=bearer(token),
                     json={"decision": "send_as_is"})
    assert again.status_code == 409 and again.json["error"] == "conflict"
    assert "already: discarded on" in again.json["message"]
    quiet_for_a_moment()
    assert sink.messages == []
    assert len(events(vault, "hold.discarded")) == 1


def test_the_console_says_when_it_was_decided_already(
        console: FlaskClient, config: Config, vault: Vault) -> None:
    hold_id = new_hold(console, config)
    assert console_decide(console, hold_id, "discard").status_code == 200
    again = console_decide(console, hold_id, "send_securely")
    assert again.status_code == 409
    assert b"A decision was made on it already: discarded" in again.data
    assert [e.actor for e in events(vault, "hold.discarded")] == [ADMIN]


def test_a_relay_that_refuses_leaves_it_held_and_says_try_again(
        api: FlaskClient, config: Config, vault: Vault, sink: SmtpSink) -> None:
    hold_id = new_hold(api, config)
    token = make_key(vault, ["quarantine:write"])
    sink.clear()
    sink.refuse = frozenset({PATIENT, COLLEAGUE})
    failed = api.post(f"{API}/{hold_id}", headers=bearer(token),
                      json={"decision": "send_as_is"})
    assert failed.status_code == 503 and failed.json["error"] == "not_taken"
    assert "did not take it" in failed.json["message"] and "try again" in failed.json["message"]
    hold = stored_hold(vault, hold_id)
    assert hold.decision is None and hold.claimed_until is None
    assert holds.original(vault, hold) == held_message()
    sink.refuse = frozenset()
    assert api.post(f"{API}/{hold_id}", headers=bearer(token),
                    json={"decision": "send_as_is"}).status_code == 200
    assert delivered(sink, PATIENT) and delivered(sink, COLLEAGUE)


def test_without_a_secure_method_it_stays_held_until_a_key_is_on_file(
        config: Config, vault: Vault, sink: SmtpSink) -> None:
    no_portal = config.model_copy(update={
        "routing": config.routing.model_copy(update={"portal_enabled": False})})
    client = create_app(no_portal, vault).test_client()
    hold_id = new_hold(client, no_portal, recipients=(PATIENT,))
    token = make_key(vault, ["quarantine:write", "keys:write"])
    sink.clear()
    refused = client.post(f"{API}/{hold_id}", headers=bearer(token),
                          json={"decision": "send_securely"})
    assert refused.status_code == 422 and refused.json["error"] == "no_secure_method"
    assert f"no secure way to deliver to {PATIENT}" in refused.json["message"]
    assert "still held" in refused.json["message"]
    assert stored_hold(vault, hold_id).decision is None and sink.messages == []
    _, certificate = TestCa.create().issue_email(PATIENT)
    imported = client.post("/api/v1/admin/keys", headers=bearer(token),
                           json={"data": base64.b64encode(certificate).decode()})
    assert imported.status_code == 201, imported.json
    sent = client.post(f"{API}/{hold_id}", headers=bearer(token),
                       json={"decision": "send_securely"})
    assert sent.status_code == 200, sent.json
    [(encrypted, data)] = delivered(sink, PATIENT)
    assert encrypted.get_content_type() == "application/pkcs7-mime"
    assert CARD.encode() not in data


def test_bad_decisions_and_missing_scopes_change_nothing(
        console: FlaskClient, api: FlaskClient, config: Config, vault: Vault) -> None:
    hold_id = new_hold(api, config)
    reader = make_key(vault, ["quarantine:read"])
    writer = make_key(vault, ["quarantine:write"], name="writer")
    forbidden = api.post(f"{API}/{hold_id}", headers=bearer(reader),
                         json={"decision": "discard"})
    assert forbidden.status_code == 403 and forbidden.json["needed"] == "quarantine:write"
    assert api.get(API, headers=bearer(writer)).status_code == 403
    assert api.post(f"{API}/{hold_id}", json={"decision": "discard"}).status_code == 401
    for body in ({"decision": "shred"}, {"decision": None}, {}):
        bad = api.post(f"{API}/{hold_id}", headers=bearer(writer), json=body)
        assert bad.status_code == 400 and "'decision' must be one of" in bad.json["message"]
    not_json = api.post(f"{API}/{hold_id}", headers=bearer(writer), data="discard")
    assert not_json.status_code == 400 and "JSON object" in not_json.json["message"]
    assert api.post(f"{API}/{uuid.uuid4()}", headers=bearer(writer),
                    json={"decision": "discard"}).status_code == 404
    # The console: the form token and a known choice are needed.
    assert console.post(f"/admin/quarantine/{hold_id}",
                        data={"choice": "discard"}).status_code == 400
    page = console.get("/admin/quarantine")
    assert console.post(f"/admin/quarantine/{hold_id}", data={
        "csrf_token": csrf(page.data), "choice": "shred"}).status_code == 400
    assert stored_hold(vault, hold_id).decision is None
    with vault.database.session() as db:
        assert db.scalars(select(SecureMessage)).all()  # the held content is still there


def test_the_quarantine_needs_a_signed_in_administrator(client: FlaskClient, config: Config,
                                                        vault: Vault) -> None:
    hold_id = new_hold(client, config)
    assert client.get("/admin/quarantine").status_code == 302
    refused = client.post(f"/admin/quarantine/{hold_id}", data={"choice": "discard"})
    assert refused.status_code in (302, 400)
    assert stored_hold(vault, hold_id).decision is None
    add_admin(vault)
    sign_in(client, vault)
    assert client.get("/admin/quarantine").status_code == 200


def test_an_expired_hold_cannot_be_sent_by_an_administrator_either(
        api: FlaskClient, config: Config, vault: Vault, sink: SmtpSink) -> None:
    hold_id = new_hold(api, config, allow_send_as_is=True)
    token = make_key(vault, ["quarantine:read", "quarantine:write"])
    with vault.database.writing() as db:
        db.execute(update(Hold).where(Hold.id == hold_id).values(
            expires_at=now() - timedelta(minutes=1)))
    listed = api.get(API, headers=bearer(token)).json["holds"]
    assert [h["state"] for h in listed] == ["expiring"]
    sink.clear()
    refused = api.post(f"{API}/{hold_id}", headers=bearer(token),
                       json={"decision": "send_as_is"})
    assert refused.status_code == 409 and refused.json["outcome"] == "already_decided"
    assert "expired before anyone decided" in refused.json["message"]
    hold = stored_hold(vault, hold_id)
    assert hold.decision is HoldDecision.EXPIRED and hold.message_id is None
    quiet_for_a_moment()
    assert sink.messages == []
