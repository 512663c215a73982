"""Turning a triggered message into a sealed deposit and the notification that replaces it."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sealgate.config import Config
from sealgate.mail import notification
from sealgate.mail.parse import parse
from sealgate.server.branding import branding
from sealgate.server.links import message_link
from sealgate.vault.models import DeliveryMethod, PartKind
from sealgate.vault.vault import NewMessage, NewPart, NewRecipient, Vault


@dataclass(frozen=True)
class Deposit:
    message_id: uuid.UUID
    sender: str
    subject: str
    link: str
    notification: notification.Notification


def default_expiry(config: Config) -> datetime | None:
    days = config.portal.expiry_days
    return datetime.now(UTC) + timedelta(days=days) if days else None


def deposit_message(vault: Vault, config: Config, raw: bytes, mail_from: str,
                    recipients: Sequence[str], subject: str,
                    audit_details: Mapping[str, Any] | None = None,
                    tls_recipients: Sequence[str] = (),
                    along: Callable[[uuid.UUID], Sequence[Any]] = lambda _: ()) -> Deposit:
    """Seal the original and its readable parts; durable when this returns. `recipients`
    get the portal; `tls_recipients` get the message over verified TLS, with the portal as
    the fallback. `along(message_id)` gives more rows to write in the same transaction.
    Raises MimeError when the structure cannot be read faithfully."""
    parsed = parse(raw)
    parts = [NewPart(PartKind.ORIGINAL, raw, "message/rfc822", "message.eml")]
    if parsed.text is not None:
        parts.append(NewPart(PartKind.TEXT, parsed.text.encode("utf-8"), "text/plain"))
    if parsed.html is not None:
        parts.append(NewPart(PartKind.HTML, parsed.html.encode("utf-8"), "text/html"))
    parts += [NewPart(PartKind.INLINE if a.inline else PartKind.ATTACHMENT, a.data,
                      a.content_type, a.filename, a.content_id) for a in parsed.attachments]
    sender_name = parsed.sender_name or mail_from
    # The envelope sender the MTA accepted, not the From header anyone can write: the sender
    # may follow and withdraw the message, and replies go back to this mailbox.
    # Lower-cased like the recipients, so every identity comparison is a plain equality.
    sender = (mail_from or parsed.sender_address or "").lower()
    new = NewMessage(
        sender=sender, sender_name=sender_name, subject=subject,
        recipients=[*(NewRecipient(r.lower(), DeliveryMethod.PORTAL) for r in recipients),
                    *(NewRecipient(r.lower(), DeliveryMethod.TLS) for r in tls_recipients)],
        parts=parts, header_message_id=parsed.message_id,
        expires_at=default_expiry(config), audit_details=audit_details or {})
    (message_id,) = vault.deposit_many(
        [new], mail_from, along=lambda session: session.add_all(along(new.id)))
    link = message_link(config, message_id)
    return Deposit(message_id, sender, subject, link,
                   notification.build(branding(config), sender_name, subject, link))
