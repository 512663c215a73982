"""The internal deposit endpoint, through the app's test client, on SQLite and PostgreSQL."""

from __future__ import annotations

import base64
import uuid
from email import message_from_bytes, policy
from email.message import EmailMessage

import pytest
from flask.testing import FlaskClient

from sealgate.config import Config
from sealgate.server.app import create_app
from sealgate.vault.models import PartKind
from sealgate.vault.vault import Vault


@pytest.fixture
def client(settings: Config, vault: Vault) -> FlaskClient:
    return create_app(settings, vault).test_client()


def original() -> bytes:
    message = EmailMessage()
    message["From"] = "Dr Who <who@example.org>"
    message["To"] = "patient@gmail.test"
    message["Subject"] = "encrypt/ Lab results"
    message["Message-ID"] = "<m1@example.org>"
    message.set_content("Your results are normal.")
    message.add_attachment(b"%PDF-1.7 results", maintype="application", subtype="pdf",
                           filename="results.pdf")
    return message.as_bytes()


def post(client: FlaskClient, settings: Config, payload: object,
         secret: str | None = None) -> object:
    return client.post("/api/v1/internal/deposits", json=payload, headers={
        "Authorization": f"Bearer {settings.internal_api.secret if secret is None else secret}"})


def payload(raw: bytes) -> dict[str, object]:
    return {"mail_from": "who@example.org", "recipients": ["patient@gmail.test"],
            "subject": "Lab results", "message": base64.b64encode(raw).decode()}


def test_deposit_seals_the_message_and_returns_the_notification(
        client: FlaskClient, settings: Config, vault: Vault) -> None:
    raw = original()
    response = post(client, settings, payload(raw))
    assert response.status_code == 201, response.json  # type: ignore[attr-defined]
    answer = response.json  # type: ignore[attr-defined]
    message_id = uuid.UUID(answer["message_id"])
    assert answer["link"] == f"{settings.server.base_url}/m/{message_id}"
    body = base64.b64decode(answer["body"])
    mime = message_from_bytes(f"Content-Type: {answer['content_type']}\r\n\r\n".encode() + body,
                              policy=policy.default)
    text = mime.get_body(("plain",)).get_content()  # type: ignore[union-attr]
    assert answer["link"] in text and "Dr Who" in text and "Lab results" in text
    assert b"Your results are normal" not in body and b"%PDF" not in body

    parts = {part.kind: part for part in vault.parts(message_id)}
    assert vault.read_part(parts[PartKind.ORIGINAL]) == raw
    assert vault.read_part(parts[PartKind.TEXT]) == b"Your results are normal.\n"
    assert vault.read_part(parts[PartKind.ATTACHMENT]) == b"%PDF-1.7 results"
    with vault.database.session() as session:
        stored = vault.message(session, message_id)
        assert stored.subject == "Lab results" and stored.sender_name == "Dr Who"
        assert [r.address for r in stored.recipients] == ["patient@gmail.test"]

    page = client.get(f"/m/{message_id}")
    assert page.status_code == 200 and b"Dr Who" in page.data
    assert b"Your results are normal" not in page.data


def test_wrong_or_missing_secret_is_refused(client: FlaskClient, settings: Config,
                                            vault: Vault) -> None:
    assert post(client, settings, payload(original()), "wrong").status_code == 401  # type: ignore[attr-defined]
    response = client.post("/api/v1/internal/deposits", json=payload(original()))
    assert response.status_code == 401 and response.json["error"] == "unauthorized"  # type: ignore[index]
    assert vault.count_parts() == 0


@pytest.mark.parametrize("body, message", [
    ({"mail_from": "a@b.c", "recipients": [], "subject": "", "message": ""},
     "non-empty list"),
    ({"mail_from": "a@b.c", "recipients": ["x@y.z"], "subject": "", "message": "!!"},
     "not base64"),
    ({"recipients": ["x@y.z"], "subject": "", "message": ""}, "'mail_from' is missing"),
    (["not", "an", "object"], "expected a JSON object"),
])
def test_bad_requests_get_a_json_reason(client: FlaskClient, settings: Config, body: object,
                                        message: str) -> None:
    response = post(client, settings, body)
    assert response.status_code == 400  # type: ignore[attr-defined]
    assert message in response.json["message"]  # type: ignore[attr-defined]


def test_unreadable_mime_is_a_permanent_refusal(client: FlaskClient, settings: Config,
                                                vault: Vault) -> None:
    raw = b"Content-Type: multipart/mixed; boundary=x\r\nSubject: s\r\n\r\nno parts\r\n"
    response = post(client, settings, payload(raw))
    assert response.status_code == 422  # type: ignore[attr-defined]
    assert "boundary" in response.json["message"]  # type: ignore[attr-defined]
    assert vault.count_parts() == 0


def test_unknown_message_page_is_404(client: FlaskClient) -> None:
    assert client.get(f"/m/{uuid.uuid4()}").status_code == 404


def test_the_sender_of_record_is_the_envelope_sender_not_the_from_header(
        client: FlaskClient, settings: Config, vault: Vault) -> None:
    """A From header naming a colleague gives that colleague no rights over the message."""
    message = EmailMessage()
    message["From"] = "The Boss <boss@example.org>"
    message["To"] = "patient@gmail.test"
    message["Subject"] = "Lab results"
    message.set_content("Your results are normal.")
    response = post(client, settings, payload(message.as_bytes()))
    assert response.status_code == 201  # type: ignore[attr-defined]
    message_id = uuid.UUID(response.json["message_id"])  # type: ignore[attr-defined]
    with vault.database.session() as db:
        stored = vault.message(db, message_id)
        assert stored.sender == "who@example.org" and stored.sender_name == "The Boss"


def test_the_sender_of_record_is_kept_lower_cased_like_the_recipients(
        client: FlaskClient, settings: Config, vault: Vault) -> None:
    """Exchange often sends as "John.Doe@…"; the portal and the add-in compare addresses
    lower-cased, so the sender must be found by its lower-cased address."""
    body = {**payload(original()), "mail_from": "Who@Example.ORG"}
    response = post(client, settings, body)
    assert response.status_code == 201  # type: ignore[attr-defined]
    message_id = uuid.UUID(response.json["message_id"])  # type: ignore[attr-defined]
    with vault.database.session() as db:
        assert vault.message(db, message_id).sender == "who@example.org"


@pytest.mark.parametrize("enforced", [False, True])
def test_verified_tls_is_chosen_only_when_the_mta_enforces_it(
        settings: Config, vault: Vault, enforced: bool) -> None:
    from datetime import UTC, datetime, timedelta

    from sealgate.vault import tls

    now = datetime.now(UTC)
    tls.save_verdict(vault, tls.StoredVerdict("gmail.test", True, "starttls-probe",
                                              ("qualifies",), now + timedelta(hours=1)), now)
    configured = settings.model_copy(update={"routing": settings.routing.model_copy(
        update={"mta_enforces_tls": enforced})})
    response = post(create_app(configured, vault).test_client(), settings,
                    payload(original()))
    methods = {c["address"]: c["method"] for c in response.json["plan"]}  # type: ignore[attr-defined]
    assert methods == {"patient@gmail.test": "tls" if enforced else "portal"}
