"""The vault: deposit a message sealed at rest, open its parts, manage the keys that wrap them.

Each part gets its own random data key; the part's content is sealed under it into a blob
file, and the data key is stored wrapped under the keyring's current version. Associated
data `<message id>/<part id>` binds both to their place.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from sealgate.config import Config
from sealgate.crypto.aead import new_data_key, open_file, open_sealed, seal_segments
from sealgate.crypto.keyring import Keyring
from sealgate.errors import KeyringError, VaultError
from sealgate.vault import audit
from sealgate.vault.blobs import LocalBlobStore, blob_name
from sealgate.vault.database import Database
from sealgate.vault.models import (
    DeliveryMethod,
    Part,
    PartKind,
    Recipient,
    SecureMessage,
)


@dataclass(frozen=True)
class NewPart:
    kind: PartKind
    data: bytes
    content_type: str = "application/octet-stream"
    filename: str | None = None
    content_id: str | None = None


@dataclass(frozen=True)
class NewRecipient:
    address: str
    method: DeliveryMethod = DeliveryMethod.PORTAL


@dataclass(frozen=True)
class NewMessage:
    sender: str
    subject: str
    recipients: Sequence[NewRecipient]
    parts: Sequence[NewPart]
    sender_name: str = ""
    header_message_id: str | None = None
    expires_at: datetime | None = None
    id: uuid.UUID = field(default_factory=uuid.uuid4)


def key_versions_in_use(database: Database) -> dict[int, int]:
    """How many data keys each keyring version wraps."""
    with database.session() as session:
        counts = session.execute(
            select(Part.key_version, func.count()).group_by(Part.key_version)).all()
    return {version: count for version, count in counts}


def count_sealed_parts(database: Database) -> int:
    return sum(key_versions_in_use(database).values())


def _context(message_id: uuid.UUID, part_id: uuid.UUID) -> bytes:
    return f"{message_id}/{part_id}".encode("ascii")


class Vault:
    def __init__(self, database: Database, keyring_path: Path, blobs: LocalBlobStore) -> None:
        self.database = database
        self.blobs = blobs
        self._keyring_path = keyring_path
        self._keyring: Keyring | None = None
        self._keyring_stamp: tuple[int, int] | None = None

    @classmethod
    def open(cls, config: Config) -> Vault:
        vault = cls(Database(config.database_url, durable=config.vault.durable),
                    config.keyring_path,
                    LocalBlobStore(config.blob_dir, durable=config.vault.durable))
        vault.keyring  # noqa: B018 - fail now, with the keyring's own message, if it is unusable
        return vault

    @property
    def keyring(self) -> Keyring:
        """The keyring, re-read when its file changes (after `keys rotate` in another process)."""
        try:
            info = self._keyring_path.stat()
        except FileNotFoundError:
            raise KeyringError(
                f"keyring {self._keyring_path} does not exist (run `sealgate init`)") from None
        stamp = (info.st_ctime_ns, info.st_ino)  # ctime: a chmod counts too
        if self._keyring is None or stamp != self._keyring_stamp:
            self._keyring = Keyring.load(self._keyring_path)
            self._keyring_stamp = stamp
        return self._keyring

    def close(self) -> None:
        self.database.dispose()

    # -- content -------------------------------------------------------------------------

    def deposit(self, new: NewMessage, actor: str) -> uuid.UUID:
        """Seal and store a message; when this returns, it is durable (blobs, then commit)."""
        keyring = self.keyring
        rows: list[Part] = []
        try:
            for position, part in enumerate(new.parts):
                part_id = uuid.uuid4()
                context = _context(new.id, part_id)
                data_key = new_data_key()
                name = blob_name(str(new.id), str(part_id))
                self.blobs.put(name, seal_segments(data_key, part.data, context))
                version, wrapped = keyring.wrap(data_key, context)
                rows.append(Part(id=part_id, position=position, kind=part.kind,
                                 content_type=part.content_type, filename=part.filename,
                                 content_id=part.content_id, size=len(part.data), blob=name,
                                 key_version=version, wrapped_key=wrapped))
            with self.database.writing() as session:
                session.add(SecureMessage(
                    id=new.id, sender=new.sender, sender_name=new.sender_name,
                    subject=new.subject, header_message_id=new.header_message_id,
                    expires_at=new.expires_at, parts=rows,
                    recipients=[Recipient(address=r.address, delivery_method=r.method)
                                for r in new.recipients],
                ))
                audit.append(session, keyring.audit_key, new.sender, "message.deposited",
                             "message", str(new.id),
                             {"recipients": len(new.recipients), "parts": len(new.parts)})
        except BaseException:
            for row in rows:  # nothing half-stored stays behind
                self.blobs.delete(row.blob)
            raise
        return new.id

    def message(self, session: Session, message_id: uuid.UUID) -> SecureMessage:
        found = session.get(SecureMessage, message_id)
        if found is None:
            raise VaultError(f"no secure message {message_id}")
        return found

    def read_part(self, part: Part) -> bytes:
        context = _context(part.message_id, part.id)
        data_key = self.keyring.unwrap(part.key_version, part.wrapped_key, context)
        return open_sealed(data_key, self.blobs.read(part.blob), context)

    def stream_part(self, part: Part) -> Iterator[bytes]:
        """Plaintext in verified segments, for large attachments."""
        context = _context(part.message_id, part.id)
        data_key = self.keyring.unwrap(part.key_version, part.wrapped_key, context)
        with self.blobs.open(part.blob) as handle:
            yield from open_file(data_key, handle, context)

    # -- keys ----------------------------------------------------------------------------

    def key_versions_in_use(self) -> dict[int, int]:
        return key_versions_in_use(self.database)

    def rotate_keys(self, actor: str) -> int:
        rotated = self.keyring.rotate()
        self.record(actor, "keys.rotated", "keyring", str(rotated.current))
        return rotated.current

    def rewrap(self, actor: str, batch: int = 500) -> int:
        """Re-wrap every data key not under the newest version; content is not touched.

        Each batch commits on its own, so an interrupted run is simply run again."""
        keyring = self.keyring
        total = 0
        while True:
            with self.database.writing() as session:
                parts = session.scalars(
                    select(Part).where(Part.key_version != keyring.current)
                    .order_by(Part.id).limit(batch)).all()
                for part in parts:
                    context = _context(part.message_id, part.id)
                    data_key = keyring.unwrap(part.key_version, part.wrapped_key, context)
                    part.key_version, part.wrapped_key = keyring.wrap(data_key, context)
            total += len(parts)
            if len(parts) < batch:
                break
        self.record(actor, "keys.rewrapped", "keyring", str(keyring.current), {"parts": total})
        return total

    def retire_key(self, version: int, actor: str) -> None:
        in_use = self.key_versions_in_use().get(version, 0)
        if in_use:
            raise KeyringError(
                f"key version {version} still wraps {in_use} data key(s): "
                "run `sealgate keys rewrap` first")
        self.keyring.retire(version)
        self.record(actor, "keys.retired", "keyring", str(version))

    # -- audit ---------------------------------------------------------------------------

    def record(self, actor: str, action: str, object_type: str = "", object_id: str = "",
               details: dict[str, Any] | None = None) -> None:
        with self.database.writing() as session:
            audit.append(session, self.keyring.audit_key, actor, action, object_type,
                         object_id, details)

    def verify_audit(self) -> audit.AuditReport:
        with self.database.session() as session:
            return audit.verify(session, self.keyring.audit_key)
