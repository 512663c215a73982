"""/healthz for load balancers and `make run`: is the database and the keyring usable?"""

from __future__ import annotations

import logging

from flask import Blueprint, Response, jsonify

from sealgate.crypto.aead import new_data_key
from sealgate.errors import SealgateError
from sealgate.server.app import services

log = logging.getLogger(__name__)
health = Blueprint("health", __name__)


@health.get("/healthz")
def healthz() -> tuple[Response, int]:
    vault = services().vault
    checks: dict[str, str] = {}
    try:
        vault.database.check()
        checks["database"] = "ok"
    except SealgateError as error:
        log.error("health: %s", error)
        checks["database"] = "error"
    try:
        keyring = vault.keyring
        probe = new_data_key()
        version, wrapped = keyring.wrap(probe, b"healthz")
        checks["keyring"] = "ok" if keyring.unwrap(version, wrapped, b"healthz") == probe \
            else "error"
    except SealgateError as error:
        log.error("health: %s", error)
        checks["keyring"] = "error"
    healthy = all(state == "ok" for state in checks.values())
    return jsonify(status="ok" if healthy else "error", **checks), 200 if healthy else 503
