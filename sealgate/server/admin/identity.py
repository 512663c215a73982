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

from sealgate.server.admin import admin
from sealgate.server.admin.forms import CodeForm, ConfirmForm, SignInForm
from sealgate.server.app import services
from sealgate.server.limits import CREDENTIALS, limiter
from sealgate.server.portal.identity import safe_next
from sealgate.vault import accounts, admins
from sealgate.vault.admins import Check, SignedIn
from sealgate.vault.models import Administrator

log = logging.getLogger(__name__)
SESSION_KEY = "admin_sid"
PENDING_TOTP = "admin_pending_totp"
OPEN_PAGES = {"admin.sign_in", "admin.second_factor", "admin.enrol", "admin.sign_out"}


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
    services().vault.record(actor, action, "administrator", actor,
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
        service = services()
        with service.vault.database.writing() as db:
            found = db.get(Administrator, signed_in.admin_id)
            assert found is not None
            result = admins.check_totp(service.vault.keyring, found, form.code.data or "", now())
            if result is Check.OK:
                admins.passed_second_factor(db, signed_in.session_id, now())
        if result is Check.OK:
            _record(signed_in.address, "admin.signed_in", how=signed_in.how)
            return redirect(safe_next(form.next.data, "/admin/"))
        _record(signed_in.address, "admin.signin_failed", why=f"code {result.value}")
        flash("Too many failed attempts: try again later." if result is Check.LOCKED
              else "That code is not right. Codes change every 30 seconds.", "error")
    return render_template("admin/code.html", form=form)


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
