"""TokenBroker against a Microsoft identity platform endpoint on loopback (`identity.py`):
what msal really sends, what comes from its cache, and how every refusal and failure turns
into a TokenError with a line for the person in Outlook."""

from __future__ import annotations

import base64
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jwt
import pytest
import requests
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from sealgate.config import AddinConfig, Config, ExchangeConfig
from sealgate.exchange import tokens
from sealgate.exchange.tokens import (
    ConsentRequired,
    TenantNotAllowed,
    TokenBroker,
    TokenError,
    TokenExpired,
)
from sealgate.lab.pki import TestCa
from tests.exchange.identity import (
    CLIENT_ASSERTION_TYPE,
    JWT_BEARER,
    IdentityProvider,
    Registration,
    Reply,
    closed_port,
    consent_missing,
    mfa_required,
    thumbprint_s256,
    too_many_requests,
    unavailable,
)

CLIENT_ID = "5f0c7a3e-1b2d-4c8e-9a6f-0d1e2f3a4b5c"
SECRET = "Qx8~s3cret.value-not-the-id"
TENANT = "72f988bf-86f1-41af-91ab-2d7cd011db47"  # the organisation (app-only)
GUEST_TENANT = "3c3a1e7e-5f06-4b43-9d6a-2f1e0c8b7a61"  # another tenant allowed to use the add-in
OTHER_TENANT = "9188040d-6c67-4c5b-b112-36a304b66dad"  # not allowed
MAIL = ["https://graph.microsoft.com/Mail.ReadWrite"]
EWS = ["https://outlook.office365.com/EWS.AccessAsUser.All"]
GRAPH_APP = ["https://graph.microsoft.com/.default"]


@pytest.fixture(scope="module")
def ca() -> TestCa:
    return TestCa.create()


@pytest.fixture(scope="module")
def app_certificate(ca: TestCa) -> tuple[bytes, x509.Certificate]:
    """The app registration's certificate: (key and certificate PEM, certificate)."""
    key_pem, cert_pem = ca.issue_email("sealgate-app@example.org")
    return key_pem + cert_pem, x509.load_pem_x509_certificate(cert_pem)


@pytest.fixture
def home(tmp_path: Path, ca: TestCa) -> Path:
    (tmp_path / "ca.pem").write_bytes(ca.cert_pem)
    return tmp_path


@pytest.fixture
def idp(ca: TestCa, home: Path, app_certificate: tuple[bytes, x509.Certificate]) -> Iterator[
        IdentityProvider]:
    provider = IdentityProvider.start(
        ca, home, Registration(CLIENT_ID, client_secret=SECRET,
                               certificate=app_certificate[1]))
    yield provider
    provider.close()


def settings(home: Path, authority_host: str, **exchange: Any) -> Config:
    values: dict[str, Any] = {"backend": "graph", "client_id": CLIENT_ID,
                              "client_secret": SECRET, "tenant_id": TENANT,
                              "authority_host": authority_host, "ca_file": "ca.pem",
                              "timeout": 5.0}
    values.update(exchange)
    return Config(home=home,
                  addin=AddinConfig(client_id="add-in-" + CLIENT_ID,
                                    tenants=[TENANT, GUEST_TENANT.upper()]),
                  exchange=ExchangeConfig(**values))


@pytest.fixture
def broker(home: Path, idp: IdentityProvider) -> Iterator[TokenBroker]:
    token_broker = TokenBroker(settings(home, idp.url))
    yield token_broker
    token_broker.close()


def ann(idp: IdentityProvider, **changes: Any) -> str:
    claims: dict[str, Any] = {"tid": GUEST_TENANT, "oid": "0b6c1f4e-ann",
                              "upn": "ann@guest.example"}
    claims.update(changes)
    return idp.user_assertion(**claims)


# --- on behalf of the user --------------------------------------------------------------------


def test_on_behalf_of_with_a_secret_sends_the_documented_request(
        broker: TokenBroker, idp: IdentityProvider) -> None:
    assertion = ann(idp)

    token = broker.on_behalf_of(assertion, MAIL)

    assert token == idp.issued[-1]
    # msal reads the user's tenant's OpenID configuration (instance discovery is off: nothing
    # goes to login.microsoftonline.com), then posts to the token endpoint it names.
    assert [(seen.method, seen.path) for seen in idp.seen] == [
        ("GET", f"/{GUEST_TENANT}/v2.0/.well-known/openid-configuration"),
        ("POST", f"/{GUEST_TENANT}/oauth2/v2.0/token"),
    ]
    form = idp.token_requests()[0].form
    assert form == {
        "grant_type": JWT_BEARER,
        "requested_token_use": "on_behalf_of",
        "assertion": assertion,
        "client_id": CLIENT_ID,
        "client_secret": SECRET,  # client_secret_post: in the body, no Basic header
        "client_info": "1",
        # msal adds the OpenID Connect scopes to every user flow, so Entra also returns an
        # ID token and a refresh token.
        "scope": "https://graph.microsoft.com/Mail.ReadWrite offline_access openid profile",
    }
    headers = idp.token_requests()[0].headers
    assert "authorization" not in headers
    assert headers["content-type"] == "application/x-www-form-urlencoded"
    assert headers["x-client-sku"] == "MSAL.Python"


def test_the_same_user_and_scopes_come_from_the_cache(
        broker: TokenBroker, idp: IdentityProvider) -> None:
    first = broker.on_behalf_of(ann(idp), MAIL)
    # A new add-in token of the same user (Office renews them) finds the cached one too.
    again = broker.on_behalf_of(ann(idp), MAIL)

    assert again == first
    assert len(idp.token_requests()) == 1

    other_scope = broker.on_behalf_of(ann(idp), EWS)
    other_user = broker.on_behalf_of(ann(idp, oid="77aa-bob", upn="bob@guest.example"), MAIL)

    assert len({first, other_scope, other_user}) == 3
    assert len(idp.token_requests()) == 3
    assert broker.on_behalf_of(ann(idp, oid="77aa-bob", upn="bob@guest.example"),
                               MAIL) == other_user
    assert len(idp.token_requests()) == 3


def test_the_user_of_another_allowed_tenant_goes_to_their_own_tenant(
        broker: TokenBroker, idp: IdentityProvider) -> None:
    broker.on_behalf_of(ann(idp), MAIL)
    broker.on_behalf_of(ann(idp, tid=TENANT, oid="c0ffee-carl", upn="carl@example.org"), MAIL)

    assert [seen.path for seen in idp.token_requests()] == [
        f"/{GUEST_TENANT}/oauth2/v2.0/token", f"/{TENANT}/oauth2/v2.0/token"]


def test_a_certificate_signs_the_client_assertion(
        home: Path, idp: IdentityProvider, app_certificate: tuple[bytes, x509.Certificate]
) -> None:
    pem, certificate = app_certificate
    (home / "app.pem").write_bytes(pem)
    broker = TokenBroker(settings(home, idp.url, client_secret="",
                                  client_certificate="app.pem"))

    token = broker.on_behalf_of(ann(idp), MAIL)

    assert token == idp.issued[-1]
    form = idp.token_requests()[0].form
    assert "client_secret" not in form
    assert form["client_assertion_type"] == CLIENT_ASSERTION_TYPE
    header = jwt.get_unverified_header(form["client_assertion"])
    # msal >= 1.35, given the certificate: PS256 and the SHA-256 thumbprint (with base64's
    # padding kept), and the certificate itself in x5c.
    assert header["alg"] == "PS256"
    assert header["x5t#S256"].rstrip("=") == thumbprint_s256(certificate)
    assert "x5t" not in header
    assert base64.b64decode(header["x5c"][0]) == certificate.public_bytes(
        serialization.Encoding.DER)
    public_key = certificate.public_key()
    assert isinstance(public_key, rsa.RSAPublicKey)
    claims = jwt.decode(form["client_assertion"], public_key,
                        algorithms=["PS256"], audience=idp.token_endpoint(GUEST_TENANT),
                        issuer=CLIENT_ID)
    assert claims["sub"] == CLIENT_ID
    assert time.time() < claims["exp"] <= time.time() + 3600


def test_a_certificate_file_that_cannot_be_used_says_why_before_any_request(
        home: Path, idp: IdentityProvider, ca: TestCa,
        app_certificate: tuple[bytes, x509.Certificate]) -> None:
    pem, _ = app_certificate
    key_pem, _ = ca.issue_email("someone-else@example.org")
    encrypted = serialization.load_pem_private_key(key_pem, None).private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
        serialization.BestAvailableEncryption(b"passphrase"))
    cases = {
        "key-only.pem": (key_pem, "holds no PEM certificate"),
        "mismatch.pem": (key_pem + pem.split(b"-----END PRIVATE KEY-----\n")[1],
                         "no certificate in"),
        "encrypted.pem": (encrypted, "is encrypted"),
        "absent.pem": (None, "cannot read"),
    }
    for name, (content, reason) in cases.items():
        if content is not None:
            (home / name).write_bytes(content)
        broker = TokenBroker(settings(home, idp.url, client_certificate=name))
        with pytest.raises(TokenError, match=reason) as refused:
            broker.app_only(GRAPH_APP)
        assert "exchange.client_certificate" in str(refused.value)
        assert refused.value.user_message == tokens.MISCONFIGURED
    assert idp.seen == []


# --- the application's own token ---------------------------------------------------------------


def test_app_only_uses_client_credentials_for_the_configured_tenant(
        broker: TokenBroker, idp: IdentityProvider) -> None:
    token = broker.app_only(GRAPH_APP)

    assert token == idp.issued[-1]
    assert idp.token_requests()[0].path == f"/{TENANT}/oauth2/v2.0/token"
    assert idp.token_requests()[0].form == {
        "grant_type": "client_credentials",
        "scope": "https://graph.microsoft.com/.default",  # no OpenID scopes here
        "client_id": CLIENT_ID,
        "client_secret": SECRET,
        "client_info": "1",
    }
    assert broker.app_only(GRAPH_APP) == token
    assert len(idp.token_requests()) == 1


def test_app_only_without_a_tenant_is_refused_before_any_request(
        home: Path, idp: IdentityProvider) -> None:
    broker = TokenBroker(settings(home, idp.url, tenant_id=""))

    with pytest.raises(TokenError, match=r"exchange\.tenant_id is not set") as refused:
        broker.app_only(GRAPH_APP)

    assert refused.value.user_message == tokens.MISCONFIGURED
    assert idp.seen == []


def test_an_unknown_tenant_is_a_configuration_error(
        home: Path, idp: IdentityProvider) -> None:
    idp.tenants = {GUEST_TENANT}

    with pytest.raises(TokenError, match="refused the configuration.*AADSTS90002") as refused:
        TokenBroker(settings(home, idp.url)).app_only(GRAPH_APP)

    assert refused.value.user_message == tokens.MISCONFIGURED


def test_a_wrong_secret_is_the_operators_problem(home: Path, idp: IdentityProvider) -> None:
    with pytest.raises(TokenError, match="AADSTS7000215") as refused:
        TokenBroker(settings(home, idp.url, client_secret="the-secret-id")).app_only(
            GRAPH_APP)

    assert "invalid_client" in str(refused.value)
    assert refused.value.user_message == tokens.MISCONFIGURED


# --- refusals ------------------------------------------------------------------------------------


def test_missing_consent(broker: TokenBroker, idp: IdentityProvider) -> None:
    assertion = ann(idp)
    idp.answer_next(consent_missing(CLIENT_ID))

    with pytest.raises(ConsentRequired) as refused:
        broker.on_behalf_of(assertion, MAIL)

    error = refused.value
    assert error.user_message == ("Your administrator has not yet allowed Sealgate to write "
                                  "to mailboxes (consent missing).")
    assert "AADSTS65001" in str(error)
    assert "invalid_grant/consent_required" in str(error)
    assert "Trace ID" not in str(error)  # one line
    assert assertion not in str(error) and assertion not in error.user_message


def test_a_conditional_access_challenge_is_passed_on(
        broker: TokenBroker, idp: IdentityProvider) -> None:
    idp.answer_next(mfa_required())

    with pytest.raises(ConsentRequired) as refused:
        broker.on_behalf_of(ann(idp), MAIL)

    assert refused.value.user_message == tokens.STEP_UP
    assert refused.value.claims is not None
    assert '"polids"' in refused.value.claims
    assert "AADSTS50079" in str(refused.value)


def test_an_expired_assertion(broker: TokenBroker, idp: IdentityProvider) -> None:
    # The service itself refuses it (AADSTS500133): the broker does not judge lifetimes.
    with pytest.raises(TokenExpired) as refused:
        broker.on_behalf_of(ann(idp, lifetime=-120), MAIL)

    assert refused.value.user_message == "Your sign-in has expired; sign in again."
    assert "AADSTS500133" in str(refused.value)
    assert len(idp.token_requests()) == 1


def test_a_tenant_not_allowed_is_refused_without_a_request(
        broker: TokenBroker, idp: IdentityProvider) -> None:
    with pytest.raises(TenantNotAllowed) as refused:
        broker.on_behalf_of(ann(idp, tid=OTHER_TENANT), MAIL)

    assert refused.value.user_message == "Your organisation is not allowed to use this Sealgate."
    assert OTHER_TENANT in str(refused.value)
    assert idp.seen == []


def test_nobody_is_allowed_when_no_tenant_is_configured(
        home: Path, idp: IdentityProvider) -> None:
    config = settings(home, idp.url)
    config = config.model_copy(update={"addin": config.addin.model_copy(update={"tenants": []})})

    with pytest.raises(TenantNotAllowed):
        TokenBroker(config).on_behalf_of(ann(idp, tid=TENANT), MAIL)

    assert idp.seen == []


def test_a_token_that_is_not_a_jwt_is_refused_without_a_request(
        broker: TokenBroker, idp: IdentityProvider) -> None:
    with pytest.raises(TokenError, match="not a well-formed"):
        broker.on_behalf_of("not-a-token", MAIL)

    assert idp.seen == []


@pytest.mark.parametrize(("body", "kind", "user_message"), [
    ({"error": "invalid_grant", "error_description": "AADSTS65001: not consented"},
     ConsentRequired, ConsentRequired.user_message),
    ({"error": "invalid_grant", "suberror": "token_expired"}, TokenExpired,
     TokenExpired.user_message),
    ({"error": "invalid_grant", "error_codes": [50196],
      "error_description": "AADSTS50196: The server terminated an operation because it "
                           "encountered a loop while processing a request."},
     TokenError, tokens.BUSY),
    ({"error": "invalid_client", "error_codes": [700016]}, TokenError, tokens.MISCONFIGURED),
    ({"error": "invalid_request", "error_codes": [90014]}, TokenError,
     TokenError.user_message),
])
def test_refusals_are_told_apart(body: dict[str, Any], kind: type[TokenError],
                                 user_message: str) -> None:
    error = tokens.refusal(body)

    assert type(error) is kind
    assert error.user_message == user_message
    assert body["error"] in str(error)


# --- the service unreachable or busy -----------------------------------------------------------


def test_a_service_that_cannot_be_reached(home: Path) -> None:
    broker = TokenBroker(settings(home, f"https://127.0.0.1:{closed_port()}"))

    with pytest.raises(TokenError, match="the sign-in service could not be reached") as failed:
        broker.app_only(GRAPH_APP)

    assert "Connection refused" in str(failed.value) or "Errno" in str(failed.value)
    assert failed.value.user_message == tokens.UNREACHABLE


def test_the_service_certificate_must_be_trusted(home: Path, idp: IdentityProvider) -> None:
    with pytest.raises(TokenError, match="certificate verify failed"):
        TokenBroker(settings(home, idp.url, ca_file="")).app_only(GRAPH_APP)


def test_a_session_of_the_callers_is_used_as_it_is(home: Path, idp: IdentityProvider) -> None:
    session = requests.Session()
    session.verify = str(home / "ca.pem")

    token = TokenBroker(settings(home, idp.url, ca_file=""), http_client=session).app_only(
        GRAPH_APP)

    assert token == idp.issued[-1]


def test_a_service_that_does_not_answer_in_time(home: Path, idp: IdentityProvider) -> None:
    broker = TokenBroker(settings(home, idp.url, timeout=0.5))
    idp.answer_next(Reply(200, {"access_token": "too late"}, stall=2.0))

    started = time.monotonic()
    with pytest.raises(TokenError, match="could not be reached.*timed out"):
        broker.app_only(GRAPH_APP)

    assert time.monotonic() - started < 1.9


def test_throttled_means_retry_after_what_the_service_said(
        broker: TokenBroker, idp: IdentityProvider) -> None:
    idp.answer_next(too_many_requests(retry_after=60))

    with pytest.raises(TokenError, match=r"HTTP 429.*retry after 60 s") as throttled:
        broker.app_only(GRAPH_APP)

    assert throttled.value.retry_after == 60
    assert throttled.value.user_message == tokens.BUSY
    # Within those 60 seconds the broker does not call again.
    with pytest.raises(TokenError, match="retry after") as again:
        broker.app_only(GRAPH_APP)
    assert again.value.retry_after is not None and 55 < again.value.retry_after <= 60
    assert len(idp.token_requests()) == 1


def test_unavailable_means_retry_later(broker: TokenBroker, idp: IdentityProvider) -> None:
    idp.answer_next(unavailable())

    with pytest.raises(TokenError, match=r"HTTP 503.*retry later") as failed:
        broker.on_behalf_of(ann(idp), MAIL)

    assert failed.value.retry_after is None
    assert failed.value.user_message == tokens.BUSY
    # No Retry-After: the next attempt goes out, and succeeds.
    assert broker.on_behalf_of(ann(idp), MAIL) == idp.issued[-1]


def test_unavailable_with_retry_after(broker: TokenBroker, idp: IdentityProvider) -> None:
    idp.answer_next(unavailable(retry_after=7))

    with pytest.raises(TokenError, match="retry after 7 s") as failed:
        broker.on_behalf_of(ann(idp), MAIL)

    assert failed.value.retry_after == 7
