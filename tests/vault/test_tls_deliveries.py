"""The life of verified-TLS deliveries and the shared probe verdicts, on SQLite and
PostgreSQL: reported, retried within the deadline, handed to the portal after it, each claimed
by one sweeper at a time."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

from sqlalchemy import select

from sealgate.vault import tls
from sealgate.vault.models import (
    DeliveryMethod,
    PartKind,
    Recipient,
    TlsDeliveryState,
)
from sealgate.vault.vault import NewMessage, NewPart, NewRecipient, Vault

NOW = datetime(2026, 11, 29, 12, 0, tzinfo=UTC)
RETRY = timedelta(minutes=10)
LEASE = timedelta(minutes=5)
ANN, BEN = "ann@tls.test", "ben@tls.test"


def message(vault: Vault) -> uuid.UUID:
    return vault.deposit(NewMessage(
        "who@org.test", "Results", [NewRecipient(a, DeliveryMethod.TLS) for a in (ANN, BEN)],
        [NewPart(PartKind.ORIGINAL, b"Subject: Results\r\n\r\nbody\r\n", "message/rfc822")]),
        actor="who@org.test")


def track(vault: Vault, message_id: uuid.UUID, levels: dict[str, str], digest: str,
          deadline: datetime, now: datetime) -> None:
    with vault.database.writing() as session:
        session.add_all(tls.first_attempts(message_id, levels, digest, deadline, now))


def test_verdicts_are_shared_until_they_expire(vault: Vault) -> None:
    tls.save_verdict(vault, tls.StoredVerdict("tls.test", True, "dane", ("a", "b"),
                                              NOW + timedelta(hours=1)), NOW)
    tls.save_verdict(vault, tls.StoredVerdict("tls.test", False, None, ("c",),
                                              NOW + timedelta(hours=2)), NOW)  # replaced
    (found,) = tls.fresh_verdicts(vault, ["TLS.test", "other.test"], NOW).values()
    assert (found.qualifies, found.source, found.evidence) == (False, None, ("c",))
    assert tls.fresh_verdicts(vault, ["tls.test"], NOW + timedelta(hours=3)) == {}


def test_a_delivery_is_retried_within_its_deadline_then_handed_to_the_portal(
        vault: Vault) -> None:
    message_id = message(vault)
    deadline = NOW + timedelta(minutes=30)
    track(vault, message_id, {ANN: "verified-tls", BEN: "verified-tls"}, "d1", deadline,
              NOW)
    settled = tls.apply_report(vault, "d1", [
        (ANN, TlsDeliveryState.DELIVERED, "2.0.0: ok"),
        (BEN, TlsDeliveryState.RETRY, "5.7.5: certificate not verified")], NOW, RETRY)
    assert {(s.recipient, s.state) for s in settled} == {
        (ANN, TlsDeliveryState.DELIVERED), (BEN, TlsDeliveryState.RETRY)}
    # A report for another attempt, or a second one for this attempt, changes nothing.
    assert tls.apply_report(vault, "other", [(BEN, TlsDeliveryState.DELIVERED, "")],
                            NOW, RETRY) == []
    assert tls.apply_report(vault, "d1", [(ANN, TlsDeliveryState.FAILED, "")],
                            NOW, RETRY) == []
    assert tls.claim_due(vault, NOW + RETRY - timedelta(seconds=1), LEASE) == []
    (due,) = tls.claim_due(vault, NOW + RETRY, LEASE)
    assert (due.message_id, due.recipients, due.fall_back) == (
        message_id, {BEN: "verified-tls"}, False)
    assert tls.claim_due(vault, NOW + RETRY, LEASE) == []  # claimed: nobody else gets it
    tls.attempted(vault, due.ids, "d2", NOW + RETRY)
    tls.apply_report(vault, "d2", [(BEN, TlsDeliveryState.RETRY, "5.7.5: again")],
                     NOW + RETRY, RETRY)
    (due,) = tls.claim_due(vault, NOW + 2 * RETRY, LEASE)
    assert due.fall_back is False
    tls.attempted(vault, due.ids, "d3", NOW + timedelta(minutes=29))
    # The next attempt would be past the deadline: at the deadline, the portal.
    tls.apply_report(vault, "d3", [(BEN, TlsDeliveryState.RETRY, "5.7.5: still")],
                     NOW + timedelta(minutes=29), RETRY)
    (due,) = tls.claim_due(vault, deadline, LEASE)
    assert due.fall_back is True
    tls.fell_back(vault, due.ids, deadline)
    rows = {row.recipient: row for row in tls.deliveries(vault, message_id)}
    assert rows[BEN].state is TlsDeliveryState.PORTAL and rows[BEN].attempts == 3
    assert rows[ANN].state is TlsDeliveryState.DELIVERED and rows[ANN].attempts == 1
    with vault.database.session() as session:
        methods = dict(session.execute(select(Recipient.address, Recipient.delivery_method)
                                       .where(Recipient.message_id == message_id)).all())
    assert methods == {ANN: DeliveryMethod.TLS, BEN: DeliveryMethod.PORTAL}


def test_a_lost_report_is_retried_and_a_released_claim_is_due_again(vault: Vault) -> None:
    message_id = message(vault)
    track(vault, message_id, {ANN: "dane"}, "d1", NOW + timedelta(hours=2), NOW)
    assert tls.claim_due(vault, NOW + tls.REPORT_OVERDUE - timedelta(seconds=1), LEASE) == []
    (due,) = tls.claim_due(vault, NOW + tls.REPORT_OVERDUE, LEASE)
    assert due.recipients == {ANN: "dane"} and not due.fall_back
    tls.release(vault, due.ids)
    (again,) = tls.claim_due(vault, NOW + tls.REPORT_OVERDUE, LEASE)
    assert again.ids == due.ids
