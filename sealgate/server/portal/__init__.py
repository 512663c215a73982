"""The secure message portal (recipients). The pages arrive with the portal issue."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

from flask import Blueprint, abort, render_template

from sealgate.errors import VaultError
from sealgate.server.app import services

portal = Blueprint("portal", __name__)


@portal.get("/")
def home() -> str:
    return render_template("portal/home.html",
                           organisation=services().config.organisation.name)


@portal.get("/m/<uuid:message_id>")
def message(message_id: uuid.UUID) -> str:
    """Where a notification's link leads. Reading needs proof of identity (portal issue);
    until then the page names the sender and says what will happen, never the content."""
    service = services()
    with service.vault.database.session() as session:
        try:
            found = service.vault.message(session, message_id)
        except VaultError:
            abort(404, description="There is no secure message at this address.")
        readable = found.is_readable(datetime.now(UTC))
        return render_template("portal/message.html",
                               organisation=service.config.organisation.name,
                               sender_name=found.sender_name or found.sender,
                               state=found.state.value, readable=readable)
