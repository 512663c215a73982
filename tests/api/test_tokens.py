"""The token validator on its own, against a key set served over HTTP on loopback: every
refusal the add-in API must make, the key cache, and the key endpoint being down."""

from __future__ import annotations

import hashlib
import hmac
import time
from pathlib import Path
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from sealgate.config import AddinConfig, Config
from sealgate.server.api.tokens import Identity, TokenError, TokenValidator
from tests.api.conftest import (
    CLIENT_ID,
    ISSUER,
    KID,
    OTHER_TENANT,
    TENANT,
    KeyServer,
    Mint,
    claims,
    mint_with,
    new_key,
    public_jwk,
    unsigned,
)
from tests.portal.conftest import PATIENT


def settings_for(tmp_path: Path, key_server: KeyServer, **addin: Any) -> Config:
    return Config(home=tmp_path, addin=AddinConfig(**{
        "client_id": CLIENT_ID, "tenants": [TENANT], "jwks_url": key_server.url, **addin}))


@pytest.fixture
def validator(tmp_path: Path, key_server: KeyServer) -> TokenValidator:
    return TokenValidator(settings_for(tmp_path, key_server))


def refused(validator: TokenValidator, token: str | None) -> TokenError:
    with pytest.raises(TokenError) as caught:
        validator.validate(token)
    return caught.value


def test_a_valid_token_names_the_user(validator: TokenValidator, mint: Mint) -> None:
    oid = "00000000-0000-0000-0000-00000000abcd"
    identity = validator.validate(mint(preferred_username="Patient@GMAIL.test", oid=oid))
    assert identity == Identity(address=PATIENT, tenant=TENANT, object_id=oid,
                                name="Pat Ient")


def test_the_application_id_uri_is_an_audience_too(validator: TokenValidator,
                                                   mint: Mint) -> None:
    token = mint(aud=f"api://127.0.0.1:8025/{CLIENT_ID}")
    assert validator.validate(token).address == PATIENT


@pytest.mark.parametrize("claim", ["upn", "email"])
def test_without_preferred_username_the_upn_or_email_is_the_address(
        validator: TokenValidator, mint: Mint, claim: str) -> None:
    token = mint(preferred_username=None, **{claim: "Someone@Example.org"})
    assert validator.validate(token).address == "someone@example.org"


def test_a_token_naming_no_mailbox_is_refused(validator: TokenValidator, mint: Mint) -> None:
    assert refused(validator, mint(preferred_username="not an address")).reason == "no_address"


def test_an_expired_token_is_refused_beyond_the_leeway(validator: TokenValidator,
                                                      mint: Mint) -> None:
    now = int(time.time())
    error = refused(validator, mint(iat=now - 7200, nbf=now - 7200, exp=now - 120))
    assert (error.reason, error.status) == ("expired", 401)
    assert validator.validate(mint(iat=now - 3600, nbf=now - 3600, exp=now - 30))


def test_a_token_not_yet_valid_is_refused(validator: TokenValidator, mint: Mint) -> None:
    now = int(time.time())
    assert refused(validator, mint(nbf=now + 600)).reason == "not_yet_valid"
    assert refused(validator, mint(iat=now + 600, nbf=None)).reason == "not_yet_valid"
    assert validator.validate(mint(nbf=now + 30))  # clocks differ a little


@pytest.mark.parametrize("audience", [
    "00000000-0000-0000-0000-000000000000",
    f"api://elsewhere.test/{CLIENT_ID}",
    "https://graph.microsoft.com",
])
def test_a_token_for_another_audience_is_refused(validator: TokenValidator, mint: Mint,
                                                 audience: str) -> None:
    assert refused(validator, mint(aud=audience)).reason == "wrong_audience"


def test_a_token_without_an_audience_is_refused(validator: TokenValidator, mint: Mint) -> None:
    assert refused(validator, mint(aud=None)).reason == "wrong_audience"


def test_a_token_from_another_tenant_is_refused(validator: TokenValidator, mint: Mint) -> None:
    token = mint(tid=OTHER_TENANT, iss=ISSUER.format(tenant=OTHER_TENANT))
    assert refused(validator, token).reason == "tenant_not_allowed"
    assert refused(validator, mint(tid=None)).reason == "tenant_not_allowed"


def test_no_tenant_configured_lets_nobody_in(tmp_path: Path, key_server: KeyServer,
                                             mint: Mint) -> None:
    closed = TokenValidator(settings_for(tmp_path, key_server, tenants=[]))
    assert refused(closed, mint()).reason == "tenant_not_allowed"


def test_a_tenant_may_be_configured_in_capitals(tmp_path: Path, key_server: KeyServer,
                                                mint: Mint) -> None:
    validator = TokenValidator(settings_for(tmp_path, key_server, tenants=[TENANT.upper()]))
    assert validator.validate(mint()).tenant == TENANT


def test_the_issuer_must_be_the_tokens_own_tenants(validator: TokenValidator,
                                                   mint: Mint) -> None:
    assert refused(validator, mint(iss=ISSUER.format(tenant=OTHER_TENANT))).reason \
        == "wrong_issuer"
    assert refused(validator, mint(iss=f"https://sts.windows.net/{TENANT}/")).reason \
        == "wrong_issuer"
    assert refused(validator, mint(iss=None)).reason == "malformed_token"


@pytest.mark.parametrize("scopes", [None, "", "Mail.Read", "access_as_user_admin",
                                    "xaccess_as_user"])
def test_a_token_without_the_scope_is_refused(validator: TokenValidator, mint: Mint,
                                              scopes: str | None) -> None:
    error = refused(validator, mint(scp=scopes))
    assert (error.reason, error.status) == ("missing_scope", 403)


def test_the_scope_may_be_one_of_several(validator: TokenValidator, mint: Mint) -> None:
    assert validator.validate(mint(scp="Mail.Read access_as_user openid"))


def test_a_token_signed_by_another_key_with_the_same_kid_is_refused(
        validator: TokenValidator, other_key: rsa.RSAPrivateKey) -> None:
    assert refused(validator, mint_with(other_key)).reason == "bad_signature"


def test_an_altered_token_is_refused(validator: TokenValidator, mint: Mint) -> None:
    header, _, signature = mint().split(".")
    forged = mint(preferred_username="doctor@example.org").split(".")[1]
    assert refused(validator, f"{header}.{forged}.{signature}").reason == "bad_signature"


def test_an_unsigned_token_is_refused_without_looking_up_a_key(
        validator: TokenValidator, key_server: KeyServer) -> None:
    for alg in ("none", "None", "NONE"):
        token = unsigned({"alg": alg, "typ": "JWT", "kid": KID}, claims())
        assert refused(validator, token).reason == "bad_signature"
    assert refused(validator, unsigned({"typ": "JWT", "kid": KID}, claims())).reason \
        == "bad_signature"
    assert key_server.requests == 0


def test_hmac_signed_with_the_public_key_is_refused(
        validator: TokenValidator, key_server: KeyServer,
        signing_key: rsa.RSAPrivateKey) -> None:
    """The classic confusion: the public key's PEM (anyone has it) used as an HMAC secret."""
    pem = signing_key.public_key().public_bytes(serialization.Encoding.PEM,
                                                serialization.PublicFormat.SubjectPublicKeyInfo)
    header = {"alg": "HS256", "typ": "JWT", "kid": KID}
    body = unsigned(header, claims()).rsplit(".", 1)[0]
    signature = hmac.new(pem, body.encode(), hashlib.sha256).digest()
    token = unsigned(header, claims(), signature)
    assert refused(validator, token).reason == "bad_signature"
    assert key_server.requests == 0


@pytest.mark.parametrize("algorithm", ["RS512", "PS256", "ES256"])
def test_other_asymmetric_algorithms_are_refused(validator: TokenValidator,
                                                 algorithm: str) -> None:
    token = unsigned({"alg": algorithm, "kid": KID}, claims(), b"\x00" * 256)
    assert refused(validator, token).reason == "bad_signature"


@pytest.mark.parametrize("token", [
    "", "abc", "a.b.c", "a.b", "....", "eyJhbGciOiJSUzI1NiJ9.e30",
    "x" * 20000,
])
def test_a_malformed_token_is_refused(validator: TokenValidator, token: str) -> None:
    assert refused(validator, token).reason in ("malformed_token", "missing_token")


def test_no_token_at_all(validator: TokenValidator) -> None:
    assert refused(validator, None).reason == "missing_token"
    assert refused(validator, "").reason == "missing_token"


def test_a_token_without_kid_or_expiry_is_malformed(validator: TokenValidator,
                                                    signing_key: rsa.RSAPrivateKey) -> None:
    without_kid = jwt.encode(claims(), signing_key, algorithm="RS256")
    assert refused(validator, without_kid).reason == "malformed_token"
    assert refused(validator, mint_with(signing_key, exp=None)).reason == "malformed_token"
    assert refused(validator, mint_with(signing_key, iat=None)).reason == "malformed_token"


def test_the_key_set_is_fetched_once_for_many_tokens(validator: TokenValidator, mint: Mint,
                                                     key_server: KeyServer) -> None:
    for _ in range(20):
        validator.validate(mint())
    assert key_server.requests == 1


def test_unknown_kids_refetch_the_key_set_at_most_once_per_cooldown(
        validator: TokenValidator, mint: Mint, key_server: KeyServer,
        signing_key: rsa.RSAPrivateKey) -> None:
    validator.validate(mint())
    for number in range(50):
        token = mint_with(signing_key, kid=f"made-up-{number}")
        assert refused(validator, token).reason == "bad_signature"
    assert key_server.requests == 1


def test_a_rotated_key_is_found_by_refetching_after_the_cooldown(
        tmp_path: Path, key_server: KeyServer, mint: Mint) -> None:
    validator = TokenValidator(settings_for(tmp_path, key_server), refetch_cooldown=0.2)
    validator.validate(mint())
    rotated = new_key()
    key_server.keys = [*key_server.keys, public_jwk(rotated, "rotated")]
    time.sleep(0.3)
    assert validator.validate(mint_with(rotated, kid="rotated")).address == PATIENT
    assert key_server.requests == 2


def test_a_key_withdrawn_from_the_set_stops_working_when_the_cache_expires(
        tmp_path: Path, key_server: KeyServer, mint: Mint) -> None:
    validator = TokenValidator(settings_for(tmp_path, key_server), key_set_lifespan=0.2)
    validator.validate(mint())
    key_server.keys = [public_jwk(new_key(), "replacement")]
    time.sleep(0.3)
    assert refused(validator, mint()).reason == "bad_signature"


@pytest.mark.parametrize("failure", ["status", "garbage", "no_keys", "closed"])
def test_the_key_set_unreachable_is_a_503_not_a_401(tmp_path: Path, key_server: KeyServer,
                                                    mint: Mint, failure: str) -> None:
    if failure == "status":
        key_server.status = 500
    elif failure == "garbage":
        key_server.body = b"<html>maintenance</html>"
    elif failure == "no_keys":
        key_server.body = b'{"keys": []}'
    url = key_server.url
    if failure == "closed":
        key_server.__exit__()
    validator = TokenValidator(Config(home=tmp_path, addin=AddinConfig(
        client_id=CLIENT_ID, tenants=[TENANT], jwks_url=url)), fetch_timeout=2)
    error = refused(validator, mint())
    assert (error.reason, error.status) == ("key_set_unavailable", 503)


def test_the_api_is_off_without_a_client_id(tmp_path: Path, key_server: KeyServer,
                                            mint: Mint) -> None:
    validator = TokenValidator(settings_for(tmp_path, key_server, client_id=""))
    error = refused(validator, mint())
    assert (error.reason, error.status) == ("api_disabled", 503)
    assert key_server.requests == 0
