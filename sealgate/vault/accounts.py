"""Who a portal visitor is: accounts, passwords with lockout, one-time codes by mail, TOTP with
recovery codes, sender-set questions, and the sessions that remember a proof.

Every function works inside the caller's database session and takes the time as a value, so
the rules can be tested without a web server. Secrets are random and only their digests (or
argon2id hashes, for what people choose) are stored; the TOTP secret, which the server must be
able to read, is wrapped under the keyring like a data key.
"""

from __future__ import annotations

import enum
import hmac
import os
from dataclasses import dataclass
from datetime import datetime, timedelta

import pyotp
from sqlalchemy import select, update
from sqlalchemy.orm import Session

from sealgate.config import PortalConfig
from sealgate.crypto.keyring import Keyring
from sealgate.crypto.secrets import (
    code_digest,
    hash_password,
    new_token,
    normalise_recovery_code,
    recovery_code,
    short_code,
    token_digest,
    verify_password,
)
from sealgate.vault.models import (
    AccessToken,
    PortalAccount,
    PortalSession,
    Recipient,
    RecoveryCode,
)
from sealgate.vault.tokens import find as find_token

LOGIN_CODE = "login_code"
VERIFY_ADDRESS = "verify_address"
PASSWORD_RESET = "password_reset"  # noqa: S105 - a token's purpose, not a password
RECOVERY_CODES = 10
SESSION_HOURS = 12  # a session ends this long after sign-in, however active
_TOUCH_SECONDS = 60  # how stale `seen_at` may get before a request writes it again
_DUMMY_HASH = hash_password(os.urandom(16).hex())  # equal work when the account is unknown


def normalise_address(address: str) -> str:
    return address.strip().lower()


class Check(enum.Enum):
    OK = "ok"
    WRONG = "wrong"
    LOCKED = "locked"
    UNVERIFIED = "unverified"


# -- accounts and passwords ------------------------------------------------------------------

def find_account(session: Session, address: str) -> PortalAccount | None:
    return session.scalars(select(PortalAccount).where(
        PortalAccount.address == normalise_address(address))).one_or_none()


def mailbox_proven(session: Session, address: str, now: datetime) -> PortalAccount:
    """The visitor showed they read this mailbox (a code or a link sent there). A password
    nobody has confirmed from the mailbox is dropped: it may have been set by someone else."""
    account = find_account(session, address)
    if account is None:
        account = PortalAccount(address=normalise_address(address), verified_at=now,
                                failed_logins=0)
        session.add(account)
        session.flush()
    elif account.verified_at is None:
        account.verified_at = now
        account.password_hash = None
    return account


def register(session: Session, address: str, password: str) -> PortalAccount | None:
    """A new account waiting for its address to be confirmed, or None when the address has
    one already (the caller then offers a password reset by mail instead, saying the same)."""
    if find_account(session, address) is not None:
        return None
    account = PortalAccount(address=normalise_address(address),
                            password_hash=hash_password(password), failed_logins=0)
    session.add(account)
    session.flush()
    return account


def confirm_registration(session: Session, account: PortalAccount, now: datetime) -> None:
    if account.verified_at is None:
        account.verified_at = now


def set_password(session: Session, account: PortalAccount, password: str,
                 now: datetime) -> None:
    """A new password ends every session the account had."""
    account.password_hash = hash_password(password)
    account.failed_logins = 0
    account.locked_until = None
    end_sessions(session, account, now)


def check_password(account: PortalAccount | None, password: str, policy: PortalConfig,
                   now: datetime) -> Check:
    if account is None or account.password_hash is None:
        verify_password(_DUMMY_HASH, password)
        return Check.WRONG
    if is_locked(account, now):
        return Check.LOCKED
    if not verify_password(account.password_hash, password):
        return _failed(account, policy, now)
    if account.verified_at is None:
        return Check.UNVERIFIED
    account.failed_logins = 0
    return Check.OK


def is_locked(account: PortalAccount, now: datetime) -> bool:
    return account.locked_until is not None and now < account.locked_until


def _failed(account: PortalAccount, policy: PortalConfig, now: datetime) -> Check:
    account.failed_logins = (account.failed_logins or 0) + 1
    if account.failed_logins >= policy.lockout_failures:
        account.failed_logins = 0
        account.locked_until = now + timedelta(minutes=policy.lockout_minutes)
        return Check.LOCKED
    return Check.WRONG


def needs_second_factor(account: PortalAccount | None, policy: PortalConfig) -> bool:
    return policy.require_mfa or (account is not None and account.has_totp)


# -- one-time codes by mail, and links ---------------------------------------------------

def issue_login_code(session: Session, address: str, pepper: bytes, policy: PortalConfig,
                     now: datetime) -> str:
    """A fresh code for this address; earlier unused codes stop working."""
    address = normalise_address(address)
    session.execute(update(AccessToken).where(
        AccessToken.purpose == LOGIN_CODE, AccessToken.address == address,
        AccessToken.used_at.is_(None)).values(used_at=now))
    code = short_code()
    session.add(AccessToken(digest=code_digest(pepper, address, code), purpose=LOGIN_CODE,
                            address=address, attempts=0,
                            expires_at=now + timedelta(minutes=policy.code_minutes)))
    return code


def redeem_login_code(session: Session, address: str, code: str, pepper: bytes,
                      policy: PortalConfig, now: datetime) -> bool:
    """True once for the right code within its life; each wrong guess uses up an attempt."""
    address = normalise_address(address)
    live = session.scalars(select(AccessToken).where(
        AccessToken.purpose == LOGIN_CODE, AccessToken.address == address,
        AccessToken.used_at.is_(None), AccessToken.expires_at > now)
        .order_by(AccessToken.id.desc()).limit(1)).one_or_none()
    if live is None:
        return False
    typed = "".join(code.split())
    if hmac.compare_digest(live.digest, code_digest(pepper, address, typed)):
        live.used_at = now
        return True
    live.attempts += 1
    if live.attempts >= policy.code_attempts:
        live.used_at = now
    return False


def issue_link(session: Session, purpose: str, account: PortalAccount, lifetime: timedelta,
               now: datetime) -> str:
    session.execute(update(AccessToken).where(
        AccessToken.purpose == purpose, AccessToken.account_id == account.id,
        AccessToken.used_at.is_(None)).values(used_at=now))
    secret = new_token()
    session.add(AccessToken(digest=token_digest(secret), purpose=purpose, account_id=account.id,
                            address=account.address, expires_at=now + lifetime))
    return secret


def link_account(session: Session, purpose: str, secret: str,
                 now: datetime) -> PortalAccount | None:
    """The account a live link is for, without spending the link."""
    found = find_token(session, secret, purpose, now)
    return session.get(PortalAccount, found.account_id) \
        if found is not None and found.account_id is not None else None


def redeem_link(session: Session, purpose: str, secret: str,
                now: datetime) -> PortalAccount | None:
    """The account a single-use link was for, or None when it is unknown, used or expired."""
    claimed = session.execute(update(AccessToken).where(
        AccessToken.digest == token_digest(secret), AccessToken.purpose == purpose,
        AccessToken.used_at.is_(None), AccessToken.expires_at > now)
        .values(used_at=now).returning(AccessToken.account_id)).scalar_one_or_none()
    return session.get(PortalAccount, claimed) if claimed is not None else None


# -- TOTP and recovery codes -------------------------------------------------------------

def new_totp_secret() -> str:
    return pyotp.random_base32()


def totp_uri(secret: str, address: str, issuer: str) -> str:
    return pyotp.TOTP(secret).provisioning_uri(name=address, issuer_name=issuer)


def _totp_context(account: PortalAccount) -> bytes:
    return f"totp/{account.id}".encode()


def enable_totp(session: Session, keyring: Keyring, account: PortalAccount, secret: str,
                code: str, now: datetime) -> list[str] | None:
    """Turn TOTP on once the visitor proves their app shows the right code; the recovery
    codes come back once, in the clear, and are stored only as digests."""
    step = matching_step(secret, code, now, after=None)
    if step is None:
        return None
    account.totp_key_version, account.totp_wrapped = keyring.wrap(
        secret.encode("ascii"), _totp_context(account))
    account.totp_enabled_at = now
    account.totp_last_step = step
    session.execute(update(RecoveryCode).where(RecoveryCode.account_id == account.id)
                    .values(used_at=now))
    codes = [recovery_code() for _ in range(RECOVERY_CODES)]
    session.add_all(RecoveryCode(account_id=account.id, digest=token_digest(c)) for c in codes)
    return codes


def check_second_factor(session: Session, keyring: Keyring, account: PortalAccount, typed: str,
                        policy: PortalConfig, now: datetime) -> Check:
    """An authenticator code (each accepted once) or an unused recovery code."""
    if account.totp_wrapped is None or account.totp_key_version is None:
        return Check.WRONG
    if is_locked(account, now):
        return Check.LOCKED
    cleaned = "".join(typed.split())
    if cleaned.isdigit():
        secret = keyring.unwrap(account.totp_key_version, account.totp_wrapped,
                                _totp_context(account)).decode("ascii")
        step = matching_step(secret, cleaned, now, after=account.totp_last_step)
        if step is not None:
            account.totp_last_step = step
            account.failed_logins = 0
            return Check.OK
    elif _use_recovery_code(session, account, cleaned, now):
        account.failed_logins = 0
        return Check.OK
    return _failed(account, policy, now)


def recovery_codes_left(session: Session, account: PortalAccount) -> int:
    return len(session.scalars(select(RecoveryCode.id).where(
        RecoveryCode.account_id == account.id, RecoveryCode.used_at.is_(None))).all())


def _use_recovery_code(session: Session, account: PortalAccount, typed: str,
                       now: datetime) -> bool:
    claimed = session.execute(update(RecoveryCode).where(
        RecoveryCode.account_id == account.id,
        RecoveryCode.digest == token_digest(normalise_recovery_code(typed)),
        RecoveryCode.used_at.is_(None)).values(used_at=now))
    return bool(claimed.rowcount == 1)  # type: ignore[attr-defined]


def matching_step(secret: str, code: str, now: datetime, after: int | None) -> int | None:
    """The time step (of 30 s) whose code this is, allowing one step of clock drift either
    way, and only steps later than the last one accepted: a code seen once is spent."""
    if not (code.isdigit() and len(code) == 6):
        return None
    totp = pyotp.TOTP(secret)
    current = int(now.timestamp()) // totp.interval
    for step in (current - 1, current, current + 1):
        if after is not None and step <= after:
            continue
        if hmac.compare_digest(totp.generate_otp(step), code):
            return step
    return None


# -- questions set by the sender ----------------------------------------------------------

def normalise_answer(answer: str) -> str:
    return "".join(answer.split()).casefold()


def set_question(recipient: Recipient, question: str, answer: str) -> None:
    recipient.question = question.strip()
    recipient.answer_hash = hash_password(normalise_answer(answer))
    recipient.answer_failures = 0


def check_answer(recipient: Recipient, answer: str, policy: PortalConfig) -> Check:
    """Case and spaces do not count. Too many wrong answers lock the question until the
    sender sets it again."""
    if recipient.answer_hash is None:
        return Check.OK
    if recipient.answer_failures >= policy.lockout_failures:
        return Check.LOCKED
    if verify_password(recipient.answer_hash, normalise_answer(answer)):
        recipient.answer_failures = 0
        return Check.OK
    recipient.answer_failures += 1
    return Check.LOCKED if recipient.answer_failures >= policy.lockout_failures else Check.WRONG


# -- sessions -------------------------------------------------------------------------------

@dataclass(frozen=True)
class Visitor:
    """What a live session proves, detached from the database session that read it."""

    session_id: int
    address: str
    account_id: int | None
    second_factor: bool
    answered: frozenset[int]


def start_session(session: Session, account: PortalAccount, policy: PortalConfig,
                  now: datetime, second_factor: bool = False) -> str:
    """A new session (the caller drops any old cookie: a sign-in always gets a new secret)."""
    secret = new_token()
    session.add(PortalSession(
        digest=token_digest(secret), address=account.address, account_id=account.id,
        created_at=now, seen_at=now, answered=[],
        expires_at=now + timedelta(hours=SESSION_HOURS),
        mfa_at=now if second_factor else None))
    return secret


def find_session(session: Session, secret: str, policy: PortalConfig, now: datetime
                 ) -> tuple[PortalSession, PortalAccount | None] | tuple[None, None]:
    """The live session for this secret and its account, in one query (every request asks)."""
    row = session.execute(
        select(PortalSession, PortalAccount).outerjoin(
            PortalAccount, PortalAccount.id == PortalSession.account_id)
        .where(PortalSession.digest == token_digest(secret))).one_or_none()
    if row is None:
        return None, None
    found, account = row
    if found.ended_at is not None or found.expires_at <= now \
            or found.seen_at + timedelta(minutes=policy.session_minutes) <= now:
        return None, None
    return found, account


def visitor(found: PortalSession) -> Visitor:
    return Visitor(found.id, found.address, found.account_id, found.mfa_at is not None,
                   frozenset(found.answered or ()))


def needs_touch(found: PortalSession, now: datetime) -> bool:
    return (now - found.seen_at).total_seconds() >= _TOUCH_SECONDS


def touch(session: Session, session_id: int, now: datetime) -> None:
    session.execute(update(PortalSession).where(PortalSession.id == session_id)
                    .values(seen_at=now))


def passed_second_factor(session: Session, session_id: int, now: datetime) -> None:
    session.execute(update(PortalSession).where(PortalSession.id == session_id)
                    .values(mfa_at=now))


def answered_question(session: Session, session_id: int, recipient_id: int) -> None:
    found = session.get(PortalSession, session_id)
    if found is not None and recipient_id not in (found.answered or []):
        found.answered = [*(found.answered or []), recipient_id]


def end_session(session: Session, session_id: int, now: datetime) -> None:
    session.execute(update(PortalSession).where(PortalSession.id == session_id,
                                                PortalSession.ended_at.is_(None))
                    .values(ended_at=now))


def end_sessions(session: Session, account: PortalAccount, now: datetime) -> None:
    session.execute(update(PortalSession).where(PortalSession.account_id == account.id,
                                                PortalSession.ended_at.is_(None))
                    .values(ended_at=now))
