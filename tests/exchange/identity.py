"""A Microsoft identity platform (Entra ID) v2.0 endpoint on 127.0.0.1, over HTTPS with a
certificate from the lab's test CA, for the code that asks it for tokens through msal.

It speaks what msal asks with instance discovery off:

- `GET /{tenant}/v2.0/.well-known/openid-configuration`: the tenant's OpenID configuration,
  its endpoints pointing back at this server;
- `GET /{tenant}/oauth2/v2.0/authorize`: the authorization code flow's first leg, for the
  user a test chose (`sign_in_as`): it checks the client id, the registered redirect URI and
  PKCE (S256), then redirects at once to the redirect URI with a `code` and the `state` it
  got (or with `error`, see `deny_next_sign_in`);
- `POST /{tenant}/oauth2/v2.0/token`: the on-behalf-of grant
  (`urn:ietf:params:oauth:grant-type:jwt-bearer` + `requested_token_use=on_behalf_of`),
  client credentials, refresh tokens, and authorization codes (checking the client, the
  code, the redirect URI and the PKCE code_verifier; the ID token carries the authorize
  request's `nonce`, the user's `preferred_username` and `amr`).

Like Entra it authenticates the application (client id, then the client secret or the
client assertion JWT signed by the registered certificate), checks the user's assertion
(signed by this server's own key, see `user_assertion`, and not expired), wants `/.default`
for client credentials, and answers with Entra's shapes: access, refresh and ID tokens and
`client_info` as asked for, or an error body with `error`, `error_description` (first line
"AADSTSnnnn: ..."), `error_codes`, `timestamp`, `trace_id`, `correlation_id`, and `suberror`
or `claims` where Entra sends them. `answer_next` scripts the next token answers instead
(the documented failures below are ready-made).

Every request is recorded (`seen`): method, path, headers, and the parsed form body.

Shapes, from Microsoft's documentation:
- error body: https://learn.microsoft.com/entra/identity-platform/reference-error-codes
  ("Handling error codes in your application": error, error_description, error_codes,
  timestamp, trace_id, correlation_id, error_uri) and the on-behalf-of flow's error example
  (https://learn.microsoft.com/entra/identity-platform/v2-oauth2-on-behalf-of-flow, with
  `claims` for a Conditional Access challenge);
- AADSTS65001 arrives as invalid_grant with suberror consent_required, AADSTS500133 ("The
  assertion is not within its valid time range. Ensure that the access token is not expired
  before using it for user assertion, or request a new token.") as invalid_grant;
- throttling: "for client_credentials grant, Microsoft Entra ID will reply with 429 Too
  Many Requests, with a Retry-After: 60 header" — and a body that is not JSON
  (https://learn.microsoft.com/entra/msal/dotnet/advanced/client-and-server-throttling;
  AzureAD/microsoft-authentication-library-for-dotnet#2855 shows "ResponseBody: Too Many
  Requests").
"""

from __future__ import annotations

import base64
import collections
import contextlib
import hashlib
import http.server
import json
import secrets
import socket
import ssl
import threading
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit

import jwt
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from sealgate.lab.pki import TestCa
from tests.https import https_server

JWT_BEARER = "urn:ietf:params:oauth:grant-type:jwt-bearer"
CLIENT_ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
RESERVED_SCOPES = ("openid", "profile", "offline_access")


@dataclass(frozen=True)
class Seen:
    """One request as the server received it. Header names are lower case."""

    method: str
    path: str
    headers: dict[str, str]
    form: dict[str, str]
    query: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Reply:
    """A scripted answer of the token endpoint. `stall`: seconds to wait before answering."""

    status: int
    body: dict[str, Any] | str
    headers: tuple[tuple[str, str], ...] = ()
    stall: float = 0.0


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def thumbprint_s256(certificate: x509.Certificate) -> str:
    """`x5t#S256`: base64url of the SHA-256 of the certificate's DER."""
    return _b64url(hashlib.sha256(certificate.public_bytes(serialization.Encoding.DER)).digest())


def thumbprint_sha1(certificate: x509.Certificate) -> str:
    """`x5t`: base64url of the SHA-1 of the certificate's DER."""
    der = certificate.public_bytes(serialization.Encoding.DER)
    return _b64url(hashlib.sha1(der, usedforsecurity=False).digest())


def entra_error(status: int, error: str, code: int, message: str, *,
                headers: tuple[tuple[str, str], ...] = (), **extra: Any) -> Reply:
    """An error as Entra words it: the AADSTS line, then trace, correlation and time."""
    now = datetime.now(UTC)
    trace, correlation = str(uuid.uuid4()), str(uuid.uuid4())
    body = {
        "error": error,
        "error_description": f"AADSTS{code}: {message}\r\nTrace ID: {trace}\r\n"
                             f"Correlation ID: {correlation}\r\n"
                             f"Timestamp: {now:%Y-%m-%d %H:%M:%SZ}",
        "error_codes": [code],
        "timestamp": f"{now:%Y-%m-%d %H:%M:%SZ}",
        "trace_id": trace,
        "correlation_id": correlation,
        "error_uri": f"https://login.microsoftonline.com/error?code={code}",
        **extra,
    }
    return Reply(status, body, headers)


def consent_missing(client_id: str, name: str = "Sealgate") -> Reply:
    return entra_error(
        400, "invalid_grant", 65001,
        f"The user or administrator has not consented to use the application with ID "
        f"'{client_id}' named '{name}'. Send an interactive authorization request for this "
        f"user and resource.", suberror="consent_required")


def assertion_expired(expired_at: datetime | None = None) -> Reply:
    now = datetime.now(UTC)
    expired = expired_at or now
    return entra_error(
        400, "invalid_grant", 500133,
        f"Assertion is not within its valid time range. Ensure that the access token is not "
        f"expired before using it for user assertion, or request a new token. Current time: "
        f"{now:%Y-%m-%dT%H:%M:%S.0000000Z}, expiry time of assertion "
        f"{expired:%Y-%m-%dT%H:%M:%S.0000000Z}.")


def mfa_required() -> Reply:
    """The on-behalf-of page's own example: a Conditional Access policy on the downstream
    API, with the claims challenge the client must pass on."""
    return entra_error(
        400, "interaction_required", 50079,
        "Due to a configuration change made by your administrator, or because you moved to a "
        "new location, you must enroll in multi-factor authentication to access "
        "'00000003-0000-0000-c000-000000000000'.",
        claims='{"access_token":{"polids":{"essential":true,'
               '"values":["9ab03e19-ed42-4168-b6b7-7001fb3e933a"]}}}')


def too_many_requests(retry_after: int = 60) -> Reply:
    return Reply(429, "Too Many Requests", (("Retry-After", str(retry_after)),))


def unavailable(retry_after: int | None = None) -> Reply:
    headers = (("Retry-After", str(retry_after)),) if retry_after is not None else ()
    return Reply(503, {"error": "temporarily_unavailable",
                       "error_description": "The service is temporarily unavailable."},
                 headers)


@dataclass
class Registration:
    """The application as registered in Entra: its id and its credentials."""

    client_id: str
    client_secret: str | None = None
    certificate: x509.Certificate | None = None
    # The Web platform's redirect URIs; empty: any (the authorize endpoint does not check).
    redirect_uris: tuple[str, ...] = ()


@dataclass(frozen=True)
class User:
    """Who signs in at the authorization endpoint, and with which methods (`amr`: "pwd",
    "mfa", ...). `tid`: the tenant the ID token names; None: the tenant of the request."""

    preferred_username: str
    amr: tuple[str, ...] = ("pwd", "mfa")
    tid: str | None = None
    email: str | None = None
    oid: str = field(default_factory=lambda: str(uuid.uuid4()))


@dataclass(frozen=True)
class _Code:
    tenant: str
    client_id: str
    redirect_uri: str
    code_challenge: str | None
    nonce: str | None
    user: User
    expires: float


@dataclass
class _Grant:
    tenant: str
    identity: dict[str, Any]
    scopes: list[str]


@dataclass
class IdentityProvider:
    """Start with `IdentityProvider.start(ca, folder, registration)`; `close()` at the end."""

    registration: Registration
    tenants: set[str] | None = None  # None: every tenant exists
    seen: list[Seen] = field(default_factory=list)
    issued: list[str] = field(default_factory=list)  # access tokens, in order
    _scripted: collections.deque[Reply] = field(default_factory=collections.deque)
    _refresh: dict[str, _Grant] = field(default_factory=dict)
    signing_in: User | None = None  # who the authorization endpoint signs in
    _denial: tuple[str, str] | None = None
    _codes: dict[str, _Code] = field(default_factory=dict)
    _redeemed: set[str] = field(default_factory=set)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _signing_key: rsa.RSAPrivateKey = field(
        default_factory=lambda: rsa.generate_private_key(public_exponent=65537, key_size=2048))
    _server: http.server.ThreadingHTTPServer | None = None

    @classmethod
    def start(cls, ca: TestCa, folder: Path, registration: Registration) -> IdentityProvider:
        provider = cls(registration)
        key_pem, cert_pem = ca.issue_server("127.0.0.1")
        (folder / "idp.pem").write_bytes(cert_pem + ca.cert_pem)
        (folder / "idp.key").write_bytes(key_pem)
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(folder / "idp.pem", folder / "idp.key")
        provider._server = _serve(provider, context)
        return provider

    @property
    def url(self) -> str:
        assert self._server is not None
        return f"https://127.0.0.1:{self._server.server_address[1]}"

    def close(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()

    def answer_next(self, *replies: Reply) -> None:
        """The next token requests get these answers, in order, whatever they ask."""
        with self._lock:
            self._scripted.extend(replies)

    def sign_in_as(self, user: User) -> None:
        """The user who signs in, with `user.amr`, at every authorization request from now."""
        with self._lock:
            self.signing_in = user

    def deny_next_sign_in(self, error: str = "access_denied", code: int = 65004,
                          message: str = "User declined to consent to access the app.") -> None:
        """The next authorization request is answered with an error, as Entra does when the
        user cancels or a policy refuses: a redirect with `error` and `error_description`."""
        with self._lock:
            self._denial = (error, f"AADSTS{code}: {message}")

    def authorize_requests(self) -> list[Seen]:
        with self._lock:
            return [seen for seen in self.seen if seen.path.endswith("/oauth2/v2.0/authorize")]

    def token_requests(self) -> list[Seen]:
        with self._lock:
            return [seen for seen in self.seen if seen.path.endswith("/oauth2/v2.0/token")]

    def token_endpoint(self, tenant: str) -> str:
        return f"{self.url}/{tenant}/oauth2/v2.0/token"

    def user_assertion(self, *, tid: str, oid: str, upn: str, audience: str = "api://sealgate",
                       lifetime: float = 3600.0, scp: str = "access_as_user") -> str:
        """The token the add-in sends to Sealgate's API, as this service would issue it."""
        now = int(time.time())
        claims = {"aud": audience, "iss": f"https://login.microsoftonline.com/{tid}/v2.0",
                  "iat": now - 60, "nbf": now - 60, "exp": int(now + lifetime), "tid": tid,
                  "oid": oid, "sub": _b64url(oid.encode()), "upn": upn,
                  "preferred_username": upn, "name": upn.split("@")[0].title(), "scp": scp,
                  "ver": "2.0"}
        return jwt.encode(claims, self._signing_key, algorithm="RS256",
                          headers={"kid": "idp-test-key"})

    # --- the protocol ---------------------------------------------------------------------

    def _openid_configuration(self, tenant: str) -> tuple[int, dict[str, Any]]:
        if self.tenants is not None and tenant not in self.tenants:
            reply = entra_error(400, "invalid_tenant", 90002,
                                f"Tenant '{tenant}' not found. Check to make sure you have the "
                                f"correct tenant ID and are signing into the correct cloud.")
            assert isinstance(reply.body, dict)
            return reply.status, reply.body
        base = f"{self.url}/{tenant}"
        return 200, {
            "token_endpoint": f"{base}/oauth2/v2.0/token",
            "token_endpoint_auth_methods_supported": ["client_secret_post",
                                                      "private_key_jwt", "client_secret_basic"],
            "jwks_uri": f"{self.url}/{tenant}/discovery/v2.0/keys",
            "response_modes_supported": ["query", "fragment", "form_post"],
            "subject_types_supported": ["pairwise"],
            "id_token_signing_alg_values_supported": ["RS256"],
            "response_types_supported": ["code", "id_token", "code id_token", "id_token token"],
            "scopes_supported": ["openid", "profile", "email", "offline_access"],
            "issuer": f"https://login.microsoftonline.com/{tenant}/v2.0",
            "request_uri_parameter_supported": False,
            "userinfo_endpoint": "https://graph.microsoft.com/oidc/userinfo",
            "authorization_endpoint": f"{base}/oauth2/v2.0/authorize",
            "device_authorization_endpoint": f"{base}/oauth2/v2.0/devicecode",
            "http_logout_supported": True,
            "frontchannel_logout_supported": True,
            "end_session_endpoint": f"{base}/oauth2/v2.0/logout",
            "claims_supported": ["sub", "iss", "aud", "exp", "iat", "nonce", "tid", "oid"],
            "tenant_region_scope": "EU",
            "cloud_instance_name": "microsoftonline.com",
        }

    def _token(self, tenant: str, form: dict[str, str]) -> Reply:
        registration = self.registration
        client_id = form.get("client_id", "")
        if client_id != registration.client_id:
            return entra_error(400, "unauthorized_client", 700016,
                               f"Application with identifier '{client_id}' was not found in "
                               f"the directory '{tenant}'.")
        refused = self._authenticate_client(tenant, form)
        if refused is not None:
            return refused
        grant_type = form.get("grant_type")
        scopes = form.get("scope", "").split()
        if grant_type == "client_credentials":
            if len(scopes) != 1 or not scopes[0].endswith("/.default"):
                return entra_error(400, "invalid_scope", 1002012,
                                   f"The provided value for scope {form.get('scope', '')} is "
                                   f"not valid. Client credential flows must have a scope "
                                   f"value with /.default suffixed to the resource identifier "
                                   f"(application ID URI).")
            return Reply(200, self._tokens(tenant, scopes, form, None))
        if grant_type == JWT_BEARER and form.get("requested_token_use") == "on_behalf_of":
            try:
                identity = jwt.decode(form.get("assertion", ""),
                                      self._signing_key.public_key(), algorithms=["RS256"],
                                      options={"verify_aud": False})
            except jwt.ExpiredSignatureError:
                return assertion_expired()
            except jwt.PyJWTError:
                return entra_error(400, "invalid_grant", 50013,
                                   "Assertion failed signature validation.")
            if str(identity.get("tid")).lower() != tenant.lower():
                return entra_error(400, "invalid_grant", 50013,
                                   "Assertion is not issued for this tenant.")
            return Reply(200, self._tokens(tenant, scopes, form, identity))
        if grant_type == "refresh_token":
            with self._lock:
                grant = self._refresh.get(form.get("refresh_token", ""))
            if grant is None or grant.tenant != tenant:
                return entra_error(400, "invalid_grant", 9002313,
                                   "Invalid request. Request is malformed or invalid.")
            return Reply(200, self._tokens(tenant, scopes, form, grant.identity))
        if grant_type == "authorization_code":
            return self._redeem(tenant, scopes, form)
        return entra_error(400, "unsupported_grant_type", 70003,
                           f"The app requested an unsupported grant type '{grant_type}'.")

    def _authorize(self, tenant: str, query: dict[str, str]) -> tuple[int, str, str]:
        """(status, Location or "", page): a redirect back to the application, or Entra's
        error page where it cannot redirect (unknown application or redirect URI)."""
        registration = self.registration
        client_id, redirect_uri = query.get("client_id", ""), query.get("redirect_uri", "")
        if self.tenants is not None and tenant not in self.tenants:
            return 400, "", f"AADSTS90002: Tenant '{tenant}' not found."
        if client_id != registration.client_id:
            return 400, "", (f"AADSTS700016: Application with identifier '{client_id}' was not "
                             f"found in the directory '{tenant}'.")
        if not redirect_uri or (registration.redirect_uris
                                and redirect_uri not in registration.redirect_uris):
            return 400, "", (f"AADSTS50011: The redirect URI '{redirect_uri}' specified in the "
                             f"request does not match the redirect URIs configured for the "
                             f"application '{client_id}'.")
        back: dict[str, str] = {"state": query["state"]} if "state" in query else {}
        with self._lock:
            denial, self._denial = self._denial, None
            user = self.signing_in
        challenge = query.get("code_challenge")
        if denial is None and query.get("response_type") != "code":
            denial = ("unsupported_response_type", "AADSTS700054: response_type "
                      f"'{query.get('response_type', '')}' is not enabled for the application.")
        if denial is None and challenge and query.get("code_challenge_method") != "S256":
            denial = ("invalid_request", "AADSTS501491: Invalid size of Code_Challenge "
                      "parameter.")
        if denial is None and user is None:
            return 400, "", "nobody signs in: the test must call sign_in_as first"
        if denial is not None:
            back.update(error=denial[0], error_description=denial[1])
        else:
            assert user is not None
            code = f"code.{secrets.token_urlsafe(32)}"
            with self._lock:
                self._codes[code] = _Code(tenant, client_id, redirect_uri, challenge,
                                          query.get("nonce"), user, time.time() + 600)
            back.update(code=code, session_state=str(uuid.uuid4()))
        return 302, f"{redirect_uri}?{urlencode(back)}", ""

    def _redeem(self, tenant: str, scopes: list[str], form: dict[str, str]) -> Reply:
        presented = form.get("code", "")
        with self._lock:
            code = self._codes.pop(presented, None)
            redeemed = presented in self._redeemed
            self._redeemed.add(presented)
        if redeemed:
            return entra_error(400, "invalid_grant", 54005,
                               "OAuth2 Authorization code was already redeemed, please retry "
                               "with a new valid code or use an existing refresh token.")
        if code is None or code.tenant != tenant or code.client_id != form.get("client_id"):
            return entra_error(400, "invalid_grant", 9002313,
                               "Invalid request. Request is malformed or invalid.")
        if code.expires < time.time():
            return entra_error(400, "invalid_grant", 70008,
                               "The provided authorization code or refresh token has expired "
                               "due to inactivity. Send a new interactive authorization request "
                               "for this user and resource.")
        if form.get("redirect_uri") != code.redirect_uri:
            return entra_error(400, "invalid_grant", 500112,
                               f"The reply address '{form.get('redirect_uri', '')}' does not "
                               f"match the reply address '{code.redirect_uri}' provided when "
                               f"requesting Authorization code.")
        if code.code_challenge is not None:
            verifier = form.get("code_verifier", "")
            expected = _b64url(hashlib.sha256(verifier.encode()).digest())
            if not verifier or not secrets.compare_digest(expected, code.code_challenge):
                return entra_error(400, "invalid_grant", 501481,
                                   "The Code_Verifier does not match the code_challenge "
                                   "supplied in the authorization request.")
        user = code.user
        tid = user.tid or tenant
        identity = {"oid": user.oid, "tid": tid, "preferred_username": user.preferred_username,
                    "name": user.preferred_username.split("@")[0].title()}
        id_claims: dict[str, Any] = {
            "tid": tid, "iss": f"https://login.microsoftonline.com/{tid}/v2.0",
            "amr": list(user.amr), **({"nonce": code.nonce} if code.nonce else {}),
            **({"email": user.email} if user.email else {})}
        return Reply(200, self._tokens(tenant, scopes, form, identity, id_claims))

    def _authenticate_client(self, tenant: str, form: dict[str, str]) -> Reply | None:
        registration = self.registration
        if "client_assertion" in form:
            if (form.get("client_assertion_type") != CLIENT_ASSERTION_TYPE
                    or registration.certificate is None):
                return entra_error(401, "invalid_client", 700027,
                                   "Client assertion failed signature validation.")
            certificate = registration.certificate
            public_key = certificate.public_key()
            assert isinstance(public_key, rsa.RSAPublicKey)
            try:
                header = jwt.get_unverified_header(form["client_assertion"])
                claims = jwt.decode(form["client_assertion"], public_key,
                                    algorithms=["RS256", "PS256"],
                                    audience=self.token_endpoint(tenant),
                                    issuer=registration.client_id,
                                    options={"require": ["exp", "iat", "jti", "sub"]})
            except jwt.PyJWTError as error:
                return entra_error(401, "invalid_client", 700027,
                                   f"Client assertion failed signature validation. ({error})")
            # msal keeps base64's "=" padding in these headers; Entra takes either form.
            known = str(header.get("x5t#S256", "")).rstrip("=") == thumbprint_s256(certificate) \
                or str(header.get("x5t", "")).rstrip("=") == thumbprint_sha1(certificate)
            if not known or claims.get("sub") != registration.client_id:
                return entra_error(401, "invalid_client", 700027,
                                   "The certificate with identifier used to sign the client "
                                   "assertion is not registered on application.")
            return None
        if registration.client_secret is None or "client_secret" not in form:
            return entra_error(401, "invalid_client", 7000218,
                               "The request body must contain the following parameter: "
                               "'client_assertion' or 'client_secret'.")
        if not secrets.compare_digest(form["client_secret"], registration.client_secret):
            return entra_error(401, "invalid_client", 7000215,
                               f"Invalid client secret provided. Ensure the secret being sent "
                               f"in the request is the client secret value, not the client "
                               f"secret ID, for a secret added to app "
                               f"'{registration.client_id}'.")
        return None

    def _tokens(self, tenant: str, scopes: list[str], form: dict[str, str],
                identity: dict[str, Any] | None,
                id_claims: dict[str, Any] | None = None) -> dict[str, Any]:
        access_token = f"at.{secrets.token_urlsafe(24)}"
        granted = [scope for scope in scopes if scope not in RESERVED_SCOPES]
        body: dict[str, Any] = {"token_type": "Bearer", "expires_in": 3599,
                                "ext_expires_in": 3599, "access_token": access_token}
        if identity is not None:
            body["scope"] = " ".join(granted)
            if "offline_access" in scopes:
                refresh_token = f"rt.{secrets.token_urlsafe(24)}"
                body["refresh_token"] = refresh_token
                with self._lock:
                    self._refresh[refresh_token] = _Grant(tenant, identity, granted)
            if "openid" in scopes:
                now = int(time.time())
                body["id_token"] = jwt.encode(
                    {"aud": self.registration.client_id, "tid": tenant,
                     "iss": f"https://login.microsoftonline.com/{tenant}/v2.0",
                     "iat": now, "nbf": now, "exp": now + 3600, "oid": identity["oid"],
                     "sub": identity.get("sub", identity["oid"]),
                     "preferred_username": identity.get("preferred_username", ""),
                     "name": identity.get("name", ""), "ver": "2.0", **(id_claims or {})},
                    self._signing_key, algorithm="RS256", headers={"kid": "idp-test-key"})
            if form.get("client_info") == "1":
                body["client_info"] = _b64url(json.dumps(
                    {"uid": identity["oid"], "utid": identity["tid"]}).encode())
        with self._lock:
            self.issued.append(access_token)
        return body


def _serve(provider: IdentityProvider,
           context: ssl.SSLContext) -> http.server.ThreadingHTTPServer:
    class Handler(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def _record(self, form: dict[str, str], query: dict[str, str] | None = None) -> None:
            seen = Seen(self.command, urlsplit(self.path).path,
                        {name.lower(): value for name, value in self.headers.items()}, form,
                        query or {})
            with provider._lock:
                provider.seen.append(seen)

        def _send(self, status: int, body: dict[str, Any] | str,
                  headers: tuple[tuple[str, str], ...] = ()) -> None:
            data = (json.dumps(body) if isinstance(body, dict) else body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json; charset=utf-8"
                             if isinstance(body, dict) else "text/plain")
            self.send_header("Content-Length", str(len(data)))
            self.send_header("Cache-Control", "no-store, no-cache")
            for name, value in headers:
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(data)

        def do_GET(self) -> None:
            query = dict(parse_qsl(urlsplit(self.path).query, keep_blank_values=True))
            self._record({}, query)
            parts = urlsplit(self.path).path.strip("/").split("/")
            if len(parts) == 4 and parts[1:] == ["v2.0", ".well-known", "openid-configuration"]:
                self._send(*provider._openid_configuration(parts[0]))
            elif len(parts) == 4 and parts[1:] == ["oauth2", "v2.0", "authorize"]:
                status, location, page = provider._authorize(parts[0], query)
                self._send(status, page, (("Location", location),) if location else ())
            else:
                self._send(404, {"error": "not_found"})

        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            form = dict(parse_qsl(self.rfile.read(length).decode(), keep_blank_values=True))
            self._record(form)
            parts = urlsplit(self.path).path.strip("/").split("/")
            if len(parts) != 4 or parts[1:] != ["oauth2", "v2.0", "token"]:
                self._send(404, {"error": "not_found"})
                return
            with provider._lock:
                reply = provider._scripted.popleft() if provider._scripted else None
            if reply is None:
                reply = provider._token(parts[0], form)
            if reply.stall:
                time.sleep(reply.stall)
            with contextlib.suppress(OSError):  # the client gave up waiting (timeout test)
                self._send(reply.status, reply.body, reply.headers)

        def log_message(self, format: str, *args: Any) -> None:
            pass


    server = https_server(context, Handler)
    threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True).start()
    return server


def closed_port() -> int:
    """A port on 127.0.0.1 where nothing listens (bound, then released)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port
