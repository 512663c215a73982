"""Reading: the message centre, a message with its sanitised body, attachments streamed, the
print view, and the sender's question when one is set. Every page starts at
`readable_message`, which checks the visitor against the message's recipients."""

from __future__ import annotations

import logging
import uuid
from datetime import datetime
from functools import partial

from flask import (
    Response,
    abort,
    flash,
    make_response,
    redirect,
    render_template,
    request,
    url_for,
)
from flask.typing import ResponseReturnValue
from flask_babel import gettext as _
from sqlalchemy import select

from sealgate.mail.sanitise import SafeHtml
from sealgate.server import reading_core as core
from sealgate.server.app import services
from sealgate.server.limits import CREDENTIALS, limiter
from sealgate.server.portal import portal
from sealgate.server.portal.forms import AnswerForm
from sealgate.server.portal.identity import (
    Readable,
    current_visitor,
    gone,
    now,
    readable_message,
    recipient_row,
    require_visitor,
)
from sealgate.vault import accounts
from sealgate.vault.accounts import Check
from sealgate.vault.models import MessageState, Part, PartKind, Recipient, SecureMessage

log = logging.getLogger(__name__)
BODY_STYLE = ("body{margin:0;padding:4px;font:15px/1.5 system-ui,-apple-system,'Segoe UI',"
              "Roboto,Arial,sans-serif;color:#1b1b1b;overflow-wrap:anywhere}"
              "img{max-width:100%;height:auto}table{max-width:100%}")


@portal.get("/messages")
def message_centre() -> ResponseReturnValue:
    visitor = require_visitor()
    with services().vault.database.session() as db:
        received = db.execute(
            select(SecureMessage, Recipient).join(Recipient)
            .where(Recipient.address == visitor.address)
            .order_by(SecureMessage.created_at.desc()).limit(500)).all()
        # A held message (DLP quarantine) is the sender's to decide on its own link, not a
        # message anyone sent.
        sent = db.scalars(select(SecureMessage).where(SecureMessage.sender == visitor.address,
                                                      SecureMessage.state != MessageState.HELD)
                          .order_by(SecureMessage.created_at.desc()).limit(200)).all()
        moment = now()
        rows = [(message, recipient, message.is_readable(moment))
                for message, recipient in received]
    return render_template("portal/centre.html", rows=rows, sent=sent, visitor=visitor)


@portal.get("/m/<uuid:message_id>")
def message(message_id: uuid.UUID) -> ResponseReturnValue:
    service = services()
    if current_visitor() is None:
        with service.vault.database.session() as db:
            found = db.get(SecureMessage, message_id)
            if found is None:
                abort(404, description=_("There is no secure message at this address. Check "
                                         "that the whole link from the email was opened."))
            if not found.is_readable(now()):
                return gone(found)
            sender = found.sender_name or found.sender
        return render_template("portal/landing.html", sender=sender,
                               next=url_for("portal.message", message_id=message_id))
    allow_remote = request.args.get("remote") == "1"
    with service.vault.database.session() as db:
        readable = readable_message(db, message_id)
        parts = list(readable.message.parts)
        others = [r.address for r in readable.message.recipients
                  if r.address != readable.visitor.address]
    html = next((p for p in parts if p.kind is PartKind.HTML), None)
    blocked = html.remote_images if html is not None else 0
    if html is not None and blocked is None:
        blocked = _body(readable.message, parts, allow_remote=False).blocked_remote
    first = _record_open(readable, html if html is not None and html.remote_images is None
                         else None, blocked or 0)
    attachments = [p for p in parts if p.kind is PartKind.ATTACHMENT]
    response = make_response(render_template(
        "portal/message.html", message=readable.message, others=others,
        attachments=attachments, blocked=blocked, allow_remote=allow_remote,
        visitor=readable.visitor, body_url=url_for(
            "portal.message_body", message_id=message_id,
            remote="1" if allow_remote else None)))
    if first is not None and service.config.portal.read_receipts:
        # After the page is sent: a slow mail server never keeps the reader waiting.
        response.call_on_close(partial(core.send_read_receipt, service.config,
                                       readable.message, readable.visitor.address, first))
    return response


@portal.get("/m/<uuid:message_id>/body")
def message_body(message_id: uuid.UUID) -> ResponseReturnValue:
    """The sanitised body as a document of its own, shown in a sandboxed frame: the email's
    styles apply there without loosening the page's policy, and no script can run."""
    allow_remote = request.args.get("remote") == "1"
    with services().vault.database.session() as db:
        readable = readable_message(db, message_id)
        body = _body(readable.message, list(readable.message.parts),
                     allow_remote=allow_remote)
    images = "'self' data: https: http:" if allow_remote else "'self' data:"
    document = ("<!doctype html><html><head><meta charset=\"utf-8\">"
                f"<style>{BODY_STYLE}</style></head><body>{body.html}</body></html>")
    response = Response(document, mimetype="text/html")
    response.headers["Content-Security-Policy"] = (
        f"default-src 'none'; img-src {images}; style-src 'unsafe-inline'; "
        "base-uri 'none'; form-action 'none'; frame-ancestors 'self'; "
        "sandbox allow-same-origin allow-popups allow-popups-to-escape-sandbox")
    response.headers["X-Frame-Options"] = "SAMEORIGIN"
    response.headers["Cache-Control"] = "no-store"
    return response


@portal.get("/m/<uuid:message_id>/print")
def print_view(message_id: uuid.UUID) -> ResponseReturnValue:
    with services().vault.database.session() as db:
        readable = readable_message(db, message_id)
        parts = list(readable.message.parts)
        body = _body(readable.message, parts, allow_remote=False)
    return render_template("portal/print.html", message=readable.message, body=body.html,
                           attachments=[p for p in parts if p.kind is PartKind.ATTACHMENT])


@portal.get("/m/<uuid:message_id>/parts/<uuid:part_id>")
def download(message_id: uuid.UUID, part_id: uuid.UUID) -> ResponseReturnValue:
    service = services()
    with service.vault.database.session() as db:
        readable = readable_message(db, message_id)
        part = db.get(Part, part_id)
        if part is None or part.message_id != message_id or part.kind not in (
                PartKind.ATTACHMENT, PartKind.INLINE):
            abort(404, description=_("This attachment is not part of the message."))
        db.expunge(part)
    if not core.shown_inline(part):
        core.record_download(service.vault, readable.recipient.id, readable.visitor.address,
                             part, {"ip": request.remote_addr or ""})
    return core.part_response(service.vault, part)


@portal.route("/m/<uuid:message_id>/question", methods=["GET", "POST"])
@limiter.limit(CREDENTIALS, methods=["POST"])
def question(message_id: uuid.UUID) -> ResponseReturnValue:
    visitor = require_visitor()
    service = services()
    form = AnswerForm()
    with service.vault.database.writing() as db:
        recipient = recipient_row(db, message_id, visitor.address)
        if recipient is None or recipient.answer_hash is None \
                or recipient.id in visitor.answered \
                or not recipient.message.is_readable(now()):
            # The message page says why (not yours, withdrawn, expired) or shows it.
            return redirect(url_for("portal.message", message_id=message_id))
        asked = recipient.question or ""
        result = None
        if form.validate_on_submit():
            result = accounts.check_answer(recipient, form.answer.data or "",
                                           service.config.portal)
            if result is Check.OK:
                accounts.answered_question(db, visitor.session_id, recipient.id)
            service.vault.record_in(
                db, visitor.address,
                "portal.question_answered" if result is Check.OK else "portal.login_failed",
                "message", str(message_id), {"how": "question", "ip": request.remote_addr or ""})
        elif recipient.answer_failures >= service.config.portal.lockout_failures:
            result = Check.LOCKED
    if result is Check.OK:
        return redirect(url_for("portal.message", message_id=message_id))
    if result is Check.WRONG:
        flash(_("That answer is not right."), "error")
    locked = result is Check.LOCKED
    return render_template("portal/question.html", form=form, question=asked, locked=locked,
                           message_id=message_id), (403 if locked else 200)


# -- helpers -----------------------------------------------------------------------------

def _body(message: SecureMessage, parts: list[Part], allow_remote: bool) -> SafeHtml:
    return core.message_body(
        services().vault, message.id, parts,
        lambda part: url_for("portal.download", message_id=message.id, part_id=part.id),
        allow_remote=allow_remote)


def _record_open(readable: Readable, counted: Part | None, blocked: int) -> datetime | None:
    return core.record_open(services().vault, readable.recipient.id, readable.visitor.address,
                            readable.message.id, {"ip": request.remote_addr or ""},
                            counted, blocked)
