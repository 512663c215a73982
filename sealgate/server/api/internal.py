"""The milter's door into the server: deposit a triggered message, get its notification.
Authenticated by the shared secret of the configuration, compared in constant time."""

from __future__ import annotations

import base64
import binascii
import hmac
import logging
from functools import partial
from typing import Any

from flask import Blueprint, Response, abort, jsonify, request

from sealgate.config import Config
from sealgate.mail import notices
from sealgate.mail.message import domain_of
from sealgate.mail.parse import MimeError
from sealgate.server.app import services
from sealgate.server.branding import branding
from sealgate.server.deposit import Deposit, deposit_message
from sealgate.server.links import tracking_link
from sealgate.server.outbox import send_after_response

log = logging.getLogger(__name__)
internal = Blueprint("internal", __name__)


@internal.before_request
def _authenticate() -> None:
    secret = services().config.internal_api.secret
    if not secret:
        abort(503, description="the internal API is off: internal_api.secret is not set")
    offered = request.headers.get("Authorization", "").removeprefix("Bearer ")
    if not hmac.compare_digest(offered.encode(), secret.encode()):
        abort(401, description="a valid internal API secret is required")


def _field(payload: dict[str, Any], name: str, kind: type) -> Any:
    value = payload.get(name)
    if not isinstance(value, kind):
        abort(400, description=f"'{name}' is missing or not a {kind.__name__}")
    return value


@internal.post("/deposits")
def create_deposit() -> tuple[Response, int]:
    payload = request.get_json(silent=True)
    if not isinstance(payload, dict):
        abort(400, description="expected a JSON object")
    recipients = _field(payload, "recipients", list)
    if not recipients or not all(isinstance(r, str) and "@" in r for r in recipients):
        abort(400, description="'recipients' must be a non-empty list of addresses")
    try:
        raw = base64.b64decode(_field(payload, "message", str), validate=True)
    except (binascii.Error, ValueError):
        abort(400, description="'message' is not base64")
    service = services()
    try:
        deposit = deposit_message(service.vault, service.config, raw,
                                  _field(payload, "mail_from", str), recipients,
                                  _field(payload, "subject", str))
    except MimeError as error:
        return jsonify(error="unreadable_message", message=str(error)), 422
    log.info("deposited %s for %d recipient(s)", deposit.message_id, len(recipients))
    response = jsonify(message_id=str(deposit.message_id), link=deposit.link,
                       content_type=deposit.notification.content_type,
                       body=base64.b64encode(deposit.notification.body).decode("ascii"))
    if service.config.portal.notify_sender and is_internal(service.config, deposit.sender):
        # After the milter has its answer: the notice never slows the mail it is about.
        response.call_on_close(partial(_tell_sender, service.config, deposit, recipients))
    return response, 201


def is_internal(config: Config, address: str) -> bool:
    return domain_of(address) in config.organisation.domains


def _tell_sender(config: Config, deposit: Deposit, recipients: list[str]) -> None:
    """To the sender of record, the envelope sender the MTA accepted (never a From header,
    which anyone can write): the notice carries the link that can withdraw the message."""
    send_after_response(config, lambda: notices.sent_securely(
        branding(config), from_address=config.from_address, to=deposit.sender,
        subject=deposit.subject, recipients=recipients,
        tracking_link=tracking_link(config, deposit.message_id)),
        f"'sent securely' notice for {deposit.message_id}")
