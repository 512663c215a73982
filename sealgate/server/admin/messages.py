"""Message lookup: find secure messages by sender, recipient (an address or a whole domain)
and date; see where each stands (state, each recipient's delivery method and first
opening); retract one, with a reason. Metadata only: the console never opens a message's
content. Held messages are not here but in the quarantine. Retraction is
reading_core.retract, as the sender's own, audited with the administrator (or API key) as
the actor, the reason, and the state before and after."""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from flask import flash, jsonify, redirect, render_template, request, url_for
from flask.typing import ResponseReturnValue
from sqlalchemy import func, select
from sqlalchemy.orm import Session, selectinload
from wtforms import TextAreaField
from wtforms.validators import InputRequired, Length

from sealgate.server import reading_core
from sealgate.server.admin import admin, admin_api
from sealgate.server.admin.api import json_body, key_holder, needs, problem
from sealgate.server.admin.filters import BadQuery, address_match, number, period, text
from sealgate.server.admin.identity import actor, now
from sealgate.server.app import services
from sealgate.server.portal.forms import Form
from sealgate.vault.models import MessageState, Part, PartKind, Recipient, SecureMessage

REASON = 500


class RetractForm(Form):
    reason = TextAreaField("Why (kept in the audit trail)",
                           validators=[InputRequired(message="Say why it is retracted."),
                                       Length(max=REASON)])


class Refused(Exception):
    """The message cannot be retracted; `status` and the message say why."""

    def __init__(self, status: int, error: str, message: str) -> None:
        super().__init__(message)
        self.status, self.error = status, error


def _when(moment: datetime | None) -> str | None:
    return moment.isoformat() if moment is not None else None


def _recipient(row: Recipient) -> dict[str, Any]:
    return {"address": row.address, "delivery_method": str(row.delivery_method),
            "first_opened_at": _when(row.first_opened_at),
            "last_opened_at": _when(row.last_opened_at), "downloads": row.downloads}


def message_json(message: SecureMessage, moment: datetime) -> dict[str, Any]:
    return {"id": str(message.id), "sender": message.sender,
            "sender_name": message.sender_name, "subject": message.subject,
            "created_at": _when(message.created_at), "expires_at": _when(message.expires_at),
            "state": str(message.state), "state_changed_at": _when(message.state_changed_at),
            "readable": message.is_readable(moment),
            "in_reply_to": str(message.in_reply_to_id) if message.in_reply_to_id else None,
            "recipients": [_recipient(r) for r in message.recipients]}


def search(args: Mapping[str, str]) -> tuple[list[dict[str, Any]], bool]:
    """The messages matching `sender`, `recipient`, `since`, `until`, newest first, at most
    `limit`; and whether there are more. Raises BadQuery."""
    sender, recipient = text(args, "sender"), text(args, "recipient")
    since, until = period(args)
    limit = number(args, "limit", 50, most=500) or 50
    query = (select(SecureMessage).where(SecureMessage.state != MessageState.HELD)
             .options(selectinload(SecureMessage.recipients))
             .order_by(SecureMessage.created_at.desc(), SecureMessage.id).limit(limit + 1))
    if sender:
        query = query.where(address_match(SecureMessage.sender, sender))
    if recipient:
        query = query.where(SecureMessage.id.in_(
            select(Recipient.message_id).where(address_match(Recipient.address, recipient))))
    if since is not None:
        query = query.where(SecureMessage.created_at >= since)
    if until is not None:
        query = query.where(SecureMessage.created_at < until)
    moment = now()
    with services().vault.database.session() as db:
        found = [message_json(m, moment) for m in db.scalars(query)]
    return found[:limit], len(found) > limit


def _message_id(value: str) -> uuid.UUID | None:
    try:
        return uuid.UUID(value)
    except ValueError:
        return None


def _found(db: Session, value: str) -> SecureMessage:
    message_id = _message_id(value)
    message = db.get(SecureMessage, message_id) if message_id is not None else None
    if message is None or message.state is MessageState.HELD:  # held: see the quarantine
        raise Refused(404, "not_found", f"no message {value}")
    return message


def details(value: str) -> dict[str, Any]:
    """One message's metadata, with how many attachments it carries. Raises Refused."""
    with services().vault.database.session() as db:
        message = _found(db, value)
        shown = message_json(message, now())
        shown["attachments"] = db.scalar(select(func.count(Part.id)).where(
            Part.message_id == message.id, Part.kind == PartKind.ATTACHMENT))
    return shown


def retract(value: str, reason: str, who: str) -> dict[str, Any]:
    """Retract a message for an administrator; the message as it is now. Raises Refused."""
    reason = " ".join(reason.split())
    if not reason:
        raise Refused(400, "bad_request", "a reason is needed to retract a message")
    if len(reason) > REASON:
        raise Refused(400, "bad_request", f"the reason is too long (at most {REASON} "
                                          "characters)")
    service = services()
    with service.vault.database.writing() as db:
        message = _found(db, value)
        before = str(message.state)
        retracted = reading_core.retract(service.vault, db, message, who, {
            "reason": reason, "by": "administrator", "ip": request.remote_addr or "",
            "state": {"before": before, "after": str(MessageState.RETRACTED)}})
        if not retracted:
            raise Refused(409, "conflict", f"the message is already {before}: it cannot be "
                                           "retracted")
        return message_json(message, now())


# -- the console ----------------------------------------------------------------------------

@admin.get("/messages")
def messages() -> ResponseReturnValue:
    asked = any(request.args.get(k) for k in ("sender", "recipient", "since", "until"))
    try:
        found, more = search(request.args) if asked else ([], False)
    except BadQuery as error:
        return render_template("admin/messages.html", found=[], more=False, asked=asked,
                               error=str(error)), 400
    return render_template("admin/messages.html", found=found, more=more, asked=asked,
                           error="")


@admin.route("/messages/<message_id>", methods=["GET"])
def message(message_id: str) -> ResponseReturnValue:
    return _message_page(message_id, RetractForm())


def _message_page(message_id: str, form: RetractForm, status: int = 200,
                  error: str = "") -> ResponseReturnValue:
    try:
        shown = details(message_id)
    except Refused as refusal:
        return render_template("admin/message.html", message=None, error=str(refusal),
                               form=form), 404
    return render_template("admin/message.html", message=shown, form=form,
                           error=error), status


@admin.post("/messages/<message_id>/retract")
def retract_message(message_id: str) -> ResponseReturnValue:
    form = RetractForm()
    if not form.validate_on_submit():
        return _message_page(message_id, form, 400)
    try:
        retract(message_id, form.reason.data or "", actor())
    except Refused as refusal:
        said = str(refusal)
        return _message_page(message_id, form, refusal.status,
                             said[:1].upper() + said[1:] + ".")
    flash("The message is retracted: its recipients can no longer open it.", "info")
    return redirect(url_for("admin.message", message_id=message_id))


# -- the API --------------------------------------------------------------------------------

@admin_api.get("/messages")
@needs("messages:read")
def find_messages() -> ResponseReturnValue:
    try:
        found, more = search(request.args)
    except BadQuery as error:
        return problem(400, "bad_request", str(error))
    return jsonify(messages=found, more=more)


@admin_api.get("/messages/<message_id>")
@needs("messages:read")
def show_message(message_id: str) -> ResponseReturnValue:
    try:
        return jsonify(details(message_id))
    except Refused as refusal:
        return problem(refusal.status, refusal.error, str(refusal))


@admin_api.post("/messages/<message_id>/retract")
@needs("messages:write")
def retract_message_api(message_id: str) -> ResponseReturnValue:
    reason = json_body().get("reason")
    if not isinstance(reason, str):
        return problem(400, "bad_request", "'reason' must say why the message is retracted")
    try:
        return jsonify(retract(message_id, reason, key_holder().actor))
    except Refused as refusal:
        return problem(refusal.status, refusal.error, str(refusal))
