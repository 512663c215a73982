"""Audit trail tamper evidence, on SQLite and PostgreSQL."""

from __future__ import annotations

import itertools

import pytest
from sqlalchemy import delete, select, update

from sealgate.vault.models import AuditEvent, AuditHead
from sealgate.vault.vault import Vault


@pytest.fixture
def trail(vault: Vault) -> Vault:
    for number in range(1, 6):
        vault.record(f"user{number}@example.org", "message.viewed", "message", f"m{number}",
                     {"ip": "192.0.2.1", "n": number})
    report = vault.verify_audit()
    assert report.intact and report.events == 5
    return vault


def problems(vault: Vault) -> list[str]:
    report = vault.verify_audit()
    assert not report.intact
    return report.problems


def test_events_chain_and_record_who_what_when(trail: Vault) -> None:
    with trail.database.session() as session:
        events = session.scalars(select(AuditEvent).order_by(AuditEvent.seq)).all()
    assert [e.seq for e in events] == [1, 2, 3, 4, 5]
    assert events[0].previous == "0" * 64
    assert all(b.previous == a.digest for a, b in itertools.pairwise(events))
    assert events[2].actor == "user3@example.org" and events[2].details["n"] == 3
    assert events[2].at.tzinfo is not None


def test_a_changed_event_is_found(trail: Vault) -> None:
    with trail.database.writing() as session:
        session.execute(update(AuditEvent).where(AuditEvent.seq == 3)
                        .values(actor="someone.else@example.org"))
    assert problems(trail) == ["event 3: content changed since it was written"]


def test_changed_details_are_found(trail: Vault) -> None:
    with trail.database.writing() as session:
        session.execute(update(AuditEvent).where(AuditEvent.seq == 2)
                        .values(details={"ip": "203.0.113.9", "n": 2}))
    assert problems(trail) == ["event 2: content changed since it was written"]


def test_a_removed_event_is_found(trail: Vault) -> None:
    with trail.database.writing() as session:
        session.execute(delete(AuditEvent).where(AuditEvent.seq == 2))
    found = problems(trail)
    assert any("event 2 missing" in p for p in found)
    assert any("event 3: chain broken" in p for p in found)


def test_reordered_events_are_found(trail: Vault) -> None:
    with trail.database.writing() as session:  # swap events 2 and 4 by renumbering them
        session.execute(update(AuditEvent).where(AuditEvent.seq == 2).values(seq=100))
        session.execute(update(AuditEvent).where(AuditEvent.seq == 4).values(seq=2))
        session.execute(update(AuditEvent).where(AuditEvent.seq == 100).values(seq=4))
    found = problems(trail)
    assert any(p.startswith("event 2:") for p in found)
    assert any(p.startswith("event 4:") for p in found)


def test_events_cut_off_the_end_are_found(trail: Vault) -> None:
    with trail.database.writing() as session:
        session.execute(delete(AuditEvent).where(AuditEvent.seq >= 4))
    assert problems(trail) == [
        "the trail ends at event 3 but the head records event 5: events were removed from "
        "the end or the head was altered"]


def test_a_rewritten_chain_without_the_audit_key_is_found(trail: Vault) -> None:
    # Recomputing digests with a plain hash (no key) does not produce a valid chain.
    import hashlib

    with trail.database.writing() as session:
        events = session.scalars(select(AuditEvent).order_by(AuditEvent.seq)).all()
        previous = "0" * 64
        for event in events:
            event.actor = "forger@example.org"
            event.previous = f"{previous}"
            event.digest = hashlib.sha256((previous + event.actor).encode()).hexdigest()
            previous = event.digest
        session.execute(update(AuditHead).values(digest=previous))
    assert len(problems(trail)) == 5


def test_appends_continue_the_chain_after_verification(trail: Vault) -> None:
    trail.record("admin", "policy.changed", "policy", "hipaa", {"before": 1, "after": 2})
    report = trail.verify_audit()
    assert report.intact and report.events == 6
