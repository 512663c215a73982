"""API keys on the admin JSON API: `Authorization: Bearer sgk_...`. A request without a live
key gets 401; a key without the scope a route needs gets 403 naming the scope (and changes
nothing). Failed keys count against the client's credential rate limit."""

from __future__ import annotations

from collections.abc import Callable
from functools import lru_cache, wraps
from pathlib import Path
from typing import Any, TypeVar

import yaml
from flask import Response, abort, g, jsonify, request
from flask.typing import ResponseReturnValue

from sealgate.server.admin import admin_api
from sealgate.server.admin.identity import now
from sealgate.server.app import services
from sealgate.vault import admins
from sealgate.vault.admins import KeyHolder

Route = TypeVar("Route", bound=Callable[..., ResponseReturnValue])


def load_key() -> None:
    g.key_holder = None
    token = request.headers.get("Authorization", "").removeprefix("Bearer ").strip()
    if token:
        with services().vault.database.writing() as db:
            g.key_holder = admins.find_key(db, token, now())


def key_holder() -> KeyHolder:
    holder: KeyHolder | None = g.get("key_holder")
    if holder is None:
        response = jsonify(error="unauthorized",
                           message="a valid API key is required (Authorization: Bearer sgk_...)")
        response.status_code = 401
        response.headers["WWW-Authenticate"] = 'Bearer realm="sealgate-admin"'
        abort(response)
    return holder


def needs(scope: str) -> Callable[[Route], Route]:
    """The route needs a key with this scope."""
    assert scope in admins.SCOPES, scope

    def decorate(route: Route) -> Route:
        @wraps(route)
        def checked(*args: Any, **kwargs: Any) -> ResponseReturnValue:
            holder = key_holder()
            if scope not in holder.scopes:
                response = jsonify(
                    error="insufficient_scope",
                    message=f"this key ({holder.name}) has the scopes "
                            f"{', '.join(sorted(holder.scopes))}; this request needs {scope}",
                    needed=scope)
                response.status_code = 403
                response.headers["WWW-Authenticate"] = \
                    f'Bearer error="insufficient_scope", scope="{scope}"'
                return response
            return route(*args, **kwargs)

        return checked  # type: ignore[return-value]

    return decorate


def json_body() -> dict[str, Any]:
    """The request's JSON object, or a 400 saying what is wrong with it."""
    payload = request.get_json(silent=True)
    if not isinstance(payload, dict):
        abort(400, description="the request body must be a JSON object "
                               "(Content-Type: application/json)")
    return payload


def problem(status: int, error: str, message: str, **extra: Any) -> ResponseReturnValue:
    return jsonify(error=error, message=message, **extra), status


@lru_cache(maxsize=1)
def openapi_document() -> dict[str, Any]:
    """The API's description: openapi.yaml next to this module."""
    loaded = yaml.safe_load((Path(__file__).parent / "openapi.yaml").read_text("utf-8"))
    assert isinstance(loaded, dict)
    return loaded


@admin_api.get("/openapi.json")
def openapi() -> ResponseReturnValue:
    return jsonify(openapi_document())


@admin_api.get("/openapi.yaml")
def openapi_yaml() -> ResponseReturnValue:
    return Response((Path(__file__).parent / "openapi.yaml").read_bytes(),
                    mimetype="application/yaml")
