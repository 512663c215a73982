"""Reading: the message centre, a message with its sanitised body, attachments streamed, the
print view, and the sender's question when one is set. Every page starts at
`readable_message`, which checks the visitor against the message's recipients."""

from __future__ import annotations

import logging
import re
import uuid
from datetime import datetime
from functools import partial
from urllib.parse import quote

from flask import (
    Response,
    abort,
    flash,
    make_response,
    redirect,
    render_template,
    request,
    stream_with_context,
    url_for,
)
from flask.typing import ResponseReturnValue
from flask_babel import gettext as _
from sqlalchemy import select, update

from sealgate.config import Config
from sealgate.mail import notices
from sealgate.mail.sanitise import SafeHtml, plain_text_to_html, sanitise
from sealgate.server.app import services
from sealgate.server.branding import branding
from sealgate.server.limits import CREDENTIALS, limiter
from sealgate.server.links import tracking_link
from sealgate.server.outbox import DeliveryError, send
from sealgate.server.portal import portal
from sealgate.server.portal.forms import AnswerForm
from sealgate.server.portal.identity import (
    Readable,
    current_visitor,
    now,
    readable_message,
    recipient_row,
    require_visitor,
)
from sealgate.vault import accounts
from sealgate.vault.accounts import Check
from sealgate.vault.models import Part, PartKind, Recipient, SecureMessage

log = logging.getLogger(__name__)
_SAFE_TYPE = re.compile(r"^[a-z0-9][a-z0-9!#$&^_.+-]*/[a-z0-9][a-z0-9!#$&^_.+-]*$")
_INLINE_IMAGES = {"image/png", "image/jpeg", "image/gif", "image/webp"}
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
        sent = db.scalars(select(SecureMessage).where(SecureMessage.sender == visitor.address)
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
                return render_template("portal/gone.html", message=found,
                                       retracted=found.state.value == "retracted"), 410
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
        response.call_on_close(partial(_send_read_receipt, service.config, readable, first))
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
    inline = part.kind is PartKind.INLINE and part.content_type in _INLINE_IMAGES
    if not inline:
        with service.vault.database.writing() as db:
            recipient = db.get(Recipient, readable.recipient.id)
            if recipient is not None:
                recipient.downloads += 1
            service.vault.record_in(db, readable.visitor.address, "message.downloaded",
                                    "message", str(message_id),
                                    {"part": str(part.id), "filename": part.filename or "",
                                     "ip": request.remote_addr or ""})
    response = Response(stream_with_context(service.vault.stream_part(part)),
                        mimetype=_served_type(part.content_type))
    response.headers["Content-Length"] = str(part.size)
    response.headers["Content-Disposition"] = _disposition(
        "inline" if inline else "attachment", part.filename or "attachment")
    response.headers["Content-Security-Policy"] = "default-src 'none'; sandbox"
    response.headers["Cache-Control"] = "private, no-store"
    return response


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
    vault = services().vault
    by_cid = {p.content_id.strip("<>"): p for p in parts
              if p.kind is PartKind.INLINE and p.content_id}

    def part_url(content_id: str) -> str | None:
        found = by_cid.get(content_id)
        return url_for("portal.download", message_id=message.id, part_id=found.id) \
            if found else None

    html = next((p for p in parts if p.kind is PartKind.HTML), None)
    if html is not None:
        result = sanitise(vault.read_part(html).decode("utf-8", "replace"), part_url=part_url,
                          allow_remote=allow_remote)
        if result.removed:
            log.info("message %s: neutralised in the HTML body: %s", message.id,
                     ", ".join(result.removed))
        return result
    text = next((p for p in parts if p.kind is PartKind.TEXT), None)
    content = vault.read_part(text).decode("utf-8", "replace") if text is not None else ""
    return SafeHtml(plain_text_to_html(content), 0, ())


def _record_open(readable: Readable, counted: Part | None, blocked: int) -> datetime | None:
    """First and last opening, in the audit trail (and the body's remote images, when they
    were just counted); the time when this was the first opening."""
    service = services()
    moment = now()
    with service.vault.database.writing() as db:
        recipient = db.get(Recipient, readable.recipient.id)
        if recipient is None:
            return None
        first = recipient.first_opened_at is None
        if first:
            recipient.first_opened_at = moment
        recipient.last_opened_at = moment
        if counted is not None:
            db.execute(update(Part).where(Part.id == counted.id).values(remote_images=blocked))
        service.vault.record_in(db, readable.visitor.address, "message.viewed", "message",
                                str(readable.message.id), {"ip": request.remote_addr or "",
                                                           "first": first})
    return moment if first else None


def _send_read_receipt(config: Config, readable: Readable, opened_at: datetime) -> None:
    message = readable.message
    try:
        send(config, notices.read_receipt(
            branding(config), from_address=config.from_address, to=message.sender,
            subject=message.subject, reader=readable.visitor.address, opened_at=opened_at,
            tracking_link=tracking_link(config, message.id)))
    except DeliveryError as error:
        log.warning("read receipt for %s not sent: %s", message.id, error)


def _served_type(declared: str) -> str:
    kind = declared.split(";")[0].strip().lower()
    return kind if _SAFE_TYPE.match(kind) else "application/octet-stream"


def _disposition(kind: str, filename: str) -> str:
    """Both forms: a plain ASCII fallback and RFC 6266's UTF-8 `filename*`."""
    cleaned = "".join(ch for ch in filename if ch.isprintable() and ch not in "\\/\"") \
        or "attachment"
    fallback = cleaned.encode("ascii", "replace").decode("ascii").replace("?", "_")
    return f"{kind}; filename=\"{fallback}\"; filename*=UTF-8''{quote(cleaned, safe='')}"
