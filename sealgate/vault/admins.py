"""Administrators of the console and the API keys of its JSON API.

Administrators sign in with a password (argon2id) and, always, an authenticator app: TOTP is
enforced, and a session that has not passed it may only finish signing in. Failures count
towards a lockout. Or they sign in with the organisation's Microsoft account, bound to them
by its object id after an authenticator code. API keys are random, shown once, stored as a
SHA-256 digest, limited to their scopes and revocable. Every function works inside the
caller's database session and takes the time as a value."""

from __future__ import annotations

import enum
import os
import secrets
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from sealgate.crypto.keyring import Keyring
from sealgate.crypto.secrets import hash_password, new_token, token_digest, verify_password
from sealgate.vault.accounts import matching_step, normalise_address
from sealgate.vault.models import Administrator, AdminSession, ApiKey

LOCKOUT_FAILURES = 5
LOCKOUT_MINUTES = 15
IDLE_MINUTES = 30     # an administrator's session ends after this long without a request
SESSION_HOURS = 12    # and this long after sign-in, however active
_DUMMY_HASH = hash_password(os.urandom(16).hex())

# What an API key may do. Reading never implies writing; there is no scope to manage keys:
# that stays in the console, behind a person's password and authenticator.
SCOPES: dict[str, str] = {
    "settings:read": "read the organisation, branding, DLP, routing and portal settings",
    "settings:write": "change those settings",
    "keys:read": "list recipients' certificates and keys",
    "keys:write": "import and remove recipients' certificates and keys",
    "quarantine:read": "list held messages",
    "quarantine:write": "release, send securely or discard held messages",
    "messages:read": "look up messages by sender, recipient and date",
    "messages:write": "retract messages",
    "audit:read": "search, export and verify the audit trail",
}
KEY_PREFIX = "sgk_"


class Check(enum.Enum):
    OK = "ok"
    WRONG = "wrong"
    LOCKED = "locked"


class AdminError(ValueError):
    """A request about administrators or keys that cannot be carried out, said plainly."""


# -- administrators ------------------------------------------------------------------------

def find(session: Session, address: str) -> Administrator | None:
    return session.scalars(select(Administrator).where(
        Administrator.address == normalise_address(address))).first()


def add(session: Session, address: str, password: str | None) -> Administrator:
    address = normalise_address(address)
    if "@" not in address:
        raise AdminError(f"{address!r} is not an email address")
    if find(session, address) is not None:
        raise AdminError(f"{address} is already an administrator")
    admin = Administrator(address=address, failed_logins=0,
                          password_hash=hash_password(password) if password else None)
    session.add(admin)
    session.flush()
    return admin


def set_password(session: Session, admin: Administrator, password: str, now: datetime) -> None:
    admin.password_hash = hash_password(password)
    admin.failed_logins = 0
    admin.locked_until = None
    end_sessions(session, admin, now)


def reset_totp(session: Session, admin: Administrator, now: datetime) -> None:
    """The authenticator is lost (or the administrator's sign-in is in doubt): the next
    sign-in enrols a new one, and the Microsoft account is unbound, to be bound again only
    after that new authenticator's code."""
    admin.totp_key_version = admin.totp_wrapped = admin.totp_enabled_at = None
    admin.totp_last_step = None
    admin.microsoft_oid = None
    end_sessions(session, admin, now)


def check_password(admin: Administrator | None, password: str, now: datetime) -> Check:
    if admin is None or admin.password_hash is None or admin.disabled_at is not None:
        verify_password(_DUMMY_HASH, password)  # the same work for an unknown address
        return Check.WRONG
    if is_locked(admin, now):
        return Check.LOCKED
    if not verify_password(admin.password_hash, password):
        return _failed(admin, now)
    admin.failed_logins = 0
    return Check.OK


def is_locked(admin: Administrator, now: datetime) -> bool:
    return admin.locked_until is not None and now < admin.locked_until


def _failed(admin: Administrator, now: datetime) -> Check:
    admin.failed_logins = (admin.failed_logins or 0) + 1
    if admin.failed_logins >= LOCKOUT_FAILURES:
        admin.failed_logins = 0
        admin.locked_until = now + timedelta(minutes=LOCKOUT_MINUTES)
        return Check.LOCKED
    return Check.WRONG


def _totp_context(admin: Administrator) -> bytes:
    return f"admin-totp/{admin.id}".encode()


def enable_totp(keyring: Keyring, admin: Administrator, secret: str, code: str,
                now: datetime) -> bool:
    """Turn the authenticator on once it shows the right code."""
    step = matching_step(secret, code, now, after=None)
    if step is None:
        return False
    admin.totp_key_version, admin.totp_wrapped = keyring.wrap(secret.encode("ascii"),
                                                              _totp_context(admin))
    admin.totp_enabled_at = now
    admin.totp_last_step = step
    return True


def check_totp(keyring: Keyring, admin: Administrator, typed: str, now: datetime) -> Check:
    """An authenticator code, each accepted once."""
    if admin.totp_wrapped is None or admin.totp_key_version is None:
        return Check.WRONG
    if is_locked(admin, now):
        return Check.LOCKED
    secret = keyring.unwrap(admin.totp_key_version, admin.totp_wrapped,
                            _totp_context(admin)).decode("ascii")
    step = matching_step(secret, "".join(typed.split()), now, after=admin.totp_last_step)
    if step is None:
        return _failed(admin, now)
    admin.totp_last_step = step
    admin.failed_logins = 0
    return Check.OK


# -- Microsoft sign-in ---------------------------------------------------------------------

class MicrosoftRefusal(enum.Enum):
    """Why a Microsoft account does not sign in as an administrator (for the audit trail)."""

    NOBODY = "no administrator with this account"
    DISABLED = "disabled"
    OTHER_ACCOUNT = "the administrator is bound to another Microsoft account"
    NO_AUTHENTICATOR = "no authenticator to confirm the first Microsoft sign-in"
    TAKEN = "the Microsoft account is bound to another administrator"


class MicrosoftRefused(AdminError):
    def __init__(self, reason: MicrosoftRefusal, admin: Administrator | None = None) -> None:
        super().__init__(reason.value)
        self.reason = reason
        self.address = admin.address if admin is not None else None


@dataclass(frozen=True)
class MicrosoftMatch:
    """The administrator a Microsoft account signs in as; `binding`: the account is not
    bound yet, and will be once this sign-in has passed the authenticator code."""

    admin: Administrator
    binding: bool


def find_by_microsoft(session: Session, oid: str) -> Administrator | None:
    return session.scalars(select(Administrator).where(
        Administrator.microsoft_oid == oid)).first()


def find_for_microsoft(session: Session, oid: str, names: Iterable[str]) -> MicrosoftMatch:
    """The administrator that the Microsoft account `oid` (its object id in the
    organisation's tenant; its names, `names`) signs in as, or MicrosoftRefused.

    The account bound to an administrator is that administrator, whatever its names say
    now: anyone who may rename users in the tenant can change the names, not the object
    id. An account bound to nobody is matched by its names, and only to an administrator
    bound to no other account who already has an authenticator: that sign-in must pass the
    authenticator code whatever Microsoft says, and only then is the account bound
    (`bind_microsoft`)."""
    bound = find_by_microsoft(session, oid)
    if bound is not None:
        _usable(bound)
        return MicrosoftMatch(bound, binding=False)
    named = next((found for found in (find(session, name) for name in names)
                  if found is not None), None)
    if named is None:
        raise MicrosoftRefused(MicrosoftRefusal.NOBODY)
    _usable(named)
    if named.microsoft_oid is not None:
        raise MicrosoftRefused(MicrosoftRefusal.OTHER_ACCOUNT, named)
    if not named.has_totp:
        raise MicrosoftRefused(MicrosoftRefusal.NO_AUTHENTICATOR, named)
    return MicrosoftMatch(named, binding=True)


def _usable(admin: Administrator) -> None:
    if admin.disabled_at is not None:
        raise MicrosoftRefused(MicrosoftRefusal.DISABLED, admin)


def bind_microsoft(session: Session, admin: Administrator, oid: str) -> None:
    """Bind the Microsoft account `oid` to the administrator (once its sign-in passed the
    authenticator code). Refused if, since it was matched, the account was bound to another
    administrator or the administrator to another account; the unique constraint settles
    a race between two sign-ins (IntegrityError here, at the flush)."""
    if admin.microsoft_oid == oid:
        return
    if admin.microsoft_oid is not None:
        raise MicrosoftRefused(MicrosoftRefusal.OTHER_ACCOUNT, admin)
    if find_by_microsoft(session, oid) is not None:
        raise MicrosoftRefused(MicrosoftRefusal.TAKEN, admin)
    admin.microsoft_oid = oid
    session.flush()


# -- sessions ------------------------------------------------------------------------------

@dataclass(frozen=True)
class SignedIn:
    session_id: int
    admin_id: int
    address: str
    how: str
    second_factor: bool
    has_totp: bool


def start_session(session: Session, admin: Administrator, how: str, now: datetime,
                  second_factor: bool = False) -> str:
    secret = new_token()
    session.add(AdminSession(digest=token_digest(secret), admin_id=admin.id, how=how,
                             created_at=now, seen_at=now,
                             expires_at=now + timedelta(hours=SESSION_HOURS),
                             mfa_at=now if second_factor else None))
    return secret


def find_session(session: Session, secret: str, now: datetime) -> SignedIn | None:
    row = session.execute(
        select(AdminSession, Administrator)
        .join(Administrator, Administrator.id == AdminSession.admin_id)
        .where(AdminSession.digest == token_digest(secret))).one_or_none()
    if row is None:
        return None
    found, admin = row
    if found.ended_at is not None or found.expires_at <= now or admin.disabled_at is not None \
            or found.seen_at + timedelta(minutes=IDLE_MINUTES) <= now:
        return None
    found.seen_at = now
    return SignedIn(found.id, admin.id, admin.address, found.how, found.mfa_at is not None,
                    admin.has_totp)


def passed_second_factor(session: Session, session_id: int, now: datetime) -> None:
    session.execute(update(AdminSession).where(AdminSession.id == session_id)
                    .values(mfa_at=now))


def end_session(session: Session, session_id: int, now: datetime) -> None:
    session.execute(update(AdminSession).where(AdminSession.id == session_id,
                                               AdminSession.ended_at.is_(None))
                    .values(ended_at=now))


def end_sessions(session: Session, admin: Administrator, now: datetime) -> None:
    session.execute(update(AdminSession).where(AdminSession.admin_id == admin.id,
                                               AdminSession.ended_at.is_(None))
                    .values(ended_at=now))


# -- API keys ------------------------------------------------------------------------------

@dataclass(frozen=True)
class KeyHolder:
    """Who an API request is, once its key checked out."""

    key_id: int
    name: str
    prefix: str
    scopes: frozenset[str]

    @property
    def actor(self) -> str:
        return f"api-key:{self.prefix}"


def check_scopes(scopes: Iterable[str]) -> list[str]:
    chosen = sorted(set(scopes))
    if not chosen:
        raise AdminError("a key needs at least one scope")
    unknown = [s for s in chosen if s not in SCOPES]
    if unknown:
        raise AdminError(f"unknown scope {unknown[0]!r} (known: {', '.join(SCOPES)})")
    return chosen


def create_key(session: Session, name: str, scopes: Iterable[str], created_by: str,
               now: datetime, days: int | None = None) -> tuple[ApiKey, str]:
    """A new key and its secret, which is shown this once and never stored."""
    name = " ".join(name.split())
    if not 0 < len(name) <= 100:
        raise AdminError("a key needs a name of 1 to 100 characters")
    prefix = secrets.token_hex(4)
    token = f"{KEY_PREFIX}{prefix}_{new_token()}"
    key = ApiKey(prefix=prefix, digest=token_digest(token), name=name,
                 scopes=check_scopes(scopes), created_by=created_by, created_at=now,
                 expires_at=now + timedelta(days=days) if days else None)
    session.add(key)
    session.flush()
    return key, token


def find_key(session: Session, token: str, now: datetime) -> KeyHolder | None:
    """The live key for a presented token (revoked and expired keys are no keys)."""
    if not token.startswith(KEY_PREFIX):
        return None
    key = session.scalars(select(ApiKey).where(ApiKey.digest == token_digest(token))).first()
    if key is None or key.revoked_at is not None \
            or (key.expires_at is not None and key.expires_at <= now):
        return None
    if key.last_used_at is None or (now - key.last_used_at).total_seconds() >= 60:
        key.last_used_at = now
    return KeyHolder(key.id, key.name, key.prefix, frozenset(key.scopes or ()))


def revoke_key(session: Session, key_id: int, now: datetime) -> ApiKey:
    key = session.get(ApiKey, key_id)
    if key is None:
        raise AdminError("no such key")
    if key.revoked_at is None:
        key.revoked_at = now
    return key


def keys(session: Session) -> list[ApiKey]:
    return list(session.scalars(select(ApiKey).order_by(ApiKey.created_at.desc(),
                                                        ApiKey.id.desc())))
