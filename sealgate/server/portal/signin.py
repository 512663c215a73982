"""Getting in: a one-time code by mail, or an account (password, address confirmed by mail),
then the authenticator when the account has one or the organisation requires it."""

from __future__ import annotations

import logging
from datetime import timedelta
from email.message import EmailMessage

import segno
from flask import flash, g, redirect, render_template, request, session, url_for
from flask.typing import ResponseReturnValue
from flask_babel import gettext as _
from sqlalchemy import exists, or_, select
from sqlalchemy.orm import Session

from sealgate.config import Config
from sealgate.crypto.passwords import weakness
from sealgate.mail import notices
from sealgate.metrics import metrics
from sealgate.server.app import services
from sealgate.server.branding import branding
from sealgate.server.limits import CREDENTIALS, MAIL, MAIL_PER_MAILBOX, limiter, mailbox_key
from sealgate.server.links import public_url
from sealgate.server.outbox import DeliveryError, send
from sealgate.server.portal import portal
from sealgate.server.portal.forms import (
    AddressForm,
    CodeForm,
    ConfirmForm,
    NewPasswordForm,
    PasswordSignInForm,
    RegisterForm,
    SecondFactorForm,
    TotpSetupForm,
)
from sealgate.server.portal.identity import (
    current_visitor,
    now,
    pepper,
    safe_next,
    sign_in,
    sign_out,
)
from sealgate.vault import accounts
from sealgate.vault.accounts import Check
from sealgate.vault.models import MessageState, PortalAccount, Recipient, SecureMessage

log = logging.getLogger(__name__)
LINK_HOURS = 24
RESET_MINUTES = 60
PENDING_TOTP = "pending_totp"


def _record(actor: str, action: str, address: str, **details: str) -> None:
    services().vault.record(actor, action, "account", address,
                            {"ip": request.remote_addr or "", **details})


def _failed(address: str, how: str, why: str) -> None:
    log.info("portal sign-in failed for %s (%s: %s) from %s", address, how, why,
             request.remote_addr)
    _record("anonymous", "portal.login_failed", address, how=how, why=why)
    metrics().portal_logins.labels(result="failed").inc()


def _verify_mail(config: Config, address: str, secret: str) -> EmailMessage:
    return notices.verify_address(
        branding(config), from_address=config.from_address, to=address,
        link=public_url(config, url_for("portal.verify_address", token=secret)),
        hours=LINK_HOURS)


def _reset_mail(config: Config, address: str, secret: str) -> EmailMessage:
    return notices.password_reset(
        branding(config), from_address=config.from_address, to=address,
        link=public_url(config, url_for("portal.reset_password", token=secret)),
        minutes=RESET_MINUTES)


def _mail(message: EmailMessage) -> bool:
    try:
        send(services().config, message)
    except DeliveryError:
        flash(_("We could not send the email just now. Please try again in a few minutes."),
              "error")
        return False
    return True


def _is_known(db: Session, address: str) -> bool:
    """Codes go only to addresses that have a readable message or a confirmed account, so the
    portal cannot be used to send mail to anyone."""
    has_message = db.scalar(select(exists().where(
        Recipient.address == address, Recipient.message_id == SecureMessage.id,
        SecureMessage.state == MessageState.ACTIVE,
        or_(SecureMessage.expires_at.is_(None), SecureMessage.expires_at > now()))))
    account = accounts.find_account(db, address)
    return bool(has_message) or (account is not None and account.verified_at is not None)


def _after_sign_in(target: str) -> ResponseReturnValue:
    return redirect(safe_next(target))


@portal.route("/signin", methods=["GET", "POST"])
@limiter.limit(MAIL, methods=["POST"])
@limiter.limit(MAIL_PER_MAILBOX, key_func=mailbox_key, methods=["POST"])
def sign_in_page() -> ResponseReturnValue:
    form = AddressForm(next=request.args.get("next", ""))
    if form.validate_on_submit():
        address = accounts.normalise_address(form.address.data or "")
        service = services()
        with service.vault.database.writing() as db:
            code = (accounts.issue_login_code(db, address, pepper(), service.config.portal, now())
                    if _is_known(db, address) else None)
        if code is not None:
            sent = _mail(notices.login_code(
                branding(service.config), from_address=service.config.from_address,
                to=address, code=code, minutes=service.config.portal.code_minutes))
            if not sent:
                return render_template("portal/sign_in.html", form=form), 503
            _record("anonymous", "portal.code_sent", address)
        return redirect(url_for("portal.enter_code", address=address, next=form.next.data))
    return render_template("portal/sign_in.html", form=form)


@portal.route("/signin/code", methods=["GET", "POST"])
@limiter.limit(CREDENTIALS, methods=["POST"])
def enter_code() -> ResponseReturnValue:
    form = CodeForm(address=request.args.get("address", ""), next=request.args.get("next", ""))
    if form.validate_on_submit():
        address = accounts.normalise_address(form.address.data or "")
        service = services()
        with service.vault.database.writing() as db:
            good = accounts.redeem_login_code(db, address, form.code.data or "", pepper(),
                                              service.config.portal, now())
            account = accounts.mailbox_proven(db, address, now()) if good else None
        if account is not None:
            sign_in(account, "code")
            metrics().portal_logins.labels(result="ok").inc()
            return _after_sign_in(form.next.data or "")
        _failed(address, "code", "wrong or expired code")
        flash(_("That code is wrong or no longer valid. Check the newest email from us, or "
                "ask for a new code."), "error")
    return render_template("portal/enter_code.html", form=form)


@portal.route("/signin/password", methods=["GET", "POST"])
@limiter.limit(CREDENTIALS, methods=["POST"])
def password_sign_in() -> ResponseReturnValue:
    form = PasswordSignInForm(next=request.args.get("next", ""))
    if form.validate_on_submit():
        address = accounts.normalise_address(form.address.data or "")
        service = services()
        with service.vault.database.writing() as db:
            account = accounts.find_account(db, address)
            result = accounts.check_password(account, form.password.data or "",
                                             service.config.portal, now())
        if result is Check.OK and account is not None:
            sign_in(account, "password")
            metrics().portal_logins.labels(result="ok").inc()
            return _after_sign_in(form.next.data or "")
        _failed(address, "password", result.value)
        if result is Check.LOCKED:
            flash(_("Too many failed attempts: this account is locked for %(minutes)d minutes. "
                    "You can still sign in with a code sent by email.",
                    minutes=service.config.portal.lockout_minutes), "error")
        elif result is Check.UNVERIFIED:
            flash(_("Please confirm your address first: open the link we emailed you."),
                  "error")
        else:
            flash(_("The address or the password is wrong."), "error")
    return render_template("portal/password.html", form=form)


@portal.route("/register", methods=["GET", "POST"])
@limiter.limit(MAIL, methods=["POST"])
@limiter.limit(MAIL_PER_MAILBOX, key_func=mailbox_key, methods=["POST"])
def register() -> ResponseReturnValue:
    form = RegisterForm()
    if form.validate_on_submit():
        address = accounts.normalise_address(form.address.data or "")
        service = services()
        problem = weakness(form.password.data or "", user_inputs=[
            address, address.partition("@")[0], service.config.organisation.name])
        if problem:
            form.password.errors = [problem]
            return render_template("portal/register.html", form=form), 400
        with service.vault.database.writing() as db:
            account = accounts.register(db, address, form.password.data or "")
            if account is not None:
                message = _verify_mail(service.config, address, accounts.issue_link(
                    db, accounts.VERIFY_ADDRESS, account, timedelta(hours=LINK_HOURS), now()))
            else:  # the address has an account: say the same, offer its owner a new password
                existing = accounts.find_account(db, address)
                assert existing is not None
                message = _reset_mail(service.config, address, accounts.issue_link(
                    db, accounts.PASSWORD_RESET, existing, timedelta(minutes=RESET_MINUTES),
                    now()))
        if not _mail(message):
            return render_template("portal/register.html", form=form), 503
        _record("anonymous", "portal.registered", address)
        return render_template("portal/check_inbox.html", address=address)
    return render_template("portal/register.html", form=form)


@portal.get("/register/verify/<token>")
@limiter.limit(CREDENTIALS)
def verify_address(token: str) -> ResponseReturnValue:
    with services().vault.database.writing() as db:
        account = accounts.redeem_link(db, accounts.VERIFY_ADDRESS, token, now())
        if account is not None:
            accounts.confirm_registration(db, account, now())
    if account is None:
        _failed("unknown", "verify link", "unknown, used or expired link")
        return render_template("error.html", code=400, title=_("This link does not work"),
                               message=_("It was already used or is too old. Sign in, or "
                                         "register again to get a new link.")), 400
    sign_in(account, "address confirmed")
    flash(_("Thank you: your address is confirmed."), "info")
    return redirect(url_for("portal.message_centre"))


@portal.route("/forgot", methods=["GET", "POST"])
@limiter.limit(MAIL, methods=["POST"])
@limiter.limit(MAIL_PER_MAILBOX, key_func=mailbox_key, methods=["POST"])
def forgot_password() -> ResponseReturnValue:
    form = AddressForm()
    if form.validate_on_submit():
        address = accounts.normalise_address(form.address.data or "")
        service = services()
        with service.vault.database.writing() as db:
            account = accounts.find_account(db, address)
            secret = (accounts.issue_link(db, accounts.PASSWORD_RESET, account,
                                          timedelta(minutes=RESET_MINUTES), now())
                      if account is not None and account.verified_at is not None else None)
        if secret is not None:
            if not _mail(_reset_mail(service.config, address, secret)):
                return render_template("portal/forgot.html", form=form), 503
            _record("anonymous", "portal.reset_requested", address)
        return render_template("portal/check_inbox.html", address=address)
    return render_template("portal/forgot.html", form=form)


@portal.route("/reset/<token>", methods=["GET", "POST"])
@limiter.limit(CREDENTIALS, methods=["POST"])
def reset_password(token: str) -> ResponseReturnValue:
    """Only the password changes: an account with an authenticator still needs it (or a
    recovery code) at the next sign-in; the mailbox alone never gets past it."""
    form = NewPasswordForm()
    if form.validate_on_submit():
        service = services()
        password = form.password.data or ""
        with service.vault.database.writing() as db:
            # Looked at first, spent only with a password that passes: a weak one is refused
            # and the same link still works.
            account = accounts.link_account(db, accounts.PASSWORD_RESET, token, now())
            problem = account and weakness(password, user_inputs=[
                account.address, account.address.partition("@")[0]])
            if account is not None and not problem:
                accounts.redeem_link(db, accounts.PASSWORD_RESET, token, now())
                accounts.set_password(db, account, password, now())
                address = account.address
        if account is None:
            _failed("unknown", "reset link", "unknown, used or expired link")
            return render_template("error.html", code=400, title=_("This link does not work"),
                                   message=_("It was already used or is too old. Ask for a "
                                             "new one from the sign-in page.")), 400
        if problem:
            form.password.errors = [problem]
            return render_template("portal/reset.html", form=form,
                                   action=url_for("portal.reset_password", token=token)), 400
        _record(address, "portal.password_reset", address)
        flash(_("Your password is changed. Please sign in."), "info")
        return redirect(url_for("portal.password_sign_in"))
    return render_template("portal/reset.html", form=form,
                           action=url_for("portal.reset_password", token=token))


@portal.route("/signin/second-factor", methods=["GET", "POST"])
@limiter.limit(CREDENTIALS, methods=["POST"])
def second_factor() -> ResponseReturnValue:
    visitor = current_visitor()
    if visitor is None or visitor.account_id is None:
        return redirect(url_for("portal.sign_in_page"))
    if not g.get("has_totp"):
        return redirect(url_for("portal.totp_setup", next=request.args.get("next", "")))
    form = SecondFactorForm(next=request.args.get("next", ""))
    if form.validate_on_submit():
        service = services()
        with service.vault.database.writing() as db:
            account = db.get(PortalAccount, visitor.account_id)
            assert account is not None
            result = accounts.check_second_factor(db, service.vault.keyring, account,
                                                  form.code.data or "", service.config.portal,
                                                  now())
            if result is Check.OK:
                accounts.passed_second_factor(db, visitor.session_id, now())
                left = accounts.recovery_codes_left(db, account)
        if result is Check.OK:
            _record(visitor.address, "portal.second_factor_passed", visitor.address)
            if left <= 2:
                flash(_("You have %(left)d recovery codes left.", left=left), "info")
            return _after_sign_in(form.next.data or "")
        _failed(visitor.address, "second factor", result.value)
        flash(_("Too many failed attempts: try again later.") if result is Check.LOCKED
              else _("That code is not right. Codes change every 30 seconds."), "error")
    return render_template("portal/second_factor.html", form=form)


@portal.route("/account/authenticator", methods=["GET", "POST"])
@limiter.limit(CREDENTIALS, methods=["POST"])
def totp_setup() -> ResponseReturnValue:
    visitor = current_visitor()
    if visitor is None or visitor.account_id is None:
        return redirect(url_for("portal.sign_in_page", next=request.full_path))
    if g.get("has_totp"):  # replacing it needs the current one first
        return redirect(url_for("portal.second_factor" if g.get("second_factor_due")
                                else "portal.message_centre"))
    service = services()
    secret = session.get(PENDING_TOTP)
    if not isinstance(secret, str):
        secret = accounts.new_totp_secret()
        session[PENDING_TOTP] = secret
    form = TotpSetupForm(next=request.args.get("next", ""))
    if form.validate_on_submit():
        with service.vault.database.writing() as db:
            account = db.get(PortalAccount, visitor.account_id)
            assert account is not None
            codes = accounts.enable_totp(db, service.vault.keyring, account, secret,
                                         "".join((form.code.data or "").split()), now())
            if codes is not None:
                accounts.passed_second_factor(db, visitor.session_id, now())
        if codes is not None:
            session.pop(PENDING_TOTP, None)
            _record(visitor.address, "portal.totp_enabled", visitor.address)
            return render_template("portal/recovery_codes.html", codes=codes,
                                   next=safe_next(form.next.data))
        _failed(visitor.address, "authenticator set-up", "wrong code")
        flash(_("That code is not right. Check the time on your phone and try again."), "error")
    uri = accounts.totp_uri(secret, visitor.address, service.config.organisation.name)
    qr = segno.make(uri, error="m").svg_data_uri(scale=5, border=2)
    return render_template("portal/totp_setup.html", form=form, qr=qr, secret=secret,
                           required=service.config.portal.require_mfa)


@portal.post("/signout")
def sign_out_page() -> ResponseReturnValue:
    form = ConfirmForm()
    if form.validate_on_submit():
        sign_out()
        flash(_("You are signed out."), "info")
    return redirect(url_for("portal.home"))
