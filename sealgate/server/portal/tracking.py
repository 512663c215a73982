"""The sender's side: through the signed link in the "sent securely" notice, see each
recipient (method, first opened, downloads), retract the message, set its expiry, and set a
question a recipient must answer before reading."""

from __future__ import annotations

import uuid
from datetime import timedelta

from flask import abort, flash, redirect, render_template, request, url_for
from flask.typing import ResponseReturnValue
from flask_babel import gettext as _
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from sealgate.server import reading_core as core
from sealgate.server.app import services
from sealgate.server.links import tracked_message
from sealgate.server.portal import portal
from sealgate.server.portal.forms import ConfirmForm, ExpiryForm, QuestionForm
from sealgate.server.portal.identity import now
from sealgate.vault import accounts
from sealgate.vault.models import AuditEvent, Recipient, SecureMessage, TlsDelivery


def _message_id(token: str) -> uuid.UUID:
    found = tracked_message(services().config, token)
    if found is None:
        services().vault.record("anonymous", "portal.denied", "tracking", "",
                                {"ip": request.remote_addr or ""})
        abort(404, description=_("This tracking link is not valid."))
    return found


def _stored(db: Session, message_id: uuid.UUID) -> SecureMessage:
    found = db.get(SecureMessage, message_id)
    if found is None:
        abort(404, description=_("This message is no longer stored."))
    return found


def _forms(message: SecureMessage) -> tuple[ConfirmForm, ExpiryForm, QuestionForm]:
    question = QuestionForm(prefix="q")
    question.recipient.choices = [(r.id, r.address) for r in message.recipients]
    return ConfirmForm(prefix="r"), ExpiryForm(prefix="e"), question


@portal.get("/t/<token>")
def tracking(token: str) -> ResponseReturnValue:
    message_id = _message_id(token)
    service = services()
    with service.vault.database.session() as db:
        message = _stored(db, message_id)
        replies = db.scalar(select(func.count()).select_from(SecureMessage).where(
            SecureMessage.in_reply_to_id == message_id)) or 0
        recipients = list(message.recipients)
        # How every outside recipient got it, and why: the plan in the deposit's audit event.
        deposited = db.scalar(select(AuditEvent.details).where(
            AuditEvent.action == "message.deposited", AuditEvent.object_type == "message",
            AuditEvent.object_id == str(message_id)))
        retract, expiry, question = _forms(message)
        # Verified TLS: where each delivery stands (the MTA's reports, retries, fallback).
        tls = {row.recipient: row for row in db.scalars(select(TlsDelivery).where(
            TlsDelivery.message_id == message_id))}
    delivery = (deposited or {}).get("plan", [])
    return render_template("portal/tracking.html", message=message, recipients=recipients,
                           replies=replies, token=token, retract=retract, expiry=expiry,
                           question=question, readable=message.is_readable(now()),
                           delivery=delivery if isinstance(delivery, list) else [], tls=tls)


@portal.post("/t/<token>/retract")
def retract(token: str) -> ResponseReturnValue:
    message_id = _message_id(token)
    if not ConfirmForm(prefix="r").validate_on_submit():
        abort(400, description=_("The form expired; go back and try again."))
    service = services()
    with service.vault.database.writing() as db:
        message = _stored(db, message_id)
        core.retract(service.vault, db, message, message.sender,
                     {"ip": request.remote_addr or ""})
    flash(_("The message is withdrawn: its recipients can no longer open it."), "info")
    return redirect(url_for("portal.tracking", token=token))


@portal.post("/t/<token>/expiry")
def set_expiry(token: str) -> ResponseReturnValue:
    message_id = _message_id(token)
    form = ExpiryForm(prefix="e")
    if not form.validate_on_submit():
        abort(400, description=_("Give a number of days between 0 and 3650."))
    service = services()
    days = form.days.data or 0
    with service.vault.database.writing() as db:
        message = _stored(db, message_id)
        message.expires_at = now() + timedelta(days=days) if days else None
        service.vault.record_in(db, message.sender, "message.expiry_set", "message",
                                str(message_id), {"days": days})
    flash(_("The expiry is saved."), "info")
    return redirect(url_for("portal.tracking", token=token))


@portal.post("/t/<token>/question")
def set_question(token: str) -> ResponseReturnValue:
    message_id = _message_id(token)
    service = services()
    with service.vault.database.writing() as db:
        message = _stored(db, message_id)
        form = _forms(message)[2]
        # Checked as the recipient's answer will be: case and spaces do not count.
        if not form.validate_on_submit() \
                or len(accounts.normalise_answer(form.answer.data or "")) < 2:
            abort(400, description=_("Give a recipient, a question and an answer of at least "
                                     "two characters."))
        recipient = db.get(Recipient, form.recipient.data)
        if recipient is None or recipient.message_id != message_id:
            abort(404, description=_("That recipient is not on this message."))
        accounts.set_question(recipient, form.question.data or "", form.answer.data or "")
        service.vault.record_in(db, message.sender, "message.question_set", "message",
                                str(message_id), {"recipient": recipient.address})
    flash(_("The question is set. Tell the recipient the answer by phone or in person."),
          "info")
    return redirect(url_for("portal.tracking", token=token))
