"""Access tokens for links and sessions: the holder gets a random secret, the database keeps
only its digest. Look-ups check purpose and expiry; single-use tokens are consumed atomically."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from sealgate.crypto.secrets import new_token, token_digest
from sealgate.vault.models import AccessToken, utcnow


def issue(session: Session, purpose: str, lifetime: timedelta, *,
          message_id: uuid.UUID | None = None, recipient_id: int | None = None,
          account_id: int | None = None) -> str:
    """A new token; the returned secret is shown once and never stored."""
    secret = new_token()
    session.add(AccessToken(digest=token_digest(secret), purpose=purpose,
                            message_id=message_id, recipient_id=recipient_id,
                            account_id=account_id, expires_at=utcnow() + lifetime))
    return secret


def find(session: Session, secret: str, purpose: str,
         now: datetime | None = None) -> AccessToken | None:
    """The live token for this secret and purpose, or None (unknown, expired, used, other use)."""
    found = session.scalars(select(AccessToken).where(
        AccessToken.digest == token_digest(secret))).one_or_none()
    now = now or utcnow()
    if found is None or found.purpose != purpose or found.used_at is not None \
            or found.expires_at <= now:
        return None
    return found


def consume(session: Session, secret: str, purpose: str,
            now: datetime | None = None) -> AccessToken | None:
    """Like `find`, and mark it used: of two concurrent redemptions only one succeeds."""
    found = find(session, secret, purpose, now)
    if found is None:
        return None
    claimed = session.execute(
        update(AccessToken).where(AccessToken.id == found.id, AccessToken.used_at.is_(None))
        .values(used_at=now or utcnow()).execution_options(synchronize_session=False))
    if claimed.rowcount != 1:  # type: ignore[attr-defined]
        return None
    session.refresh(found)
    return found
