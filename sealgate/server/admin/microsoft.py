"""Signing in to the console with the organisation's Microsoft account (Entra ID: OpenID
Connect's authorization code flow with PKCE, through msal). On only with
`[admin] microsoft_signin`; otherwise both pages are 404 and the sign-in page has no link.

`GET /admin/signin/microsoft` has msal prepare the flow (state, nonce, PKCE verifier), keeps
it in the session and sends the browser to Microsoft. Microsoft sends it back to the
callback, where msal checks the state, redeems the code (with the verifier and the client
credential) and checks the ID token's nonce. The flow is used once.

msal (>= 1.38) does not validate the ID token beyond the nonce, so this module checks what
makes it ours: the audience is our client id, the tenant (`tid`, and the issuer's path) is
the organisation's, and it has not expired. Its signature is not checked: the token came
straight from the token endpoint over verified TLS, which OpenID Connect Core (3.1.3.7,
point 6) accepts in its place.

The account is known by its object id (`oid`), which stays when the user is renamed; the
names (`preferred_username`, `email`) do not authorise anything on their own, since whoever
may rename users in the tenant can change them. An account bound to an administrator signs
in as that administrator (see `admins.find_for_microsoft`). An account bound to nobody is
matched by `preferred_username`, then `email` (lower case), to an existing administrator who
is not disabled, is bound to no other account and already has an authenticator; nobody is
created. That first sign-in is half signed in whatever Microsoft says: the account is bound
(`identity.second_factor`) only once the administrator's authenticator code is right.

Once bound, when `admin.require_mfa_claim` is on and the token's `amr` says "mfa", the
Microsoft sign-in counts as both steps; otherwise the session is half signed in and waits
for the authenticator code exactly as after a password. Every refusal is a clear page and an
`admin.signin_failed` audit event with why; nothing from Microsoft becomes a traceback."""

from __future__ import annotations

import json
import logging
import time
import uuid
import warnings
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from typing import Any
from urllib.parse import urlsplit

import msal
import requests
from flask import abort, flash, redirect, render_template, request, session, url_for
from flask.typing import ResponseReturnValue
from sqlalchemy.orm import Session

from sealgate.config import Config
from sealgate.exchange.tokens import TokenError, certificate_credential
from sealgate.server.admin import admin
from sealgate.server.admin.forms import SignInForm
from sealgate.server.admin.identity import (
    ACCOUNT_TAKEN,
    ANOTHER_ACCOUNT,
    MICROSOFT_BINDING,
    SESSION_KEY,
    _record,
    now,
)
from sealgate.server.app import services
from sealgate.server.limits import CREDENTIALS, limiter
from sealgate.server.links import public_url
from sealgate.server.portal.identity import safe_next
from sealgate.vault import admins

log = logging.getLogger(__name__)

FLOW_KEY = "admin_microsoft_flow"
NEXT_KEY = "admin_microsoft_next"
CALLBACK_PATH = "/admin/signin/microsoft/callback"
TIMEOUT = 15.0  # seconds for each request to the sign-in service
CLOCK_SKEW = 120  # seconds of clock difference allowed on the ID token's times

NOT_AN_ADMINISTRATOR = ("That Microsoft account is not an administrator of this Sealgate. "
                        "Ask an administrator to add it, or sign in with your password.")
OTHER_ORGANISATION = ("That Microsoft account belongs to another organisation: sign in with "
                      "your organisation's account.")
START_AGAIN = ("This Microsoft sign-in was not started in this browser, has expired or was "
               "already used. Start again.")
UNREACHABLE = ("The Microsoft sign-in service could not be reached. Try again later, or sign "
               "in with your password.")
# The answer comes back in the query (a GET): the session cookie is SameSite=Lax, so a POST
# from Microsoft's page (form_post, which msal recommends) would arrive without the session
# that holds the flow. The code in the query is single-use, bound to the PKCE verifier and
# useless without the client secret, and the callback answers with a redirect under
# Referrer-Policy: no-referrer.
warnings.filterwarnings("ignore", message="response_mode='form_post' is recommended",
                        category=UserWarning, module=r"msal\.")

MISCONFIGURED = ("Microsoft sign-in is not set up correctly (see the server log). Sign in "
                 "with your password.")
NO_ACCOUNT_ID = ("Microsoft did not say which account signed in (the ID token has no object "
                 "id). Try again, or sign in with your password.")
SET_UP_FIRST = ("Before your first Microsoft sign-in, sign in with your password and set up "
                "the authenticator; then Microsoft sign-in can be used.")
REFUSALS = {
    admins.MicrosoftRefusal.NOBODY: NOT_AN_ADMINISTRATOR,
    admins.MicrosoftRefusal.DISABLED: NOT_AN_ADMINISTRATOR,
    admins.MicrosoftRefusal.OTHER_ACCOUNT: ANOTHER_ACCOUNT,
    admins.MicrosoftRefusal.NO_AUTHENTICATOR: SET_UP_FIRST,
    admins.MicrosoftRefusal.TAKEN: ACCOUNT_TAKEN,
}


class SignInFailed(Exception):
    """A Microsoft sign-in that lets nobody in: `why` for the audit trail and the log,
    `message` for the page, `who` the account it was for (when known)."""

    def __init__(self, why: str, message: str, status: int = 403, who: str = "-") -> None:
        super().__init__(why)
        self.why = why
        self.message = message
        self.status = status
        self.who = who


def redirect_uri(config: Config) -> str:
    """What the app registration must list as a Web redirect URI."""
    return public_url(config, CALLBACK_PATH)


@admin.context_processor
def _microsoft_link() -> dict[str, Callable[[], bool]]:
    return {"microsoft_signin": lambda: services().config.admin.microsoft_signin}


def _enabled() -> Config:
    config = services().config
    if not config.admin.microsoft_signin:
        abort(404)
    return config


@admin.get("/signin/microsoft")
@limiter.limit(CREDENTIALS)
def microsoft_sign_in() -> ResponseReturnValue:
    config = _enabled()
    try:
        with _application(config) as application:
            flow = application.initiate_auth_code_flow(
                scopes=[], redirect_uri=redirect_uri(config), prompt="select_account",
                response_mode="query")
    except SignInFailed as failed:
        return _refused(failed)
    session[FLOW_KEY] = flow
    session[NEXT_KEY] = safe_next(request.args.get("next"), "/admin/")
    return redirect(str(flow["auth_uri"]))


@admin.get("/signin/microsoft/callback")
@limiter.limit(CREDENTIALS)
def microsoft_callback() -> ResponseReturnValue:
    config = _enabled()
    flow = session.pop(FLOW_KEY, None)
    target = safe_next(session.pop(NEXT_KEY, None), "/admin/")
    try:
        claims = _id_token_claims(config, flow, request.args.to_dict())
        return _sign_in(config, claims, target)
    except SignInFailed as failed:
        _record(failed.who, "admin.signin_failed", why=failed.why)
        log.info("admin Microsoft sign-in refused for %s: %s", failed.who, failed.why)
        return _refused(failed)


def _refused(failed: SignInFailed) -> ResponseReturnValue:
    flash(failed.message, "error")
    return render_template("admin/sign_in.html", form=SignInForm(next="")), failed.status


# -- the flow ------------------------------------------------------------------------------

def _id_token_claims(config: Config, flow: object, response: dict[str, str]) -> dict[str, Any]:
    """The ID token's claims, once msal has checked the state, redeemed the code and checked
    the nonce, and this module the rest."""
    if not isinstance(flow, dict) or not flow.get("state"):
        raise SignInFailed("microsoft: no sign-in in progress in this session", START_AGAIN,
                           400)
    client_id = _client_id(config)
    with _application(config) as application, _service_errors():
        try:
            result = application.acquire_token_by_auth_code_flow(flow, response)
        except json.JSONDecodeError:
            raise
        except ValueError:  # msal: the answer's state is not the flow's (forged or stale)
            raise SignInFailed("microsoft: the state does not match the sign-in started",
                               START_AGAIN, 400) from None
        except RuntimeError:  # msal: the ID token's nonce is not the flow's (replayed)
            raise SignInFailed("microsoft: the ID token's nonce does not match", START_AGAIN,
                               400) from None
    if not isinstance(result, dict) or "error" in result:
        raise _microsoft_refusal(result if isinstance(result, dict) else {})
    claims = result.get("id_token_claims")
    if not isinstance(claims, dict):
        raise SignInFailed("microsoft: the answer holds no ID token", MISCONFIGURED, 502)
    _check_claims(config, client_id, claims)
    return claims


def _microsoft_refusal(result: Mapping[str, Any]) -> SignInFailed:
    """An error answer: in the callback's query (the user cancelled, a policy refused) or
    from the token endpoint (msal's error dict)."""
    error = _first_line(result.get("error"), 64) or "unknown_error"
    description = _first_line(result.get("error_description"), 300)
    why = f"microsoft: {error}" + (f" ({description})" if description else "")
    shown = f" Microsoft said: {description}" if description else f" ({error})"
    if error in ("invalid_client", "unauthorized_client"):
        log.error("Microsoft refused Sealgate's app registration for admin sign-in: %s", why)
        return SignInFailed(why, MISCONFIGURED, 502)
    return SignInFailed(why, f"Microsoft did not sign you in.{shown}", 403)


def _check_claims(config: Config, client_id: str, claims: Mapping[str, Any]) -> None:
    who = _who(_names(claims))
    tenant = config.admin.tenant_id
    tid = claims.get("tid")
    if not isinstance(tid, str) or tid.lower() != tenant:
        shown = tid[:64] if isinstance(tid, str) and tid else "(none)"
        raise SignInFailed(f"microsoft: tenant {shown} is not the organisation's",
                           OTHER_ORGANISATION, 403, who)
    issuer = urlsplit(str(claims.get("iss", "")))
    if issuer.scheme != "https" or issuer.path.lower() != f"/{tenant}/v2.0":
        raise SignInFailed("microsoft: the ID token's issuer is not the organisation's tenant",
                           OTHER_ORGANISATION, 403, who)
    audience = claims.get("aud")
    if client_id not in (audience if isinstance(audience, list) else [audience]):
        raise SignInFailed("microsoft: the ID token is not for this application",
                           START_AGAIN, 400, who)
    expires = claims.get("exp")
    if not isinstance(expires, int | float) or expires + CLOCK_SKEW < time.time():
        raise SignInFailed("microsoft: the ID token has expired", START_AGAIN, 400, who)


def _names(claims: Mapping[str, Any]) -> list[str]:
    found = (claims.get("preferred_username"), claims.get("email"))
    return [name.strip().lower() for name in found if isinstance(name, str) and name.strip()]


def _who(names: list[str]) -> str:
    return names[0] if names else "-"


def _oid(claims: Mapping[str, Any]) -> str:
    """The account's object id (a GUID, in lower case): what the account is known by."""
    found = claims.get("oid")
    try:
        if isinstance(found, str):
            return str(uuid.UUID(found))
    except ValueError:
        pass
    raise SignInFailed("microsoft: the ID token has no object id (oid)", NO_ACCOUNT_ID, 403,
                       _who(_names(claims)))


def _used_mfa(claims: Mapping[str, Any]) -> bool:
    methods = claims.get("amr")
    listed = [methods] if isinstance(methods, str) else methods
    return isinstance(listed, list) and "mfa" in listed


def _sign_in(config: Config, claims: Mapping[str, Any], target: str) -> ResponseReturnValue:
    """A session for the administrator the account signs in as: past both steps, or half
    signed in (and, for an account not bound yet, with the binding waiting for the code)."""
    oid, names = _oid(claims), _names(claims)
    with services().vault.database.writing() as db:
        match = _match(db, oid, names)
        both_steps = (not match.binding and config.admin.require_mfa_claim
                      and _used_mfa(claims))
        secret = admins.start_session(db, match.admin, "microsoft", now(),
                                      second_factor=both_steps)
        address, has_totp = match.admin.address, match.admin.has_totp
        binding = {"admin": match.admin.id, "oid": oid} if match.binding else None
    session.clear()
    session[SESSION_KEY] = secret
    if both_steps:
        _record(address, "admin.signed_in", how="microsoft")
        return redirect(target)
    if binding is not None:
        session[MICROSOFT_BINDING] = binding
    _record(address, "admin.microsoft_ok",
            mfa="yes" if _used_mfa(claims) else "not in the token",
            **({"binding": oid} if binding is not None else {}))
    return redirect(url_for("admin.second_factor" if has_totp else "admin.enrol", next=target))


def _match(db: Session, oid: str, names: list[str]) -> admins.MicrosoftMatch:
    try:
        return admins.find_for_microsoft(db, oid, names)
    except admins.MicrosoftRefused as refused:
        raise SignInFailed(f"microsoft: {refused.reason.value}", REFUSALS[refused.reason],
                           403, refused.address or _who(names)) from None


# -- msal ----------------------------------------------------------------------------------

class _Http:
    """msal's `http_client`: requests with the configured CAs and a timeout on each request
    (a session's own `verify` would lose to REQUESTS_CA_BUNDLE)."""

    def __init__(self, verify: str | bool) -> None:
        self._session = requests.Session()
        self._verify = verify

    def get(self, url: str, **kwargs: Any) -> requests.Response:
        return self._send("GET", url, kwargs)

    def post(self, url: str, **kwargs: Any) -> requests.Response:
        return self._send("POST", url, kwargs)

    def close(self) -> None:
        self._session.close()

    def _send(self, method: str, url: str, kwargs: dict[str, Any]) -> requests.Response:
        kwargs.setdefault("timeout", TIMEOUT)
        kwargs["verify"] = self._verify
        return self._session.request(method, url, **kwargs)


def _client_id(config: Config) -> str:
    return config.admin.client_id or config.exchange.client_id or config.addin.client_id


def _credential(config: Config) -> str | dict[str, str]:
    """The console's own client secret, or else Exchange's registration's credential."""
    if config.admin.client_id:
        return config.admin.client_secret
    exchange = config.exchange
    if exchange.client_certificate:
        try:
            return certificate_credential(config.path(exchange.client_certificate))
        except TokenError as error:
            log.error("admin Microsoft sign-in: %s", error)
            raise SignInFailed(f"microsoft: {error}", MISCONFIGURED, 503) from None
    return exchange.client_secret


@contextmanager
def _application(config: Config) -> Iterator[Any]:
    """A ConfidentialClientApplication for the organisation's tenant, for one request: msal
    reads the tenant's OpenID configuration as it is made, and its token cache (which
    would keep the administrator's tokens) goes with it."""
    settings = config.admin
    client_id, credential = _client_id(config), _credential(config)
    if not client_id or not credential:
        log.error("admin Microsoft sign-in: no app registration (admin.client_id and "
                  "client_secret, or exchange's)")
        raise SignInFailed("microsoft: no app registration configured", MISCONFIGURED, 503)
    http = _Http(str(config.path(settings.ca_file)) if settings.ca_file else True)
    try:
        with _service_errors():
            application = msal.ConfidentialClientApplication(
                client_id, client_credential=credential,
                authority=f"{settings.authority_host}/{settings.tenant_id}",
                instance_discovery=False, http_client=http, token_cache=msal.TokenCache())
        yield application
    finally:
        http.close()


@contextmanager
def _service_errors() -> Iterator[None]:
    """What can go wrong talking to the sign-in service, as SignInFailed."""
    try:
        yield
    except requests.RequestException as error:
        reason = _first_line(getattr(error.args[0] if error.args else error, "reason", error))
        log.warning("admin Microsoft sign-in: the service could not be reached: %s", reason)
        raise SignInFailed(f"microsoft: unreachable ({reason})", UNREACHABLE, 502) from None
    except OSError as error:  # requests: admin.ca_file cannot be read
        log.error("admin Microsoft sign-in: %s (admin.ca_file)", error)
        raise SignInFailed(f"microsoft: {_first_line(error)}", MISCONFIGURED, 503) from None
    except json.JSONDecodeError:
        raise SignInFailed("microsoft: the service's answer is not JSON", UNREACHABLE,
                           502) from None
    except msal.exceptions.MsalServiceError as error:
        raise SignInFailed(f"microsoft: the service failed ({_first_line(error)})",
                           UNREACHABLE, 502) from None
    except ValueError as error:  # msal: the tenant's OpenID configuration could not be had
        log.error("admin Microsoft sign-in: the sign-in service refused the configuration "
                  "(admin.tenant_id, admin.authority_host): %s", _first_line(error))
        raise SignInFailed(f"microsoft: configuration refused ({_first_line(error)})",
                           MISCONFIGURED, 503) from None


def _first_line(text: object, limit: int = 300) -> str:
    lines = str(text or "").strip().splitlines()
    return lines[0][:limit] if lines else ""
