"""The add-in API through Flask's test client, on SQLite and PostgreSQL: refusals of bad
tokens, the Encrypt tag, the on-send scan, and reading, downloading and retracting a secure
message as its recipient or its sender, with what each leaves in the audit trail."""

from __future__ import annotations

import base64
import hashlib
import json
import time
import uuid
from collections.abc import Callable
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric import rsa
from flask.testing import FlaskClient
from sqlalchemy import select, update

from sealgate.config import Config
from sealgate.lab import documents
from sealgate.lab.sink import SmtpSink
from sealgate.server.app import create_app
from sealgate.vault.models import (
    AuditEvent,
    MessageState,
    Part,
    PartKind,
    Recipient,
    SecureMessage,
)
from sealgate.vault.vault import Vault
from tests.api.conftest import KID, KeyServer, Mint, bearer, claims, mint_with, unsigned
from tests.portal.conftest import OTHER, PATIENT, SENDER, deposit, mail_to, original, text_of

PDF = b"%PDF-1.7 lab results"
PIXEL = base64.b64decode(
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNkYPhfDwAChwGA60e6kgAAAABJRU5ErkJggg==")
HTML = ('<p>Dear patient</p><script>alert(1)</script><img src="cid:logo@x">'
        '<img src="https://tracker.test/p.gif"><p>Results attached.</p>')


def events(vault: Vault, action: str) -> list[AuditEvent]:
    with vault.database.session() as db:
        return list(db.scalars(select(AuditEvent).where(AuditEvent.action == action)
                               .order_by(AuditEvent.seq)))


def row(vault: Vault, message_id: str, address: str = PATIENT) -> Recipient:
    with vault.database.session() as db:
        found: Recipient = db.scalars(select(Recipient).where(
            Recipient.message_id == uuid.UUID(message_id), Recipient.address == address)).one()
        return found


def state(vault: Vault, message_id: str) -> MessageState:
    with vault.database.session() as db:
        found = db.get(SecureMessage, uuid.UUID(message_id))
        assert found is not None
        return found.state


def rich(vault: Vault, config: Config) -> str:
    """A message with an HTML body, an inline image and a PDF, from SENDER to PATIENT."""
    return deposit(vault, config, original(
        html=HTML, attachments=(("results.pdf", "application/pdf", PDF),),
        inline=(("logo@x", "image/png", PIXEL),)))


# -- authentication ------------------------------------------------------------------------

def test_no_token_is_a_401_with_a_json_reason(client: FlaskClient) -> None:
    for headers in ({}, {"Authorization": "Basic dXNlcjpwYXNz"}, {"Authorization": "Bearer "}):
        response = client.post("/api/v1/tags", headers=headers)
        assert response.status_code == 401
        assert response.json == {"error": "missing_token",
                                 "message": "an Authorization: Bearer token is required"}
        assert response.headers["WWW-Authenticate"] == 'Bearer realm="sealgate"'


@pytest.mark.parametrize(("case", "reason", "status"), [
    ("expired", "expired", 401),
    ("audience", "wrong_audience", 401),
    ("tenant", "tenant_not_allowed", 401),
    ("signature", "bad_signature", 401),
    ("scope", "missing_scope", 403),
    ("none", "bad_signature", 401),
    ("unknown_kid", "bad_signature", 401),
    ("malformed", "malformed_token", 401),
])
def test_every_bad_token_is_refused_with_its_reason(
        client: FlaskClient, mint: Mint, other_key: rsa.RSAPrivateKey, vault: Vault,
        config: Config, case: str, reason: str, status: int) -> None:
    now = int(time.time())
    makers: dict[str, Callable[[], str]] = {
        "expired": lambda: mint(iat=now - 7200, nbf=now - 7200, exp=now - 3600),
        "audience": lambda: mint(aud="api://elsewhere.test/other"),
        "tenant": lambda: mint(tid="9188040d-6c67-4c5b-b112-36a304b66dad"),
        "signature": lambda: mint_with(other_key),
        "scope": lambda: mint(scp="Mail.Read"),
        "none": lambda: unsigned({"alg": "none", "kid": KID}, claims()),
        "unknown_kid": lambda: mint_with(other_key, kid="not-in-the-set"),
        "malformed": lambda: "not.a.token",
    }
    token = makers[case]()
    message_id = deposit(vault, config)
    for method, path in (("POST", "/api/v1/tags"), ("POST", "/api/v1/scan"),
                         ("GET", f"/api/v1/messages/{message_id}"),
                         ("POST", f"/api/v1/messages/{message_id}/retract")):
        response = client.open(path, method=method, headers=bearer(token), json={})
        assert response.status_code == status, (path, response.json)
        assert response.json is not None and response.json["error"] == reason
        challenge = response.headers["WWW-Authenticate"]
        expected = "insufficient_scope" if status == 403 else "invalid_token"
        assert f'error="{expected}"' in challenge and challenge.startswith("Bearer ")
    assert events(vault, "message.viewed") == [] and events(vault, "addin.tagged") == []
    assert state(vault, message_id) is MessageState.ACTIVE


def test_the_key_set_is_fetched_once_across_requests(client: FlaskClient, mint: Mint,
                                                     key_server: KeyServer) -> None:
    for _ in range(5):
        assert client.post("/api/v1/tags", headers=bearer(mint())).status_code == 201
    assert client.post("/api/v1/scan", headers=bearer(mint()), json={}).status_code == 200
    assert key_server.requests == 1


def test_the_key_set_down_is_a_503(client: FlaskClient, mint: Mint,
                                   key_server: KeyServer) -> None:
    key_server.status = 503
    response = client.post("/api/v1/tags", headers=bearer(mint()))
    assert response.status_code == 503
    assert response.json is not None and response.json["error"] == "key_set_unavailable"
    assert response.headers["Retry-After"]


def test_without_a_client_id_the_api_is_off(config: Config, vault: Vault, mint: Mint,
                                            key_server: KeyServer) -> None:
    off = config.model_copy(update={"addin": config.addin.model_copy(update={"client_id": ""})})
    response = create_app(off, vault).test_client().post("/api/v1/tags",
                                                         headers=bearer(mint()))
    assert response.status_code == 503
    assert response.json is not None and response.json["error"] == "api_disabled"
    assert key_server.requests == 0


# -- the Encrypt tag -------------------------------------------------------------------------

def test_a_tag_is_made_and_audited_by_its_digest(client: FlaskClient, mint: Mint,
                                                 vault: Vault) -> None:
    first = client.post("/api/v1/tags", headers=bearer(mint(preferred_username=SENDER)),
                        json={"subject": "Lab results"})
    second = client.post("/api/v1/tags", headers=bearer(mint(preferred_username=SENDER)))
    assert first.status_code == second.status_code == 201
    assert first.json is not None and second.json is not None
    assert first.json["header"] == "X-Sealgate-Encrypt"
    assert len(first.json["value"]) >= 32 and first.json["value"] != second.json["value"]
    audited = events(vault, "addin.tagged")
    assert [e.actor for e in audited] == [SENDER, SENDER]
    assert audited[0].object_id == hashlib.sha256(first.json["value"].encode()).hexdigest()
    assert audited[0].details["via"] == "addin"
    assert first.json["value"] not in json.dumps([e.details for e in audited])


def test_a_tag_request_with_a_bad_body_is_a_400(client: FlaskClient, mint: Mint) -> None:
    wrong = client.post("/api/v1/tags", headers=bearer(mint()), json={"subject": 5})
    assert wrong.status_code == 400 and wrong.json is not None
    assert wrong.json["error"] == "invalid_field" and wrong.json["field"] == "subject"
    broken = client.post("/api/v1/tags", headers=bearer(mint()), data="{not json",
                         content_type="application/json")
    assert broken.status_code == 400 and broken.json is not None
    assert broken.json["error"] == "malformed_json"


# -- the on-send scan -----------------------------------------------------------------------

def test_a_draft_is_scanned_with_the_gateways_engine(client: FlaskClient, mint: Mint) -> None:
    report = documents.pdf(["Quarterly figures", "Card on file: 4111 1111 1111 1111"])
    response = client.post("/api/v1/scan", headers=bearer(mint(preferred_username=SENDER)),
                           json={"subject": "Payroll", "body": "<p>SSN 123-45-6789</p>",
                                 "body_type": "html", "attachments": [
                                     {"name": "a.pdf",
                                      "content_base64": base64.b64encode(report).decode()},
                                     {"name": "link.url"}]})
    assert response.status_code == 200 and response.json is not None
    assert response.headers["Cache-Control"] == "no-store"
    answer = response.json
    assert answer["sensitive"] is True and answer["action"] == "encrypt"
    assert {p["name"] for p in answer["policies"]} == {
        "PCI DSS: payment card numbers", "US PII: government identifiers"}
    assert [(f["part"], f["type"], f["value"]) for f in answer["findings"]] == [
        ("body", "US_SSN", "***-**-6789"), ("a.pdf", "CREDIT_CARD", "**** **** **** 1111")]
    assert "123-45-6789" not in response.text and "4111 1111" not in response.text


def test_an_attachment_that_cannot_be_read_is_sensitive(client: FlaskClient,
                                                        mint: Mint) -> None:
    answer = client.post("/api/v1/scan", headers=bearer(mint()), json={
        "subject": "Hi", "body": "see attached", "attachments": [
            {"name": "a.pdf", "content_base64": base64.b64encode(PDF).decode()}]}).json
    assert answer is not None and answer["sensitive"] is True
    assert answer["policies"][0]["name"] == "Unreadable attachment"
    assert answer["unreadable"][0]["part"] == "a.pdf"


def test_a_draft_only_for_colleagues_is_not_held_back(client: FlaskClient, mint: Mint) -> None:
    body = {"subject": "Card", "body": "4111 1111 1111 1111"}
    outside = client.post("/api/v1/scan", headers=bearer(mint()), json={
        **body, "recipients": ["nurse@example.org", "patient@gmail.test"]}).json
    inside = client.post("/api/v1/scan", headers=bearer(mint()), json={
        **body, "recipients": ["nurse@example.org"]}).json
    assert outside is not None and outside["sensitive"] is True
    assert inside is not None and inside["sensitive"] is False and inside["findings"] == []


def test_with_dlp_off_nothing_is_found(config: Config, vault: Vault, mint: Mint) -> None:
    off = config.model_copy(update={"dlp": config.dlp.model_copy(update={"enabled": False})})
    client = create_app(off, vault).test_client()
    answer = client.post("/api/v1/scan", headers=bearer(mint()),
                         json={"body": "SSN 123-45-6789"}).json
    assert answer is not None and answer["sensitive"] is False and answer["findings"] == []


@pytest.mark.parametrize(("body", "field"), [
    ({"subject": ["x"]}, "subject"),
    ({"body": 1}, "body"),
    ({"body_type": "pdf"}, "body_type"),
    ({"attachments": "a.pdf"}, "attachments"),
    ({"attachments": ["a.pdf"]}, "attachments[0]"),
    ({"attachments": [{"content_base64": "AAAA"}]}, "attachments[0].name"),
    ({"attachments": [{"name": "a", "content_base64": "not base64!"}]},
     "attachments[0].content_base64"),
    ({"attachments": [{"name": "a", "content_base64": 12}]}, "attachments[0].content_base64"),
    ({"recipients": "a@b.test"}, "recipients"),
    ({"recipients": ["not an address"]}, "recipients"),
])
def test_a_scan_with_a_wrong_field_is_a_400_naming_it(client: FlaskClient, mint: Mint,
                                                      body: dict[str, Any], field: str) -> None:
    response = client.post("/api/v1/scan", headers=bearer(mint()), json=body)
    assert response.status_code == 400, response.json
    assert response.json is not None
    assert response.json["error"] == "invalid_field" and response.json["field"] == field
    assert f"'{field}'" in response.json["message"]


@pytest.mark.parametrize("data", [b"{", b"[1, 2]", b'"text"', b"\xff\xfe{}",
                                  b"[" * 100_000 + b"]" * 100_000, b""])
def test_a_scan_that_is_not_a_json_object_is_a_400(client: FlaskClient, mint: Mint,
                                                   data: bytes) -> None:
    response = client.post("/api/v1/scan", headers=bearer(mint()), data=data,
                           content_type="application/json")
    assert response.status_code == 400
    assert response.json is not None and response.json["error"] == "malformed_json"


def test_an_oversized_scan_is_a_413(config: Config, vault: Vault, mint: Mint) -> None:
    small = config.model_copy(update={"addin": config.addin.model_copy(
        update={"max_scan_mb": 1})})
    client = create_app(small, vault).test_client()
    # The body alone is too large: refused on its Content-Length, before it is read.
    huge = client.post("/api/v1/scan", headers=bearer(mint()),
                       data=b'{"body": "' + b"x" * (3 * 1024 * 1024) + b'"}',
                       content_type="application/json")
    assert huge.status_code == 413
    assert huge.json is not None and huge.json["error"] == "too_large"
    # The body fits but the attachments it carries decode to more than the limit.
    content = base64.b64encode(b"\0" * (1024 * 1024 + 1)).decode()
    decoded = client.post("/api/v1/scan", headers=bearer(mint()),
                          json={"attachments": [{"name": "big.bin", "content_base64": content}]})
    assert decoded.status_code == 413
    assert decoded.json is not None and decoded.json["error"] == "too_large"
    fits = base64.b64encode(b"\0" * (1000 * 1000)).decode()
    assert client.post("/api/v1/scan", headers=bearer(mint()), json={
        "attachments": [{"name": "ok.bin", "content_base64": fits}]}).status_code == 200


def test_a_scan_without_a_token_is_refused_before_its_body_is_read(
        client: FlaskClient) -> None:
    response = client.post("/api/v1/scan", data=b"x" * 1024)
    assert response.status_code == 401


# -- reading ---------------------------------------------------------------------------------

def test_a_recipient_reads_the_message_in_outlook(client: FlaskClient, mint: Mint,
                                                  vault: Vault, config: Config,
                                                  sink: SmtpSink) -> None:
    message_id = rich(vault, config)
    response = client.get(f"/api/v1/messages/{message_id}",
                          headers=bearer(mint(preferred_username="Patient@Gmail.TEST")))
    response.close()  # the read receipt goes once the answer is out
    assert response.status_code == 200
    document = response.json
    assert document is not None
    assert document["id"] == message_id and document["subject"] == "Lab results"
    assert document["sender"] == SENDER and document["sender_name"] == "Dr Who"
    assert document["state"] == "active" and document["expires_at"] is None
    assert document["created_at"].endswith("+00:00")
    assert "tracking" not in document
    html = document["html"]
    assert "Dear patient" in html and "Results attached." in html
    for marker in ("<script", "alert", "tracker.test", "cid:"):
        assert marker not in html
    assert document["remote_images_blocked"] == 1
    assert "Your results are normal." in document["text"]
    [attachment] = document["attachments"]
    assert attachment["filename"] == "results.pdf" and attachment["size"] == len(PDF)
    assert attachment["content_type"] == "application/pdf"
    assert attachment["url"] == (f"{config.server.base_url}/api/v1/messages/{message_id}"
                                 f"/parts/{attachment['id']}")
    # The inline image points at the API, on the configured public host.
    assert f'src="{config.server.base_url}/api/v1/messages/{message_id}/parts/' in html

    opened = row(vault, message_id)
    assert opened.first_opened_at is not None and opened.last_opened_at is not None
    [viewed] = events(vault, "message.viewed")
    assert viewed.actor == PATIENT and viewed.object_id == message_id
    assert viewed.details["via"] == "addin" and viewed.details["first"] is True
    [receipt] = mail_to(sink, SENDER)
    assert receipt["Subject"] == "Opened: Lab results" and PATIENT in text_of(receipt)

    again = client.get(f"/api/v1/messages/{message_id}", headers=bearer(mint()))
    again.close()
    assert again.status_code == 200
    assert [e.details["first"] for e in events(vault, "message.viewed")] == [True, False]
    assert len(mail_to(sink, SENDER)) == 1


def test_the_sender_sees_the_message_with_its_tracking(client: FlaskClient, mint: Mint,
                                                       vault: Vault, config: Config) -> None:
    message_id = deposit(vault, config, original(to=(PATIENT, OTHER)),
                         recipients=(PATIENT, OTHER))
    client.get(f"/api/v1/messages/{message_id}", headers=bearer(mint())).close()
    response = client.get(f"/api/v1/messages/{message_id}",
                          headers=bearer(mint(preferred_username=SENDER.upper())))
    assert response.status_code == 200 and response.json is not None
    recipients = {r["address"]: r for r in response.json["tracking"]["recipients"]}
    assert set(recipients) == {PATIENT, OTHER}
    assert recipients[PATIENT]["first_opened_at"] is not None
    assert recipients[OTHER]["first_opened_at"] is None
    assert recipients[PATIENT]["method"] == "portal" and recipients[OTHER]["downloads"] == 0
    # The sender reading is not an opening by a recipient.
    assert [e.actor for e in events(vault, "message.viewed")] == [PATIENT]


def test_the_sender_finds_a_sent_message_by_its_message_id(client: FlaskClient, mint: Mint,
                                                          vault: Vault, config: Config) -> None:
    """The sender's own sent copy carries only the original Message-ID (<m1@example.org>)."""
    message_id = deposit(vault, config)
    as_sender = bearer(mint(preferred_username=SENDER))
    for given in ("<m1@example.org>", "m1@example.org"):
        found = client.get(f"/api/v1/messages?internet_message_id={given}", headers=as_sender)
        assert found.status_code == 200 and found.json == {"messages": [{"id": message_id}]}
    as_recipient = client.get("/api/v1/messages?internet_message_id=<m1@example.org>",
                              headers=bearer(mint()))
    assert as_recipient.json == {"messages": []}  # only messages the caller sent
    missing = client.get("/api/v1/messages", headers=as_sender)
    assert missing.status_code == 400 and missing.json["field"] == "internet_message_id"


def test_someone_else_gets_a_404_and_the_attempt_is_audited(
        client: FlaskClient, mint: Mint, vault: Vault, config: Config) -> None:
    message_id = rich(vault, config)
    stranger = bearer(mint(preferred_username="nosy@example.org"))
    part_id = uuid.uuid4()
    for method, path in (("GET", f"/api/v1/messages/{message_id}"),
                         ("GET", f"/api/v1/messages/{message_id}/parts/{part_id}"),
                         ("POST", f"/api/v1/messages/{message_id}/retract"),
                         ("GET", f"/api/v1/messages/{uuid.uuid4()}")):
        response = client.open(path, method=method, headers=stranger)
        assert response.status_code == 404, path
        assert response.json is not None and response.json["error"] == "not_found"
        assert "Lab results" not in response.get_data(as_text=True)
    denied = events(vault, "api.denied")
    assert len(denied) == 4 and {e.actor for e in denied} == {"nosy@example.org"}
    assert denied[0].object_id == message_id and denied[0].details["via"] == "addin"
    assert events(vault, "message.viewed") == []
    assert state(vault, message_id) is MessageState.ACTIVE


def test_a_malformed_message_id_is_a_json_404(client: FlaskClient, mint: Mint) -> None:
    response = client.get("/api/v1/messages/not-a-uuid", headers=bearer(mint()))
    assert response.status_code == 404 and response.json is not None


def test_a_recipient_downloads_an_attachment(client: FlaskClient, mint: Mint, vault: Vault,
                                            config: Config) -> None:
    message_id = rich(vault, config)
    document = client.get(f"/api/v1/messages/{message_id}", headers=bearer(mint())).json
    assert document is not None
    [attachment] = document["attachments"]
    path = f"/api/v1/messages/{message_id}/parts/{attachment['id']}"
    response = client.get(path, headers=bearer(mint()))
    assert response.status_code == 200 and response.data == PDF
    assert response.mimetype == "application/pdf"
    assert response.headers["Content-Disposition"].startswith('attachment; filename="results.pdf"')
    assert "sandbox" in response.headers["Content-Security-Policy"]
    assert "frame-ancestors 'none'" in response.headers["Content-Security-Policy"]
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert row(vault, message_id).downloads == 1
    [downloaded] = events(vault, "message.downloaded")
    assert downloaded.actor == PATIENT and downloaded.details["via"] == "addin"
    assert downloaded.details["filename"] == "results.pdf"

    # The sender may fetch it too; that is audited but not counted as the recipient's.
    assert client.get(path, headers=bearer(mint(preferred_username=SENDER))).data == PDF
    assert row(vault, message_id).downloads == 1
    assert len(events(vault, "message.downloaded")) == 2
    # Without a token there is nothing.
    assert client.get(path).status_code == 401


def test_an_inline_image_is_served_inline_and_not_counted(client: FlaskClient, mint: Mint,
                                                          vault: Vault, config: Config) -> None:
    message_id = rich(vault, config)
    document = client.get(f"/api/v1/messages/{message_id}", headers=bearer(mint())).json
    assert document is not None
    start = document["html"].index(config.server.base_url)
    url = document["html"][start:document["html"].index('"', start)]
    response = client.get(url.removeprefix(config.server.base_url), headers=bearer(mint()))
    assert response.status_code == 200 and response.data == PIXEL
    assert response.headers["Content-Disposition"].startswith("inline")
    assert row(vault, message_id).downloads == 0
    assert events(vault, "message.downloaded") == []


def test_a_part_of_another_message_or_a_body_part_is_not_served(
        client: FlaskClient, mint: Mint, vault: Vault, config: Config) -> None:
    mine = rich(vault, config)
    theirs = rich(vault, config)
    document = client.get(f"/api/v1/messages/{theirs}", headers=bearer(mint())).json
    assert document is not None
    other_part = document["attachments"][0]["id"]
    response = client.get(f"/api/v1/messages/{mine}/parts/{other_part}",
                          headers=bearer(mint()))
    assert response.status_code == 404
    with vault.database.session() as db:
        original_part = db.scalars(select(Part.id).where(
            Part.message_id == uuid.UUID(mine), Part.kind == PartKind.ORIGINAL)).one()
    assert client.get(f"/api/v1/messages/{mine}/parts/{original_part}",
                      headers=bearer(mint())).status_code == 404


def test_the_sender_retracts_and_the_recipient_is_shut_out(
        client: FlaskClient, mint: Mint, vault: Vault, config: Config) -> None:
    message_id = rich(vault, config)
    sender = bearer(mint(preferred_username=SENDER))
    # A recipient cannot withdraw it: to them the action does not exist.
    refused = client.post(f"/api/v1/messages/{message_id}/retract", headers=bearer(mint()))
    assert refused.status_code == 404
    assert state(vault, message_id) is MessageState.ACTIVE

    response = client.post(f"/api/v1/messages/{message_id}/retract", headers=sender)
    assert response.status_code == 200
    assert response.json == {"id": message_id, "state": "retracted"}
    assert state(vault, message_id) is MessageState.RETRACTED
    [retracted] = events(vault, "message.retracted")
    assert retracted.actor == SENDER and retracted.details["via"] == "addin"

    again = client.post(f"/api/v1/messages/{message_id}/retract", headers=sender)
    assert again.status_code == 200 and len(events(vault, "message.retracted")) == 1

    for headers in (bearer(mint()), sender):
        gone = client.get(f"/api/v1/messages/{message_id}", headers=headers)
        assert gone.status_code == 410
        assert gone.json is not None and gone.json["error"] == "retracted"
        assert "Dear patient" not in gone.get_data(as_text=True)
    # The portal agrees.
    assert client.get(f"/m/{message_id}").status_code == 410


def test_an_expired_message_is_gone(client: FlaskClient, mint: Mint, vault: Vault,
                                    config: Config) -> None:
    message_id = rich(vault, config)
    with vault.database.writing() as db:
        db.execute(update(SecureMessage).where(SecureMessage.id == uuid.UUID(message_id))
                   .values(expires_at=SecureMessage.created_at))
    response = client.get(f"/api/v1/messages/{message_id}", headers=bearer(mint()))
    assert response.status_code == 410
    assert response.json is not None and response.json["error"] == "expired"


def test_a_senders_question_sends_the_recipient_to_the_portal(
        client: FlaskClient, mint: Mint, vault: Vault, config: Config) -> None:
    message_id = rich(vault, config)
    with vault.database.writing() as db:
        db.execute(update(Recipient).where(Recipient.message_id == uuid.UUID(message_id))
                   .values(question="Your date of birth?", answer_hash="$argon2id$unused"))
    response = client.get(f"/api/v1/messages/{message_id}", headers=bearer(mint()))
    assert response.status_code == 403 and response.json is not None
    assert response.json["error"] == "question_required"
    assert response.json["portal_url"] == f"{config.server.base_url}/m/{message_id}"
    assert "Dear patient" not in response.get_data(as_text=True)
    assert events(vault, "message.viewed") == []
    sender = client.get(f"/api/v1/messages/{message_id}",
                        headers=bearer(mint(preferred_username=SENDER)))
    assert sender.status_code == 200
