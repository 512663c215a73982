"""The vault's tables. Content never lives here: parts point at sealed blobs and hold only
their wrapped data key. Changes to these models need an Alembic migration (vault/migrations)."""

from __future__ import annotations

import enum
import uuid
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    DateTime,
    Enum,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Text,
    TypeDecorator,
    UniqueConstraint,
    Uuid,
)
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

ADDRESS = 320  # RFC 5321: 64 local + @ + 255 domain


def utcnow() -> datetime:
    return datetime.now(UTC)


class UtcDateTime(TypeDecorator[datetime]):
    """Always timezone-aware UTC, also on SQLite (which stores no zone)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to the vault; use an aware UTC datetime")
        return value.astimezone(UTC)

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention={
        "ix": "ix_%(table_name)s_%(column_0_N_name)s",
        "uq": "uq_%(table_name)s_%(column_0_N_name)s",
        "ck": "ck_%(table_name)s_%(constraint_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
    })


class MessageState(enum.StrEnum):
    ACTIVE = "active"
    RETRACTED = "retracted"
    EXPIRED = "expired"
    HELD = "held"  # kept for its sender's decision (a DLP hold): never readable by anyone


class DeliveryMethod(enum.StrEnum):
    PORTAL = "portal"
    TLS = "tls"
    SMIME = "smime"
    PGP = "pgp"
    INTERNAL = "internal"


class PartKind(enum.StrEnum):
    ORIGINAL = "original"      # the message as the sender's MTA handed it over
    TEXT = "text"
    HTML = "html"
    ATTACHMENT = "attachment"
    INLINE = "inline"          # an image referenced from the HTML body by Content-ID


def _enum(kind: type[enum.Enum], name: str) -> Enum:
    # Stored as plain strings with a CHECK: portable, and readable in the database.
    return Enum(kind, name=name, native_enum=False, length=16,
                values_callable=lambda members: [m.value for m in members])


class SecureMessage(Base):
    __tablename__ = "secure_messages"

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    sender: Mapped[str] = mapped_column(String(ADDRESS), index=True)
    sender_name: Mapped[str] = mapped_column(String(200), default="")
    subject: Mapped[str] = mapped_column(Text, default="")
    header_message_id: Mapped[str | None] = mapped_column(String(998))
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow, index=True)
    expires_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    state: Mapped[MessageState] = mapped_column(_enum(MessageState, "message_state"),
                                                default=MessageState.ACTIVE)
    state_changed_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    # A secure reply written in the portal points at the message it answers.
    in_reply_to_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("secure_messages.id", ondelete="SET NULL"), index=True)

    recipients: Mapped[list[Recipient]] = relationship(
        back_populates="message", cascade="all, delete-orphan", order_by="Recipient.id")
    parts: Mapped[list[Part]] = relationship(
        back_populates="message", cascade="all, delete-orphan", order_by="Part.position")

    def is_readable(self, now: datetime) -> bool:
        if self.state is not MessageState.ACTIVE:
            return False
        return self.expires_at is None or now < self.expires_at


class Recipient(Base):
    __tablename__ = "recipients"
    __table_args__ = (UniqueConstraint("message_id", "address"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    message_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("secure_messages.id", ondelete="CASCADE"))
    address: Mapped[str] = mapped_column(String(ADDRESS), index=True)
    delivery_method: Mapped[DeliveryMethod] = mapped_column(
        _enum(DeliveryMethod, "delivery_method"), default=DeliveryMethod.PORTAL)
    first_opened_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    last_opened_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    downloads: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    # An extra check the sender may set for this recipient; the answer is stored hashed.
    question: Mapped[str | None] = mapped_column(Text)
    answer_hash: Mapped[str | None] = mapped_column(String(255))
    answer_failures: Mapped[int] = mapped_column(Integer, default=0, server_default="0")

    message: Mapped[SecureMessage] = relationship(back_populates="recipients")


class Part(Base):
    """A body or attachment: metadata here, content sealed in the blob store."""

    __tablename__ = "parts"

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    message_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("secure_messages.id", ondelete="CASCADE"), index=True)
    position: Mapped[int] = mapped_column(Integer, default=0)
    kind: Mapped[PartKind] = mapped_column(_enum(PartKind, "part_kind"))
    content_type: Mapped[str] = mapped_column(String(255), default="application/octet-stream")
    filename: Mapped[str | None] = mapped_column(String(255))
    content_id: Mapped[str | None] = mapped_column(String(255))
    size: Mapped[int] = mapped_column(BigInteger)
    # Where the sealed bytes are: a blob file, shared by the parts deposited together.
    blob: Mapped[str] = mapped_column(String(255), index=True)
    blob_offset: Mapped[int] = mapped_column(BigInteger, default=0)
    blob_length: Mapped[int] = mapped_column(BigInteger)
    key_version: Mapped[int] = mapped_column(Integer, index=True)
    wrapped_key: Mapped[bytes] = mapped_column(LargeBinary(128))
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)
    # For an HTML body: how many remote images the sanitiser blocks, counted at the first
    # opening, so the message page need not open and sanitise the body every time.
    remote_images: Mapped[int | None] = mapped_column(Integer)

    message: Mapped[SecureMessage] = relationship(back_populates="parts")


class PortalAccount(Base):
    __tablename__ = "portal_accounts"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    address: Mapped[str] = mapped_column(String(ADDRESS), unique=True)
    password_hash: Mapped[str | None] = mapped_column(String(255))
    verified_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)
    failed_logins: Mapped[int] = mapped_column(Integer, default=0)
    locked_until: Mapped[datetime | None] = mapped_column(UtcDateTime)
    # The TOTP secret, wrapped under the keyring like a data key (the server must read it).
    totp_key_version: Mapped[int | None] = mapped_column(Integer)
    totp_wrapped: Mapped[bytes | None] = mapped_column(LargeBinary(128))
    totp_enabled_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    totp_last_step: Mapped[int | None] = mapped_column(BigInteger)  # no code counts twice

    @property
    def has_password(self) -> bool:
        return self.password_hash is not None

    @property
    def has_totp(self) -> bool:
        return self.totp_enabled_at is not None


class RecoveryCode(Base):
    """Single-use codes that stand in for the authenticator; only digests are stored."""

    __tablename__ = "recovery_codes"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    account_id: Mapped[int] = mapped_column(
        ForeignKey("portal_accounts.id", ondelete="CASCADE"), index=True)
    digest: Mapped[str] = mapped_column(String(64), unique=True)
    used_at: Mapped[datetime | None] = mapped_column(UtcDateTime)


class PortalSession(Base):
    """A signed-in browser. The cookie carries a random secret; this row is what it proves:
    an address, when a second factor was passed, which recipient questions were answered."""

    __tablename__ = "portal_sessions"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    digest: Mapped[str] = mapped_column(String(64), unique=True)
    address: Mapped[str] = mapped_column(String(ADDRESS), index=True)
    account_id: Mapped[int | None] = mapped_column(
        ForeignKey("portal_accounts.id", ondelete="CASCADE"))
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)
    seen_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(UtcDateTime)
    mfa_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    ended_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    answered: Mapped[list[int]] = mapped_column(JSON, default=list)


class AccessToken(Base):
    """A secret carried by a link or a session: only its digest is stored."""

    __tablename__ = "access_tokens"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    digest: Mapped[str] = mapped_column(String(64), unique=True)
    purpose: Mapped[str] = mapped_column(String(32))
    message_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("secure_messages.id", ondelete="CASCADE"), index=True)
    recipient_id: Mapped[int | None] = mapped_column(
        ForeignKey("recipients.id", ondelete="CASCADE"))
    account_id: Mapped[int | None] = mapped_column(
        ForeignKey("portal_accounts.id", ondelete="CASCADE"))
    # For short codes typed by a person: whose code it is, and how many wrong guesses so far.
    address: Mapped[str | None] = mapped_column(String(ADDRESS), index=True)
    attempts: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(UtcDateTime)
    used_at: Mapped[datetime | None] = mapped_column(UtcDateTime)


class AuditEvent(Base):
    """Append-only; `digest` chains each event to the one before (see vault/audit.py)."""

    __tablename__ = "audit_events"

    seq: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    at: Mapped[datetime] = mapped_column(UtcDateTime, index=True)
    actor: Mapped[str] = mapped_column(String(ADDRESS))
    action: Mapped[str] = mapped_column(String(64), index=True)
    object_type: Mapped[str] = mapped_column(String(32), default="")
    # An address, a message id, a key's kind and fingerprint: as long as an address.
    object_id: Mapped[str] = mapped_column(String(ADDRESS), default="")
    details: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    previous: Mapped[str] = mapped_column(String(64), unique=True)
    digest: Mapped[str] = mapped_column(String(64))


class AuditHead(Base):
    """One row: the newest event. Updating it first serialises appends on every database."""

    __tablename__ = "audit_head"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    seq: Mapped[int] = mapped_column(Integer)
    digest: Mapped[str] = mapped_column(String(64))


class HoldDecision(enum.StrEnum):
    SENT_SECURELY = "sent_securely"
    SENT_AS_IS = "sent_as_is"
    DISCARDED = "discarded"
    EXPIRED = "expired"


class Hold(Base):
    """A message a DLP policy quarantined until its sender decides (vault/holds.py). The
    content is a HELD secure message; this row keeps what the sender is shown: the masked
    report, never a found value. The id is what the sender's signed link names."""

    __tablename__ = "holds"

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    # Null once the content is gone: handed over, discarded or expired.
    message_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("secure_messages.id", ondelete="SET NULL"), index=True)
    sender: Mapped[str] = mapped_column(String(ADDRESS), index=True)
    recipients: Mapped[list[str]] = mapped_column(JSON, default=list)
    subject: Mapped[str] = mapped_column(Text, default="")
    policies: Mapped[list[str]] = mapped_column(JSON, default=list)  # the names
    findings: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)  # the masked report
    allow_send_as_is: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(UtcDateTime, index=True)
    decision: Mapped[HoldDecision | None] = mapped_column(_enum(HoldDecision, "hold_decision"))
    decided_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    # While a decision is being carried out (mail handed to the MTA), a second one waits;
    # a claim left by a crash lapses, and the hold can be decided again.
    claimed_until: Mapped[datetime | None] = mapped_column(UtcDateTime)


class KeyKind(enum.StrEnum):
    SMIME = "smime"  # an X.509 certificate
    PGP = "pgp"      # an OpenPGP public key


class RecipientKey(Base):
    """A recipient's public S/MIME certificate or OpenPGP key, for delivery encrypted to them.
    Public material: stored as is. Imported by an administrator, harvested from signed mail,
    or found by Web Key Directory (`source`)."""

    __tablename__ = "recipient_keys"
    __table_args__ = (UniqueConstraint("kind", "fingerprint", "address"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    address: Mapped[str] = mapped_column(String(ADDRESS), index=True)
    kind: Mapped[KeyKind] = mapped_column(_enum(KeyKind, "key_kind"))
    fingerprint: Mapped[str] = mapped_column(String(128))
    material: Mapped[bytes] = mapped_column(LargeBinary)
    not_after: Mapped[datetime | None] = mapped_column(UtcDateTime)
    source: Mapped[str] = mapped_column(String(16), default="import")
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)


class TlsVerdict(Base):
    """What the last probe of a recipient domain found (sealgate.routing.probe): shared by
    every server process, used until `expires_at` (the record TTLs, at most a day)."""

    __tablename__ = "tls_verdicts"

    domain: Mapped[str] = mapped_column(String(255), primary_key=True)
    qualifies: Mapped[bool] = mapped_column(Boolean)
    source: Mapped[str | None] = mapped_column(String(16))  # mta-sts, dane, starttls-probe
    evidence: Mapped[list[str]] = mapped_column(JSON, default=list)
    checked_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(UtcDateTime)


class TlsDeliveryState(enum.StrEnum):
    SENT = "sent"            # handed to the MTA; its report has not come yet
    RETRY = "retry"          # not delivered yet: tried again at next_attempt_at
    DELIVERED = "delivered"  # the recipient's server took it over verified TLS
    FAILED = "failed"        # refused for good (no such mailbox); the sender was told
    PORTAL = "portal"        # not delivered in time: the recipient got the portal instead


class TlsDelivery(Base):
    """One recipient of a message sent as is over verified TLS. The content stays sealed in
    the message until the delivery is settled, for the retries and the portal fallback. Only
    a digest of the envelope id of the latest attempt is kept: the delivery report names
    the id, and a report cannot be forged without it."""

    __tablename__ = "tls_deliveries"
    __table_args__ = (UniqueConstraint("message_id", "recipient"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    message_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("secure_messages.id", ondelete="CASCADE"), index=True)
    recipient: Mapped[str] = mapped_column(String(ADDRESS))
    level: Mapped[str] = mapped_column(String(16))  # verified-tls or dane (routing.mta)
    state: Mapped[TlsDeliveryState] = mapped_column(
        _enum(TlsDeliveryState, "tls_delivery_state"), default=TlsDeliveryState.SENT)
    envelope_digest: Mapped[str] = mapped_column(String(64), index=True)
    attempts: Mapped[int] = mapped_column(Integer, default=1)
    deadline: Mapped[datetime] = mapped_column(UtcDateTime)
    next_attempt_at: Mapped[datetime | None] = mapped_column(UtcDateTime, index=True)
    claimed_until: Mapped[datetime | None] = mapped_column(UtcDateTime)
    detail: Mapped[str] = mapped_column(Text, default="")  # the last report, in one line
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)


class Administrator(Base):
    """Someone who runs Sealgate: signs in to the admin console with a password and an
    authenticator app (always: TOTP is enforced), or with the organisation's Microsoft
    sign-in when that is configured. Separate from portal accounts: a recipient can never
    become an administrator by registering."""

    __tablename__ = "administrators"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    address: Mapped[str] = mapped_column(String(ADDRESS), unique=True)
    password_hash: Mapped[str | None] = mapped_column(String(255))
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)
    disabled_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    failed_logins: Mapped[int] = mapped_column(Integer, default=0)
    locked_until: Mapped[datetime | None] = mapped_column(UtcDateTime)
    totp_key_version: Mapped[int | None] = mapped_column(Integer)
    totp_wrapped: Mapped[bytes | None] = mapped_column(LargeBinary(128))
    totp_enabled_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    totp_last_step: Mapped[int | None] = mapped_column(BigInteger)
    # The Microsoft account (its `oid`, in the organisation's tenant) that signs in as this
    # administrator: bound at the first Microsoft sign-in, after the authenticator code.
    microsoft_oid: Mapped[str | None] = mapped_column(String(64), unique=True)

    @property
    def has_totp(self) -> bool:
        return self.totp_enabled_at is not None


class AdminSession(Base):
    """A signed-in administrator's browser; the cookie holds a random secret, this its
    digest. `mfa_at` is set once the authenticator code was checked: until then the session
    may only finish signing in."""

    __tablename__ = "admin_sessions"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    digest: Mapped[str] = mapped_column(String(64), unique=True)
    admin_id: Mapped[int] = mapped_column(
        ForeignKey("administrators.id", ondelete="CASCADE"), index=True)
    how: Mapped[str] = mapped_column(String(16), default="password")  # password, microsoft
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)
    seen_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(UtcDateTime)
    mfa_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    ended_at: Mapped[datetime | None] = mapped_column(UtcDateTime)


class ApiKey(Base):
    """A key for the admin JSON API: shown once, stored as a digest, limited to its scopes,
    revocable. `prefix` (not secret) lets an administrator tell keys apart."""

    __tablename__ = "api_keys"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    prefix: Mapped[str] = mapped_column(String(16), unique=True)
    digest: Mapped[str] = mapped_column(String(64), unique=True)
    name: Mapped[str] = mapped_column(String(100))
    scopes: Mapped[list[str]] = mapped_column(JSON, default=list)
    created_by: Mapped[str] = mapped_column(String(ADDRESS))
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)
    expires_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    last_used_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    revoked_at: Mapped[datetime | None] = mapped_column(UtcDateTime)


class SettingsRevision(Base):
    """The settings administrators changed in the console or the API, over the file: each
    change is a new row holding the whole overlay (sealgate/settings.py), so the newest row
    is what runs and the older ones are its history. The server and the milter poll for a
    newer one and reload."""

    __tablename__ = "settings_revisions"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)
    actor: Mapped[str] = mapped_column(String(ADDRESS))
    overlay: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    # The revision this change was made on: unique, so of two changes made on the same
    # revision at once only one is stored (the other is told to reload).
    parent: Mapped[int] = mapped_column(Integer, unique=True)


Index("ix_audit_events_object", AuditEvent.object_type, AuditEvent.object_id)
