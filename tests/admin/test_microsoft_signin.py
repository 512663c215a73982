"""Administrators signing in with the organisation's Microsoft account: the console, through
Flask's test client, against the Microsoft identity platform fake on loopback
(tests/exchange/identity.py) over HTTPS with a test CA. The browser's redirects are followed
by hand: the console → the fake's authorize endpoint → the console's callback; msal in the
console redeems the code at the fake's token endpoint."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit

import pyotp
import pytest
import requests
from flask.testing import FlaskClient

from sealgate import config as configuration
from sealgate.config import AddinConfig, AdminConfig, Config, ExchangeConfig
from sealgate.errors import ConfigError
from sealgate.lab.pki import TestCa
from sealgate.lab.sink import SmtpSink
from sealgate.server.admin import identity, microsoft
from sealgate.server.app import create_app
from sealgate.vault import admins
from sealgate.vault.models import AdminSession, AuditEvent
from sealgate.vault.vault import Vault
from tests.admin.conftest import ADMIN, PASSWORD, add_admin, code_after
from tests.conftest import SQLITE_ONLY, run_cli
from tests.exchange.identity import IdentityProvider, Registration, User, closed_port
from tests.portal.conftest import configured, csrf

CLIENT_ID = "0f6e2c1a-7b3d-4e5f-8a9b-1c2d3e4f5a6b"
SECRET = "admin~sign-in.secret"
TENANT = "72f988bf-86f1-41af-91ab-2d7cd011db47"
OTHER_TENANT = "3c3a1e7e-5f06-4b43-9d6a-2f1e0c8b7a61"
CALLBACK = "http://127.0.0.1:8025/admin/signin/microsoft/callback"  # the default base_url's

# The console asks for the answer in the query on purpose (see microsoft.py); its filter of
# msal's advice is process-wide, which pytest resets for each test.
# The console's pages, not the database: SQLite is enough here (the database-sensitive
# admin tests, sessions, settings revisions, searches and holds, run on both).
pytestmark = [pytest.mark.filterwarnings("ignore:response_mode='form_post' is recommended"),
              SQLITE_ONLY]


@pytest.fixture(scope="module")
def ca() -> TestCa:
    return TestCa.create()


@pytest.fixture
def idp(ca: TestCa, tmp_path: Path) -> Iterator[IdentityProvider]:
    provider = IdentityProvider.start(
        ca, tmp_path, Registration(CLIENT_ID, client_secret=SECRET, redirect_uris=(CALLBACK,)))
    yield provider
    provider.close()


@pytest.fixture
def ca_file(ca: TestCa, settings: Config) -> str:
    path = settings.home / "idp-ca.pem"
    path.write_bytes(ca.cert_pem)
    return str(path)


def microsoft_on(settings: Config, sink: SmtpSink, authority_host: str, **admin: Any) -> Config:
    values: dict[str, Any] = {"microsoft_signin": True, "client_id": CLIENT_ID,
                              "client_secret": SECRET, "tenant_id": TENANT,
                              "authority_host": authority_host, "ca_file": "idp-ca.pem"}
    values.update(admin)
    return configured(settings, sink).model_copy(update={
        "admin": AdminConfig(**values), "addin": AddinConfig(tenants=[TENANT])})


@pytest.fixture
def config(settings: Config, sink: SmtpSink, idp: IdentityProvider, ca_file: str) -> Config:
    return microsoft_on(settings, sink, idp.url)


def console(config: Config, vault: Vault) -> FlaskClient:
    """A browser on a server started with this configuration."""
    return create_app(config, vault).test_client()


def to_microsoft_and_back(client: FlaskClient, idp: IdentityProvider, ca_file: str,
                          start: str = "/admin/signin/microsoft") -> str:
    """The browser's trip: the console sends it to Microsoft, which sends it back; the path
    and query of the console's callback, as Microsoft made it."""
    leaving = client.get(start)
    assert leaving.status_code == 302, leaving.get_data(as_text=True)
    authorize = leaving.headers["Location"]
    assert authorize.startswith(f"{idp.url}/{TENANT}/oauth2/v2.0/authorize?")
    answer = requests.get(authorize, verify=ca_file, allow_redirects=False, timeout=10)
    assert answer.status_code == 302, answer.text
    back = urlsplit(answer.headers["Location"])
    assert f"{back.scheme}://{back.netloc}{back.path}" == CALLBACK
    return f"{back.path}?{back.query}"


def audit(vault: Vault, action: str) -> list[AuditEvent]:
    with vault.database.session() as db:
        return list(db.query(AuditEvent).filter_by(action=action).order_by(AuditEvent.seq))


def sessions(vault: Vault) -> list[AdminSession]:
    with vault.database.session() as db:
        return list(db.query(AdminSession).order_by(AdminSession.id))


def assert_not_signed_in(client: FlaskClient) -> None:
    refused = client.get("/admin/")
    assert refused.status_code == 302
    assert refused.headers["Location"].startswith("/admin/signin?")


# --- getting in -------------------------------------------------------------------------------


def add_admin_with_authenticator(vault: Vault, address: str = ADMIN) -> str:
    """An administrator who has set up the authenticator (as at a first sign-in with the
    password, a step ago); its secret."""
    add_admin(vault, address)
    secret = pyotp.random_base32()
    moment = datetime.now(UTC)
    with vault.database.writing() as db:
        found = admins.find(db, address)
        assert found is not None
        assert admins.enable_totp(vault.keyring, found, secret,
                                  pyotp.TOTP(secret).at(moment - timedelta(seconds=30)), moment)
    return secret


def type_code(client: FlaskClient, secret: str, vault: Vault,
              page_path: str = "/admin/signin/code") -> Any:
    """The authenticator's code, on the code page (`page_path`, as the console sent there)."""
    page = client.get(page_path)
    assert page.status_code == 200
    return client.post(page_path, data={"csrf_token": csrf(page.data),
                                        "code": code_after(secret, vault)})


def sign_out(client: FlaskClient) -> None:
    client.post("/admin/signout", data={"csrf_token": csrf(client.get("/admin/").data)})


def bound_to(vault: Vault, address: str = ADMIN) -> str | None:
    with vault.database.session() as db:
        found = admins.find(db, address)
        assert found is not None
        return found.microsoft_oid


def bind(client: FlaskClient, vault: Vault, idp: IdentityProvider, ca_file: str,
         user: User) -> str:
    """An administrator with an authenticator whose first Microsoft sign-in, as `user`,
    passed the code and bound the account; signed out again. The authenticator's secret."""
    secret = add_admin_with_authenticator(vault)
    idp.sign_in_as(user)
    client.get(to_microsoft_and_back(client, idp, ca_file))
    assert type_code(client, secret, vault).status_code == 302
    assert bound_to(vault) == user.oid
    sign_out(client)
    return secret


def test_the_first_microsoft_sign_in_asks_the_code_then_binds_the_account(
        client: FlaskClient, vault: Vault, idp: IdentityProvider, ca_file: str) -> None:
    secret = add_admin_with_authenticator(vault)
    user = User("IT@Example.org", amr=("pwd", "mfa"))  # Microsoft's MFA does not count yet
    idp.sign_in_as(user)

    back = client.get(to_microsoft_and_back(client, idp, ca_file,
                                            "/admin/signin/microsoft?next=/admin/api-keys"))

    assert back.status_code == 302
    assert back.headers["Location"].startswith("/admin/signin/code")
    half = client.get("/admin/")
    assert half.status_code == 302 and half.headers["Location"].startswith("/admin/signin/code")
    assert bound_to(vault) is None  # not before the code
    assert sessions(vault)[-1].how == "microsoft" and sessions(vault)[-1].mfa_at is None
    [ok] = audit(vault, "admin.microsoft_ok")
    assert ok.actor == ADMIN and ok.details["binding"] == user.oid
    page = client.get("/admin/signin/code")
    wrong = client.post("/admin/signin/code", data={"csrf_token": csrf(page.data),
                                                    "code": "000000"})
    assert b"That code is not right" in wrong.data
    assert bound_to(vault) is None  # a wrong code binds nothing

    done = type_code(client, secret, vault, back.headers["Location"])

    assert done.status_code == 302 and done.headers["Location"] == "/admin/api-keys"
    assert client.get("/admin/api-keys").status_code == 200
    assert bound_to(vault) == user.oid
    [bound] = audit(vault, "admin.microsoft_bound")
    assert bound.actor == ADMIN and bound.details["oid"] == user.oid
    [event] = audit(vault, "admin.signed_in")
    assert event.actor == ADMIN and event.details["how"] == "microsoft"
    assert vault.verify_audit().intact


def test_a_bound_administrator_signed_in_with_mfa_at_microsoft_gets_in_fully(
        client: FlaskClient, vault: Vault, idp: IdentityProvider, ca_file: str) -> None:
    user = User(ADMIN, amr=("pwd", "mfa"))
    bind(client, vault, idp, ca_file, user)
    idp.seen.clear()

    back = client.get(to_microsoft_and_back(client, idp, ca_file,
                                            "/admin/signin/microsoft?next=/admin/api-keys"))

    assert back.status_code == 302 and back.headers["Location"] == "/admin/api-keys"
    assert client.get("/admin/api-keys").status_code == 200
    overview = client.get("/admin/")
    assert overview.status_code == 200 and b"Running settings revision" in overview.data
    started = sessions(vault)[-1]
    assert started.how == "microsoft" and started.mfa_at is not None
    event = audit(vault, "admin.signed_in")[-1]
    assert event.actor == ADMIN and event.details["how"] == "microsoft"
    assert len(audit(vault, "admin.microsoft_bound")) == 1  # bound once
    # What msal asked Microsoft for: a code for our callback, with PKCE, a nonce and state.
    [asked] = idp.authorize_requests()
    assert asked.query["client_id"] == CLIENT_ID
    assert asked.query["redirect_uri"] == CALLBACK
    assert asked.query["response_type"] == "code"
    assert asked.query["code_challenge_method"] == "S256"
    assert asked.query["state"] and asked.query["nonce"]
    assert "openid" in asked.query["scope"].split()
    [redeemed] = idp.token_requests()
    assert redeemed.form["grant_type"] == "authorization_code"
    assert redeemed.form["client_secret"] == SECRET and redeemed.form["code_verifier"]
    assert vault.verify_audit().intact


def test_the_bound_account_signs_in_whatever_it_is_called_now(
        client: FlaskClient, vault: Vault, idp: IdentityProvider, ca_file: str) -> None:
    user = User(ADMIN)
    bind(client, vault, idp, ca_file, user)
    add_admin(vault, "boss@example.org")
    idp.sign_in_as(User("boss@example.org", oid=user.oid))  # renamed in the tenant

    back = client.get(to_microsoft_and_back(client, idp, ca_file))

    assert back.status_code == 302 and back.headers["Location"] == "/admin/"
    assert audit(vault, "admin.signed_in")[-1].actor == ADMIN  # not boss@


@pytest.mark.parametrize(("amr", "require_mfa_claim"), [
    (("pwd",), True),  # Microsoft did not use MFA
    (("pwd", "mfa"), False),  # the operator does not take Microsoft's word for it
])
def test_without_an_mfa_claim_that_counts_the_authenticator_code_is_still_asked(
        vault: Vault, idp: IdentityProvider, ca_file: str, settings: Config, sink: SmtpSink,
        amr: tuple[str, ...], require_mfa_claim: bool) -> None:
    client = console(microsoft_on(settings, sink, idp.url,
                                  require_mfa_claim=require_mfa_claim), vault)
    user = User(ADMIN, amr=amr)
    secret = bind(client, vault, idp, ca_file, user)

    back = client.get(to_microsoft_and_back(client, idp, ca_file))

    assert back.status_code == 302
    assert back.headers["Location"].startswith("/admin/signin/code")
    # Half signed in: every console page sends the administrator to the code.
    half = client.get("/admin/")
    assert half.status_code == 302 and half.headers["Location"].startswith("/admin/signin/code")
    assert sessions(vault)[-1].how == "microsoft" and sessions(vault)[-1].mfa_at is None
    assert "binding" not in audit(vault, "admin.microsoft_ok")[-1].details
    done = type_code(client, secret, vault)
    assert done.status_code == 302
    assert client.get("/admin/").status_code == 200
    assert audit(vault, "admin.signed_in")[-1].details["how"] == "microsoft"
    assert audit(vault, "admin.microsoft_ok")[-1].actor == ADMIN
    assert len(audit(vault, "admin.microsoft_bound")) == 1


def test_the_email_claim_matches_when_the_username_does_not(
        client: FlaskClient, vault: Vault, idp: IdentityProvider, ca_file: str) -> None:
    user = User("it.admin@contoso.onmicrosoft.com", email="It@example.org")

    bind(client, vault, idp, ca_file, user)

    assert audit(vault, "admin.microsoft_bound")[-1].actor == ADMIN


def test_exchanges_app_registration_is_used_when_the_console_has_none(
        vault: Vault, idp: IdentityProvider, ca_file: str, settings: Config,
        sink: SmtpSink) -> None:
    client = console(microsoft_on(settings, sink, idp.url, client_id="", client_secret="")
                     .model_copy(update={"exchange": ExchangeConfig(client_id=CLIENT_ID,
                                                                    client_secret=SECRET)}),
                     vault)
    add_admin_with_authenticator(vault)
    idp.sign_in_as(User(ADMIN))

    back = client.get(to_microsoft_and_back(client, idp, ca_file))

    assert back.status_code == 302
    assert back.headers["Location"].startswith("/admin/signin/code")
    [redeemed] = idp.token_requests()
    assert redeemed.form["client_id"] == CLIENT_ID and redeemed.form["client_secret"] == SECRET


def test_reset_authenticator_unbinds_the_microsoft_account(
        client: FlaskClient, vault: Vault, idp: IdentityProvider, ca_file: str,
        settings: Config, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    user = User(ADMIN)
    bind(client, vault, idp, ca_file, user)
    monkeypatch.setenv("SEALGATE_DATABASE__URL", settings.database_url)

    run_cli("--home", str(settings.home), "admin", "reset-authenticator", ADMIN)

    assert "Microsoft account is unbound" in capsys.readouterr().out
    assert bound_to(vault) is None
    [reset] = audit(vault, "admin.totp_reset")
    assert reset.details["microsoft_unbound"] == user.oid
    # The same account again: first a new authenticator, with the password.
    refused = client.get(to_microsoft_and_back(client, idp, ca_file))
    assert refused.status_code == 403
    assert b"sign in with your password and set up the authenticator" in refused.data
    assert_not_signed_in(client)


# --- refusals ---------------------------------------------------------------------------------


def test_another_account_with_the_administrators_name_is_refused(
        client: FlaskClient, vault: Vault, idp: IdentityProvider, ca_file: str) -> None:
    """Someone renamed another account to the administrator's address: it is not the
    account bound to them, so it is refused, even with Microsoft's MFA."""
    bind(client, vault, idp, ca_file, User(ADMIN))
    impostor = User(ADMIN, amr=("pwd", "mfa"))  # the same name, another object id
    idp.sign_in_as(impostor)

    refused = client.get(to_microsoft_and_back(client, idp, ca_file))

    assert refused.status_code == 403
    assert b"signs in with another Microsoft account" in refused.data
    assert_not_signed_in(client)
    event = audit(vault, "admin.signin_failed")[-1]
    assert event.actor == ADMIN and event.details["why"] == \
        "microsoft: the administrator is bound to another Microsoft account"
    assert bound_to(vault) != impostor.oid


def test_an_unbound_administrator_without_an_authenticator_is_refused(
        client: FlaskClient, vault: Vault, idp: IdentityProvider, ca_file: str) -> None:
    add_admin(vault)  # has never signed in: no authenticator
    idp.sign_in_as(User(ADMIN, amr=("pwd", "mfa")))

    refused = client.get(to_microsoft_and_back(client, idp, ca_file))

    assert refused.status_code == 403
    page = refused.get_data(as_text=True)
    assert "sign in with your password and set up the authenticator; then Microsoft " \
        "sign-in can be used" in page
    assert_not_signed_in(client)
    assert sessions(vault) == []
    [event] = audit(vault, "admin.signin_failed")
    assert event.actor == ADMIN
    assert event.details["why"] == \
        "microsoft: no authenticator to confirm the first Microsoft sign-in"
    assert bound_to(vault) is None


@pytest.mark.parametrize("oid", ["", "not-an-object-id"])
def test_an_id_token_without_an_object_id_is_refused(
        client: FlaskClient, vault: Vault, idp: IdentityProvider, ca_file: str,
        oid: str) -> None:
    add_admin_with_authenticator(vault)
    idp.sign_in_as(User(ADMIN, oid=oid))

    refused = client.get(to_microsoft_and_back(client, idp, ca_file))

    assert refused.status_code == 403 and b"did not say which account" in refused.data
    assert_not_signed_in(client)
    assert sessions(vault) == []
    [event] = audit(vault, "admin.signin_failed")
    assert event.actor == ADMIN
    assert event.details["why"] == "microsoft: the ID token has no object id (oid)"


@pytest.mark.parametrize("oid", [None, 42, ["72f988bf-86f1-41af-91ab-2d7cd011db47"]])
def test_the_object_id_must_be_a_guid(oid: object) -> None:
    claims: dict[str, Any] = {"preferred_username": ADMIN}
    if oid is not None:
        claims["oid"] = oid
    with pytest.raises(microsoft.SignInFailed) as refused:
        microsoft._oid(claims)
    assert refused.value.why == "microsoft: the ID token has no object id (oid)"
    assert microsoft._oid({"oid": "72F988BF-86F1-41AF-91AB-2D7CD011DB47"}) == \
        "72f988bf-86f1-41af-91ab-2d7cd011db47"


@pytest.mark.parametrize("how", ["bound meanwhile", "bound at the same moment"])
def test_an_account_bound_to_another_administrator_before_the_code_is_refused(
        client: FlaskClient, vault: Vault, idp: IdentityProvider, ca_file: str,
        monkeypatch: pytest.MonkeyPatch, how: str) -> None:
    secret = add_admin_with_authenticator(vault)
    add_admin(vault, "boss@example.org")
    user = User(ADMIN)
    idp.sign_in_as(user)
    client.get(to_microsoft_and_back(client, idp, ca_file))
    with vault.database.writing() as db:  # another browser bound the account to boss@
        other = admins.find(db, "boss@example.org")
        assert other is not None
        other.microsoft_oid = user.oid
    if how == "bound at the same moment":  # the check saw nothing: the unique constraint
        monkeypatch.setattr(admins, "find_by_microsoft", lambda session, oid: None)

    refused = type_code(client, secret, vault)

    assert refused.status_code == 403
    assert b"signs in as another administrator" in refused.data
    assert_not_signed_in(client)
    assert sessions(vault)[-1].ended_at is not None
    assert bound_to(vault) is None and bound_to(vault, "boss@example.org") == user.oid
    assert audit(vault, "admin.microsoft_bound") == []
    assert audit(vault, "admin.signed_in") == []
    assert audit(vault, "admin.signin_failed")[-1].details["why"] == \
        "microsoft: the Microsoft account is bound to another administrator"


def test_only_a_microsoft_sign_in_binds_an_account(
        client: FlaskClient, vault: Vault, idp: IdentityProvider, ca_file: str) -> None:
    secret = add_admin_with_authenticator(vault)
    idp.sign_in_as(User(ADMIN))
    client.get(to_microsoft_and_back(client, idp, ca_file))  # the binding waits for the code
    page = client.get("/admin/signin")  # but the administrator signs in with the password
    client.post("/admin/signin", data={"csrf_token": csrf(page.data), "address": ADMIN,
                                       "password": PASSWORD})
    with vault.database.session() as db:
        found = admins.find(db, ADMIN)
        assert found is not None
        admin_id = found.id
    with client.session_transaction() as cookie:  # even were a binding still in the cookie
        cookie[identity.MICROSOFT_BINDING] = {"admin": admin_id, "oid": str(uuid.uuid4())}

    done = type_code(client, secret, vault)

    assert done.status_code == 302 and client.get("/admin/").status_code == 200
    assert bound_to(vault) is None
    assert audit(vault, "admin.microsoft_bound") == []
    assert audit(vault, "admin.signed_in")[-1].details["how"] == "password"


@pytest.mark.parametrize(("username", "why"), [
    ("mallory@example.org", "microsoft: no administrator with this account"),
    # longer than the audit trail's object id: cut there, kept whole in the details
    ("mallory.from-the-contractors-team@subsidiary-in-another-region.example.org",
     "microsoft: no administrator with this account"),
    (ADMIN, "microsoft: disabled"),
])
def test_an_account_that_is_no_administrator_is_refused_and_audited(
        client: FlaskClient, vault: Vault, idp: IdentityProvider, ca_file: str,
        username: str, why: str) -> None:
    add_admin(vault)
    if why.endswith("disabled"):
        with vault.database.writing() as db:
            found = admins.find(db, ADMIN)
            assert found is not None
            found.disabled_at = datetime.now(UTC)
    idp.sign_in_as(User(username))

    refused = client.get(to_microsoft_and_back(client, idp, ca_file))

    assert refused.status_code == 403
    assert b"not an administrator of this Sealgate" in refused.data
    assert_not_signed_in(client)
    assert sessions(vault) == []
    [event] = audit(vault, "admin.signin_failed")
    assert event.actor == username and event.details["why"] == why
    with vault.database.session() as db:  # nobody was created
        assert admins.find(db, "mallory@example.org") is None


def test_an_account_of_another_tenant_is_refused(
        client: FlaskClient, vault: Vault, idp: IdentityProvider, ca_file: str) -> None:
    add_admin(vault)
    idp.sign_in_as(User(ADMIN, tid=OTHER_TENANT))

    refused = client.get(to_microsoft_and_back(client, idp, ca_file))

    assert refused.status_code == 403 and b"belongs to another organisation" in refused.data
    assert_not_signed_in(client)
    [event] = audit(vault, "admin.signin_failed")
    assert event.actor == ADMIN
    assert event.details["why"] == f"microsoft: tenant {OTHER_TENANT} is not the organisation's"


def test_a_tampered_state_is_refused_before_the_code_is_redeemed(
        client: FlaskClient, vault: Vault, idp: IdentityProvider, ca_file: str) -> None:
    add_admin(vault)
    idp.sign_in_as(User(ADMIN))
    callback = urlsplit(to_microsoft_and_back(client, idp, ca_file))
    query = dict(parse_qsl(callback.query))
    forged = {**query, "state": query["state"][::-1]}

    refused = client.get(f"{callback.path}?{urlencode(forged)}")

    assert refused.status_code == 400 and b"not started in this browser" in refused.data
    assert idp.token_requests() == []  # the code never went to Microsoft
    assert_not_signed_in(client)
    [event] = audit(vault, "admin.signin_failed")
    assert event.details["why"] == "microsoft: the state does not match the sign-in started"
    # The flow was used up: even the genuine answer does not work now.
    again = client.get(f"{callback.path}?{callback.query}")
    assert again.status_code == 400 and idp.token_requests() == []
    assert_not_signed_in(client)


@pytest.mark.parametrize(("changes", "why"), [
    ({"aud": "another-application"}, "microsoft: the ID token is not for this application"),
    ({"aud": ["another-application", CLIENT_ID]}, None),
    ({"iss": f"https://login.microsoftonline.com/{OTHER_TENANT}/v2.0"},
     "microsoft: the ID token's issuer is not the organisation's tenant"),
    ({"iss": f"http://login.microsoftonline.com/{TENANT}/v2.0"},
     "microsoft: the ID token's issuer is not the organisation's tenant"),
    ({"tid": None}, "microsoft: tenant (none) is not the organisation's"),
    ({"exp": int(time.time()) - 600}, "microsoft: the ID token has expired"),
    ({"exp": "tomorrow"}, "microsoft: the ID token has expired"),
])
def test_the_id_token_must_be_for_us_from_our_tenant_and_current(
        tmp_path: Path, changes: dict[str, Any], why: str | None) -> None:
    """msal no longer validates ID tokens; the console does (what the fake cannot be made to
    get wrong, checked on the claims)."""
    config = Config(home=tmp_path, admin=AdminConfig(microsoft_signin=True, tenant_id=TENANT,
                                                     client_id=CLIENT_ID, client_secret=SECRET))
    claims: dict[str, Any] = {"aud": CLIENT_ID, "tid": TENANT, "exp": int(time.time()) + 600,
                              "iss": f"https://login.microsoftonline.com/{TENANT}/v2.0",
                              "preferred_username": ADMIN}
    claims.update(changes)
    if why is None:
        microsoft._check_claims(config, CLIENT_ID, claims)
        return
    with pytest.raises(microsoft.SignInFailed) as refused:
        microsoft._check_claims(config, CLIENT_ID, claims)
    assert refused.value.why == why and refused.value.who == ADMIN


def test_a_callback_without_a_sign_in_started_here_is_refused(
        client: FlaskClient, vault: Vault, idp: IdentityProvider, ca_file: str) -> None:
    add_admin(vault)
    idp.sign_in_as(User(ADMIN))
    callback = to_microsoft_and_back(client, idp, ca_file)
    other_browser = client.application.test_client()

    refused = other_browser.get(callback)

    assert refused.status_code == 400 and b"not started in this browser" in refused.data
    assert idp.token_requests() == []
    assert audit(vault, "admin.signin_failed")[-1].details["why"] == \
        "microsoft: no sign-in in progress in this session"


def test_a_sign_in_microsoft_refused_shows_why(
        client: FlaskClient, vault: Vault, idp: IdentityProvider, ca_file: str) -> None:
    add_admin(vault)
    idp.sign_in_as(User(ADMIN))
    idp.deny_next_sign_in()  # the user declined, as Entra reports it

    refused = client.get(to_microsoft_and_back(client, idp, ca_file))

    assert refused.status_code == 403
    page = refused.get_data(as_text=True)
    assert "Microsoft did not sign you in" in page and "AADSTS65004" in page
    assert "Traceback" not in page
    assert_not_signed_in(client)
    assert audit(vault, "admin.signin_failed")[-1].details["why"].startswith(
        "microsoft: access_denied (AADSTS65004: User declined")


def test_a_wrong_client_secret_is_a_configuration_error_page(
        vault: Vault, idp: IdentityProvider, ca_file: str, settings: Config,
        sink: SmtpSink) -> None:
    client = console(microsoft_on(settings, sink, idp.url, client_secret="old"), vault)
    add_admin(vault)
    idp.sign_in_as(User(ADMIN))

    refused = client.get(to_microsoft_and_back(client, idp, ca_file))

    assert refused.status_code == 502
    assert b"Microsoft sign-in is not set up correctly" in refused.data
    assert "invalid_client" in audit(vault, "admin.signin_failed")[-1].details["why"]
    assert_not_signed_in(client)


def test_an_unreachable_sign_in_service_is_a_clear_page(
        vault: Vault, ca_file: str, settings: Config, sink: SmtpSink) -> None:
    client = console(microsoft_on(settings, sink, f"https://127.0.0.1:{closed_port()}"), vault)

    refused = client.get("/admin/signin/microsoft")

    assert refused.status_code == 502
    assert b"could not be reached" in refused.data
    assert b"Sign in with Microsoft" in refused.data  # the sign-in page, to try again


def test_a_missing_ca_file_is_a_configuration_error_page(
        vault: Vault, idp: IdentityProvider, settings: Config, sink: SmtpSink) -> None:
    client = console(microsoft_on(settings, sink, idp.url, ca_file="no-such-ca.pem"), vault)

    refused = client.get("/admin/signin/microsoft")

    assert refused.status_code == 503
    assert b"Microsoft sign-in is not set up correctly" in refused.data


def test_the_callback_is_rate_limited(client: FlaskClient, vault: Vault) -> None:
    answers = [client.get("/admin/signin/microsoft/callback?code=x&state=y").status_code
               for _ in range(11)]
    assert answers[:10] == [400] * 10
    assert answers[10] == 429


# --- off --------------------------------------------------------------------------------------


def test_the_sign_in_page_offers_microsoft_only_when_it_is_on(
        client: FlaskClient, vault: Vault, settings: Config, sink: SmtpSink) -> None:
    page = client.get("/admin/signin")
    assert b"Sign in with Microsoft" in page.data
    assert b'href="/admin/signin/microsoft"' in page.data

    client = console(configured(settings, sink), vault)  # microsoft_signin = false

    page = client.get("/admin/signin")
    assert page.status_code == 200 and b"Sign in with Microsoft" not in page.data
    assert client.get("/admin/signin/microsoft").status_code == 404
    assert client.get("/admin/signin/microsoft/callback?code=x&state=y").status_code == 404


# --- configuration ----------------------------------------------------------------------------

REGISTRATION = {"SEALGATE_ADMIN__CLIENT_ID": CLIENT_ID, "SEALGATE_ADMIN__CLIENT_SECRET": SECRET}


@pytest.mark.parametrize(("environ", "message"), [
    ({"SEALGATE_ADMIN__TENANT_ID": OTHER_TENANT, "SEALGATE_ADDIN__TENANTS": TENANT,
      **REGISTRATION},
     f"admin.tenant_id = '{OTHER_TENANT}' (from SEALGATE_ADMIN__TENANT_ID): must be one of "
     f"addin.tenants ({TENANT})"),
    ({**REGISTRATION},
     "admin.microsoft_signin = true (from SEALGATE_ADMIN__MICROSOFT_SIGNIN): needs "
     "admin.tenant_id"),
    ({"SEALGATE_ADMIN__TENANT_ID": "contoso.onmicrosoft.com", **REGISTRATION},
     "admin.tenant_id = 'contoso.onmicrosoft.com' (from SEALGATE_ADMIN__TENANT_ID): must be "
     "the directory (tenant) id, a GUID"),
    ({"SEALGATE_ADMIN__TENANT_ID": TENANT, "SEALGATE_ADMIN__CLIENT_ID": CLIENT_ID},
     "admin.client_id is set without admin.client_secret (from SEALGATE_ADMIN__CLIENT_ID): "
     "give both"),
    ({"SEALGATE_ADMIN__TENANT_ID": TENANT},
     "admin.microsoft_signin = true (from SEALGATE_ADMIN__MICROSOFT_SIGNIN): needs an app "
     "registration"),
])
def test_a_configuration_that_cannot_work_is_refused_with_a_clear_line(
        home: Path, environ: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigError) as refused:
        configuration.load(home, {"SEALGATE_ADMIN__MICROSOFT_SIGNIN": "true", **environ})
    assert message in str(refused.value)


def test_a_configuration_that_works_loads(home: Path) -> None:
    loaded = configuration.load(home, {
        "SEALGATE_ADMIN__MICROSOFT_SIGNIN": "true", "SEALGATE_ADDIN__TENANTS": TENANT.upper(),
        "SEALGATE_ADMIN__TENANT_ID": TENANT.upper(), "SEALGATE_EXCHANGE__CLIENT_ID": CLIENT_ID,
        "SEALGATE_EXCHANGE__CLIENT_SECRET": SECRET})
    assert loaded.admin.microsoft_signin and loaded.admin.tenant_id == TENANT
    assert loaded.admin.require_mfa_claim  # Microsoft's MFA counts unless the operator says
    assert not configuration.load(home, {}).admin.microsoft_signin  # off by default
