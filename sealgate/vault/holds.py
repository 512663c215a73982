"""Messages a DLP policy holds until their sender decides: send securely, send as is, or
discard. The raw message is sealed like any deposit, as a secure message in the state HELD
(never readable, and with no recipient rows, so no recipient's message list shows it); the
hold beside it keeps what the sender is shown: recipients, subject, policies and the masked
report, never a found value.

A decision is carried out in three steps so that nothing is lost and nothing goes twice:
`claim` (one decision at a time; a claim left behind by a crash lapses after CLAIM), the
caller's hand-over of the mail, then `decide`, which records the decision, deletes the held
content and audits it in one transaction. A failed hand-over is `release`d: the hold is
undecided again and its content untouched. Time is passed in, like vault/accounts.py."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, NoReturn

from sqlalchemy import insert, select
from sqlalchemy.orm import Session

from sealgate.errors import SealgateError, VaultError
from sealgate.vault.models import Hold, HoldDecision, MessageState, PartKind, utcnow
from sealgate.vault.vault import NewMessage, NewPart, Vault

CLAIM = timedelta(minutes=5)  # longer than any hand-over to the MTA takes


class HoldUnavailable(SealgateError):
    """The hold cannot be decided now; `hold` says why (a snapshot of the row)."""

    def __init__(self, hold: Hold, reason: str) -> None:
        super().__init__(reason)
        self.hold = hold


class AlreadyDecided(HoldUnavailable):
    """A decision was made before: `hold.decision` and `hold.decided_at` say which and when."""


class HoldExpired(HoldUnavailable):
    """Past its expiry: it can only be discarded (`expire`)."""


class HoldBusy(HoldUnavailable):
    """Another decision on it is being carried out right now."""


@dataclass(frozen=True)
class NewHold:
    sender: str  # the envelope sender, lower-cased
    recipients: Sequence[str]
    subject: str
    raw: bytes  # the whole message, as the MTA had it
    expires_at: datetime
    policies: Sequence[str] = ()
    report: dict[str, Any] = field(default_factory=dict)  # masked values only
    allow_send_as_is: bool = False
    header_message_id: str | None = None
    created_at: datetime = field(default_factory=utcnow)


def create(vault: Vault, new: NewHold, actor: str) -> uuid.UUID:
    """Seal the message and record the hold in one transaction: durable when this returns."""
    hold_id = uuid.uuid4()
    message = NewMessage(
        sender=new.sender, subject=new.subject, recipients=[], state=MessageState.HELD,
        parts=[NewPart(PartKind.ORIGINAL, new.raw, "message/rfc822", "message.eml")],
        header_message_id=new.header_message_id, expires_at=new.expires_at)
    types = sorted({str(f.get("type", "")) for f in new.report.get("findings", [])} - {""})

    def add_hold(session: Session) -> None:
        session.connection().execute(insert(Hold), [{
            "id": hold_id, "message_id": message.id, "sender": new.sender,
            "recipients": list(new.recipients), "subject": new.subject,
            "policies": list(new.policies), "findings": new.report,
            "allow_send_as_is": new.allow_send_as_is, "created_at": new.created_at,
            "expires_at": new.expires_at}])
        vault.record_in(session, actor, "hold.created", "hold", str(hold_id), {
            "message": str(message.id), "recipients": len(new.recipients),
            "policies": list(new.policies), "types": types,
            "allow_send_as_is": new.allow_send_as_is})

    vault.deposit_many([message], actor, along=add_hold)
    return hold_id


def find(vault: Vault, hold_id: uuid.UUID) -> Hold | None:
    with vault.database.session() as session:
        return session.get(Hold, hold_id)


def listed(vault: Vault, *, undecided: bool | None = None, sender: str | None = None,
           limit: int = 100) -> list[Hold]:
    """Holds, newest first: only undecided ones (True), only decided ones (False) or all."""
    query = select(Hold).order_by(Hold.created_at.desc(), Hold.id).limit(limit)
    if undecided is not None:
        query = query.where(Hold.decision.is_(None) if undecided else Hold.decision.is_not(None))
    if sender:
        query = query.where(Hold.sender == sender.strip().lower())
    with vault.database.session() as session:
        return list(session.scalars(query))


def original(vault: Vault, hold: Hold) -> bytes:
    """The held message as it was received. VaultError once the content is gone."""
    if hold.message_id is None:
        raise VaultError(f"hold {hold.id} no longer has its message")
    return vault.original(hold.message_id)


def is_expired(hold: Hold, now: datetime) -> bool:
    return now >= hold.expires_at


def claim(vault: Vault, hold_id: uuid.UUID, now: datetime) -> Hold:
    """Take the hold for one decision until now + CLAIM. Raises AlreadyDecided, HoldExpired,
    HoldBusy, or VaultError when there is no such hold."""
    with vault.database.writing() as session:
        hold = _locked(session, hold_id)
        if hold.decision is not None:
            _refuse(session, AlreadyDecided(hold, f"already decided: {hold.decision}"))
        if is_expired(hold, now):
            _refuse(session, HoldExpired(hold, "the hold has expired"))
        if hold.claimed_until is not None and hold.claimed_until > now:
            _refuse(session, HoldBusy(hold, "a decision on it is being carried out"))
        hold.claimed_until = now + CLAIM
    return hold


def release(vault: Vault, hold_id: uuid.UUID) -> None:
    """Give up a claim: the decision could not be carried out; the hold is as it was."""
    with vault.database.writing() as session:
        hold = _locked(session, hold_id)
        hold.claimed_until = None


def decide(vault: Vault, hold_id: uuid.UUID, decision: HoldDecision, actor: str,
           now: datetime, details: dict[str, Any] | None = None) -> Hold:
    """Record the decision, delete the held content and audit both, in one transaction.
    Call it once the decision is carried out (the mail is with the MTA). Raises
    AlreadyDecided when another decision came first."""
    with vault.database.writing() as session:
        hold = _locked(session, hold_id)
        if hold.decision is not None:
            _refuse(session, AlreadyDecided(hold, f"already decided: {hold.decision}"))
        hold.decision, hold.decided_at, hold.claimed_until = decision, now, None
        unused: set[str] = set()
        message_id = hold.message_id
        if message_id is not None:
            hold.message_id = None
            unused = vault.delete_in(session, message_id, actor, f"hold {decision}")
        vault.record_in(session, actor, f"hold.{decision}", "hold", str(hold_id),
                        details or {})
    vault.drop_blobs(unused)
    return hold


def expire(vault: Vault, hold_id: uuid.UUID, now: datetime) -> Hold:
    """Discard an expired hold's content; the sender is recorded as the actor."""
    hold = find(vault, hold_id)
    if hold is None:
        raise VaultError(f"no hold {hold_id}")
    return decide(vault, hold_id, HoldDecision.EXPIRED, hold.sender, now,
                  {"expired_at": hold.expires_at.isoformat()})


def expire_due(vault: Vault, now: datetime, limit: int = 100) -> int:
    """Discard up to `limit` undecided holds past their expiry; how many were."""
    with vault.database.session() as session:
        due = list(session.scalars(select(Hold.id).where(
            Hold.decision.is_(None), Hold.expires_at <= now)
            .order_by(Hold.expires_at).limit(limit)))
    expired = 0
    for hold_id in due:
        try:
            expire(vault, hold_id, now)
        except AlreadyDecided:  # decided meanwhile by its sender
            continue
        expired += 1
    return expired


def _locked(session: Session, hold_id: uuid.UUID) -> Hold:
    # FOR UPDATE on PostgreSQL; SQLite's writer already holds the database's write lock.
    hold = session.scalars(select(Hold).where(Hold.id == hold_id).with_for_update()).first()
    if hold is None:
        raise VaultError(f"no hold {hold_id}")
    return hold


def _refuse(session: Session, refusal: HoldUnavailable) -> NoReturn:
    # Out of the session first: the rollback would expire it, and the caller reads it after.
    session.expunge(refusal.hold)
    raise refusal
