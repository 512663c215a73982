"""RFC 9788 header protection, shared by S/MIME and PGP/MIME: take a whole message apart
into its header fields (as written) and body, refuse what cannot be read faithfully, and
build the two halves of a protected message — the outer fields that stay visible and the
Cryptographic Payload that gets encrypted. Pure: bytes in, bytes out.

Simplifications, as RFC 9788 allows: the protected fields are the user-facing ones Sealgate
keeps (`PROTECTED_FIELDS`); the header confidentiality policy is "no confidentiality" unless
the Subject is to be hidden (then `OBSCURED_SUBJECT`, or the caller's placeholder); the
payload's root carries `hp="cipher"` and one `HP-Outer` field per field left outside; no
Legacy Display Element. Everything else of the outer header (X-*, Thread-Topic, DKIM
signatures over the old body, the old Content-* fields) could leak content, and is dropped."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from email import errors as email_errors
from email import policy as email_policy
from email.header import Header
from email.message import Message
from email.parser import BytesParser

# The fields the encrypted part carries, and the only non-MIME fields the outer message keeps.
PROTECTED_FIELDS = ("from", "to", "cc", "subject", "date", "message-id", "in-reply-to",
                    "references", "reply-to")
OBSCURED_SUBJECT = "[...]"  # RFC 9788 §2.2: the neutral value of an obscured Subject
MAX_MIME_DEPTH = 25

_FIELD_NAME = re.compile(rb"([\x21-\x39\x3b-\x7e]+)[ \t]*:")
_NO_BOUNDARY = (email_errors.NoBoundaryInMultipartDefect,
                email_errors.StartBoundaryNotFoundDefect,
                email_errors.MultipartInvariantViolationDefect)
_BROKEN = (email_errors.MissingHeaderBodySeparatorDefect,
           email_errors.FirstHeaderLineIsContinuationDefect)


class UnreadableMessage(ValueError):
    """The message cannot be protected as it is; the text says why."""


@dataclass(frozen=True)
class Field:
    key: str  # the name, lower-case
    raw: bytes  # the whole field as written: "Name: value" with its folding, ending CRLF


def split(message: bytes) -> tuple[list[Field], bytes]:
    """The header fields as written, and the body (everything after the blank line). A
    message with bare LF line ends throughout (a file, not mail on the wire) is read as CRLF;
    bare CR, LF or NUL inside a header line is refused (it could smuggle in a field)."""
    if not isinstance(message, bytes | bytearray | memoryview):
        raise UnreadableMessage("the message is not bytes")
    raw = bytes(message)
    if not raw.strip():
        raise UnreadableMessage("the message is empty")
    if b"\r\n" not in raw:
        raw = raw.replace(b"\n", b"\r\n")
    if raw.startswith(b"\r\n"):
        raise UnreadableMessage("the message has no header section")
    head, separator, body = raw.partition(b"\r\n\r\n")
    if not separator:
        head, body = raw.removesuffix(b"\r\n"), b""
    fields: list[Field] = []
    for number, line in enumerate(head.split(b"\r\n"), start=1):
        if b"\r" in line or b"\n" in line or b"\0" in line:
            raise UnreadableMessage(f"line {number} of the header section holds a bare CR, "
                                    "LF or NUL")
        if line[:1] in (b" ", b"\t"):
            if not fields:
                raise UnreadableMessage("the message starts with a continuation line, not a "
                                        "header field")
            fields[-1] = Field(fields[-1].key, fields[-1].raw + line + b"\r\n")
            continue
        match = _FIELD_NAME.match(line)
        if match is None:
            raise UnreadableMessage(f"line {number} of the header section is not a header "
                                    "field")
        fields.append(Field(match.group(1).decode("ascii").lower(), line + b"\r\n"))
    keys = [field.key for field in fields]
    if "from" not in keys:
        raise UnreadableMessage("the message has no From header field")
    if keys.count("content-type") > 1:
        raise UnreadableMessage("the message has more than one Content-Type header")
    _check_mime(head + b"\r\n\r\n" + body)
    return fields, body


def _check_mime(message: bytes) -> None:
    try:
        parsed = BytesParser(policy=email_policy.compat32).parsebytes(message)
        _check_part(parsed, 0)
    except RecursionError:
        raise UnreadableMessage("the message's MIME parts are nested too deeply") from None


def _check_part(part: Message, depth: int) -> None:
    if depth > MAX_MIME_DEPTH:
        raise UnreadableMessage(f"the message's MIME parts are nested more than "
                                f"{MAX_MIME_DEPTH} deep")
    for defect in part.defects:
        if isinstance(defect, _NO_BOUNDARY):
            raise UnreadableMessage("the message is not well-formed MIME: a multipart "
                                    "section has no valid boundary")
        if isinstance(defect, _BROKEN):
            reason = (defect.__doc__ or type(defect).__name__).strip().rstrip(".")
            raise UnreadableMessage(f"the message is not well-formed MIME: "
                                    f"{reason[:1].lower()}{reason[1:]}")
    payload = part.get_payload()
    if isinstance(payload, list):
        for child in payload:
            if isinstance(child, Message):
                _check_part(child, depth + 1)


def outer_fields(fields: Sequence[Field], placeholder_subject: str | None) -> list[Field]:
    """The fields the outer message shows: the protected ones, the Subject replaced by the
    placeholder when one is given."""
    subject = _subject_field(placeholder_subject) if placeholder_subject is not None else None
    return [Field("subject", subject) if field.key == "subject" and subject is not None
            else field for field in fields if field.key in PROTECTED_FIELDS]


def payload(fields: Sequence[Field], body: bytes, outer: Sequence[Field]) -> bytes:
    """The Cryptographic Payload's root: the original body entity with its Content-* fields
    (the Content-Type marked `hp="cipher"`), the protected fields, and one HP-Outer field per
    field the outer message shows (RFC 9788 §2.2)."""
    content = [field for field in fields if field.key.startswith("content-")]
    types = [field for field in content if field.key == "content-type"]
    head = [_content_type_with_hp(_value(types[0]) if types else b"")]
    head += [field.raw for field in content if field.key != "content-type"]
    head += [field.raw for field in fields if field.key in PROTECTED_FIELDS]
    head += [b"HP-Outer: " + field.raw for field in outer]
    return b"".join(head) + b"\r\n" + body


def _value(field: Field) -> bytes:
    """The field's value as written, unfolded."""
    return re.sub(rb"\r\n(?=[ \t])", b"", field.raw.split(b":", 1)[1]).strip()


def _parameters(value: bytes) -> list[bytes]:
    """A Content-Type value split at the semicolons outside quoted strings, each piece kept
    byte for byte (RFC 2231 and 8-bit parameters included)."""
    pieces, current, quoted, escaped = [], bytearray(), False, False
    for byte in value:
        if escaped:
            escaped = False
        elif quoted and byte == ord("\\"):
            escaped = True
        elif byte == ord('"'):
            quoted = not quoted
        elif byte == ord(";") and not quoted:
            pieces.append(bytes(current).strip())
            current = bytearray()
            continue
        current.append(byte)
    pieces.append(bytes(current).strip())
    return [piece for piece in pieces if piece]


def _content_type_with_hp(value: bytes) -> bytes:
    media, *parameters = _parameters(value) or [b"text/plain", b"charset=us-ascii"]
    kept = [parameter for parameter in parameters
            if parameter.split(b"=", 1)[0].strip().lower() != b"hp"]
    return b"Content-Type: " + b";\r\n\t".join([media, *kept, b'hp="cipher"']) + b"\r\n"


def _subject_field(text: str) -> bytes:
    if any(char in text for char in "\r\n\0"):
        raise UnreadableMessage("the placeholder subject must be one line")
    if text.isascii():
        return b"Subject: " + text.encode("ascii") + b"\r\n"
    encoded = Header(text, "utf-8", header_name="Subject").encode(linesep="\r\n")
    return b"Subject: " + encoded.encode("ascii") + b"\r\n"
