"""Recipients' public S/MIME certificates and OpenPGP keys: stored, listed, looked up for
delivery, removed. Every change is audited. What a key is (addresses, fingerprint, expiry,
whether it can be used) is decided by sealgate.crypto; this module only keeps the bytes and
the facts it is given."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import or_, select

from sealgate.vault.models import KeyKind, RecipientKey
from sealgate.vault.vault import Vault


@dataclass(frozen=True)
class StoredKey:
    id: int
    address: str
    kind: KeyKind
    fingerprint: str
    not_after: datetime | None
    source: str
    material: bytes


def _stored(row: RecipientKey) -> StoredKey:
    return StoredKey(row.id, row.address, row.kind, row.fingerprint, row.not_after, row.source,
                     row.material)


def put(vault: Vault, actor: str, address: str, kind: KeyKind, fingerprint: str,
        material: bytes, not_after: datetime | None, source: str = "import") -> bool:
    """Store a key for an address; False when that very key was already on file."""
    address = address.strip().lower()
    with vault.database.writing() as session:
        existing = session.scalars(select(RecipientKey).where(
            RecipientKey.address == address, RecipientKey.kind == kind,
            RecipientKey.fingerprint == fingerprint)).first()
        if existing is not None:
            return False
        session.add(RecipientKey(address=address, kind=kind, fingerprint=fingerprint,
                                 material=material, not_after=not_after, source=source))
        vault.record_in(session, actor, "recipient_key.added", "recipient_key",
                        f"{kind}:{fingerprint}", {"address": address, "source": source})
    return True


def for_addresses(vault: Vault, addresses: Sequence[str], now: datetime) -> list[StoredKey]:
    """Every key on file for these addresses that has not passed its expiry, newest first."""
    wanted = [a.lower() for a in addresses]
    if not wanted:
        return []
    with vault.database.session() as session:
        rows = session.scalars(select(RecipientKey).where(
            RecipientKey.address.in_(wanted),
            or_(RecipientKey.not_after.is_(None), RecipientKey.not_after > now))
            .order_by(RecipientKey.created_at.desc(), RecipientKey.id.desc()))
        return [_stored(row) for row in rows]


def listed(vault: Vault, address: str | None = None) -> list[StoredKey]:
    with vault.database.session() as session:
        query = select(RecipientKey).order_by(RecipientKey.address, RecipientKey.kind)
        if address is not None:
            query = query.where(RecipientKey.address == address.lower())
        return [_stored(row) for row in session.scalars(query)]


def remove(vault: Vault, actor: str, fingerprint: str, address: str | None = None) -> int:
    """Remove the keys with this fingerprint (for one address, or all); how many went."""
    with vault.database.writing() as session:
        query = select(RecipientKey).where(RecipientKey.fingerprint == fingerprint)
        if address is not None:
            query = query.where(RecipientKey.address == address.lower())
        rows = list(session.scalars(query))
        for row in rows:
            session.delete(row)
        removed = len(rows)
        if removed:
            vault.record_in(session, actor, "recipient_key.removed", "recipient_key",
                            fingerprint, {"address": address or "*", "count": removed})
    return removed
