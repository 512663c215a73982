"""The operator's endpoints: /healthz for load balancers and `make run` (is the database and
the keyring usable?), /readyz for orchestrators (can this worker take a deposit now?), and
/metrics for Prometheus (counts only, to the allowed addresses)."""

from __future__ import annotations

import ipaddress
import logging
import tempfile

from flask import Blueprint, Response, abort, jsonify, request

from sealgate.config import Config
from sealgate.crypto.aead import new_data_key
from sealgate.errors import SealgateError
from sealgate.metrics import exposition
from sealgate.server.app import services
from sealgate.vault.vault import Vault

log = logging.getLogger(__name__)
health = Blueprint("health", __name__)


def _database_answers(vault: Vault) -> bool:
    try:
        vault.database.check()
    except SealgateError as error:
        log.error("health: %s", error)
        return False
    return True


def _keyring_works(vault: Vault) -> bool:
    """The keyring loads, and a data key wrapped with it unwraps to itself."""
    try:
        keyring = vault.keyring
        probe = new_data_key()
        version, wrapped = keyring.wrap(probe, b"healthz")
        return keyring.unwrap(version, wrapped, b"healthz") == probe
    except SealgateError as error:
        log.error("health: %s", error)
        return False


def _blobs_writable(vault: Vault) -> bool:
    """A file can be made (and is removed at once) where message content is stored."""
    root = vault.blobs.root
    try:
        root.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=root, prefix=".readyz-"):
            pass
    except OSError as error:
        log.error("readiness: blob directory %s: %s", root, error.strerror or error)
        return False
    return True


@health.get("/healthz")
def healthz() -> tuple[Response, int]:
    vault = services().vault
    checks = {"database": "ok" if _database_answers(vault) else "error",
              "keyring": "ok" if _keyring_works(vault) else "error"}
    healthy = all(state == "ok" for state in checks.values())
    return jsonify(status="ok" if healthy else "error", **checks), 200 if healthy else 503


@health.get("/readyz")
def readyz() -> tuple[Response, int]:
    vault = services().vault
    checks = {"database": _database_answers, "keyring": _keyring_works,
              "blobs": _blobs_writable}
    failed = [name for name, check in checks.items() if not check(vault)]
    if failed:
        return jsonify(status="not_ready", failed=failed), 503
    return jsonify(status="ready", failed=[]), 200


@health.get("/metrics")
def prometheus_metrics() -> Response:
    if not metrics_allowed(services().config, request.remote_addr, _forwarded()):
        abort(404)
    body, content_type = exposition()
    return Response(body, content_type=content_type)


def _forwarded() -> bool:
    return "Forwarded" in request.headers or "X-Forwarded-For" in request.headers


def metrics_allowed(config: Config, remote: str | None, forwarded: bool) -> bool:
    """Only from the allowed addresses. A request relayed by a proxy the server is not told to
    trust comes from the proxy's address, which says nothing about the client: refused."""
    if remote is None or (forwarded and config.server.trusted_proxies == 0):
        return False
    try:
        address = ipaddress.ip_address(remote)
    except ValueError:
        return False
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    return any(address in ipaddress.ip_network(allowed, strict=False)
               for allowed in config.server.metrics_allow)
