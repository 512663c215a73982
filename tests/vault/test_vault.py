"""The vault on SQLite and on PostgreSQL: every test runs on both."""

from __future__ import annotations

import hashlib
import threading
import uuid
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select, update

from sealgate.errors import KeyringError, SealError, VaultError
from sealgate.vault.models import (
    AccessToken,
    DeliveryMethod,
    MessageState,
    Part,
    PartKind,
    PortalAccount,
    SecureMessage,
)
from sealgate.vault.vault import NewMessage, NewPart, NewRecipient, Vault

BODY = b"Patient: Jane Doe, MRN 12345678, diagnosis attached."
ATTACHMENT = bytes(range(256)) * 1000


def deposit(vault: Vault, **overrides: object) -> uuid.UUID:
    fields: dict[str, object] = {
        "sender": "doctor@example.org",
        "sender_name": "Dr. Who",
        "subject": "Lab results",
        "recipients": [NewRecipient("patient@gmail.test"),
                       NewRecipient("nurse@example.org", DeliveryMethod.INTERNAL)],
        "parts": [NewPart(PartKind.TEXT, BODY, "text/plain"),
                  NewPart(PartKind.ATTACHMENT, ATTACHMENT, "application/pdf", "results.pdf")],
        "header_message_id": "<abc@example.org>",
    }
    fields.update(overrides)
    return vault.deposit(NewMessage(**fields), actor="doctor@example.org")  # type: ignore[arg-type]


def parts_of(vault: Vault, message_id: uuid.UUID) -> list[Part]:
    return vault.parts(message_id)


def new_message(body: bytes = BODY) -> NewMessage:
    return NewMessage("a@example.org", "s", [NewRecipient("b@x.test")],
                      [NewPart(PartKind.TEXT, body)])


def blob_files(vault: Vault) -> list[str]:
    return sorted(str(p.relative_to(vault.blobs.root))
                  for p in vault.blobs.root.rglob("*") if p.is_file())


def test_deposit_round_trip(vault: Vault) -> None:
    expires = datetime.now(UTC) + timedelta(days=30)
    message_id = deposit(vault, expires_at=expires)
    with vault.database.session() as session:
        message = vault.message(session, message_id)
        assert (message.sender, message.subject, message.state) == (
            "doctor@example.org", "Lab results", MessageState.ACTIVE)
        assert message.created_at.tzinfo is not None
        assert abs(message.expires_at - expires) < timedelta(seconds=1)  # type: ignore[operator]
        assert [(r.address, r.delivery_method) for r in message.recipients] == [
            ("patient@gmail.test", DeliveryMethod.PORTAL),
            ("nurse@example.org", DeliveryMethod.INTERNAL)]
        text, attachment = message.parts
    assert (text.kind, text.size) == (PartKind.TEXT, len(BODY))
    assert attachment.filename == "results.pdf"
    assert vault.read_part(text) == BODY
    assert b"".join(vault.stream_part(attachment)) == ATTACHMENT


def test_content_is_encrypted_on_disk(vault: Vault) -> None:
    text, attachment = parts_of(vault, deposit(vault))
    assert text.blob == attachment.blob  # one file per deposit
    on_disk = (vault.blobs.root / text.blob).read_bytes()
    for part, plain in ((text, BODY), (attachment, ATTACHMENT)):
        assert plain not in on_disk and plain[:32] not in on_disk
        assert part.blob_length > len(plain)
    assert len(on_disk) == text.blob_length + attachment.blob_length
    assert text.wrapped_key != attachment.wrapped_key  # a data key each


def test_one_changed_byte_in_a_blob_is_a_clear_error(vault: Vault) -> None:
    text, attachment = parts_of(vault, deposit(vault))
    path = vault.blobs.root / text.blob
    sealed = bytearray(path.read_bytes())
    sealed[text.blob_offset + text.blob_length // 2] ^= 0x40
    path.write_bytes(bytes(sealed))
    with pytest.raises(SealError, match="failed authentication"):
        vault.read_part(text)
    assert vault.read_part(attachment) == ATTACHMENT  # its neighbour is unharmed


def test_a_truncated_blob_file_is_a_clear_error(vault: Vault) -> None:
    _, attachment = parts_of(vault, deposit(vault))
    path = vault.blobs.root / attachment.blob
    path.write_bytes(path.read_bytes()[:-10])
    with pytest.raises(VaultError, match="shorter than the database says"):
        vault.read_part(attachment)
    with pytest.raises(VaultError, match="shorter than the database says"):
        b"".join(vault.stream_part(attachment))
    path.unlink()
    with pytest.raises(VaultError, match="is missing"):
        vault.read_part(attachment)


def test_sealed_bytes_moved_to_another_part_do_not_open(vault: Vault) -> None:
    first, _ = parts_of(vault, deposit(vault))
    second, _ = parts_of(vault, deposit(vault))
    with vault.database.writing() as session:  # point the second part at the first's bytes
        session.execute(update(Part).where(Part.id == second.id).values(
            blob=first.blob, blob_offset=first.blob_offset, blob_length=first.blob_length))
    (moved, _) = parts_of(vault, second.message_id)
    with pytest.raises(SealError):
        vault.read_part(moved)


def test_deposit_many_shares_one_file_and_each_opens(vault: Vault) -> None:
    bodies = [f"message {n}".encode() * (n + 1) for n in range(5)]
    ids = vault.deposit_many([new_message(body) for body in bodies], "a@example.org")
    assert len(blob_files(vault)) == 1
    for message_id, body in zip(ids, bodies, strict=True):
        (part,) = parts_of(vault, message_id)
        assert vault.read_part(part) == body
    assert vault.verify_audit().events == 5


def test_delete_message_removes_a_file_only_when_no_part_needs_it(vault: Vault) -> None:
    first, second = vault.deposit_many([new_message(b"one"), new_message(b"two")], "a")
    alone = vault.deposit(new_message(b"three"), "a")
    assert len(blob_files(vault)) == 2
    vault.delete_message(alone, "admin", "test")
    assert len(blob_files(vault)) == 1
    vault.delete_message(first, "admin", "test")
    assert len(blob_files(vault)) == 1
    (part,) = parts_of(vault, second)
    assert vault.read_part(part) == b"two"
    vault.delete_message(second, "admin", "test")
    assert blob_files(vault) == []
    with pytest.raises(VaultError, match="no secure message"):
        vault.delete_message(second, "admin", "test")
    assert vault.verify_audit().intact


def test_a_wrapped_key_moved_to_another_part_does_not_open(vault: Vault) -> None:
    text, attachment = parts_of(vault, deposit(vault))
    with vault.database.writing() as session:
        session.execute(update(Part).where(Part.id == attachment.id)
                        .values(wrapped_key=text.wrapped_key))
    (moved,) = [p for p in parts_of(vault, text.message_id) if p.id == attachment.id]
    with pytest.raises(SealError, match="wrapped data key failed authentication"):
        vault.read_part(moved)


def test_a_failed_deposit_leaves_nothing_behind(vault: Vault) -> None:
    message_id = deposit(vault)
    before = blob_files(vault)
    with pytest.raises(Exception, match="(?i)unique|duplicate"):
        deposit(vault, id=message_id)  # same primary key: the commit fails
    assert blob_files(vault) == before


def test_rotation_new_data_uses_new_key_old_data_still_opens(vault: Vault) -> None:
    old_text, _ = parts_of(vault, deposit(vault))
    assert vault.rotate_keys("admin") == 2
    new_text, _ = parts_of(vault, deposit(vault))
    assert (old_text.key_version, new_text.key_version) == (1, 2)
    assert vault.read_part(old_text) == BODY
    assert vault.read_part(new_text) == BODY
    assert vault.key_versions_in_use() == {1: 2, 2: 2}


def _blob_digests(vault: Vault) -> dict[str, str]:
    return {str(p): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in vault.blobs.root.rglob("*") if p.is_file()}


def test_rewrap_moves_every_data_key_without_touching_content(vault: Vault) -> None:
    ids = [deposit(vault) for _ in range(3)]
    vault.rotate_keys("admin")
    before = _blob_digests(vault)
    assert vault.rewrap("admin", batch=2) == 6
    assert _blob_digests(vault) == before
    assert vault.key_versions_in_use() == {2: 6}
    vault.retire_key(1, "admin")
    assert 1 not in vault.keyring.keys
    for message_id in ids:
        text, attachment = parts_of(vault, message_id)
        assert vault.read_part(text) == BODY and vault.read_part(attachment) == ATTACHMENT
    assert vault.rewrap("admin") == 0


def test_a_version_in_use_cannot_be_retired(vault: Vault) -> None:
    deposit(vault)
    vault.rotate_keys("admin")
    with pytest.raises(KeyringError, match="still wraps 2 data key"):
        vault.retire_key(1, "admin")
    assert 1 in vault.keyring.keys


def test_data_key_under_a_version_that_is_gone(vault: Vault) -> None:
    text, _ = parts_of(vault, deposit(vault))
    vault.keyring.rotate().retire(1)  # behind the vault's back, as a bad restore would
    with pytest.raises(KeyringError, match="key version 1, which keyring .* no longer holds"):
        vault.read_part(text)
    with pytest.raises(KeyringError, match="version 1"):
        vault.rewrap("admin")
    assert vault.key_versions_in_use() == {1: 2}  # nothing was half-changed


def test_states_expiry_tokens_and_accounts(vault: Vault) -> None:
    now = datetime.now(UTC)
    message_id = deposit(vault, expires_at=now + timedelta(hours=1))
    with vault.database.writing() as session:
        message = vault.message(session, message_id)
        assert message.is_readable(now)
        assert not message.is_readable(now + timedelta(hours=2))
        message.state = MessageState.RETRACTED
        session.add(PortalAccount(address="patient@gmail.test", password_hash="$argon2id$x"))
        session.add(AccessToken(digest="d" * 64, purpose="link", message_id=message_id,
                                expires_at=now + timedelta(days=1)))
    with vault.database.session() as session:
        assert not vault.message(session, message_id).is_readable(now)
        token = session.scalars(select(AccessToken)).one()
        assert token.message_id == message_id and token.expires_at.tzinfo is not None


def test_deleting_a_message_removes_its_rows(vault: Vault) -> None:
    message_id = deposit(vault)
    with vault.database.writing() as session:
        session.delete(vault.message(session, message_id))
    with vault.database.session() as session:
        assert session.get(SecureMessage, message_id) is None
        assert session.scalars(select(Part).where(Part.message_id == message_id)).all() == []


def test_concurrent_deposits_keep_one_unbroken_audit_chain(vault: Vault) -> None:
    errors: list[BaseException] = []

    def worker() -> None:
        try:
            for _ in range(5):
                deposit(vault)
        except BaseException as error:
            errors.append(error)

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    report = vault.verify_audit()
    assert report.intact, report.problems
    assert report.events == 20
