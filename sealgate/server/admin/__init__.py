"""The admin console (/admin: server-rendered pages behind an administrator's password and
authenticator) and the same operations as JSON (/api/v1/admin, behind scoped API keys,
described in openapi.yaml). One module per area; each holds the console pages and the API
routes of its area, over the same functions."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from flask import Blueprint, current_app

admin = Blueprint("admin", __name__, url_prefix="/admin")
admin_api = Blueprint("admin_api", __name__, url_prefix="/api/v1/admin")


# The console's areas, in the order its menu shows them.
AREAS = (
    ("admin.dashboard", "Overview"),
    ("admin.organisation", "Organisation & branding"),
    ("admin.dlp", "Data-leak policies"),
    ("admin.routing", "Delivery"),
    ("admin.portal_settings", "Portal"),
    ("admin.recipient_keys", "Recipient keys"),
    ("admin.quarantine", "Quarantine"),
    ("admin.messages", "Messages"),
    ("admin.audit", "Audit trail"),
    ("admin.api_keys", "API keys"),
)


@admin.context_processor
def areas() -> dict[str, Callable[[], Any]]:
    """What console templates see: the menu, and the time (for "expired")."""
    return {"admin_areas": lambda: [(endpoint, label) for endpoint, label in AREAS
                                    if endpoint in current_app.view_functions],
            "now_utc": lambda: datetime.now(UTC)}


@admin.before_request
def _identify() -> None:
    from sealgate.server.admin.identity import load_admin

    load_admin()


@admin_api.before_request
def _authenticate() -> None:
    from sealgate.server.admin.api import load_key

    load_key()


from sealgate.server.limits import CREDENTIALS, limiter  # noqa: E402

# Every API request is checked against the credential limit; only refused keys (401) count.
limiter.limit(CREDENTIALS, deduct_when=lambda response: response.status_code == 401)(admin_api)

from sealgate.server.admin import (  # noqa: E402
    api,
    apikeys,
    audit,
    branding_pages,
    dashboard,
    dlp_pages,
    identity,
    keys_pages,
    messages,
    microsoft,
    quarantine,
    settings_api,
    settings_pages,
)

__all__ = ["admin", "admin_api", "api", "apikeys", "audit", "branding_pages", "dashboard",
           "dlp_pages", "identity", "keys_pages", "messages", "microsoft", "quarantine",
           "settings_api", "settings_pages"]
