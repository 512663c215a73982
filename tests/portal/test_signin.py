"""Getting in: one-time codes, accounts with confirmed addresses, lockout, TOTP with recovery
codes, the organisation's MFA requirement, password reset that never bypasses the second
factor, and sessions that rotate on sign-in and end on sign-out."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

import pyotp
import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select, update

from sealgate.config import Config
from sealgate.lab.sink import SmtpSink
from sealgate.server.app import create_app
from sealgate.vault.models import AuditEvent, PortalAccount, PortalSession
from sealgate.vault.vault import Vault
from tests.portal.conftest import (
    PATIENT,
    configured,
    csrf,
    deposit,
    mail_to,
    sign_in_with_code,
    text_of,
)

PASSWORD = "orbit-cactus-lantern-harbour"


def post_form(client: FlaskClient, path: str, **fields: str) -> object:
    page = client.get(path)
    return client.post(path, data={"csrf_token": csrf(page.data), **fields})


def failures(vault: Vault) -> int:
    with vault.database.session() as db:
        return len(db.scalars(select(AuditEvent.seq).where(
            AuditEvent.action == "portal.login_failed")).all())


def link_in(sink: SmtpSink, address: str, path: str) -> str:
    text = text_of(mail_to(sink, address)[-1])
    found = re.search(rf"https?://\S+({path}\S+)", text)
    assert found, text
    return found.group(1)


def register(client: FlaskClient, sink: SmtpSink, address: str = PATIENT,
             password: str = PASSWORD) -> None:
    response = post_form(client, "/register", address=address, password=password,
                         confirm=password)
    assert response.status_code == 200 and b"Check your email" in response.data  # type: ignore[attr-defined]


def enrol_totp(client: FlaskClient) -> tuple[pyotp.TOTP, list[str]]:
    page = client.get("/account/authenticator")
    assert page.status_code == 200 and b"data:image/svg+xml" in page.data
    secret = re.search(rb"<code class=\"key\">([A-Z2-7]+)</code>", page.data)
    assert secret
    totp = pyotp.TOTP(secret.group(1).decode())
    done = client.post("/account/authenticator", data={"csrf_token": csrf(page.data),
                                                        "code": totp.now()})
    assert done.status_code == 200
    codes = re.findall(r"<code>([A-Z2-7]{4}-[A-Z2-7]{4}-[A-Z2-7]{4}-[A-Z2-7]{4})</code>",
                       done.data.decode())
    assert len(codes) == 10
    return totp, codes


def test_a_code_is_mailed_only_to_an_address_with_a_message_and_the_answer_is_the_same(
        client: FlaskClient, vault: Vault, config: Config, sink: SmtpSink) -> None:
    deposit(vault, config)
    known = post_form(client, "/signin", address=PATIENT)
    unknown = post_form(client, "/signin", address="stranger@evil.test")
    assert known.status_code == unknown.status_code == 302  # type: ignore[attr-defined]
    assert [m.rcpt_tos for m in sink.messages] == [(PATIENT,)]
    mail = mail_to(sink, PATIENT)[0]
    assert mail["Auto-Submitted"] == "auto-generated"
    assert re.search(r"\b\d{6}\b", text_of(mail)) and "never ask" in text_of(mail)


def test_no_code_is_mailed_for_a_message_that_has_expired(
        client: FlaskClient, vault: Vault, config: Config, sink: SmtpSink) -> None:
    from sealgate.vault.models import SecureMessage

    deposit(vault, config)
    with vault.database.writing() as db:
        db.execute(update(SecureMessage).values(
            expires_at=datetime.now(UTC) - timedelta(minutes=1)))
    assert post_form(client, "/signin", address=PATIENT).status_code == 302  # type: ignore[attr-defined]
    assert sink.messages == []


def test_a_new_code_replaces_the_old_one_and_a_code_works_once(
        client: FlaskClient, vault: Vault, config: Config, sink: SmtpSink) -> None:
    deposit(vault, config)
    post_form(client, "/signin", address=PATIENT)
    first = re.search(r"\b(\d{6})\b", text_of(mail_to(sink, PATIENT)[-1]))
    post_form(client, "/signin", address=PATIENT)
    second = re.search(r"\b(\d{6})\b", text_of(mail_to(sink, PATIENT, 2)[-1]))
    assert first and second
    page = client.get(f"/signin/code?address={PATIENT}")
    old = client.post("/signin/code", data={"csrf_token": csrf(page.data), "address": PATIENT,
                                            "code": first.group(1)})
    assert old.status_code == 200 and b"wrong or no longer valid" in old.data
    good = client.post("/signin/code", data={"csrf_token": csrf(page.data), "address": PATIENT,
                                             "code": second.group(1)})
    assert good.status_code == 302
    other = create_app(config, vault).test_client()
    page = other.get(f"/signin/code?address={PATIENT}")
    again = other.post("/signin/code", data={"csrf_token": csrf(page.data), "address": PATIENT,
                                             "code": second.group(1)})
    assert again.status_code == 200 and other.get("/messages").status_code == 302
    assert failures(vault) == 2


def test_registration_needs_the_address_confirmed_before_the_password_works(
        client: FlaskClient, vault: Vault, sink: SmtpSink) -> None:
    register(client, sink)
    early = post_form(client, "/signin/password", address=PATIENT, password=PASSWORD)
    assert b"confirm your address first" in early.data  # type: ignore[attr-defined]
    verify = client.get(link_in(sink, PATIENT, "/register/verify/"))
    assert verify.status_code == 302 and verify.headers["Location"] == "/messages"
    client.post("/signout", data={"csrf_token": csrf(client.get("/messages").data)})
    assert client.get("/messages").status_code == 302
    signed_in = post_form(client, "/signin/password", address=PATIENT, password=PASSWORD)
    assert signed_in.status_code == 302  # type: ignore[attr-defined]
    assert client.get("/messages").status_code == 200


@pytest.mark.parametrize("password", ["password123456", "Password1234!", "patient2024!!x",
                                      "short1!"])
def test_weak_passwords_are_refused_with_a_reason(client: FlaskClient, password: str) -> None:
    response = post_form(client, "/register", address=PATIENT, password=password,
                         confirm=password)
    assert response.status_code == 400  # type: ignore[attr-defined]
    assert b"password" in response.data.lower()  # type: ignore[attr-defined]


def test_registering_an_existing_address_never_changes_its_password(
        client: FlaskClient, vault: Vault, sink: SmtpSink) -> None:
    register(client, sink)
    client.get(link_in(sink, PATIENT, "/register/verify/"))
    intruder = client.application.test_client()
    register(intruder, sink, password="another-long-passphrase-words")
    assert "/reset/" in text_of(mail_to(sink, PATIENT, 2)[-1])
    wrong = post_form(intruder, "/signin/password", address=PATIENT,
                      password="another-long-passphrase-words")
    assert wrong.status_code == 200  # type: ignore[attr-defined]
    assert post_form(intruder, "/signin/password", address=PATIENT,
                     password=PASSWORD).status_code == 302  # type: ignore[attr-defined]


def test_a_password_nobody_confirmed_is_dropped_when_the_mailbox_is_proven(
        client: FlaskClient, vault: Vault, config: Config, sink: SmtpSink) -> None:
    """Someone registered the patient's address with their own password; the patient then
    signs in with a code: the stranger's password must not start working."""
    deposit(vault, config)
    register(client.application.test_client(), sink, password="strangers-own-passphrase-xy")
    sign_in_with_code(client, sink, PATIENT)
    with vault.database.session() as db:
        account = db.scalars(select(PortalAccount)).one()
        assert account.verified_at is not None and account.password_hash is None


def test_repeated_wrong_passwords_lock_the_account(client: FlaskClient, vault: Vault,
                                                   config: Config, sink: SmtpSink) -> None:
    register(client, sink)
    client.get(link_in(sink, PATIENT, "/register/verify/"))
    guesser = client.application.test_client()
    for _ in range(config.portal.lockout_failures - 1):
        wrong = post_form(guesser, "/signin/password", address=PATIENT, password="nope")
        assert b"is wrong" in wrong.data  # type: ignore[attr-defined]
    locked = post_form(guesser, "/signin/password", address=PATIENT, password="nope")
    assert b"locked" in locked.data  # type: ignore[attr-defined]
    right = post_form(guesser, "/signin/password", address=PATIENT, password=PASSWORD)
    assert right.status_code == 200 and b"locked" in right.data  # type: ignore[attr-defined]
    assert failures(vault) == config.portal.lockout_failures + 1


def test_credential_checks_are_rate_limited_per_client(client: FlaskClient) -> None:
    page = client.get("/signin/password")
    statuses = [client.post("/signin/password", data={
        "csrf_token": csrf(page.data), "address": f"user{i}@gmail.test",
        "password": "wrong"}).status_code for i in range(12)]
    assert statuses[:10] == [200] * 10 and statuses[10:] == [429, 429]


def test_totp_enrolment_then_every_sign_in_needs_the_app_or_a_recovery_code(
        client: FlaskClient, vault: Vault, config: Config, sink: SmtpSink) -> None:
    message_id = deposit(vault, config)
    sign_in_with_code(client, sink, PATIENT)
    totp, codes = enrol_totp(client)
    with vault.database.session() as db:
        stored = db.scalars(select(PortalAccount)).one()
        assert stored.totp_wrapped and totp.secret.encode() not in stored.totp_wrapped

    fresh = client.application.test_client()
    after_code = sign_in_with_code(fresh, sink, PATIENT, f"/m/{message_id}")
    assert after_code.status_code == 302
    blocked = fresh.get(f"/m/{message_id}")
    assert blocked.status_code == 302 and "/signin/second-factor" in blocked.headers["Location"]
    page = fresh.get("/signin/second-factor")
    reused = fresh.post("/signin/second-factor", data={"csrf_token": csrf(page.data),
                                                       "code": totp.now()})
    assert b"not right" in reused.data  # the code used at enrolment is spent
    recovered = fresh.post("/signin/second-factor", data={
        "csrf_token": csrf(page.data), "code": codes[0].lower().replace("-", " ")})
    assert recovered.status_code == 302
    assert fresh.get(f"/m/{message_id}").status_code == 200

    again = client.application.test_client()
    sign_in_with_code(again, sink, PATIENT)
    page = again.get("/signin/second-factor")
    spent = again.post("/signin/second-factor", data={"csrf_token": csrf(page.data),
                                                      "code": codes[0]})
    assert b"not right" in spent.data


def test_a_password_reset_does_not_bypass_the_authenticator(
        client: FlaskClient, vault: Vault, config: Config, sink: SmtpSink) -> None:
    register(client, sink)
    client.get(link_in(sink, PATIENT, "/register/verify/"))
    enrol_totp(client)
    attacker = client.application.test_client()  # holds the mailbox, not the phone
    post_form(attacker, "/forgot", address=PATIENT)
    reset_path = link_in(sink, PATIENT, "/reset/")
    reset = post_form(attacker, reset_path, password="brand-new-passphrase-here",
                      confirm="brand-new-passphrase-here")
    assert reset.status_code == 302  # type: ignore[attr-defined]
    assert client.get("/messages").status_code == 302  # the reset ended the old session
    post_form(attacker, "/signin/password", address=PATIENT,
              password="brand-new-passphrase-here")
    assert attacker.get("/messages").headers["Location"].startswith("/signin/second-factor")
    sign_in_with_code(attacker, sink, PATIENT)
    assert attacker.get("/messages").headers["Location"].startswith("/signin/second-factor")
    used_again = attacker.get(reset_path)
    assert used_again.status_code == 200
    assert attacker.post(reset_path, data={
        "csrf_token": csrf(used_again.data), "password": "x-another-passphrase-1",
        "confirm": "x-another-passphrase-1"}).status_code == 400


def test_an_organisation_can_require_mfa_for_every_recipient(
        settings: Config, vault: Vault, sink: SmtpSink) -> None:
    config = configured(settings, sink, require_mfa=True)
    client = create_app(config, vault).test_client()
    message_id = deposit(vault, config)
    sign_in_with_code(client, sink, PATIENT, f"/m/{message_id}")
    setup = client.get(f"/m/{message_id}")
    assert setup.status_code == 302 and "/account/authenticator" in setup.headers["Location"]
    page = client.get(setup.headers["Location"])
    assert b"asks everyone to use an authenticator app" in page.data
    enrol_totp(client)
    assert client.get(f"/m/{message_id}").status_code == 200


def test_sign_in_rotates_the_session_and_sign_out_ends_it(
        app: Flask, vault: Vault, config: Config, sink: SmtpSink) -> None:
    deposit(vault, config)
    client = app.test_client()
    client.get("/signin")
    before = client.get_cookie("sealgate")
    sign_in_with_code(client, sink, PATIENT)
    after = client.get_cookie("sealgate")
    assert before is not None and after is not None and before.value != after.value
    assert after.http_only and after.same_site == "Lax"
    stolen = after.value
    client.post("/signout", data={"csrf_token": csrf(client.get("/messages").data)})
    replay = app.test_client()
    replay.set_cookie("sealgate", stolen)
    assert replay.get("/messages").status_code == 302
    with vault.database.session() as db:
        assert db.scalars(select(PortalSession.ended_at)).one() is not None


def test_an_idle_session_expires(app: Flask, vault: Vault, config: Config,
                                 sink: SmtpSink) -> None:
    deposit(vault, config)
    client = app.test_client()
    sign_in_with_code(client, sink, PATIENT)
    assert client.get("/messages").status_code == 200
    idle = datetime.now(UTC) - timedelta(minutes=config.portal.session_minutes + 1)
    with vault.database.writing() as db:
        db.execute(update(PortalSession).values(seen_at=idle))
    assert client.get("/messages").status_code == 302


def test_https_deployments_get_secure_host_only_cookies(settings: Config, vault: Vault,
                                                        sink: SmtpSink) -> None:
    config = configured(settings, sink)
    config = config.model_copy(update={"server": config.server.model_copy(
        update={"base_url": "https://portal.example.org"})})
    client = create_app(config, vault).test_client()
    response = client.get("/signin", base_url="https://portal.example.org")
    cookie = response.headers["Set-Cookie"]
    assert cookie.startswith("__Host-sealgate=") and "Secure" in cookie
    assert response.headers["Strict-Transport-Security"].startswith("max-age=")


def test_every_page_carries_a_strict_policy(client: FlaskClient) -> None:
    for path in ("/", "/signin", "/register", "/signin/password", "/forgot"):
        # A language the portal has no translation for falls back to English.
        response = client.get(path, headers={"Accept-Language": "fr-CH, fr;q=0.9, de;q=0.5"})
        assert response.status_code == 200 and b'<html lang="en">' in response.data
        policy = response.headers["Content-Security-Policy"]
        assert "script-src 'self'" in policy and "frame-ancestors 'none'" in policy
        assert "unsafe-inline" not in policy
        assert response.headers["X-Frame-Options"] == "DENY"
        if path != "/":  # the start page has links, no form
            assert b'name="csrf_token"' in response.data, path


def test_a_weak_new_password_is_refused_and_the_reset_link_still_works(
        client: FlaskClient, vault: Vault, sink: SmtpSink) -> None:
    register(client, sink)
    client.get(link_in(sink, PATIENT, "/register/verify/"))
    post_form(client, "/forgot", address=PATIENT)
    reset_path = link_in(sink, PATIENT, "/reset/")
    weak = post_form(client, reset_path, password="password123456", confirm="password123456")
    assert weak.status_code == 400  # type: ignore[attr-defined]
    strong = post_form(client, reset_path, password="quiet-meadow-copper-violin",
                       confirm="quiet-meadow-copper-violin")
    assert strong.status_code == 302  # type: ignore[attr-defined]
    assert post_form(client.application.test_client(), "/signin/password", address=PATIENT,
                     password="quiet-meadow-copper-violin").status_code == 302  # type: ignore[attr-defined]
