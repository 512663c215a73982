"""What the milter changes on a protected message, worked out as a value before anything is
applied: header deletions and changes, added headers, a new body, recipients to take off the
transaction, and the message to re-inject for them. Pure."""

from __future__ import annotations

from dataclasses import dataclass, field

from sealgate.crypto.marks import MARK_HEADER, make_mark
from sealgate.mail.message import InboundMessage, header_block
from sealgate.mail.notification import NOTIFICATION_ID_HEADER, Notification
from sealgate.mail.verdict import Verdict, headers_to_remove, kept_headers


@dataclass(frozen=True)
class Reinjection:
    mail_from: str
    recipients: tuple[str, ...]
    data: bytes


@dataclass(frozen=True)
class Changes:
    delete_headers: list[tuple[str, int]] = field(default_factory=list)  # highest index first
    set_headers: list[tuple[str, str]] = field(default_factory=list)  # first occurrence
    add_headers: list[tuple[str, str]] = field(default_factory=list)
    body: bytes | None = None
    remove_recipients: tuple[str, ...] = ()
    reinject: Reinjection | None = None


@dataclass(frozen=True)
class Deposited:
    message_id: str
    notification: Notification


def _notification_headers(message: InboundMessage, deposited: Deposited,
                          mark_secret: str) -> list[tuple[str, str]]:
    return [
        ("MIME-Version", "1.0"),
        ("Content-Type", deposited.notification.content_type),
        (NOTIFICATION_ID_HEADER, deposited.message_id),
        (MARK_HEADER, make_mark(mark_secret, message.header("Message-ID") or "",
                                deposited.notification.body)),
    ]


def plan(message: InboundMessage, verdict: Verdict, deposited: Deposited | None,
         mark_secret: str) -> Changes:
    """Internal recipients keep the original (minus the tag header and keyword); external
    ones get the notification: on this transaction when they are all the recipients, else
    as a re-injected copy while they are removed from this one."""
    subject = [("Subject", verdict.subject)] if verdict.subject is not None else []
    if not verdict.external:
        return Changes(delete_headers=_descending(headers_to_remove(message, False)),
                       set_headers=subject)
    assert deposited is not None, "external recipients need a deposit"
    added = _notification_headers(message, deposited, mark_secret)
    if not verdict.internal:
        return Changes(delete_headers=_descending(headers_to_remove(message, True)),
                       set_headers=subject, add_headers=added,
                       body=deposited.notification.body)
    data = header_block(kept_headers(message, verdict.subject) + added) \
        + deposited.notification.body
    return Changes(delete_headers=_descending(headers_to_remove(message, False)),
                   set_headers=subject, remove_recipients=verdict.external,
                   reinject=Reinjection(message.mail_from, verdict.external, data))


def _descending(removals: list[tuple[str, int]]) -> list[tuple[str, int]]:
    """Later occurrences first, so deleting one never renumbers another still to go."""
    return sorted(removals, key=lambda item: -item[1])
