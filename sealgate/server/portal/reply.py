"""Secure reply and reply-all from the portal. The reply is sealed in the vault first, then
handed to the MTA: as is to the organisation's own mailboxes (the original sender), as a
portal notification to anyone outside it. If the MTA does not take it, the sealed copy is
removed again and the writer is told nothing was sent."""

from __future__ import annotations

import logging
import uuid
from email.message import EmailMessage
from email.policy import SMTP
from email.utils import formatdate, make_msgid

from flask import abort, flash, render_template, request
from flask.typing import ResponseReturnValue
from flask_babel import gettext as _
from werkzeug.datastructures import FileStorage

from sealgate.mail import notices, notification
from sealgate.mail.message import domain_of
from sealgate.server.app import services
from sealgate.server.branding import branding
from sealgate.server.links import message_link
from sealgate.server.outbox import DeliveryError, send, send_raw
from sealgate.server.portal import portal
from sealgate.server.portal.forms import ReplyForm
from sealgate.server.portal.identity import Readable, readable_message
from sealgate.vault.models import DeliveryMethod, PartKind
from sealgate.vault.vault import NewMessage, NewPart, NewRecipient

log = logging.getLogger(__name__)


class ReplyTooLarge(Exception):
    pass


class PartlySent(Exception):
    def __init__(self, reply_id: uuid.UUID, missing: list[str]) -> None:
        super().__init__(f"reply {reply_id} not sent to {', '.join(missing)}")
        self.reply_id = reply_id
        self.missing = missing


@portal.route("/m/<uuid:message_id>/reply", methods=["GET", "POST"])
def reply(message_id: uuid.UUID) -> ResponseReturnValue:
    service = services()
    limit = service.config.portal.reply_limit_mb * 1024 * 1024
    if request.method == "POST" and (request.content_length or 0) > limit + 64 * 1024:
        abort(413, description=_("The reply with its attachments is larger than %(mb)d MB. "
                                 "Remove or shrink an attachment and try again.",
                                 mb=service.config.portal.reply_limit_mb))
    with service.vault.database.session() as db:
        readable = readable_message(db, message_id)
        everyone = [r.address for r in readable.message.recipients]
    others = [a for a in everyone if a != readable.visitor.address]
    form = ReplyForm(reply_all=request.args.get("all") == "1")
    if form.validate_on_submit():
        try:
            files = _read_files(request.files.getlist(form.attachments.name), limit)
        except ReplyTooLarge:
            abort(413, description=_("The reply with its attachments is larger than %(mb)d MB.",
                                     mb=service.config.portal.reply_limit_mb))
        cc = others if form.reply_all.data else []
        try:
            reply_id = _send_reply(readable, form.text.data or "", files, cc)
        except PartlySent as partly:
            flash(_("Your reply could not be delivered to %(missing)s just now. The others "
                    "received it; please tell the sender or try again later.",
                    missing=", ".join(partly.missing)), "error")
            return render_template("portal/replied.html", message=readable.message,
                                   reply_id=partly.reply_id,
                                   recipients=[a for a in [readable.message.sender, *cc]
                                               if a not in partly.missing])
        except DeliveryError:
            flash(_("Your reply could not be sent just now, and nothing was sent. Please try "
                    "again in a few minutes."), "error")
            return render_template("portal/reply.html", form=form, message=readable.message,
                                   others=others,
                                   limit_mb=service.config.portal.reply_limit_mb), 503
        return render_template("portal/replied.html", message=readable.message,
                               reply_id=reply_id, recipients=[readable.message.sender, *cc])
    return render_template("portal/reply.html", form=form, message=readable.message,
                           others=others, limit_mb=service.config.portal.reply_limit_mb)


def _read_files(uploads: list[FileStorage], limit: int) -> list[tuple[str, str, bytes]]:
    files: list[tuple[str, str, bytes]] = []
    total = 0
    for upload in uploads:
        if not upload or not upload.filename:
            continue
        data = upload.stream.read(limit - total + 1)
        total += len(data)
        if total > limit:
            raise ReplyTooLarge
        kind = upload.mimetype or "application/octet-stream"
        files.append((upload.filename[:255], kind, data))
    return files


def _send_reply(readable: Readable, text: str, files: list[tuple[str, str, bytes]],
                cc: list[str]) -> uuid.UUID:
    service = services()
    config = service.config
    original = readable.message
    writer = readable.visitor.address
    internal = set(config.organisation.domains)
    # One line: a subject decoded from an encoded word may hold a line break.
    subject = notices.clean(original.subject)
    subject = subject if subject.lower().startswith("re:") else f"Re: {subject}"
    mime = notices.reply_message(
        from_address=writer, from_name="", to=[original.sender], cc=cc, subject=subject,
        text=text, attachments=files, in_reply_to=original.header_message_id,
        references=original.header_message_id, via_organisation=config.organisation.name,
        message_id_domain=config.from_address.rpartition("@")[2])
    parts = [NewPart(PartKind.ORIGINAL, mime.as_bytes(), "message/rfc822", "message.eml"),
             NewPart(PartKind.TEXT, text.encode("utf-8"), "text/plain")]
    parts += [NewPart(PartKind.ATTACHMENT, data, kind, name) for name, kind, data in files]
    recipients = [original.sender, *cc]
    reply_id = service.vault.deposit(NewMessage(
        sender=writer, subject=subject, parts=parts, in_reply_to_id=original.id,
        header_message_id=str(mime["Message-ID"]),
        recipients=[NewRecipient(a, DeliveryMethod.INTERNAL if domain_of(a) in internal
                                 else DeliveryMethod.PORTAL) for a in recipients]),
        actor=writer)
    inside = [a for a in recipients if domain_of(a) in internal]
    outside = [a for a in recipients if domain_of(a) not in internal]
    delivered: list[str] = []
    try:
        if inside:
            del mime["To"], mime["Cc"]
            mime["To"] = ", ".join(a for a in inside if a == original.sender) or inside[0]
            if len(inside) > 1:
                mime["Cc"] = ", ".join(a for a in inside if a != original.sender)
            send(config, mime)
            delivered += inside
        for address in outside:
            send_raw(config, [address], _notification(reply_id, writer, subject, address))
            delivered.append(address)
    except DeliveryError:
        if not delivered:  # nobody has it: undo, and the writer may simply try again
            service.vault.delete_message(reply_id, writer, "reply not taken by the MTA")
            raise
        # Someone has it already: keep it readable, and say exactly who is missing.
        missing = [a for a in recipients if a not in delivered]
        service.vault.record(writer, "message.reply_partly_sent", "message", str(original.id),
                             {"reply": str(reply_id), "missing": missing})
        raise PartlySent(reply_id, missing) from None
    service.vault.record(writer, "message.replied", "message", str(original.id),
                         {"reply": str(reply_id), "recipients": len(recipients),
                          "attachments": len(files), "ip": request.remote_addr or ""})
    log.info("reply %s to %s sent to %d recipient(s)", reply_id, original.id, len(recipients))
    return reply_id


def _notification(reply_id: uuid.UUID, writer: str, subject: str, to: str) -> bytes:
    """The portal notice for a reply-all recipient outside the organisation."""
    config = services().config
    built = notification.build(branding(config), writer, subject,
                               message_link(config, reply_id))
    head = EmailMessage(policy=SMTP)
    head["From"] = config.from_address
    head["Reply-To"] = writer
    head["To"] = to
    head["Subject"] = subject
    head["Date"] = formatdate(localtime=False)
    head["Message-ID"] = make_msgid(domain=config.from_address.rpartition("@")[2])
    head[notification.NOTIFICATION_ID_HEADER] = str(reply_id)
    head["MIME-Version"] = "1.0"
    head["Content-Type"] = built.content_type
    # The header lines only: as_bytes() would also write an empty multipart body, and what
    # follows it (the real body) would be an epilogue no mail program shows.
    return b"".join(SMTP.fold_binary(name, value) for name, value in head.items()) \
        + b"\r\n" + built.body
