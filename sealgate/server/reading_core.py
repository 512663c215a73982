"""Reading a stored message, whoever asks: the portal (a recipient's browser session) and the
add-in API (an Outlook user's token). The caller decides who may read; this module does the
reading the same way for both: the sanitised body, the served type and disposition of a
part, the record of an opening or a download, the read receipt, and retraction."""

from __future__ import annotations

import logging
import re
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote

from flask import Response, stream_with_context
from sqlalchemy import update
from sqlalchemy.orm import Session

from sealgate.config import Config
from sealgate.mail import notices
from sealgate.mail.sanitise import SafeHtml, plain_text_to_html, sanitise
from sealgate.metrics import metrics
from sealgate.server.branding import branding
from sealgate.server.links import tracking_link
from sealgate.server.outbox import send_after_response
from sealgate.vault.models import MessageState, Part, PartKind, Recipient, SecureMessage
from sealgate.vault.vault import Vault

log = logging.getLogger(__name__)
SAFE_TYPE = re.compile(r"^[a-z0-9][a-z0-9!#$&^_.+-]*/[a-z0-9][a-z0-9!#$&^_.+-]*$")
INLINE_IMAGES = frozenset({"image/png", "image/jpeg", "image/gif", "image/webp"})
DOWNLOADABLE = (PartKind.ATTACHMENT, PartKind.INLINE)


def now() -> datetime:
    return datetime.now(UTC)


def served_type(declared: str) -> str:
    """The declared type when it is a plain `type/subtype`, else an opaque download."""
    kind = declared.split(";")[0].strip().lower()
    return kind if SAFE_TYPE.match(kind) else "application/octet-stream"


def disposition(kind: str, filename: str) -> str:
    """Both forms: a plain ASCII fallback and RFC 6266's UTF-8 `filename*`."""
    cleaned = "".join(ch for ch in filename if ch.isprintable() and ch not in "\\/\"") \
        or "attachment"
    fallback = cleaned.encode("ascii", "replace").decode("ascii").replace("?", "_")
    return f"{kind}; filename=\"{fallback}\"; filename*=UTF-8''{quote(cleaned, safe='')}"


def shown_inline(part: Part) -> bool:
    """An image the body shows: served inline, and not counted as a download."""
    return part.kind is PartKind.INLINE and served_type(part.content_type) in INLINE_IMAGES


def message_body(vault: Vault, message_id: uuid.UUID, parts: list[Part],
                 part_url: Callable[[Part], str], allow_remote: bool) -> SafeHtml:
    """The HTML body sanitised, with `cid:` images pointing at `part_url(part)`; a text-only
    message as escaped HTML."""
    by_cid = {p.content_id.strip("<>"): p for p in parts
              if p.kind is PartKind.INLINE and p.content_id}

    def cid_url(content_id: str) -> str | None:
        found = by_cid.get(content_id)
        return part_url(found) if found is not None else None

    html = next((p for p in parts if p.kind is PartKind.HTML), None)
    if html is not None:
        result = sanitise(vault.read_part(html).decode("utf-8", "replace"), part_url=cid_url,
                          allow_remote=allow_remote)
        if result.removed:
            log.info("message %s: neutralised in the HTML body: %s", message_id,
                     ", ".join(result.removed))
        return result
    return SafeHtml(plain_text_to_html(message_text(vault, parts)), 0, ())


def message_text(vault: Vault, parts: list[Part]) -> str:
    text = next((p for p in parts if p.kind is PartKind.TEXT), None)
    return vault.read_part(text).decode("utf-8", "replace") if text is not None else ""


def record_open(vault: Vault, recipient_id: int, actor: str, message_id: uuid.UUID,
                details: dict[str, Any], counted: Part | None = None,
                blocked: int = 0) -> datetime | None:
    """First and last opening, in the audit trail as `message.viewed` (and the body's remote
    images, when they were just counted); the time when this was the first opening."""
    moment = now()
    with vault.database.writing() as db:
        recipient = db.get(Recipient, recipient_id)
        if recipient is None:
            return None
        first = recipient.first_opened_at is None
        if first:
            recipient.first_opened_at = moment
        recipient.last_opened_at = moment
        if counted is not None:
            db.execute(update(Part).where(Part.id == counted.id).values(remote_images=blocked))
        vault.record_in(db, actor, "message.viewed", "message", str(message_id),
                        {**details, "first": first})
    metrics().portal_opens.inc()
    return moment if first else None


def record_download(vault: Vault, recipient_id: int | None, actor: str, part: Part,
                    details: dict[str, Any]) -> None:
    """`message.downloaded` in the audit trail; a recipient's download is also counted for
    the sender's tracking (the sender's own is not)."""
    with vault.database.writing() as db:
        recipient = db.get(Recipient, recipient_id) if recipient_id is not None else None
        if recipient is not None:
            recipient.downloads += 1
        vault.record_in(db, actor, "message.downloaded", "message", str(part.message_id),
                        {"part": str(part.id), "filename": part.filename or "", **details})


def part_response(vault: Vault, part: Part) -> Response:
    """The part's plaintext streamed as it is opened, in a sandbox: a download never runs as a
    page of ours."""
    inline = shown_inline(part)
    response = Response(stream_with_context(vault.stream_part(part)),
                        mimetype=served_type(part.content_type))
    response.headers["Content-Length"] = str(part.size)
    response.headers["Content-Disposition"] = disposition(
        "inline" if inline else "attachment", part.filename or "attachment")
    response.headers["Content-Security-Policy"] = (
        "default-src 'none'; sandbox; frame-ancestors 'none'")
    response.headers["Cache-Control"] = "private, no-store"
    return response


def send_read_receipt(config: Config, message: SecureMessage, reader: str,
                      opened_at: datetime) -> None:
    """To the sender, after the reader has the page (call it from `call_on_close`)."""
    send_after_response(config, lambda: notices.read_receipt(
        branding(config), from_address=config.from_address, to=message.sender,
        subject=message.subject, reader=reader, opened_at=opened_at,
        tracking_link=tracking_link(config, message.id)), f"read receipt for {message.id}")


def retract(vault: Vault, db: Session, message: SecureMessage, actor: str,
            details: dict[str, Any]) -> bool:
    """Withdraw an active message in the caller's transaction; False when it already was
    not active (retracted or expired), which is not an error."""
    if message.state is not MessageState.ACTIVE:
        return False
    message.state = MessageState.RETRACTED
    message.state_changed_at = now()
    vault.record_in(db, actor, "message.retracted", "message", str(message.id), details)
    return True
