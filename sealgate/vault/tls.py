"""Verified TLS in the vault: the probe verdicts every server process shares, and the life of
each recipient's verified-TLS delivery (sent, retried, delivered, refused, or handed to the
portal). Decisions about what a report means come in as values (sealgate.mail.dsn)."""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import and_, or_, select, update

from sealgate.vault.models import (
    DeliveryMethod,
    Recipient,
    TlsDelivery,
    TlsDeliveryState,
    TlsVerdict,
)
from sealgate.vault.vault import Vault

# A copy whose report never came (a lost notification) is tried again after this long.
REPORT_OVERDUE = timedelta(minutes=30)


@dataclass(frozen=True)
class StoredVerdict:
    domain: str
    qualifies: bool
    source: str | None
    evidence: tuple[str, ...]
    expires_at: datetime


@dataclass(frozen=True)
class Settled:
    """A delivery whose state a report or the sweeper changed."""

    message_id: uuid.UUID
    recipient: str
    state: TlsDeliveryState
    detail: str


@dataclass(frozen=True)
class Due:
    """Deliveries of one message the sweeper has claimed: to try again, or (past the
    deadline) to hand to the portal."""

    message_id: uuid.UUID
    recipients: dict[str, str]  # address -> level
    fall_back: bool
    ids: tuple[int, ...]


# --- verdicts ---------------------------------------------------------------------------------

def save_verdict(vault: Vault, verdict: StoredVerdict, now: datetime) -> None:
    with vault.database.writing() as session:
        row = session.get(TlsVerdict, verdict.domain)
        if row is None:
            row = TlsVerdict(domain=verdict.domain)
            session.add(row)
        row.qualifies = verdict.qualifies
        row.source = verdict.source
        row.evidence = list(verdict.evidence)
        row.checked_at = now
        row.expires_at = verdict.expires_at


def fresh_verdicts(vault: Vault, domains: Iterable[str], now: datetime,
                   ) -> dict[str, StoredVerdict]:
    wanted = sorted({domain.lower() for domain in domains})
    if not wanted:
        return {}
    with vault.database.session() as session:
        rows = session.scalars(select(TlsVerdict).where(
            TlsVerdict.domain.in_(wanted), TlsVerdict.expires_at > now))
        return {row.domain: StoredVerdict(row.domain, row.qualifies, row.source,
                                          tuple(row.evidence), row.expires_at) for row in rows}


# --- deliveries -------------------------------------------------------------------------------

def first_attempts(message_id: uuid.UUID, levels: Mapping[str, str], envelope_digest: str,
                   deadline: datetime, now: datetime) -> list[TlsDelivery]:
    """The first attempt of each recipient's verified-TLS delivery, just handed over: rows
    the caller writes in its own transaction (the deposit's: one durable write a message)."""
    return [TlsDelivery(message_id=message_id, recipient=address.lower(), level=level,
                        state=TlsDeliveryState.SENT, envelope_digest=envelope_digest,
                        attempts=1, deadline=deadline, updated_at=now,
                        detail="handed to the MTA")
            for address, level in levels.items()]


def apply_report(vault: Vault, envelope_digest: str,
                 outcomes: Sequence[tuple[str, TlsDeliveryState, str]], now: datetime,
                 retry_every: timedelta) -> list[Settled]:
    """A delivery report for the attempt with this envelope id: (address, new state, detail)
    per recipient. A retry is planned within the deadline (at the deadline: the portal).
    Deliveries already settled, or of another attempt, are left alone."""
    settled = []
    with vault.database.writing() as session:
        rows = {row.recipient: row for row in session.scalars(select(TlsDelivery).where(
            TlsDelivery.envelope_digest == envelope_digest,
            TlsDelivery.state == TlsDeliveryState.SENT))}
        for address, state, detail in outcomes:
            row = rows.get(address.lower())
            if row is None:
                continue
            row.state, row.detail, row.updated_at = state, detail[:500], now
            row.next_attempt_at = min(now + retry_every, row.deadline) \
                if state is TlsDeliveryState.RETRY else None
            settled.append(Settled(row.message_id, row.recipient, state, row.detail))
    return settled


def claim_due(vault: Vault, now: datetime, lease: timedelta, limit: int = 50) -> list[Due]:
    """Deliveries to try again or to hand to the portal, claimed for `lease` so that another
    server process does not act on them too."""
    overdue = now - REPORT_OVERDUE
    with vault.database.writing() as session:
        candidates = list(session.scalars(select(TlsDelivery).where(
            or_(and_(TlsDelivery.state == TlsDeliveryState.RETRY,
                     TlsDelivery.next_attempt_at <= now),
                and_(TlsDelivery.state == TlsDeliveryState.SENT,
                     TlsDelivery.updated_at <= overdue)),
            or_(TlsDelivery.claimed_until.is_(None), TlsDelivery.claimed_until < now))
            .order_by(TlsDelivery.id).limit(limit)))
        claimed = []
        for row in candidates:
            result = session.execute(update(TlsDelivery).where(
                TlsDelivery.id == row.id, TlsDelivery.state == row.state,
                or_(TlsDelivery.claimed_until.is_(None), TlsDelivery.claimed_until < now))
                .values(claimed_until=now + lease))
            if result.rowcount == 1:  # type: ignore[attr-defined]
                claimed.append(row)
    grouped: dict[tuple[uuid.UUID, bool], list[TlsDelivery]] = {}
    for row in claimed:
        grouped.setdefault((row.message_id, now >= row.deadline), []).append(row)
    return [Due(message_id, {row.recipient: row.level for row in rows}, fall_back,
                tuple(row.id for row in rows))
            for (message_id, fall_back), rows in grouped.items()]


def attempted(vault: Vault, ids: Sequence[int], envelope_digest: str, now: datetime) -> None:
    with vault.database.writing() as session:
        for row in session.scalars(select(TlsDelivery).where(TlsDelivery.id.in_(ids))):
            row.state, row.envelope_digest = TlsDeliveryState.SENT, envelope_digest
            row.attempts += 1
            row.next_attempt_at = row.claimed_until = None
            row.updated_at = now


def fell_back(vault: Vault, ids: Sequence[int], now: datetime) -> list[Settled]:
    """Handed to the portal: the recipients become portal recipients of their message."""
    settled = []
    with vault.database.writing() as session:
        rows = list(session.scalars(select(TlsDelivery).where(TlsDelivery.id.in_(ids))))
        for row in rows:
            row.state, row.updated_at = TlsDeliveryState.PORTAL, now
            row.next_attempt_at = row.claimed_until = None
            session.execute(update(Recipient).where(
                Recipient.message_id == row.message_id, Recipient.address == row.recipient)
                .values(delivery_method=DeliveryMethod.PORTAL))
            settled.append(Settled(row.message_id, row.recipient, row.state, row.detail))
        if rows:
            vault.record_in(session, "sealgate", "message.tls_fallback", "message",
                            str(rows[0].message_id),
                            {"recipients": [row.recipient for row in rows],
                             "last_report": rows[0].detail})
    return settled


def release(vault: Vault, ids: Sequence[int]) -> None:
    """Give up a claim (the attempt could not be made now): the next sweep tries again."""
    with vault.database.writing() as session:
        session.execute(update(TlsDelivery).where(TlsDelivery.id.in_(ids))
                        .values(claimed_until=None))


def deliveries(vault: Vault, message_id: uuid.UUID) -> list[TlsDelivery]:
    """For the sender's tracking page."""
    with vault.database.session() as session:
        rows = list(session.scalars(select(TlsDelivery).where(
            TlsDelivery.message_id == message_id).order_by(TlsDelivery.id)))
        session.expunge_all()
        return rows
