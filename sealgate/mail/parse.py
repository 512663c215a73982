"""Taking a message apart for the portal: text and HTML bodies, attachments, inline images.
Pure. A structure that cannot be read faithfully is a MimeError, with a reason for the sender."""

from __future__ import annotations

from dataclasses import dataclass, field
from email import errors, policy
from email.message import EmailMessage, Message
from email.parser import BytesParser
from email.utils import parseaddr

MAX_DEPTH = 25
MAX_PARTS = 1000

_BROKEN = (errors.StartBoundaryNotFoundDefect, errors.MultipartInvariantViolationDefect)


class MimeError(ValueError):
    """The message's MIME structure cannot be read; the message says what is wrong."""


@dataclass(frozen=True)
class Attachment:
    filename: str
    content_type: str
    data: bytes
    content_id: str | None = None
    inline: bool = False


@dataclass(frozen=True)
class ParsedMessage:
    subject: str
    sender_name: str
    sender_address: str
    message_id: str | None
    text: str | None
    html: str | None
    attachments: list[Attachment] = field(default_factory=list)


def parse(raw: bytes) -> ParsedMessage:
    try:
        message = BytesParser(policy=policy.default).parsebytes(raw)
        assert isinstance(message, EmailMessage)
        leaves = list(_leaves(message, 0))
    except RecursionError:
        raise MimeError("MIME parts are nested too deeply to read") from None
    if len(leaves) > MAX_PARTS:
        raise MimeError(f"the message has more than {MAX_PARTS} MIME parts")
    text_part = message.get_body(preferencelist=("plain",))
    html_part = message.get_body(preferencelist=("html",))
    attachments: list[Attachment] = []
    for leaf in leaves:
        if leaf is text_part or leaf is html_part:
            continue
        data = leaf.get_payload(decode=True)
        if not isinstance(data, bytes):
            continue
        content_id = (leaf.get("Content-ID") or "").strip().strip("<>") or None
        attachments.append(Attachment(
            filename=leaf.get_filename() or f"attachment-{len(attachments) + 1}",
            content_type=leaf.get_content_type(), data=data, content_id=content_id,
            inline=leaf.get_content_disposition() == "inline" and content_id is not None))
    name, address = parseaddr(str(message.get("From", "")))
    return ParsedMessage(
        subject=str(message.get("Subject", "")), sender_name=name or address,
        sender_address=address, message_id=message.get("Message-ID"),
        text=_text(text_part), html=_text(html_part), attachments=attachments)


def _leaves(part: Message, depth: int) -> list[Message]:
    if depth > MAX_DEPTH:
        raise MimeError(f"MIME parts are nested more than {MAX_DEPTH} deep")
    if any(isinstance(defect, _BROKEN) for defect in part.defects):
        raise MimeError("a multipart section has no valid boundary, so its parts cannot be "
                        "told apart")
    if not part.is_multipart():
        return [part]
    found: list[Message] = []
    for child in part.get_payload():
        if isinstance(child, Message):
            found += _leaves(child, depth + 1)
    return found


def _text(part: Message | None) -> str | None:
    if part is None:
        return None
    try:
        content = part.get_content()  # type: ignore[attr-defined]
        return content if isinstance(content, str) else None
    except (LookupError, UnicodeError, ValueError):
        data = part.get_payload(decode=True)
        return data.decode("utf-8", "replace") if isinstance(data, bytes) else None
