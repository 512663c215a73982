"""The vault: deposit a message sealed at rest, open its parts, manage the keys that wrap them.

Each part gets its own random data key; the part's content is sealed under it into a blob
file, and the data key is stored wrapped under the keyring's current version. Associated
data `<message id>/<part id>` binds both to their place.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, cast

from sqlalchemy import Table, func, insert, select
from sqlalchemy.orm import Session

from sealgate.config import Config
from sealgate.crypto.aead import new_data_key, open_sealed, open_stream, seal
from sealgate.crypto.keyring import Keyring
from sealgate.errors import KeyringError, SealgateError, VaultError
from sealgate.vault import audit
from sealgate.vault.blobs import LocalBlobStore, new_blob_name
from sealgate.vault.database import Database
from sealgate.vault.models import (
    DeliveryMethod,
    MessageState,
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
    in_reply_to_id: uuid.UUID | None = None
    state: MessageState = MessageState.ACTIVE  # HELD: kept for its sender, never readable
    id: uuid.UUID = field(default_factory=uuid.uuid4)
    # More for the deposit's audit event (e.g. each recipient's delivery method and why).
    audit_details: Mapping[str, Any] = field(default_factory=dict)


messages_table = cast(Table, SecureMessage.__table__)
recipients_table = cast(Table, Recipient.__table__)
parts_table = cast(Table, Part.__table__)
_INSERT_MESSAGES = insert(messages_table)
_INSERT_RECIPIENTS = insert(recipients_table)
_INSERT_PARTS = insert(parts_table)


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
        """Seal and store one message; when this returns it is durable."""
        return self.deposit_many([new], actor)[0]

    def deposit_many(self, messages: Sequence[NewMessage], actor: str, *,
                     along: Callable[[Session], None] | None = None) -> list[uuid.UUID]:
        """Seal and store messages together: one blob file, one transaction, one audit lock.

        Blobs are written (and fsynced) first, then the rows commit; only then is anything
        acknowledged. If the commit fails the blob file is removed again. `along` writes
        more rows in the same transaction (a hold beside its message), after the messages'."""
        keyring = self.keyring
        blob = new_blob_name()
        sealed: list[bytes] = []
        part_rows: list[dict[str, Any]] = []
        offset = 0
        for message in messages:
            for position, part in enumerate(message.parts):
                part_id = uuid.uuid4()
                context = _context(message.id, part_id)
                data_key = new_data_key()
                ciphertext = seal(data_key, part.data, context)
                version, wrapped = keyring.wrap(data_key, context)
                part_rows.append({
                    "id": part_id, "message_id": message.id, "position": position,
                    "kind": part.kind, "content_type": part.content_type,
                    "filename": part.filename, "content_id": part.content_id,
                    "size": len(part.data), "blob": blob, "blob_offset": offset,
                    "blob_length": len(ciphertext), "key_version": version,
                    "wrapped_key": wrapped})
                sealed.append(ciphertext)
                offset += len(ciphertext)
        if sealed:
            self.blobs.put(blob, sealed)
        try:
            with self.database.writing() as session:
                connection = session.connection()
                connection.execute(_INSERT_MESSAGES, [{
                    "id": m.id, "sender": m.sender, "sender_name": m.sender_name,
                    "subject": m.subject, "header_message_id": m.header_message_id,
                    "expires_at": m.expires_at, "in_reply_to_id": m.in_reply_to_id,
                    "state": m.state}
                    for m in messages])
                recipients = [{"message_id": m.id, "address": r.address,
                               "delivery_method": r.method}
                              for m in messages for r in m.recipients]
                if recipients:
                    connection.execute(_INSERT_RECIPIENTS, recipients)
                if part_rows:
                    connection.execute(_INSERT_PARTS, part_rows)
                audit.append(session, keyring.audit_key, [audit.Event(
                    actor, "message.deposited", "message", str(m.id),
                    {"sender": m.sender, "recipients": len(m.recipients), "parts": len(m.parts),
                     **({} if m.state is MessageState.ACTIVE else {"state": str(m.state)}),
                     **m.audit_details})
                    for m in messages])
                if along is not None:
                    along(session)
        except BaseException:
            if sealed:  # nothing half-stored stays behind
                self.blobs.delete(blob)
            raise
        return [m.id for m in messages]

    def message(self, session: Session, message_id: uuid.UUID) -> SecureMessage:
        found = session.get(SecureMessage, message_id)
        if found is None:
            raise VaultError(f"no secure message {message_id}")
        return found

    def parts(self, message_id: uuid.UUID) -> list[Part]:
        with self.database.session() as session:
            return list(session.scalars(select(Part).where(Part.message_id == message_id)
                                        .order_by(Part.position)))

    def original(self, message_id: uuid.UUID) -> bytes:
        """The message as it was received. VaultError once the content is gone."""
        with self.database.session() as session:
            part = session.scalars(select(Part).where(
                Part.message_id == message_id, Part.kind == PartKind.ORIGINAL)).first()
        if part is None:
            raise VaultError(f"message {message_id} no longer has its content")
        return self.read_part(part)

    def read_part(self, part: Part) -> bytes:
        context = _context(part.message_id, part.id)
        data_key = self.keyring.unwrap(part.key_version, part.wrapped_key, context)
        return open_sealed(data_key, self.blobs.read(part.blob, part.blob_offset,
                                                     part.blob_length), context)

    def stream_part(self, part: Part) -> Iterator[bytes]:
        """Plaintext in verified segments, for large attachments."""
        context = _context(part.message_id, part.id)
        data_key = self.keyring.unwrap(part.key_version, part.wrapped_key, context)
        yield from open_stream(
            data_key, self.blobs.chunks(part.blob, part.blob_offset, part.blob_length), context)

    def delete_message(self, message_id: uuid.UUID, actor: str, reason: str) -> None:
        """Remove a message, its rows and, once no other part shares them, its blob files.

        With its wrapped data keys gone the content cannot be opened even where bytes remain
        in a blob file shared with parts deposited at the same time."""
        with self.database.writing() as session:
            unused = self.delete_in(session, message_id, actor, reason)
        self.drop_blobs(unused)

    def delete_in(self, session: Session, message_id: uuid.UUID, actor: str,
                  reason: str) -> set[str]:
        """`delete_message` in the caller's transaction. Returns the blob files nothing refers
        to any more: give them to `drop_blobs` once the transaction has committed."""
        message = self.message(session, message_id)
        blobs = {part.blob for part in message.parts}
        session.delete(message)
        session.flush()
        still_used = set(session.scalars(select(Part.blob).where(Part.blob.in_(blobs))))
        audit.append(session, self.keyring.audit_key, [audit.Event(
            actor, "message.deleted", "message", str(message_id), {"reason": reason})])
        return blobs - still_used

    def drop_blobs(self, blobs: set[str]) -> None:
        for blob in blobs:
            self.blobs.delete(blob)

    def verify_content(self, batch: int = 500) -> Iterator[tuple[Part, str]]:
        """Open every stored part (streaming, nothing kept) and yield each that does not open,
        with the reason: a changed or truncated blob, a missing file, a retired key version."""
        last: uuid.UUID | None = None
        while True:
            with self.database.session() as session:
                query = select(Part).order_by(Part.id).limit(batch)
                if last is not None:
                    query = query.where(Part.id > last)
                parts = list(session.scalars(query))
            for part in parts:
                try:
                    for _ in self.stream_part(part):
                        pass
                except SealgateError as error:
                    yield part, str(error)
            if len(parts) < batch:
                return
            last = parts[-1].id

    # -- keys ----------------------------------------------------------------------------

    def key_versions_in_use(self) -> dict[int, int]:
        return key_versions_in_use(self.database)

    def count_parts(self) -> int:
        return count_sealed_parts(self.database)

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

    def record_in(self, session: Session, actor: str, action: str, object_type: str = "",
                  object_id: str = "", details: dict[str, Any] | None = None) -> None:
        """An audit event in the caller's transaction: it commits with the change it records."""
        audit.append(session, self.keyring.audit_key,
                     [audit.Event(actor, action, object_type, object_id, details or {})])

    def record(self, actor: str, action: str, object_type: str = "", object_id: str = "",
               details: dict[str, Any] | None = None) -> None:
        with self.database.writing() as session:
            audit.append(session, self.keyring.audit_key,
                         [audit.Event(actor, action, object_type, object_id, details or {})])

    def verify_audit(self) -> audit.AuditReport:
        with self.database.session() as session:
            return audit.verify(session, self.keyring.audit_key)
