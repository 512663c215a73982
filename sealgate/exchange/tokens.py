"""Access tokens for the mailbox APIs from the Microsoft identity platform, through msal.

Two ways in:

- `on_behalf_of(assertion, scopes)`: the add-in user's token (already verified by the add-in
  API, `sealgate.server.api.tokens`) is exchanged for a token to their own mailbox. The
  exchange goes to the user's own tenant (the token's `tid` claim), and only for the tenants
  in `addin.tenants`: that check comes before any request.
- `app_only(scopes)`: the application's own token (client credentials) for the tenant in
  `exchange.tenant_id`, where the administrator granted application permissions.

One msal ConfidentialClientApplication per tenant, all sharing one in-memory token cache, so
a repeated request for the same user (or the application) and scopes is answered from the
cache. msal consults its cache by itself for client credentials; for on-behalf-of it does
not (msal-python issue #265), so the broker follows msal's own pattern: find the user's
account in the cache (by the assertion's tenant and object id, which the add-in API has
verified) and ask `acquire_token_silent_with_error` first.

msal talks to `{exchange.authority_host}/{tenant}` only: instance discovery is off, so no
request goes to login.microsoftonline.com unless that is the authority host. TLS trusts
`exchange.ca_file` when it is set, and every request has `exchange.timeout`.

Every failure is a TokenError (or a subclass) whose text is for the operator's log and whose
`user_message` is for the person in Outlook. Tokens and assertions never appear in either,
and nothing here logs.
"""

from __future__ import annotations

import email.utils
import json
import re
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import jwt
import msal
import requests
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from sealgate.config import Config
from sealgate.errors import SealgateError

BUSY = "The Microsoft sign-in service is busy. Please try again in a moment."
UNREACHABLE = "The Microsoft sign-in service could not be reached. Please try again later."
MISCONFIGURED = ("Sealgate's connection to Microsoft 365 is not set up correctly. "
                 "Please tell your administrator.")
STEP_UP = ("Your organisation requires you to sign in again (for example with multi-factor "
           "authentication) before Sealgate can write to your mailbox.")

_AADSTS_LINE = re.compile(r"AADSTS\d+:[^\\\r\n\"]{0,300}")

# Longest wait the service may ask for that the broker will honour (msal caps it likewise).
MAX_RETRY_AFTER = 3600.0

# AADSTS codes, from https://learn.microsoft.com/entra/identity-platform/reference-error-codes
_CONSENT = {65001, 65004, 90094}  # not consented / declined / admin consent needed
_ASSERTION_EXPIRED = {500133}  # "The assertion is not within its valid time range"
_THROTTLED = {50196}  # "The server terminated an operation because it encountered a loop"
_OUR_CONFIGURATION = {
    7000215, 7000222,  # invalid / expired client secret
    700016,  # application not found in the tenant
    700024, 700027,  # client assertion out of time range / signature does not verify
    90002,  # tenant not found
}


class TokenError(SealgateError):
    """No token. The text says why (for the log); `user_message` is one line for the person
    in Outlook; `retry_after` (seconds) when the service asked to be called again later."""

    user_message = ("Sealgate could not get access to your mailbox. "
                    "The message is still in the portal.")

    def __init__(self, detail: str, *, user_message: str | None = None,
                 retry_after: float | None = None) -> None:
        super().__init__(detail)
        if user_message is not None:
            self.user_message = user_message
        self.retry_after = retry_after


class ConsentRequired(TokenError):
    """The user or the administrator must act in a sign-in window first: consent to Sealgate's
    permissions, or satisfy a Conditional Access policy. `claims` is the service's claims
    challenge, when it sent one, for the add-in to pass to its next sign-in."""

    user_message = ("Your administrator has not yet allowed Sealgate to write to mailboxes "
                    "(consent missing).")

    def __init__(self, detail: str, *, claims: str | None = None,
                 user_message: str | None = None) -> None:
        super().__init__(detail, user_message=user_message)
        self.claims = claims


class TokenExpired(TokenError):
    """The user's token (the assertion) has expired: the add-in must get a new one."""

    user_message = "Your sign-in has expired; sign in again."


class TenantNotAllowed(TokenError):
    """The user's organisation is not one of `addin.tenants`."""

    user_message = "Your organisation is not allowed to use this Sealgate."


class _ServiceBusy(requests.RequestException):
    """The service answered 429 or 5xx, or asked to be left alone a while (Retry-After).
    A RequestException, so msal treats it as a transport failure: it falls back to a cached
    token where it has one, and caches nothing."""

    def __init__(self, what: str, retry_after: float | None) -> None:
        super().__init__(what)
        self.what = what
        self.retry_after = retry_after


def _retry_after(value: str | None) -> float | None:
    """Seconds, from a Retry-After header: delta-seconds or an HTTP date."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        seconds = float(value)
    else:
        try:
            when = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError):
            return None
        if when.tzinfo is None:
            return None
        seconds = (when - datetime.now(UTC)).total_seconds()
    return min(max(seconds, 0.0), MAX_RETRY_AFTER)


class _Transport:
    """The `http_client` msal calls (its documented `get`/`post`/`close` interface): a
    requests session with the configured trust and timeout, which turns 429/5xx answers
    into `_ServiceBusy` and then keeps quiet towards that endpoint for as long as the
    service's Retry-After asked."""

    def __init__(self, session: requests.Session, verify: str | None, timeout: float) -> None:
        self._session = session
        self._verify = verify
        self._timeout = timeout
        self._quiet_until: dict[str, float] = {}
        self._lock = threading.Lock()

    def get(self, url: str, **kwargs: Any) -> requests.Response:
        return self._send("GET", url, kwargs)

    def post(self, url: str, **kwargs: Any) -> requests.Response:
        return self._send("POST", url, kwargs)

    def close(self) -> None:
        self._session.close()

    def _send(self, method: str, url: str, kwargs: dict[str, Any]) -> requests.Response:
        endpoint = urlsplit(url)._replace(query="", fragment="").geturl()
        with self._lock:
            wait = self._quiet_until.get(endpoint, 0.0) - time.monotonic()
        if wait > 0:
            raise _ServiceBusy("it asked Sealgate to wait before calling again", wait)
        kwargs.setdefault("timeout", self._timeout)
        # Per request, or REQUESTS_CA_BUNDLE would override a session's own `verify`.
        kwargs.setdefault("verify", self._verify if self._verify is not None
                          else self._session.verify)
        response = self._session.request(method, url, **kwargs)
        status = response.status_code
        if status == 429 or status >= 500:
            retry_after = _retry_after(response.headers.get("Retry-After"))
            if retry_after:
                with self._lock:
                    self._quiet_until[endpoint] = time.monotonic() + retry_after
            response.close()
            raise _ServiceBusy(f"HTTP {status} {response.reason or ''}".strip(), retry_after)
        return response


def _first_line(text: object, limit: int = 300) -> str:
    line = str(text or "").strip().splitlines()[0:1]
    return line[0][:limit] if line else ""


def refusal(result: Mapping[str, Any]) -> TokenError:
    """The exception for an error answer of the token endpoint, as msal returns it: a dict
    with `error`, usually `error_description` (first line: "AADSTS65001: ..."),
    `error_codes`, and sometimes `suberror` and `claims`."""
    error = str(result.get("error") or "unknown_error")
    description = _first_line(result.get("error_description"))
    codes = {code for code in result.get("error_codes") or () if isinstance(code, int)}
    if description.startswith("AADSTS"):
        number = description[6:].split(":", 1)[0]
        if number.isdigit():
            codes.add(int(number))
    suberror = str(result.get("suberror") or "")
    claims = result.get("claims") if isinstance(result.get("claims"), str) else None
    detail = f"the sign-in service refused the token request: {error}"
    if suberror:
        detail += f"/{suberror}"
    if description:
        detail += f" ({description})"

    if codes & _CONSENT or "consent_required" in (error, suberror):
        return ConsentRequired(detail, claims=claims)
    if codes & _ASSERTION_EXPIRED or suberror == "token_expired":
        return TokenExpired(detail)
    if error == "interaction_required":
        return ConsentRequired(detail, claims=claims, user_message=STEP_UP)
    if codes & _THROTTLED or error in ("temporarily_unavailable", "server_error"):
        return TokenError(f"{detail}; retry later", user_message=BUSY)
    if codes & _OUR_CONFIGURATION or error in ("invalid_client", "unauthorized_client"):
        return TokenError(detail, user_message=MISCONFIGURED)
    return TokenError(detail)


def _access_token(result: Mapping[str, Any] | None) -> str:
    if result and isinstance(result.get("access_token"), str):
        return str(result["access_token"])
    if result and "error" in result:
        raise refusal(result)
    raise TokenError("the sign-in service's answer holds no access token")


@contextmanager
def _talking_to_the_service() -> Iterator[None]:
    """What can go wrong on the wire, as TokenErrors."""
    try:
        yield
    except _ServiceBusy as busy:
        wait = f" after {busy.retry_after:.0f} s" if busy.retry_after else " later"
        raise TokenError(f"the sign-in service is unavailable ({busy.what}); retry{wait}",
                         user_message=BUSY, retry_after=busy.retry_after) from None
    except requests.RequestException as error:
        raise TokenError(f"the sign-in service could not be reached: {_network_reason(error)}",
                         user_message=UNREACHABLE) from None
    except msal.exceptions.MsalServiceError as error:
        raise TokenError(f"the sign-in service failed: {error}; retry later",
                         user_message=BUSY) from None
    except json.JSONDecodeError:
        raise TokenError("the sign-in service answered with something that is not JSON",
                         user_message=UNREACHABLE) from None
    except ValueError as error:  # msal: the tenant's OpenID configuration could not be had
        # msal's own words come first; the service's reason (an unknown tenant is AADSTS90002)
        # is in the error msal caught, inside the answer's JSON.
        cause = _AADSTS_LINE.search(str(error.__context__ or ""))
        reason = f" ({cause.group(0).strip()})" if cause else ""
        raise TokenError(f"the sign-in service refused the configuration: "
                         f"{_first_line(str(error).split('. ')[0])}{reason}",
                         user_message=MISCONFIGURED) from None


def _network_reason(error: requests.RequestException) -> str:
    """The useful end of requests' nested message (urllib3's reason, not the retry wrapper)."""
    reason: object = error.args[0] if error.args else error
    reason = getattr(reason, "reason", reason)
    return _first_line(reason) or type(error).__name__


def _unverified_claims(assertion: str) -> dict[str, Any]:
    # Routing only: the add-in API verified the signature, audience and lifetime already.
    try:
        claims = jwt.decode(assertion, options={"verify_signature": False})
    except jwt.PyJWTError:
        raise TokenError("the user's token is not a well-formed signed token",
                         user_message=TokenExpired.user_message) from None
    return claims if isinstance(claims, dict) else {}


def _scope_list(scopes: Sequence[str]) -> list[str]:
    wanted = [scopes] if isinstance(scopes, str) else [str(scope) for scope in scopes]
    if not wanted or not all(wanted):
        raise TokenError("no scope was asked for")
    return wanted


def _certifies(certificate: x509.Certificate, key: rsa.RSAPrivateKey) -> bool:
    public = certificate.public_key()
    return isinstance(public, rsa.RSAPublicKey) \
        and public.public_numbers() == key.public_key().public_numbers()


def certificate_credential(path: Path) -> dict[str, str]:
    """msal's client credential for a PEM file holding the private key and its certificate
    (in either order, and other certificates may follow). Given the certificate and no SHA-1
    thumbprint, msal (>= 1.35) signs the client assertion with PS256, names the certificate
    by its SHA-256 thumbprint (`x5t#S256`) and sends it in `x5c`, which also makes subject
    name/issuer registration work."""
    name = "exchange.client_certificate"
    try:
        data = path.read_bytes()
    except OSError as error:
        raise TokenError(f"{name}: cannot read {path}: {error.strerror}",
                         user_message=MISCONFIGURED) from None
    try:
        key = serialization.load_pem_private_key(data, password=None)
    except TypeError:
        raise TokenError(f"{name}: the private key in {path} is encrypted; store it without a "
                         f"passphrase, readable only by Sealgate",
                         user_message=MISCONFIGURED) from None
    except ValueError:
        raise TokenError(f"{name}: {path} holds no PEM private key",
                         user_message=MISCONFIGURED) from None
    if not isinstance(key, rsa.RSAPrivateKey):
        raise TokenError(f"{name}: the key in {path} is not an RSA key (client assertions are "
                         f"signed with RS256/PS256)", user_message=MISCONFIGURED)
    try:
        certificates = x509.load_pem_x509_certificates(data)
    except ValueError:
        raise TokenError(f"{name}: {path} holds no PEM certificate (put the certificate after "
                         f"the key)", user_message=MISCONFIGURED) from None
    leaf = next((cert for cert in certificates if _certifies(cert, key)), None)
    if leaf is None:
        raise TokenError(f"{name}: no certificate in {path} matches its private key",
                         user_message=MISCONFIGURED)
    if leaf.not_valid_after_utc < datetime.now(UTC):
        raise TokenError(f"{name}: the certificate in {path} expired on "
                         f"{leaf.not_valid_after_utc:%Y-%m-%d}", user_message=MISCONFIGURED)
    return {
        "private_key": key.private_bytes(serialization.Encoding.PEM,
                                         serialization.PrivateFormat.PKCS8,
                                         serialization.NoEncryption()).decode(),
        "public_certificate": leaf.public_bytes(serialization.Encoding.PEM).decode(),
    }


class TokenBroker:
    """Tokens for mailbox APIs; one per process, safe to share between threads."""

    def __init__(self, config: Config, *, http_client: requests.Session | None = None) -> None:
        self._config = config
        exchange = config.exchange
        self._owns_session = http_client is None
        self._transport = _Transport(
            http_client if http_client is not None else requests.Session(),
            str(config.path(exchange.ca_file)) if exchange.ca_file else None,
            exchange.timeout)
        self._cache = msal.SerializableTokenCache()
        self._apps: dict[str, Any] = {}
        self._credential: str | dict[str, str] | None = None
        self._lock = threading.Lock()

    def on_behalf_of(self, user_assertion: str, scopes: Sequence[str]) -> str:
        """An access token for the user's own mailbox, e.g. scopes
        ["https://graph.microsoft.com/Mail.ReadWrite"]. ConsentRequired, TokenExpired,
        TenantNotAllowed, or TokenError."""
        wanted = _scope_list(scopes)
        claims = _unverified_claims(user_assertion)
        tenant = self._allowed_tenant(claims.get("tid"))
        app = self._app(tenant)
        with _talking_to_the_service():
            account = self._cached_account(app, claims.get("oid"))
            if account is not None:
                cached = app.acquire_token_silent_with_error(wanted, account)
                if cached and "access_token" in cached:
                    return str(cached["access_token"])
            result = app.acquire_token_on_behalf_of(user_assertion, wanted)
        return _access_token(result)

    def app_only(self, scopes: Sequence[str]) -> str:
        """The application's own access token (client credentials) for the organisation's
        tenant, e.g. scopes ["https://graph.microsoft.com/.default"]."""
        wanted = _scope_list(scopes)
        tenant = self._config.exchange.tenant_id.strip()
        if not tenant:
            raise TokenError("exchange.tenant_id is not set: app-only access needs the "
                             "organisation's tenant id", user_message=MISCONFIGURED)
        app = self._app(tenant)
        with _talking_to_the_service():
            result = app.acquire_token_for_client(wanted)
        return _access_token(result)

    def close(self) -> None:
        if self._owns_session:
            self._transport.close()

    def _allowed_tenant(self, tid: object) -> str:
        allowed = {tenant.lower() for tenant in self._config.addin.tenants}
        if not isinstance(tid, str) or tid.lower() not in allowed:
            shown = tid if isinstance(tid, str) and len(tid) <= 64 else "(none)"
            raise TenantNotAllowed(f"tenant {shown} is not in addin.tenants")
        return tid.lower()  # one of the configured ones: safe to put into the URL

    def _cached_account(self, app: Any, oid: object) -> dict[str, Any] | None:
        """The cache's account for this user in this tenant: msal files it under the tenant
        (realm) and the user's object id there (local_account_id), which is exactly what the
        assertion names, guests from other tenants included."""
        if not isinstance(oid, str) or not oid:
            return None
        for account in app.token_cache.search(
                msal.TokenCache.CredentialType.ACCOUNT,
                query={"environment": app.authority.instance, "realm": app.authority.tenant,
                       "local_account_id": oid}):
            return dict(account)
        return None

    def _app(self, tenant: str) -> Any:
        with self._lock:
            app = self._apps.get(tenant)
            if app is None:
                exchange = self._config.exchange
                client_id = exchange.client_id or self._config.addin.client_id
                if not client_id:
                    raise TokenError("neither exchange.client_id nor addin.client_id is set",
                                     user_message=MISCONFIGURED)
                with _talking_to_the_service():  # msal reads the tenant's OpenID configuration
                    app = msal.ConfidentialClientApplication(
                        client_id,
                        client_credential=self._client_credential(),
                        authority=f"{exchange.authority_host}/{tenant}",
                        instance_discovery=False,
                        token_cache=self._cache,
                        http_client=self._transport,
                    )
                self._apps[tenant] = app
            return app

    def _client_credential(self) -> str | dict[str, str]:
        if self._credential is None:
            exchange = self._config.exchange
            if exchange.client_certificate:
                self._credential = certificate_credential(
                    self._config.path(exchange.client_certificate))
            elif exchange.client_secret:
                self._credential = exchange.client_secret
            else:
                raise TokenError("neither exchange.client_secret nor exchange.client_certificate "
                                 "is set", user_message=MISCONFIGURED)
        return self._credential
