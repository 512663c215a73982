"""Who is using the console. The session cookie carries only a random secret; its row says
which administrator signed in and whether the authenticator code was checked. The
authenticator is enforced: an administrator without one enrols it at the first sign-in,
and until the code is checked every console page sends them to finish signing in."""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import Any, NoReturn

import segno
from flask import abort, flash, g, redirect, render_template, request, session, url_for
from flask.typing import ResponseReturnValue
from sqlalchemy.exc import IntegrityError

from sealgate.server.admin import admin
from sealgate.server.admin.forms import CodeForm, ConfirmForm, SignInForm
from sealgate.server.app import services
from sealgate.server.limits import CREDENTIALS, limiter
from sealgate.server.portal.identity import safe_next
from sealgate.vault import accounts, admins
from sealgate.vault.admins import Check, SignedIn
from sealgate.vault.models import ADDRESS, Administrator

log = logging.getLogger(__name__)
SESSION_KEY = "admin_sid"
PENDING_TOTP = "admin_pending_totp"
# A first Microsoft sign-in's account ({"admin": id, "oid": object id}), bound to the
# administrator once the authenticator code is right (see microsoft.py).
MICROSOFT_BINDING = "admin_microsoft_binding"
ANOTHER_ACCOUNT = ("This administrator signs in with another Microsoft account: use that "
                   "one, or sign in with your password.")
ACCOUNT_TAKEN = ("That Microsoft account signs in as another administrator: sign in with "
                 "your password.")
OPEN_PAGES = {"admin.sign_in", "admin.second_factor", "admin.enrol", "admin.sign_out",
              "admin.microsoft_sign_in", "admin.microsoft_callback"}


def now() -> datetime:
    return datetime.now(UTC)


def load_admin() -> None:
    g.admin = None
    secret = session.get(SESSION_KEY)
    if isinstance(secret, str):
        with services().vault.database.writing() as db:
            g.admin = admins.find_session(db, secret, now())
        if g.admin is None:
            session.pop(SESSION_KEY, None)
    if request.endpoint not in OPEN_PAGES:
        require_admin()


def current_admin() -> SignedIn | None:
    found: SignedIn | None = g.get("admin")
    return found


def require_admin() -> SignedIn:
    """The administrator behind this request, past both steps; anyone else is sent to sign
    in (or to finish signing in)."""
    signed_in = current_admin()
    target = request.full_path.rstrip("?")
    if signed_in is None:
        _go("admin.sign_in", next=target)
    assert signed_in is not None
    if not signed_in.second_factor:
        _go("admin.second_factor" if signed_in.has_totp else "admin.enrol", next=target)
    return signed_in


def actor() -> str:
    return require_admin().address


def _go(endpoint: str, **values: Any) -> NoReturn:
    abort(redirect(url_for(endpoint, **values)))


def _record(actor: str, action: str, **details: str) -> None:
    """An audit event about the administrator `actor` (an address, or what was typed or
    sent for one: cut to an address's length)."""
    services().vault.record(actor[:ADDRESS], action, "administrator", actor[:ADDRESS],
                            {"ip": request.remote_addr or "", **details})


@admin.route("/signin", methods=["GET", "POST"])
@limiter.limit(CREDENTIALS, methods=["POST"])
def sign_in() -> ResponseReturnValue:
    form = SignInForm(next=request.args.get("next", ""))
    if form.validate_on_submit():
        address = (form.address.data or "").strip().lower()
        service = services()
        moment = now()
        with service.vault.database.writing() as db:
            found = admins.find(db, address)
            result = admins.check_password(found, form.password.data or "", moment)
            secret = admins.start_session(db, found, "password", moment) \
                if result is Check.OK and found is not None else None
            has_totp = found is not None and found.has_totp
        if secret is not None:
            session.clear()
            session[SESSION_KEY] = secret
            _record(address, "admin.password_ok")
            return redirect(url_for("admin.second_factor" if has_totp else "admin.enrol",
                                    next=safe_next(form.next.data, "/admin/")))
        _record(address or "-", "admin.signin_failed", why=result.value)
        log.info("admin sign-in failed for %s: %s", address, result.value)
        flash("Too many failed attempts: try again later." if result is Check.LOCKED
              else "That address and password do not match an administrator.", "error")
    return render_template("admin/sign_in.html", form=form)


def _half_signed_in() -> SignedIn:
    signed_in = current_admin()
    if signed_in is None:
        _go("admin.sign_in")
    assert signed_in is not None
    return signed_in


@admin.route("/signin/code", methods=["GET", "POST"])
@limiter.limit(CREDENTIALS, methods=["POST"])
def second_factor() -> ResponseReturnValue:
    signed_in = _half_signed_in()
    if not signed_in.has_totp:
        return redirect(url_for("admin.enrol", next=request.args.get("next", "")))
    form = CodeForm(next=request.args.get("next", ""))
    if form.validate_on_submit():
        binding = _binding(signed_in)
        try:
            result = _check_code(signed_in, form.code.data or "", binding)
        except admins.MicrosoftRefused as refused:
            return _not_bound(signed_in, refused.reason)
        except IntegrityError:  # another sign-in bound the account in the meantime
            if binding is None:
                raise
            return _not_bound(signed_in, admins.MicrosoftRefusal.TAKEN)
        if result is Check.OK:
            session.pop(MICROSOFT_BINDING, None)
            if binding is not None:
                _record(signed_in.address, "admin.microsoft_bound", oid=binding)
            _record(signed_in.address, "admin.signed_in", how=signed_in.how)
            return redirect(safe_next(form.next.data, "/admin/"))
        _record(signed_in.address, "admin.signin_failed", why=f"code {result.value}")
        flash("Too many failed attempts: try again later." if result is Check.LOCKED
              else "That code is not right. Codes change every 30 seconds.", "error")
    return render_template("admin/code.html", form=form)


def _binding(signed_in: SignedIn) -> str | None:
    """The Microsoft account this sign-in binds to the administrator once the code is right:
    only a Microsoft sign-in's, for the administrator it started for."""
    pending = session.get(MICROSOFT_BINDING)
    if signed_in.how != "microsoft" or not isinstance(pending, dict) \
            or pending.get("admin") != signed_in.admin_id:
        return None
    oid = pending.get("oid")
    return oid if isinstance(oid, str) else None


def _check_code(signed_in: SignedIn, typed: str, binding: str | None) -> Check:
    """The authenticator code; when right, the session has passed both steps and the
    Microsoft account waiting for it is bound, in one transaction (MicrosoftRefused or
    IntegrityError: neither happened)."""
    service = services()
    with service.vault.database.writing() as db:
        found = db.get(Administrator, signed_in.admin_id)
        assert found is not None
        result = admins.check_totp(service.vault.keyring, found, typed, now())
        if result is Check.OK:
            if binding is not None:
                admins.bind_microsoft(db, found, binding)
            admins.passed_second_factor(db, signed_in.session_id, now())
    return result


def _not_bound(signed_in: SignedIn, reason: admins.MicrosoftRefusal) -> ResponseReturnValue:
    """The Microsoft account could not be bound: the sign-in ends, refused."""
    with services().vault.database.writing() as db:
        admins.end_session(db, signed_in.session_id, now())
    session.clear()
    _record(signed_in.address, "admin.signin_failed", why=f"microsoft: {reason.value}")
    log.info("admin Microsoft sign-in refused for %s: %s", signed_in.address, reason.value)
    flash(ANOTHER_ACCOUNT if reason is admins.MicrosoftRefusal.OTHER_ACCOUNT
          else ACCOUNT_TAKEN, "error")
    return render_template("admin/sign_in.html", form=SignInForm(next="")), 403


@admin.route("/signin/authenticator", methods=["GET", "POST"])
@limiter.limit(CREDENTIALS, methods=["POST"])
def enrol() -> ResponseReturnValue:
    """The first sign-in: the administrator must set up an authenticator before anything
    else. Replacing one goes through `sealgate admin reset-authenticator`."""
    signed_in = _half_signed_in()
    if signed_in.has_totp:
        return redirect(url_for("admin.second_factor", next=request.args.get("next", "")))
    secret = session.get(PENDING_TOTP)
    if not isinstance(secret, str):
        secret = session[PENDING_TOTP] = accounts.new_totp_secret()
    form = CodeForm(next=request.args.get("next", ""))
    service = services()
    if form.validate_on_submit():
        with service.vault.database.writing() as db:
            found = db.get(Administrator, signed_in.admin_id)
            assert found is not None
            enabled = admins.enable_totp(service.vault.keyring, found, secret,
                                         "".join((form.code.data or "").split()), now())
            if enabled:
                admins.passed_second_factor(db, signed_in.session_id, now())
        if enabled:
            session.pop(PENDING_TOTP, None)
            _record(signed_in.address, "admin.totp_enabled")
            _record(signed_in.address, "admin.signed_in", how=signed_in.how)
            return redirect(safe_next(form.next.data, "/admin/"))
        _record(signed_in.address, "admin.signin_failed", why="authenticator set-up")
        flash("That code is not right. Check the time on your phone and try again.", "error")
    uri = accounts.totp_uri(secret, signed_in.address,
                            f"{service.config.organisation.name} Sealgate admin")
    qr = segno.make(uri, error="m").svg_data_uri(scale=5, border=2)
    return render_template("admin/enrol.html", form=form, qr=qr, secret=secret)


@admin.post("/signout")
def sign_out() -> ResponseReturnValue:
    form = ConfirmForm()
    signed_in = current_admin()
    if form.validate_on_submit() and signed_in is not None:
        with services().vault.database.writing() as db:
            admins.end_session(db, signed_in.session_id, now())
        _record(signed_in.address, "admin.signed_out")
        session.clear()
    return redirect(url_for("admin.sign_in"))
