"""The admin API's OpenAPI description (sealgate/server/admin/openapi.yaml): valid, served
by the server, and true to the routes: every admin API route is described with each of its
methods, and the scope each operation names is the one the route needs (a key holding every
other scope is refused with exactly that scope named)."""

from __future__ import annotations

import re
import uuid
from typing import Any

from flask import Flask
from openapi_spec_validator import validate

from sealgate.vault.admins import SCOPES
from sealgate.vault.vault import Vault
from tests.admin.conftest import bearer, make_key
from tests.conftest import SQLITE_ONLY

# The console's pages, not the database: SQLite is enough here (the database-sensitive
# admin tests, sessions, settings revisions, searches and holds, run on both).
pytestmark = SQLITE_ONLY


UNAUTHENTICATED = {"/openapi.json", "/openapi.yaml"}


def _served(app: Flask) -> dict[str, Any]:
    response = app.test_client().get("/api/v1/admin/openapi.json")
    assert response.status_code == 200
    document: dict[str, Any] = response.get_json()
    return document


def test_the_description_is_valid_and_served_as_json_and_yaml(app: Flask) -> None:
    document = _served(app)
    validate(document)
    as_yaml = app.test_client().get("/api/v1/admin/openapi.yaml")
    assert as_yaml.status_code == 200 and as_yaml.mimetype == "application/yaml"
    assert b"openapi: 3.1.0" in as_yaml.data


def test_every_route_is_described_with_the_scope_it_needs(app: Flask, vault: Vault) -> None:
    document = _served(app)
    client = app.test_client()
    checked = 0
    for rule in app.url_map.iter_rules():
        if rule.endpoint.split(".")[0] != "admin_api":
            continue
        path = re.sub(r"<(?:\w+:)?(\w+)>", r"{\1}", rule.rule.removeprefix("/api/v1/admin"))
        assert path in document["paths"], f"{path} is not described"
        for method in sorted((rule.methods or set()) - {"HEAD", "OPTIONS"}):
            operation = document["paths"][path].get(method.lower())
            assert operation is not None, f"{method} {path} is not described"
            if path in UNAUTHENTICATED:
                assert operation["security"] == []
                continue
            assert {"401", "403"} <= set(operation["responses"]), (method, path)
            [scope] = operation["security"][0]["apiKey"]
            assert scope in SCOPES, (method, path, scope)
            others = make_key(vault, set(SCOPES) - {scope}, name=f"all but {scope}"[:100])
            concrete = re.sub(r"\{\w+\}", str(uuid.uuid4()), path).replace(
                "{name}", "portal")
            refused = client.open(f"/api/v1/admin{concrete}", method=method,
                                  headers=bearer(others), json={})
            assert refused.status_code == 403, (method, path, refused.get_json())
            assert refused.get_json()["needed"] == scope, (method, path)
            checked += 1
    assert checked >= 16
