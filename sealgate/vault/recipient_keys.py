"""Recipients' public S/MIME certificates and OpenPGP keys: stored, listed, looked up for
delivery, removed. Every change is audited. What a key is (addresses, fingerprint, expiry,
whether it can be used) is decided by sealgate.crypto (`key_facts` asks it); this module
keeps the bytes and those facts, and the rules for taking a key on file (`owners`), which
the CLI and the admin console share."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import or_, select

from sealgate.errors import SealgateError
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


@dataclass(frozen=True)
class KeyFacts:
    """What a certificate or OpenPGP key is, as of a moment. `kind` None: it is neither.
    `problems` are the reasons, in words, not to encrypt to it (none: usable)."""

    kind: KeyKind | None
    addresses: tuple[str, ...]
    fingerprint: str
    not_after: datetime | None
    problems: tuple[str, ...]

    @property
    def usable(self) -> bool:
        return self.kind is not None and not self.problems


def key_facts(data: bytes, now: datetime) -> KeyFacts:
    """Read a certificate (PEM or DER) or an OpenPGP public key (armored or binary)."""
    from sealgate.crypto import smime

    certificate = smime.certificate_info(data, now)
    if certificate.problems != ("not a certificate",):
        return KeyFacts(KeyKind.SMIME, certificate.addresses, certificate.fingerprint_sha256,
                        certificate.not_after, certificate.problems)
    try:
        from sealgate.crypto import pgp
    except ImportError:  # pragma: no cover - the OpenPGP library is optional
        return KeyFacts(None, (), "", None, ())
    key = pgp.key_info(data, now)
    if "not an OpenPGP key" in key.problems:
        return KeyFacts(None, (), "", None, ())
    return KeyFacts(KeyKind.PGP, key.addresses, key.fingerprint, key.expires, key.problems)


class KeyRefused(SealgateError):
    """A key that cannot be taken on file. The message completes a sentence about the data:
    "<file> is neither ...", "The key data cannot be used: ..."."""


def owners(facts: KeyFacts, address: str | None = None) -> list[str]:
    """The addresses to put a key on file for (all it names, or the one asked for when it
    names it). Raises KeyRefused saying why the key cannot be taken."""
    if facts.kind is None:
        raise KeyRefused("is neither an X.509 certificate nor an OpenPGP public key")
    if facts.problems:
        raise KeyRefused(f"cannot be used: {'; '.join(facts.problems)}")
    named = [a.lower() for a in facts.addresses]
    if address:
        if address.strip().lower() not in named:
            raise KeyRefused(f"is not for {address} (it names: "
                             f"{', '.join(facts.addresses) or 'no address'})")
        return [address.strip().lower()]
    if not named:
        raise KeyRefused("names no email address; give the address it is for")
    return named


def import_key(vault: Vault, actor: str, data: bytes, now: datetime,
               address: str | None = None, source: str = "import") -> tuple[KeyFacts,
                                                                             dict[str, bool]]:
    """Check a key and put it on file for its addresses: its facts, and for each address
    whether it was added (False: that very key was already on file). Raises KeyRefused."""
    facts = key_facts(data, now)
    chosen = owners(facts, address)
    assert facts.kind is not None
    added = {owner: put(vault, actor, owner, facts.kind, facts.fingerprint, data,
                        facts.not_after, source) for owner in chosen}
    return facts, added


def _stored(row: RecipientKey) -> StoredKey:
    return StoredKey(row.id, row.address, row.kind, row.fingerprint, row.not_after, row.source,
                     row.material)


def _audit_id(kind: KeyKind, fingerprint: str) -> str:
    return f"{kind}:{fingerprint}"


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
                        _audit_id(kind, fingerprint), {
                            "address": address, "kind": str(kind), "source": source,
                            "not_after": not_after.isoformat() if not_after else None})
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
    """Remove the keys with this fingerprint (for one address, or all); how many went.
    The fingerprint may be written in either case, with spaces or colons."""
    compact = "".join(fingerprint.split()).replace(":", "")
    with vault.database.writing() as session:
        query = select(RecipientKey).where(
            RecipientKey.fingerprint.in_({compact, compact.lower(), compact.upper()}))
        if address is not None:
            query = query.where(RecipientKey.address == address.strip().lower())
        rows = list(session.scalars(query))
        gone = [{"address": row.address, "kind": str(row.kind), "source": row.source,
                 "not_after": row.not_after.isoformat() if row.not_after else None}
                for row in rows]
        for row in rows:
            session.delete(row)
        removed = len(rows)
        if removed:
            vault.record_in(session, actor, "recipient_key.removed", "recipient_key",
                            _audit_id(rows[0].kind, rows[0].fingerprint),
                            {"address": address or "*", "count": removed, "removed": gone})
    return removed
