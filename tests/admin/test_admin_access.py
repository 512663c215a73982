"""Getting into the console and the API: password plus an authenticator that is always
required, lockout, sessions that end, and API keys that are scoped, hashed and revocable."""

from __future__ import annotations

import hashlib

import pyotp
from flask.testing import FlaskClient

from sealgate.vault import admins
from sealgate.vault.models import ApiKey, AuditEvent
from sealgate.vault.vault import Vault
from tests.admin.conftest import (
    ADMIN,
    PASSWORD,
    add_admin,
    bearer,
    code_after,
    make_key,
    sign_in,
    totp_secret,
)
from tests.portal.conftest import csrf


def _password_step(client: FlaskClient, password: str = PASSWORD,
                   address: str = ADMIN) -> str:
    page = client.get("/admin/signin")
    response = client.post("/admin/signin", data={"csrf_token": csrf(page.data),
                                                   "address": address, "password": password})
    return response.headers.get("Location", "") if response.status_code == 302 \
        else response.get_data(as_text=True)


def test_the_console_is_closed_to_anyone_not_signed_in(client: FlaskClient) -> None:
    for path in ("/admin/", "/admin/api-keys"):
        response = client.get(path)
        assert response.status_code == 302
        assert response.headers["Location"].startswith("/admin/signin")


def test_first_sign_in_enrols_the_authenticator_before_anything_else(
        client: FlaskClient, vault: Vault) -> None:
    add_admin(vault)
    assert "/admin/signin/authenticator" in _password_step(client)
    # A password alone opens nothing.
    refused = client.get("/admin/")
    assert refused.status_code == 302 and "/admin/signin/authenticator" in \
        refused.headers["Location"]
    page = client.get("/admin/signin/authenticator")
    secret = totp_secret(page.data)
    wrong = client.post("/admin/signin/authenticator", data={"csrf_token": csrf(page.data),
                                                              "code": "000000"})
    assert b"That code is not right" in wrong.data
    right = client.post("/admin/signin/authenticator", data={
        "csrf_token": csrf(page.data), "code": pyotp.TOTP(secret).now()})
    assert right.status_code == 302
    overview = client.get("/admin/")
    assert overview.status_code == 200 and b"Running settings revision" in overview.data
    with vault.database.session() as db:
        found = admins.find(db, ADMIN)
        assert found is not None and found.has_totp
        # The secret is wrapped under the keyring, never stored as typed.
        assert found.totp_wrapped is not None and secret.encode() not in found.totp_wrapped


def test_later_sign_ins_need_the_code_and_each_code_counts_once(
        client: FlaskClient, vault: Vault) -> None:
    add_admin(vault)
    secret = sign_in(client, vault)
    client.post("/admin/signout", data={"csrf_token": csrf(client.get("/admin/").data)})
    assert client.get("/admin/").status_code == 302
    assert "/admin/signin/code" in _password_step(client)
    assert client.get("/admin/").headers["Location"].startswith("/admin/signin/code")
    page = client.get("/admin/signin/code")
    code = code_after(secret, vault)
    assert client.post("/admin/signin/code", data={"csrf_token": csrf(page.data),
                                                   "code": code}).status_code == 302
    assert client.get("/admin/").status_code == 200
    # The same code again, in a new session, is refused.
    client.post("/admin/signout", data={"csrf_token": csrf(client.get("/admin/").data)})
    _password_step(client)
    page = client.get("/admin/signin/code")
    again = client.post("/admin/signin/code", data={"csrf_token": csrf(page.data),
                                                    "code": code})
    assert b"That code is not right" in again.data
    assert client.get("/admin/").status_code == 302


def test_wrong_passwords_lock_the_administrator_out_and_are_audited(
        client: FlaskClient, vault: Vault) -> None:
    add_admin(vault)
    for _ in range(admins.LOCKOUT_FAILURES - 1):
        assert "do not match" in _password_step(client, "wrong password entirely")
    assert "Too many failed attempts" in _password_step(client, "wrong password entirely")
    # Locked: even the right password is refused for now.
    assert "Too many failed attempts" in _password_step(client)
    unknown = _password_step(client, address="nobody@example.org")
    assert "do not match" in unknown  # the same answer as a wrong password
    with vault.database.session() as db:
        failures = db.query(AuditEvent).filter_by(action="admin.signin_failed").count()
    assert failures == admins.LOCKOUT_FAILURES + 2
    assert vault.verify_audit().intact


def test_a_long_address_failing_to_sign_in_is_audited_in_full(
        client: FlaskClient, vault: Vault) -> None:
    """Addresses longer than 64 characters (up to 320 are allowed) are kept whole in the
    audit trail on every database (PostgreSQL refuses what does not fit a column)."""
    long_address = "first.middle.last-name.of-the-it-department@administration.example.org"
    assert len(long_address) > 64
    add_admin(vault, long_address)

    assert "do not match" in _password_step(client, "wrong password entirely", long_address)
    assert "do not match" in _password_step(client, address=f"x{long_address}")
    assert "/admin/signin/authenticator" in _password_step(client, address=long_address)

    with vault.database.session() as db:
        events = db.query(AuditEvent).filter(AuditEvent.action.in_(
            ["admin.signin_failed", "admin.password_ok"])).order_by(AuditEvent.seq).all()
    assert [(e.action, e.actor) for e in events] == [
        ("admin.signin_failed", long_address), ("admin.signin_failed", f"x{long_address}"),
        ("admin.password_ok", long_address)]
    assert [e.object_id for e in events] == [long_address, f"x{long_address}", long_address]
    assert vault.verify_audit().intact


def test_a_portal_session_is_not_an_admin_session(client: FlaskClient, vault: Vault) -> None:
    add_admin(vault)
    # The portal's cookie holds a different key; a made-up admin secret is no session.
    with client.session_transaction() as session:
        session["sid"] = "portal-session-secret"
        session["admin_sid"] = "not-a-real-secret"
    assert client.get("/admin/").status_code == 302


def test_api_keys_are_shown_once_stored_hashed_and_revocable(
        console: FlaskClient, api: FlaskClient, vault: Vault) -> None:
    page = console.get("/admin/api-keys")
    made = console.post("/admin/api-keys", data={"csrf_token": csrf(page.data),
                                                 "name": "SIEM export",
                                                 "scopes": ["settings:read"]})
    assert made.status_code == 200
    text = made.get_data(as_text=True)
    start = text.index('id="new-key">') + len('id="new-key">')
    token = text[start:text.index("<", start)]
    assert token.startswith("sgk_")
    with vault.database.session() as db:
        key = db.query(ApiKey).one()
        assert key.digest == hashlib.sha256(token.encode()).hexdigest()
        assert token not in str(vars(key))
        key_id = key.id
    listing = console.get("/admin/api-keys").get_data(as_text=True)
    assert "SIEM export" in listing and token not in listing
    assert api.get("/api/v1/admin/settings", headers=bearer(token)).status_code == 200
    page = console.get("/admin/api-keys")
    console.post(f"/admin/api-keys/{key_id}/revoke", data={"csrf_token": csrf(page.data)})
    refused = api.get("/api/v1/admin/settings", headers=bearer(token))
    assert refused.status_code == 401
    assert refused.get_json()["error"] == "unauthorized"
    with vault.database.session() as db:
        actions = [e.action for e in db.query(AuditEvent).order_by(AuditEvent.seq)]
    assert "api_key.created" in actions and "api_key.revoked" in actions


def test_a_key_without_the_scope_is_refused_and_says_which_scope(
        api: FlaskClient, vault: Vault) -> None:
    token = make_key(vault, ["settings:read"])
    refused = api.put("/api/v1/admin/settings/portal", headers=bearer(token),
                      json={"expiry_days": 30})
    assert refused.status_code == 403
    body = refused.get_json()
    assert body["error"] == "insufficient_scope" and body["needed"] == "settings:write"
    assert 'scope="settings:write"' in refused.headers["WWW-Authenticate"]


def test_requests_without_a_valid_key_get_401(api: FlaskClient, vault: Vault) -> None:
    for headers in ({}, bearer("sgk_00000000_forged"), bearer("not-even-a-key")):
        response = api.get("/api/v1/admin/settings", headers=headers)
        assert response.status_code == 401
        assert response.get_json()["error"] == "unauthorized"
