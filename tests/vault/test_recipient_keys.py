"""Recipients' keys on file, on SQLite and PostgreSQL; and the migrations match the models."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import select

from sealgate.vault import recipient_keys
from sealgate.vault.models import AuditEvent, Base, KeyKind
from sealgate.vault.vault import Vault

NOW = datetime(2026, 11, 29, 12, 0, tzinfo=UTC)


def test_the_migrated_schema_is_the_models_schema(vault: Vault) -> None:
    with vault.database.engine.connect() as connection:
        assert compare_metadata(MigrationContext.configure(connection), Base.metadata) == []


def test_keys_are_stored_once_found_by_address_and_expire(vault: Vault) -> None:
    later = NOW + timedelta(days=30)
    assert recipient_keys.put(vault, "cli", "Ann@Partner.test", KeyKind.SMIME, "AB01",
                              b"cert-a", later)
    assert not recipient_keys.put(vault, "cli", "ann@partner.test", KeyKind.SMIME, "AB01",
                                  b"cert-a", later)  # the same key again
    assert recipient_keys.put(vault, "cli", "ann@partner.test", KeyKind.PGP, "CD02", b"key-a",
                              None, source="wkd")
    assert recipient_keys.put(vault, "cli", "bob@partner.test", KeyKind.SMIME, "EF03",
                              b"cert-b", NOW - timedelta(days=1))  # already expired
    found = recipient_keys.for_addresses(vault, ["ANN@partner.test", "bob@partner.test"], NOW)
    assert sorted((k.address, k.kind, k.fingerprint, k.source) for k in found) == [
        ("ann@partner.test", KeyKind.PGP, "CD02", "wkd"),
        ("ann@partner.test", KeyKind.SMIME, "AB01", "import")]
    assert [k.fingerprint for k in recipient_keys.listed(vault, "bob@partner.test")] == ["EF03"]
    assert recipient_keys.remove(vault, "cli", "AB01") == 1
    assert recipient_keys.remove(vault, "cli", "AB01") == 0
    with vault.database.session() as session:
        actions = list(session.scalars(select(AuditEvent.action)))
    assert actions.count("recipient_key.added") == 3
    assert actions.count("recipient_key.removed") == 1
    assert vault.verify_audit().intact
