"""Save to mailbox through the add-in API, end to end: the add-in user's token is exchanged
on their behalf (msal, against the identity fake on loopback), Microsoft Graph (the Graph
fake on loopback) gets the full message in the placeholder's folder, the placeholder goes,
and the audit trail records it. Refusals leave the mailbox as it was."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric import rsa
from flask.testing import FlaskClient
from sqlalchemy import select

from sealgate.config import Config
from sealgate.lab import pki
from sealgate.server.app import create_app
from sealgate.vault.models import AuditEvent
from sealgate.vault.vault import Vault
from tests.api.conftest import CLIENT_ID, Mint, bearer
from tests.exchange.graph_server import FakeGraph, FakeUser, server_context
from tests.exchange.identity import IdentityProvider, Registration, consent_missing
from tests.portal.conftest import SENDER, deposit, original

NURSE = "nurse@example.org"  # a recipient inside the organisation
SECRET = "exchange-client-secret"
RECEIVED = datetime(2026, 11, 2, 9, 30, tzinfo=UTC)


class IssuedTokens(dict[str, str | None]):
    """The Graph fake's token table: any access token the identity fake issued signs in as
    the one user (the fake Graph cannot know them in advance)."""

    def __init__(self, provider: IdentityProvider, user: FakeUser) -> None:
        super().__init__()
        self.provider, self.user = provider, user

    def __contains__(self, token: object) -> bool:
        return token in self.provider.issued

    def __getitem__(self, token: str) -> str | None:
        if token not in self.provider.issued:
            raise KeyError(token)
        return self.user.id


class Lab:
    def __init__(self, folder: Path, signing_key: rsa.RSAPrivateKey) -> None:
        ca = pki.TestCa.create("Microsoft fakes CA")
        self.ca_file = folder / "ca.pem"
        self.ca_file.write_bytes(ca.cert_pem)
        self.idp = IdentityProvider.start(ca, folder, Registration(CLIENT_ID, SECRET))
        # The add-in's token is what the user assertion is: signed by the key the API trusts.
        self.idp._signing_key = signing_key
        self.graph = FakeGraph(server_context(ca, folder))
        self.nurse = self.graph.add_user(NURSE)
        self.graph.tokens = IssuedTokens(self.idp, self.nurse)

    def close(self) -> None:
        self.graph.close()
        self.idp.close()


@pytest.fixture
def lab(tmp_path: Path, signing_key: rsa.RSAPrivateKey) -> Iterator[Lab]:
    built = Lab(tmp_path, signing_key)
    yield built
    built.close()


@pytest.fixture
def exchange_config(config: Config, lab: Lab) -> Config:
    return config.model_copy(update={"exchange": config.exchange.model_copy(update={
        "backend": "graph", "client_secret": SECRET, "authority_host": lab.idp.url,
        "graph_url": lab.graph.url, "ca_file": str(lab.ca_file), "timeout": 10})})


@pytest.fixture
def client(exchange_config: Config, vault: Vault) -> FlaskClient:
    return create_app(exchange_config, vault).test_client()


def save(client: FlaskClient, mint: Mint, message_id: str, item: str,
         **claims: Any) -> Any:
    token = mint(preferred_username=NURSE, **claims)
    return client.post(f"/api/v1/messages/{message_id}/mailbox", headers=bearer(token),
                       json={"item_id": "AAMkEWS" + item[-8:], "rest_id": item})


def audited(vault: Vault, action: str) -> list[AuditEvent]:
    with vault.database.session() as db:
        return list(db.scalars(select(AuditEvent).where(AuditEvent.action == action)))


def test_the_placeholder_is_replaced_by_the_full_message(
        client: FlaskClient, exchange_config: Config, vault: Vault, mint: Mint,
        lab: Lab) -> None:
    message_id = deposit(vault, exchange_config, original(
        to=(NURSE,), subject="encrypt/ Lab results",
        attachments=(("results.pdf", "application/pdf", b"%PDF-1.7 results"),)),
        (NURSE,), "Lab results")
    placeholder = lab.graph.put_message(lab.nurse, "Archive", subject="Secure message",
                                        body="Open it in the portal.", is_read=True,
                                        received=RECEIVED)
    shown = client.get(f"/api/v1/messages/{message_id}",
                       headers=bearer(mint(preferred_username=NURSE)))
    assert shown.json["mailbox"] == {"available": True, "auto": False}

    answer = save(client, mint, message_id, placeholder.id)
    assert answer.status_code == 200, answer.json
    assert answer.json["saved"] is True and answer.json["placeholder_removed"] is True
    (stored,) = lab.nurse.in_folder("Archive")
    assert stored.id == answer.json["item_id"] != placeholder.id
    assert stored.subject == "Lab results"  # the keyword taken out, as recipients see it
    assert stored.is_read is True
    assert [a.name for a in stored.attachments] == ["results.pdf"]
    # On behalf of the user, for Mail.ReadWrite; the add-in's token was the assertion.
    (grant,) = lab.idp.token_requests()
    assert grant.form["requested_token_use"] == "on_behalf_of"
    assert "https://graph.microsoft.com/Mail.ReadWrite" in grant.form["scope"].split()
    # Created first, then the placeholder removed.
    methods = [(r.method, r.path.rsplit("/", 2)[-2]) for r in lab.graph.calls()
               if r.method in ("POST", "DELETE")]
    assert methods[0][0] == "POST" and methods[-1][0] == "DELETE"
    (event,) = audited(vault, "mailbox.saved")
    assert event.actor == NURSE and event.object_id == message_id
    assert event.details["backend"] == "graph" and event.details["placeholder_removed"]


def test_only_a_recipient_inside_the_organisation_may_save(
        client: FlaskClient, exchange_config: Config, vault: Vault, mint: Mint,
        lab: Lab) -> None:
    message_id = deposit(vault, exchange_config)  # to an outside patient only
    placeholder = lab.graph.put_message(lab.nurse, "Inbox", subject="Secure message")
    answer = save(client, mint, message_id, placeholder.id)
    assert answer.status_code == 404  # not theirs: the same answer as for no message
    assert lab.idp.token_requests() == [] and lab.graph.calls() == []
    sent = deposit(vault, exchange_config, original(to=(NURSE,)), (NURSE,))
    answer = client.post(f"/api/v1/messages/{sent}/mailbox",
                         headers=bearer(mint(preferred_username=SENDER)),
                         json={"rest_id": placeholder.id})
    assert answer.status_code == 403 and answer.json["error"] == "not_a_recipient"


def test_consent_missing_is_said_plainly_and_nothing_changes(
        client: FlaskClient, exchange_config: Config, vault: Vault, mint: Mint,
        lab: Lab) -> None:
    message_id = deposit(vault, exchange_config, original(to=(NURSE,)), (NURSE,))
    placeholder = lab.graph.put_message(lab.nurse, "Inbox", subject="Secure message")
    lab.idp.answer_next(consent_missing(CLIENT_ID))
    answer = save(client, mint, message_id, placeholder.id)
    assert answer.status_code == 403 and answer.json["error"] == "mailbox_token"
    assert "consent" in answer.json["message"].lower()
    assert lab.graph.calls() == []
    assert [m.id for m in lab.nurse.in_folder("Inbox")] == [placeholder.id]
    (event,) = audited(vault, "mailbox.save_failed")
    assert event.details["error"] == "ConsentRequired"


def test_throttling_asks_to_retry_and_an_unknown_item_changes_nothing(
        client: FlaskClient, exchange_config: Config, vault: Vault, mint: Mint,
        lab: Lab) -> None:
    message_id = deposit(vault, exchange_config, original(to=(NURSE,)), (NURSE,))
    placeholder = lab.graph.put_message(lab.nurse, "Inbox", subject="Secure message")
    lab.graph.fail("GET", "/messages/", 429, "ApplicationThrottled", retry_after="7")
    answer = save(client, mint, message_id, placeholder.id)
    assert answer.status_code == 429 and answer.headers["Retry-After"] == "7"
    assert "busy" in answer.json["message"]
    answer = save(client, mint, message_id, "AAMkMsg" + uuid.uuid4().hex)
    assert answer.status_code == 502 and "no longer in your mailbox" in answer.json["message"]
    assert [m.id for m in lab.nurse.in_folder("Inbox")] == [placeholder.id]
    assert not [r for r in lab.graph.calls() if r.method in ("POST", "DELETE")]


def test_bad_item_ids_and_a_disabled_feature_are_refused(
        config: Config, exchange_config: Config, vault: Vault, mint: Mint) -> None:
    message_id = deposit(vault, exchange_config, original(to=(NURSE,)), (NURSE,))
    client = create_app(exchange_config, vault).test_client()
    token = bearer(mint(preferred_username=NURSE))
    for body in ({}, {"item_id": "<script>"}, {"rest_id": "x" * 2000}, {"item_id": 5}):
        answer = client.post(f"/api/v1/messages/{message_id}/mailbox", headers=token,
                             json=body)
        assert answer.status_code == 400, body
    off = create_app(config, vault).test_client()
    answer = off.post(f"/api/v1/messages/{message_id}/mailbox", headers=token,
                      json={"rest_id": "AAMk"})
    assert answer.status_code == 404 and answer.json["error"] == "not_enabled"
    shown = off.get(f"/api/v1/messages/{message_id}", headers=token)
    assert "mailbox" not in shown.json
    # EWS without its endpoint: a clear 503 for the user, and the audit trail says why.
    broken = create_app(exchange_config.model_copy(update={
        "exchange": exchange_config.exchange.model_copy(update={
            "backend": "ews", "ews_auth": "basic", "ews_url": ""})}), vault).test_client()
    answer = broken.post(f"/api/v1/messages/{message_id}/mailbox", headers=token,
                         json={"item_id": "AAMk"})
    assert answer.status_code == 503 and "administrator" in answer.json["message"]
    (event,) = audited(vault, "mailbox.save_failed")
    assert event.details["error"] == "ConfigError"
