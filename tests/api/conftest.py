"""The add-in API with real tokens: an RSA key pair made for the run, its key set served over
HTTP on loopback (counting every fetch), and RS256 access tokens minted like Entra's."""

from __future__ import annotations

import base64
import json
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa
from jwt.algorithms import RSAAlgorithm

from sealgate.config import Config
from sealgate.lab.sink import SmtpSink
from tests.portal.conftest import PATIENT, configured
from tests.portal.conftest import app as app  # the fixtures, for this folder (with its config)
from tests.portal.conftest import client as client
from tests.portal.conftest import sink as sink

CLIENT_ID = "5f0c7a3e-1b2d-4c8e-9a6f-0d1e2f3a4b5c"
TENANT = "72f988bf-86f1-41af-91ab-2d7cd011db47"
OTHER_TENANT = "9188040d-6c67-4c5b-b112-36a304b66dad"
KID = "sealgate-test-key"
ISSUER = "https://login.microsoftonline.com/{tenant}/v2.0"

Mint = Callable[..., str]


def new_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def public_jwk(key: rsa.RSAPrivateKey, kid: str) -> dict[str, Any]:
    """As Entra publishes them: kty, use, kid, n, e (and no `alg`)."""
    jwk = json.loads(RSAAlgorithm.to_jwk(key.public_key()))
    jwk.update(kid=kid, use="sig")
    return dict(jwk)


class KeyServer:
    """A JWKS endpoint on 127.0.0.1; `keys`, `status` and `body` may be changed by a test."""

    def __init__(self, keys: list[dict[str, Any]]) -> None:
        self.keys = keys
        self.status = 200
        self.body: bytes | None = None  # instead of the key set, when set
        self.requests = 0
        self._lock = threading.Lock()
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                with owner._lock:
                    owner.requests += 1
                data = owner.body if owner.body is not None \
                    else json.dumps({"keys": owner.keys}).encode()
                self.send_response(owner.status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._thread = threading.Thread(target=self._server.serve_forever, args=(0.05,),
                                        daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}/discovery/v2.0/keys"

    def __enter__(self) -> KeyServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        if not self._thread.is_alive():
            return
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(5)


@pytest.fixture(scope="session")
def signing_key() -> rsa.RSAPrivateKey:
    return new_key()


@pytest.fixture(scope="session")
def other_key() -> rsa.RSAPrivateKey:
    return new_key()


@pytest.fixture
def key_server(signing_key: rsa.RSAPrivateKey) -> Iterator[KeyServer]:
    with KeyServer([public_jwk(signing_key, KID)]) as started:
        yield started


def claims(**changes: Any) -> dict[str, Any]:
    """An Entra v2 access token's claims for PATIENT in TENANT; `None` drops a claim."""
    moment = int(time.time())
    found: dict[str, Any] = {
        "aud": CLIENT_ID, "iss": ISSUER.format(tenant=TENANT), "tid": TENANT,
        "iat": moment, "nbf": moment, "exp": moment + 3600, "ver": "2.0",
        "scp": "access_as_user", "preferred_username": PATIENT, "name": "Pat Ient",
        "oid": str(uuid.uuid4()), "azp": str(uuid.uuid4()),
    }
    found.update(changes)
    return {name: value for name, value in found.items() if value is not None}


def mint_with(key: rsa.RSAPrivateKey, kid: str = KID, **changes: Any) -> str:
    return jwt.encode(claims(**changes), key, algorithm="RS256", headers={"kid": kid})


def unsigned(header: dict[str, Any], payload: dict[str, Any], signature: bytes = b"") -> str:
    """A token put together by hand, for what PyJWT refuses to make."""
    def part(data: bytes) -> str:
        return base64.urlsafe_b64encode(data).rstrip(b"=").decode()
    head = f"{part(json.dumps(header).encode())}.{part(json.dumps(payload).encode())}"
    return f"{head}.{part(signature)}"


@pytest.fixture
def mint(signing_key: rsa.RSAPrivateKey) -> Mint:
    """A valid token for PATIENT; keyword arguments change (or, with None, drop) claims."""
    def made(**changes: Any) -> str:
        return mint_with(signing_key, **changes)
    return made


def with_addin(config: Config, key_server: KeyServer, **addin: Any) -> Config:
    return config.model_copy(update={"addin": config.addin.model_copy(update={
        "client_id": CLIENT_ID, "tenants": [TENANT], "jwks_url": key_server.url, **addin})})


@pytest.fixture
def config(settings: Config, sink: SmtpSink, key_server: KeyServer) -> Config:
    return with_addin(configured(settings, sink), key_server)


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}
