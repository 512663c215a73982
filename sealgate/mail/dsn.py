"""Delivery status notifications (RFC 3464) for the copies Sealgate sends over verified TLS:
which envelope they report on (ENVID) and, per recipient, what happened. Pure; hostile input
gives None or fewer recipients, never an exception.

The MTA's temporary failures on the verified-TLS transports come back as permanent ones with
`mta.RETRY_MARK` in the text (see sealgate.routing.mta): those are `Outcome.RETRY`."""

from __future__ import annotations

import email
import email.policy
import enum
from dataclasses import dataclass
from email.message import Message

from sealgate.routing.mta import RETRY_MARK

MAX_DSN_BYTES = 256 * 1024  # a report, with headers only: anything larger is not ours
MAX_RECIPIENTS = 1000
MAX_FIELD = 500


class Outcome(enum.StrEnum):
    DELIVERED = "delivered"  # delivered, relayed (to an MTA without DSN) or expanded
    RETRY = "retry"          # failed for now: try again, then the portal
    FAILED = "failed"        # refused for good (no such mailbox): the sender is told
    DELAYED = "delayed"      # still trying: nothing to do


@dataclass(frozen=True)
class RecipientStatus:
    address: str
    outcome: Outcome
    status: str       # the enhanced status code, e.g. 5.7.5
    diagnostic: str   # the server's reply or the MTA's reason
    remote_mta: str


@dataclass(frozen=True)
class Report:
    envelope_id: str
    recipients: tuple[RecipientStatus, ...]


def parse(raw: bytes) -> Report | None:
    """The report in a multipart/report message, or None when this is not a DSN with an
    envelope id (anything else mailed to the return address)."""
    if len(raw) > MAX_DSN_BYTES:
        return None
    try:
        message = email.message_from_bytes(raw, policy=email.policy.compat32)
        return _report(message)
    except (ValueError, TypeError, LookupError, IndexError, AttributeError):
        return None


def _report(message: Message) -> Report | None:
    if message.get_content_type() != "multipart/report":
        return None
    parts = message.get_payload()
    if not isinstance(parts, list):
        return None
    for part in parts:
        if isinstance(part, Message) and part.get_content_type() == "message/delivery-status":
            return _delivery_status(part)
    return None


def _delivery_status(part: Message) -> Report | None:
    # email parses message/delivery-status into one Message per field group: the first for
    # the message, then one per recipient.
    groups = part.get_payload()
    if not isinstance(groups, list) or not groups or not isinstance(groups[0], Message):
        return None
    envelope_id = _field(groups[0], "Original-Envelope-Id")
    if not envelope_id:
        return None
    recipients = []
    for group in groups[1:MAX_RECIPIENTS + 1]:
        if not isinstance(group, Message):
            continue
        address = _address(_field(group, "Original-Recipient")) \
            or _address(_field(group, "Final-Recipient"))
        action = _field(group, "Action").lower()
        if not address or not action:
            continue
        status = _field(group, "Status")
        diagnostic = _field(group, "Diagnostic-Code").partition(";")[2].strip()
        recipients.append(RecipientStatus(
            address, _outcome(action, status, diagnostic), status, diagnostic,
            _field(group, "Remote-MTA").partition(";")[2].strip()))
    return Report(envelope_id, tuple(recipients))


def _outcome(action: str, status: str, diagnostic: str) -> Outcome:
    if action in ("delivered", "relayed", "expanded"):
        return Outcome.DELIVERED
    if action == "delayed":
        return Outcome.DELAYED
    if status.startswith("4") or RETRY_MARK in diagnostic:
        return Outcome.RETRY
    return Outcome.FAILED


def _field(group: Message, name: str) -> str:
    value = group.get(name)
    if value is None:
        return ""
    return " ".join(str(value).split())[:MAX_FIELD]


def _address(value: str) -> str:
    """`rfc822; someone@example.com` -> the address, lower-case."""
    kind, _, address = value.partition(";")
    if kind.strip().lower() != "rfc822":
        return ""
    address = address.strip().strip("<>").lower()
    return address if "@" in address and len(address) <= 320 else ""
