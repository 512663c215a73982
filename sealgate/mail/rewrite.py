"""What the milter changes on a protected message, worked out as a value before anything is
applied: header deletions and changes, added headers, a new body, recipients to take off the
transaction, and the message to re-inject for them. Also the copies of a held message its
sender releases (`secure_copies`, `marked_original`), built from the same pieces. Pure."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field

from sealgate.crypto.marks import MARK_HEADER, make_mark
from sealgate.mail.message import InboundMessage, header_block
from sealgate.mail.notification import NOTIFICATION_ID_HEADER, Notification
from sealgate.mail.triggers import TAG_HEADER
from sealgate.mail.verdict import Verdict, headers_to_remove, kept_headers


@dataclass(frozen=True)
class Reinjection:
    mail_from: str
    recipients: tuple[str, ...]
    data: bytes
    envelope_id: str = ""  # asks the MTA for delivery reports (verified-TLS copies)


@dataclass(frozen=True)
class Changes:
    delete_headers: list[tuple[str, int]] = field(default_factory=list)  # highest index first
    set_headers: list[tuple[str, str]] = field(default_factory=list)  # first occurrence
    add_headers: list[tuple[str, str]] = field(default_factory=list)
    body: bytes | None = None
    remove_recipients: tuple[str, ...] = ()
    reinjections: tuple[Reinjection, ...] = ()
    # Every recipient got a re-injected copy: this transaction delivers nothing (the MTA's
    # queue holds the copies, so dropping it loses nothing).
    discard: bool = False


@dataclass(frozen=True)
class EncryptedCopy:
    """A whole message for recipients who get it their own way: encrypted to their own key
    (S/MIME, PGP), or as is over verified TLS, whose delivery reports go to `mail_from`
    (Sealgate's return address) naming `envelope_id`."""

    method: str
    recipients: tuple[str, ...]
    data: bytes
    mail_from: str = ""
    envelope_id: str = ""


@dataclass(frozen=True)
class Deposited:
    """What the server made of a protected message: the portal deposit and its notification
    (for `portal` recipients; None: all external ones), and the encrypted copies."""

    message_id: str | None
    notification: Notification | None
    portal: tuple[str, ...] | None = None
    copies: tuple[EncryptedCopy, ...] = ()

    def portal_recipients(self, external: tuple[str, ...]) -> tuple[str, ...]:
        return external if self.portal is None else self.portal


def _notification_headers(message: InboundMessage, deposited: Deposited,
                          mark_secret: str) -> list[tuple[str, str]]:
    notification = _notification(deposited)
    assert deposited.message_id is not None
    return [
        ("MIME-Version", "1.0"),
        ("Content-Type", notification.content_type),
        (NOTIFICATION_ID_HEADER, deposited.message_id),
        (MARK_HEADER, make_mark(mark_secret, message.header("Message-ID") or "",
                                notification.body)),
    ]


def applied(message: InboundMessage, changes: Changes,
            added: Sequence[tuple[str, str]] = ()) -> bytes:
    """The message as the MTA will deliver it once the milter has made `changes` (and added
    `added` at the end of the header): what a signature over the result must cover. The
    milter's rules: a deletion names the n-th field of that name, a set changes the first
    one (or adds it), an addition goes last; lines end in CRLF as on the wire."""
    headers = list(message.headers)
    for name, index in changes.delete_headers:
        positions = [i for i, (key, _) in enumerate(headers) if key.lower() == name.lower()]
        if 0 < index <= len(positions):
            del headers[positions[index - 1]]
    for name, value in changes.set_headers:
        first = next((i for i, (key, _) in enumerate(headers)
                      if key.lower() == name.lower()), None)
        if first is None:
            headers.append((name, value))
        else:
            headers[first] = (headers[first][0], value)
    headers += [*added, *changes.add_headers]
    body = message.body if changes.body is None else changes.body
    return header_block(headers) + re.sub(rb"(?<!\r)\n", b"\r\n", body)


def plan(message: InboundMessage, verdict: Verdict, deposited: Deposited | None,
         mark_secret: str) -> Changes:
    """Internal recipients keep the original (minus the tag header and keyword). Recipients
    with an encrypted copy get it re-injected. The rest of the external ones get the
    notification: on this transaction when nobody else stays on it, else re-injected. When
    everyone got a copy, the transaction itself is discarded."""
    subject = [("Subject", verdict.subject)] if verdict.subject is not None else []
    if not verdict.external:
        return Changes(delete_headers=_descending(headers_to_remove(message, False)),
                       set_headers=subject)
    assert deposited is not None, "external recipients need a deposit"
    encrypted = tuple(Reinjection(copy.mail_from or message.mail_from, copy.recipients,
                                  marked_copy(copy.data, mark_secret), copy.envelope_id)
                      for copy in deposited.copies)
    moved = tuple(r for copy in deposited.copies for r in copy.recipients)
    portal = deposited.portal_recipients(verdict.external)
    if not verdict.internal and portal:
        return Changes(delete_headers=_descending(headers_to_remove(message, True)),
                       set_headers=subject,
                       add_headers=_notification_headers(message, deposited, mark_secret),
                       body=_notification(deposited).body,
                       remove_recipients=moved, reinjections=encrypted)
    notified = (Reinjection(message.mail_from, portal,
                            notification_copy(message, verdict.subject, deposited,
                                              mark_secret)),) if portal else ()
    return Changes(delete_headers=_descending(headers_to_remove(message, False)),
                   set_headers=subject, remove_recipients=(*portal, *moved),
                   reinjections=(*notified, *encrypted), discard=not verdict.internal)


def _notification(deposited: Deposited) -> Notification:
    assert deposited.notification is not None, "portal recipients need a notification"
    return deposited.notification


def marked_copy(data: bytes, mark_secret: str) -> bytes:
    """A copy Sealgate made, with the processed mark: if it meets the milter again, it
    passes."""
    copy = inbound(data, "", ())
    mark = make_mark(mark_secret, copy.header("Message-ID") or "", copy.body)
    return header_block([*copy.headers, (MARK_HEADER, mark)]) + copy.body


def notification_copy(message: InboundMessage, subject: str | None, deposited: Deposited,
                      mark_secret: str) -> bytes:
    """The whole message an external recipient gets instead of the content: the sender's
    kept headers (with the new subject, if it changed), the notification's, and its body."""
    return header_block(kept_headers(message, subject)
                        + _notification_headers(message, deposited, mark_secret)) \
        + _notification(deposited).body


def marked_original(message: InboundMessage, mark_secret: str) -> bytes:
    """The original as its sender wrote it (without the add-in's tag header), carrying the
    processed mark so that the milter lets it pass if it sees it again. The mark binds the
    Message-ID: give a message that has one (InboundMessage.with_message_id)."""
    dropped = {TAG_HEADER.lower(), MARK_HEADER.lower()}  # a mark already there is not ours
    headers = [(name, value) for name, value in message.headers if name.lower() not in dropped]
    headers.append((MARK_HEADER, make_mark(mark_secret, message.header("Message-ID") or "",
                                           message.body)))
    return header_block(headers) + message.body


def secure_copies(message: InboundMessage, internal: tuple[str, ...],
                  external: tuple[str, ...], deposited: Deposited | None, mark_secret: str,
                  subject: str | None = None) -> list[Reinjection]:
    """A held message its sender chose to send securely, as the milter would have sent it:
    external recipients get the notification of the deposit, internal ones the original
    with the processed mark. One copy per group that has recipients."""
    copies = []
    if external:
        assert deposited is not None and deposited.notification is not None, \
            "external recipients need a deposit"
        copies.append(Reinjection(message.mail_from, external,
                                  notification_copy(message, subject, deposited, mark_secret)))
    if internal:
        copies.append(Reinjection(message.mail_from, internal,
                                  marked_original(message, mark_secret)))
    return copies


def inbound(raw: bytes, mail_from: str, recipients: tuple[str, ...]) -> InboundMessage:
    """A whole RFC 5322 message back into the MTA's view of it: header fields in order (a
    folded field keeps its folds) and the body bytes as they are. `InboundMessage.raw()`
    gives the same bytes back for a message it made."""
    end, separator = _header_end(raw)
    head, body = raw[:end].decode("utf-8", "surrogateescape"), raw[end + separator:]
    headers: list[tuple[str, str]] = []
    for line in head.replace("\r\n", "\n").split("\n"):
        if line[:1] in (" ", "\t") and headers:
            name, value = headers[-1]
            headers[-1] = (name, f"{value}\r\n{line}")
        elif ":" in line:
            name, _, value = line.partition(":")
            headers.append((name.strip(), value.lstrip(" \t")))
        # anything else (an mbox "From " line, stray text) is not a header field: dropped
    return InboundMessage(mail_from, recipients, tuple(headers), body)


def _header_end(raw: bytes) -> tuple[int, int]:
    """Where the header section ends and how long the blank line after it is (0 when there
    is none: the message is all header)."""
    if raw.startswith((b"\r\n", b"\n")):
        return 0, 2 if raw.startswith(b"\r\n") else 1
    crlf, lf = raw.find(b"\r\n\r\n"), raw.find(b"\n\n")
    if crlf >= 0 and (lf < 0 or crlf < lf):
        return crlf, 4
    if lf >= 0:
        return lf, 2
    return len(raw), 0


def _descending(removals: list[tuple[str, int]]) -> list[tuple[str, int]]:
    """Later occurrences first, so deleting one never renumbers another still to go."""
    return sorted(removals, key=lambda item: -item[1])
