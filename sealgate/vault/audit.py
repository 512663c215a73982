"""The audit trail: append-only events, each chained to the one before by a keyed digest.

`digest = HMAC(audit key, previous digest + canonical event)`. Changing, removing or
reordering an event breaks the chain at that point; the head row catches events cut off
the end; and without the keyring's audit key nobody can write a chain that verifies.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, cast

from sqlalchemy import Table, and_, bindparam, insert, or_, select, update
from sqlalchemy.orm import Session
from sqlalchemy.sql import Select

from sealgate.crypto.secrets import chain_digest
from sealgate.vault.models import AuditEvent, AuditHead, utcnow

GENESIS = "0" * 64
events_table = cast(Table, AuditEvent.__table__)
head_table = cast(Table, AuditHead.__table__)

# Built once: constructing a statement costs more than running it on SQLite.
_LOCK_HEAD = update(head_table).where(head_table.c.id == 1).values(seq=head_table.c.seq)
_READ_HEAD = select(head_table.c.seq, head_table.c.digest).where(head_table.c.id == 1)
_INSERT_EVENTS = insert(events_table)
_MOVE_HEAD = update(head_table).where(head_table.c.id == 1).values(
    seq=bindparam("new_seq"), digest=bindparam("new_digest"))


def _payload(seq: int, at: datetime, actor: str, action: str, object_type: str,
             object_id: str, details: dict[str, Any]) -> bytes:
    return json.dumps(
        [seq, at.isoformat(), actor, action, object_type, object_id, details],
        sort_keys=True, separators=(",", ":"), ensure_ascii=False,
    ).encode("utf-8")


@dataclass(frozen=True)
class Event:
    actor: str
    action: str
    object_type: str = ""
    object_id: str = ""
    details: dict[str, Any] = field(default_factory=dict)


def append(session: Session, key: bytes, events: Sequence[Event]) -> None:
    """Add events, in order, in the caller's transaction; they are visible when it commits."""
    if not events:
        return
    # Touching the head row first takes its lock, so concurrent appends queue up here
    # instead of forking the chain (SQLite: the write lock; PostgreSQL: the row lock).
    connection = session.connection()
    connection.execute(_LOCK_HEAD)
    seq, previous = connection.execute(_READ_HEAD).one()
    at = utcnow()
    rows = []
    for event in events:
        seq += 1
        digest = chain_digest(key, previous, _payload(
            seq, at, event.actor, event.action, event.object_type, event.object_id,
            event.details))
        rows.append({"seq": seq, "at": at, "actor": event.actor, "action": event.action,
                     "object_type": event.object_type, "object_id": event.object_id,
                     "details": event.details, "previous": previous, "digest": digest})
        previous = digest
    connection.execute(_INSERT_EVENTS, rows)
    connection.execute(_MOVE_HEAD, {"new_seq": seq, "new_digest": previous})


@dataclass
class AuditReport:
    events: int = 0
    problems: list[str] = field(default_factory=list)

    @property
    def intact(self) -> bool:
        return not self.problems


def verify(session: Session, key: bytes, batch: int = 1000) -> AuditReport:
    report = AuditReport()
    expected_seq, previous = 1, GENESIS
    query = select(AuditEvent).order_by(AuditEvent.seq).execution_options(yield_per=batch)
    for event in session.scalars(query):
        report.events += 1
        if event.seq != expected_seq:
            report.problems.append(
                f"event {expected_seq}" + (f"–{event.seq - 1}" if event.seq > expected_seq + 1
                                           else "")
                + f" missing or out of order (found {event.seq} next)")
        if event.previous != previous:
            report.problems.append(f"event {event.seq}: chain broken (does not follow the "
                                   f"event before it: removed, inserted or reordered)")
        payload = _payload(event.seq, event.at, event.actor, event.action, event.object_type,
                           event.object_id, event.details)
        if chain_digest(key, event.previous, payload) != event.digest:
            report.problems.append(f"event {event.seq}: content changed since it was written")
        expected_seq, previous = event.seq + 1, event.digest
    head = session.execute(select(AuditHead).where(AuditHead.id == 1)).scalar_one_or_none()
    if head is None:
        report.problems.append("audit head row is missing")
    elif (head.seq, head.digest) != (expected_seq - 1, previous):
        report.problems.append(
            f"the trail ends at event {expected_seq - 1} but the head records event {head.seq}: "
            "events were removed from the end or the head was altered")
    return report


@dataclass(frozen=True)
class Search:
    """Which events to find. `object` is `type:id` (`message:1f0c…`), or a bare value that
    matches either the type or the id; `action` ending in `*` matches by its start
    (`hold.*`). Paging: oldest first from `after_seq`, or newest first from `before_seq`."""

    actor: str | None = None
    action: str | None = None
    object: str | None = None
    since: datetime | None = None
    until: datetime | None = None
    after_seq: int | None = None
    before_seq: int | None = None
    newest_first: bool = False


def _matching(search: Search) -> Select[AuditEvent]:
    query = select(AuditEvent)
    if search.actor:
        query = query.where(AuditEvent.actor == search.actor)
    if search.action:
        query = query.where(
            AuditEvent.action.startswith(search.action[:-1], autoescape=True)
            if search.action.endswith("*") else AuditEvent.action == search.action)
    if search.object:
        kind, colon, ident = search.object.partition(":")
        query = query.where(
            and_(AuditEvent.object_type == kind, AuditEvent.object_id == ident) if colon
            else or_(AuditEvent.object_type == kind, AuditEvent.object_id == kind))
    if search.since is not None:
        query = query.where(AuditEvent.at >= search.since)
    if search.until is not None:
        query = query.where(AuditEvent.at < search.until)
    if search.after_seq is not None:
        query = query.where(AuditEvent.seq > search.after_seq)
    if search.before_seq is not None:
        query = query.where(AuditEvent.seq < search.before_seq)
    return query.order_by(AuditEvent.seq.desc() if search.newest_first else AuditEvent.seq)


def search(session: Session, wanted: Search, limit: int) -> tuple[list[AuditEvent], bool]:
    """Up to `limit` events matching, and whether there are more past them."""
    events = list(session.scalars(_matching(wanted).limit(limit + 1)))
    return events[:limit], len(events) > limit


def every(session: Session, wanted: Search, batch: int = 1000) -> Iterator[AuditEvent]:
    """All the events matching, oldest first, read in batches (for an export)."""
    query = _matching(wanted).order_by(None).order_by(AuditEvent.seq)
    yield from session.scalars(query.execution_options(yield_per=batch))
