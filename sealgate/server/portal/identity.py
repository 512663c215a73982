"""Who is asking, for every portal request: the session cookie carries only a random secret;
the database row it points at says which address was proven and how. Every page that shows a
message goes through `readable_message`, the one place that checks the identity against it."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, NoReturn
from urllib.parse import urlsplit

from flask import (
    Response,
    abort,
    g,
    make_response,
    redirect,
    render_template,
    request,
    session,
    url_for,
)
from sqlalchemy import select
from sqlalchemy.orm import selectinload

from sealgate.server.app import services
from sealgate.vault import accounts
from sealgate.vault.accounts import Visitor
from sealgate.vault.models import MessageState, PortalAccount, Recipient, SecureMessage

SESSION_KEY = "sid"


def now() -> datetime:
    return datetime.now(UTC)


def pepper() -> bytes:
    """The key for short codes' digests: the server's secret, which is not in the database."""
    return services().config.server.secret_key.encode()


def load_visitor() -> None:
    """Before each portal request: the live session behind the cookie, if any."""
    g.visitor = None
    g.second_factor_due = False
    secret = session.get(SESSION_KEY)
    if not isinstance(secret, str):
        return
    service = services()
    moment = now()
    with service.vault.database.session() as db:
        found, account = accounts.find_session(db, secret, service.config.portal, moment)
        if found is None:
            session.pop(SESSION_KEY, None)
            return
        g.visitor = accounts.visitor(found)
        g.second_factor_due = (accounts.needs_second_factor(account, service.config.portal)
                               and found.mfa_at is None)
        g.has_totp = account is not None and account.has_totp
        stale = accounts.needs_touch(found, moment)
    if stale:
        with service.vault.database.writing() as db:
            accounts.touch(db, g.visitor.session_id, moment)


def current_visitor() -> Visitor | None:
    found: Visitor | None = g.get("visitor")
    return found


def sign_in(account: PortalAccount, how: str, second_factor: bool = False) -> None:
    """A new session for a proven address. The old cookie's contents are dropped first, so a
    session fixed before sign-in is worth nothing after it."""
    service = services()
    moment = now()
    old = current_visitor()
    with service.vault.database.writing() as db:
        if old is not None:
            accounts.end_session(db, old.session_id, moment)
        secret = accounts.start_session(db, account, service.config.portal, moment,
                                        second_factor=second_factor)
    session.clear()
    session[SESSION_KEY] = secret
    service.vault.record(account.address, "portal.signed_in", "account", str(account.id),
                         {"how": how, "ip": request.remote_addr or ""})


def sign_out() -> None:
    visitor = current_visitor()
    if visitor is not None:
        with services().vault.database.writing() as db:
            accounts.end_session(db, visitor.session_id, now())
    session.clear()


def safe_next(target: str | None, default: str = "/messages") -> str:
    """Only a path on this site: never an absolute or scheme-relative URL (open redirect)."""
    if not target or not target.startswith("/") or target.startswith("//") or "\\" in target:
        return default
    parts = urlsplit(target)
    if parts.scheme or parts.netloc:
        return default
    return target


def go(endpoint: str, **values: Any) -> NoReturn:
    abort(redirect(url_for(endpoint, **values)))


def require_visitor() -> Visitor:
    """The signed-in visitor who has passed every step their account needs."""
    visitor = current_visitor()
    if visitor is None:
        go("portal.sign_in_page", next=request.full_path.rstrip("?"))
    if g.get("second_factor_due"):
        go("portal.second_factor" if g.get("has_totp") else "portal.totp_setup",
           next=request.full_path.rstrip("?"))
    assert visitor is not None
    return visitor


@dataclass(frozen=True)
class Readable:
    message: SecureMessage
    recipient: Recipient
    visitor: Visitor


def recipient_row(db: Any, message_id: uuid.UUID, address: str) -> Recipient | None:
    found: Recipient | None = db.scalars(select(Recipient).where(
        Recipient.message_id == message_id, Recipient.address == address)).one_or_none()
    return found


def readable_message(db: Any, message_id: uuid.UUID) -> Readable:
    """The message if the visitor is one of its recipients and it can still be read.
    Anyone else gets the same 'not here' answer whether or not the message exists."""
    visitor = require_visitor()
    # Recipients and parts load now: pages use them after the database session has closed.
    message = db.get(SecureMessage, message_id, options=[
        selectinload(SecureMessage.recipients), selectinload(SecureMessage.parts)])
    recipient = next((r for r in message.recipients if r.address == visitor.address), None) \
        if message else None
    if message is None or recipient is None:
        services().vault.record(visitor.address, "portal.denied", "message", str(message_id),
                                {"ip": request.remote_addr or ""})
        abort(404, description=(
            f"There is no secure message for {visitor.address} at this address. If it was "
            "sent to another of your addresses, sign out and sign in with that one."))
    if not message.is_readable(now()):
        abort(gone(message))
    if recipient.answer_hash is not None and recipient.id not in visitor.answered:
        go("portal.question", message_id=message_id)
    return Readable(message, recipient, visitor)


def gone(message: SecureMessage) -> Response:
    """The page for a withdrawn or expired message: it says which, and from whom."""
    return make_response(render_template(
        "portal/gone.html", message=message,
        retracted=message.state is MessageState.RETRACTED), 410)
