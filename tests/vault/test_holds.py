"""Held messages in the vault, on SQLite and PostgreSQL: sealed like any deposit, never
readable, decided once, and their content gone once decided or expired."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import select

from sealgate.errors import VaultError
from sealgate.vault import holds
from sealgate.vault.models import (
    AuditEvent,
    Hold,
    HoldDecision,
    MessageState,
    Part,
    PartKind,
    Recipient,
    SecureMessage,
)
from sealgate.vault.vault import Vault

RAW = (b"From: who@example.org\r\nTo: out@gmail.test\r\nSubject: Card\r\n\r\n"
       b"card 4111 1111 1111 1111\r\n")
REPORT = {"action": "quarantine", "findings": [
    {"part": "body", "type": "CREDIT_CARD", "confidence": "high",
     "value": "**** **** **** 1111"}], "unreadable": []}


def new_hold(vault: Vault, expires_in: timedelta = timedelta(days=14)) -> uuid.UUID:
    return holds.create(vault, holds.NewHold(
        sender="who@example.org", recipients=["out@gmail.test", "in@example.org"],
        subject="Card", raw=RAW, expires_at=datetime.now(UTC) + expires_in,
        policies=["PCI DSS: payment card numbers"], report=REPORT, allow_send_as_is=True),
        actor="who@example.org")


def actions(vault: Vault) -> list[str]:
    with vault.database.session() as db:
        return list(db.scalars(select(AuditEvent.action).order_by(AuditEvent.seq)))


def blob_files(vault: Vault) -> list[str]:
    return [str(p) for p in vault.blobs.root.rglob("*") if p.is_file()]


def test_a_hold_is_sealed_like_a_deposit_and_never_readable(vault: Vault) -> None:
    hold_id = new_hold(vault)
    hold = holds.find(vault, hold_id)
    assert hold is not None and hold.message_id is not None
    assert (hold.sender, hold.recipients, hold.subject) == (
        "who@example.org", ["out@gmail.test", "in@example.org"], "Card")
    assert hold.policies == ["PCI DSS: payment card numbers"] and hold.findings == REPORT
    assert hold.allow_send_as_is and hold.decision is None and hold.created_at.tzinfo
    assert holds.original(vault, hold) == RAW
    with vault.database.session() as db:
        message = db.get(SecureMessage, hold.message_id)
        assert message is not None and message.state is MessageState.HELD
        assert not message.is_readable(datetime.now(UTC))
        assert [p.kind for p in message.parts] == [PartKind.ORIGINAL]
        # No recipient rows: no recipient's message list can show a message never sent.
        assert db.scalars(select(Recipient).where(
            Recipient.message_id == hold.message_id)).all() == []
    assert b"4111" not in b"".join(Path(f).read_bytes() for f in blob_files(vault))
    assert actions(vault)[-2:] == ["message.deposited", "hold.created"]
    assert vault.verify_audit().problems == []


def test_a_decision_is_made_once_and_deletes_the_content(vault: Vault) -> None:
    hold_id = new_hold(vault)
    now = datetime.now(UTC)
    claimed = holds.claim(vault, hold_id, now)
    assert claimed.claimed_until is not None
    with pytest.raises(holds.HoldBusy):
        holds.claim(vault, hold_id, now)
    holds.release(vault, hold_id)
    holds.claim(vault, hold_id, now)  # free again
    decided = holds.decide(vault, hold_id, HoldDecision.DISCARDED, "who@example.org", now)
    assert decided.decision is HoldDecision.DISCARDED and decided.message_id is None
    with vault.database.session() as db:
        assert db.scalars(select(Part)).all() == []
        assert db.scalars(select(SecureMessage)).all() == []
        assert db.get(Hold, hold_id).decided_at is not None  # type: ignore[union-attr]
    assert blob_files(vault) == []
    with pytest.raises(holds.AlreadyDecided) as again:
        holds.decide(vault, hold_id, HoldDecision.SENT_AS_IS, "who@example.org", now)
    assert again.value.hold.decision is HoldDecision.DISCARDED  # readable after the refusal
    with pytest.raises(holds.AlreadyDecided):
        holds.claim(vault, hold_id, now)
    with pytest.raises(VaultError):
        holds.original(vault, decided)
    assert actions(vault)[-2:] == ["message.deleted", "hold.discarded"]


def test_a_claim_left_by_a_crash_lapses(vault: Vault) -> None:
    hold_id = new_hold(vault)
    now = datetime.now(UTC)
    holds.claim(vault, hold_id, now)
    with pytest.raises(holds.HoldBusy):
        holds.claim(vault, hold_id, now + holds.CLAIM - timedelta(seconds=1))
    holds.claim(vault, hold_id, now + holds.CLAIM + timedelta(seconds=1))


def test_expired_holds_cannot_be_claimed_and_are_discarded(vault: Vault) -> None:
    old = new_hold(vault, expires_in=timedelta(seconds=-1))
    fresh = new_hold(vault)
    with pytest.raises(holds.HoldExpired):
        holds.claim(vault, old, datetime.now(UTC))
    assert holds.expire_due(vault, datetime.now(UTC)) == 1
    expired, kept = holds.find(vault, old), holds.find(vault, fresh)
    assert expired is not None and expired.decision is HoldDecision.EXPIRED
    assert expired.message_id is None
    assert kept is not None and kept.decision is None and holds.original(vault, kept) == RAW
    assert holds.expire_due(vault, datetime.now(UTC)) == 0
    assert "hold.expired" in actions(vault)


def test_a_failed_hold_leaves_nothing_behind(vault: Vault, monkeypatch: pytest.MonkeyPatch
                                             ) -> None:
    def broken(*_args: object) -> None:
        raise RuntimeError("database gone")

    monkeypatch.setattr(vault, "record_in", broken)
    with pytest.raises(RuntimeError):
        new_hold(vault)
    with vault.database.session() as db:
        assert db.scalars(select(Hold)).all() == [] and db.scalars(select(Part)).all() == []
    assert blob_files(vault) == []
