"""Who is calling the add-in API: a Microsoft identity platform access token (Office SSO or
nested app authentication), checked with PyJWT against the issuer's published key set.

The key set is fetched once and kept (`key_set_lifespan`); a token naming a key the set does
not hold makes the client fetch it again at most once per `refetch_cooldown`, so a flood of
made-up key ids cannot hammer the key endpoint. Only RS256 is accepted, whatever the token's
header says: `alg: none` and HMAC signed with the public key fail before any key is looked up.

Every refusal is a TokenError with a short machine reason; `status` says which HTTP answer it
deserves (401 for a bad token, 403 for a missing scope, 503 when we cannot check at all).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import jwt
from jwt.exceptions import PyJWKClientConnectionError, PyJWKClientError, PyJWKSetError

from sealgate.config import Config

ALGORITHMS = ["RS256"]
LEEWAY_SECONDS = 60
KEY_SET_LIFESPAN = 3600.0
REFETCH_COOLDOWN = 60.0
FETCH_TIMEOUT = 5.0
# Entra tokens are a few kilobytes; anything far larger is not one, and is not parsed.
MAX_TOKEN_LENGTH = 16 * 1024

_MESSAGES = {
    "missing_token": "an Authorization: Bearer token is required",
    "malformed_token": "the token is not a well-formed signed token",
    "expired": "the token has expired",
    "not_yet_valid": "the token is not valid yet",
    "bad_signature": "the token's signature does not verify against the issuer's keys",
    "wrong_audience": "the token was not issued for this API",
    "wrong_issuer": "the token's issuer is not the one configured",
    "tenant_not_allowed": "the token's tenant is not allowed to use this API",
    "missing_scope": "the token does not carry the required scope",
    "no_address": "the token names no mailbox address",
    "key_set_unavailable": "the issuer's signing keys cannot be fetched; try again later",
    "api_disabled": "the add-in API is off: addin.client_id is not set",
}
_STATUS = {"missing_scope": 403, "key_set_unavailable": 503, "api_disabled": 503}


class TokenError(Exception):
    """A refused token. `reason` is one of a fixed vocabulary, never text from the token."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason

    @property
    def message(self) -> str:
        return _MESSAGES.get(self.reason, self.reason)

    @property
    def status(self) -> int:
        return _STATUS.get(self.reason, 401)


@dataclass(frozen=True)
class Identity:
    """The signed-in Outlook user, as the token proves it."""

    address: str
    tenant: str
    object_id: str
    name: str


def audiences(config: Config) -> list[str]:
    """The client id itself (v2 tokens) or the Application ID URI `api://HOST/CLIENT_ID`."""
    client_id = config.addin.client_id
    host = urlsplit(config.server.base_url).netloc
    return [client_id, f"api://{host}/{client_id}"]


class TokenValidator:
    """One per application (the key cache lives here); safe to share between threads."""

    def __init__(self, config: Config, *, key_set_lifespan: float = KEY_SET_LIFESPAN,
                 refetch_cooldown: float = REFETCH_COOLDOWN,
                 fetch_timeout: float = FETCH_TIMEOUT) -> None:
        self._config = config
        self._audiences = audiences(config)
        self._tenants = frozenset(t.strip().lower() for t in config.addin.tenants if t.strip())
        # No per-kid LRU (cache_keys): it never forgets a key, so one withdrawn from the set
        # would stay trusted until a restart. The set itself is cached for its lifespan.
        self._keys = jwt.PyJWKClient(config.addin.jwks_url, cache_keys=False,
                                     cache_jwk_set=True, lifespan=key_set_lifespan,
                                     timeout=fetch_timeout, cooldown_duration=refetch_cooldown)

    @property
    def enabled(self) -> bool:
        return bool(self._config.addin.client_id)

    def validate(self, raw: str | None) -> Identity:
        if not self.enabled:
            raise TokenError("api_disabled")
        if not raw:
            raise TokenError("missing_token")
        if len(raw) > MAX_TOKEN_LENGTH:
            raise TokenError("malformed_token")
        try:
            header = jwt.get_unverified_header(raw)
        except jwt.PyJWTError:
            raise TokenError("malformed_token") from None
        if header.get("alg") not in ALGORITHMS:
            raise TokenError("bad_signature")
        kid = header.get("kid")
        if not isinstance(kid, str) or not kid:
            raise TokenError("malformed_token")
        claims = self._verified_claims(raw, self._signing_key(kid))
        return self._identity(claims)

    # -- steps ---------------------------------------------------------------------------

    def _signing_key(self, kid: str) -> Any:
        try:
            # From the cache while it is fresh; a failure here means we cannot check anything.
            self._keys.get_signing_keys()
        except (PyJWKClientError, PyJWKSetError, ValueError, OSError):
            raise TokenError("key_set_unavailable") from None
        try:
            return self._keys.get_signing_key(kid).key
        except PyJWKClientConnectionError:
            raise TokenError("key_set_unavailable") from None
        except (PyJWKClientError, PyJWKSetError, ValueError, OSError):
            # Not in the set, even after the one refetch the cooldown allows.
            raise TokenError("bad_signature") from None

    def _verified_claims(self, raw: str, key: Any) -> dict[str, Any]:
        try:
            claims: dict[str, Any] = jwt.decode(
                raw, key, algorithms=ALGORITHMS, audience=self._audiences,
                leeway=LEEWAY_SECONDS, options={"require": ["exp", "iat", "iss", "aud"]})
        except jwt.ExpiredSignatureError:
            raise TokenError("expired") from None
        except jwt.ImmatureSignatureError:
            raise TokenError("not_yet_valid") from None
        except jwt.InvalidAudienceError:
            raise TokenError("wrong_audience") from None
        except jwt.MissingRequiredClaimError as error:
            raise TokenError("wrong_audience" if error.claim == "aud"
                             else "malformed_token") from None
        except (jwt.InvalidSignatureError, jwt.InvalidAlgorithmError, jwt.InvalidKeyError):
            raise TokenError("bad_signature") from None
        except jwt.PyJWTError:
            raise TokenError("malformed_token") from None
        return claims

    def _identity(self, claims: dict[str, Any]) -> Identity:
        tenant = claims.get("tid")
        if not isinstance(tenant, str) or tenant.strip().lower() not in self._tenants:
            raise TokenError("tenant_not_allowed")
        if claims.get("iss") != self._config.addin.issuer.replace("{tenant}", tenant):
            raise TokenError("wrong_issuer")
        scopes = claims.get("scp")
        if not isinstance(scopes, str) or self._config.addin.scope not in scopes.split():
            raise TokenError("missing_scope")
        address = next((value for value in (claims.get(name) for name in
                                            ("preferred_username", "upn", "email"))
                        if isinstance(value, str) and "@" in value), None)
        if address is None:
            raise TokenError("no_address")
        object_id, name = claims.get("oid"), claims.get("name")
        return Identity(address=address.strip().lower(), tenant=tenant.strip().lower(),
                        object_id=object_id if isinstance(object_id, str) else "",
                        name=name if isinstance(name, str) else "")
