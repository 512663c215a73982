"""The sender's decision page for a message a DLP policy held (the link in the "held"
notice, signed like the tracking link): what was found, masked, and the choice of sending
it securely, sending it as is (only where the policy allows) or discarding it.

A decision is carried out once (vault/holds.py: claim, hand over, decide), by
`carry_out_decision`, which the admin console's quarantine uses too. The held content is
deleted only after the MTA has taken what it became; a failed hand-over leaves the hold
undecided with its content, and the page asks to try again."""

from __future__ import annotations

import enum
import logging
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import make_msgid
from functools import partial
from typing import Any

from flask import Blueprint, abort, make_response, render_template, request
from flask.typing import ResponseReturnValue
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from wtforms import StringField
from wtforms.validators import AnyOf, InputRequired

from sealgate.config import Config
from sealgate.mail.message import InboundMessage
from sealgate.mail.parse import MimeError
from sealgate.mail.rewrite import (
    Deposited,
    inbound,
    marked_copy,
    marked_original,
    secure_copies,
)
from sealgate.mail.verdict import is_internal
from sealgate.server.api import internal as internal_api
from sealgate.server.app import Services, services
from sealgate.server.limits import CREDENTIALS, limiter
from sealgate.server.links import held_id
from sealgate.server.outbox import DeliveryError, send_raw
from sealgate.server.portal.forms import Form
from sealgate.server.routing import NoMethod, route
from sealgate.server.tls_actions import hand_over_tls
from sealgate.vault import holds
from sealgate.vault.models import Hold, HoldDecision

log = logging.getLogger(__name__)
held = Blueprint("holds", __name__)

SEND_SECURELY, SEND_AS_IS, DISCARD = "send_securely", "send_as_is", "discard"
_DECISIONS = {SEND_SECURELY: HoldDecision.SENT_SECURELY, SEND_AS_IS: HoldDecision.SENT_AS_IS,
              DISCARD: HoldDecision.DISCARDED}


class DecisionForm(Form):
    """One button per choice (decide.html), each posting its value as `choice`."""

    choice = StringField(_l("What should happen to the message?"),
                         validators=[InputRequired(), AnyOf(list(_DECISIONS))])


class _Unsendable(Exception):
    """The message cannot be sent securely (its MIME structure cannot be read faithfully)."""


class _NoMethodYet(Exception):
    """Some recipients still have no secure method (the portal off, no key on file)."""


def now() -> datetime:
    return datetime.now(UTC)


@held.get("/held/<token>")
def decision_page(token: str) -> ResponseReturnValue:
    hold = _hold(token)
    hold = _expired_now(hold)
    if hold.decision is not None:
        return _outcome(hold, 200)
    return render_template("holds/decide.html", hold=hold, form=DecisionForm(), token=token)


@held.post("/held/<token>")
@limiter.limit(CREDENTIALS)
def decide(token: str) -> ResponseReturnValue:
    hold = _hold(token)
    form = DecisionForm()
    if not form.validate_on_submit():
        abort(400, description=_("Choose what should happen to the message."))
    outcome = carry_out_decision(services(), hold.id, str(form.choice.data), hold.sender,
                                 ip=request.remote_addr or "")
    shown = outcome.hold or hold
    match outcome.result:
        case Result.DONE:
            log.info("hold %s: %s by its sender", shown.id, shown.decision)
            response = make_response(_outcome(shown, 200))
            if outcome.after is not None:
                response.call_on_close(outcome.after)
            return response
        case Result.ALREADY_DECIDED:
            return _outcome(shown, 409, again=True)
        case Result.EXPIRED:
            return _outcome(shown, 410)
        case Result.NOT_ALLOWED:
            abort(403, description=_("The policy that held this message does not allow "
                                     "sending it as is. Send it securely, or discard it."))
        case Result.BUSY:
            return _page(shown, 409, _("Your decision is being carried out"), _(
                "A decision on this message is being carried out right now. Reload this page "
                "in a minute to see the outcome."), retry=True)
        case Result.NOT_TAKEN:
            return _page(shown, 503, _("Please try again"), _(
                "The mail server did not take the message, so nothing was sent and the "
                "message is still held. Please try again in a few minutes."), retry=True)
        case Result.UNSENDABLE:
            return _page(shown, 422, _("This message cannot be sent securely"), _(
                "Its structure cannot be read faithfully (%(reason)s). It is still held: send "
                "it as is if the policy allows, or discard it.", reason=outcome.reason),
                retry=True)
        case Result.NO_METHOD:
            return _page(shown, 422, _("There is still no secure way to send it"), _(
                "%(reason)s. It is still held: try again once a certificate or key for them "
                "is on file, or discard it.", reason=outcome.reason), retry=True)
    abort(404)  # NOT_FOUND: gone between the link's check and the decision


class Result(enum.Enum):
    """What became of a decision (carry_out_decision)."""

    DONE = "done"  # carried out and recorded: `hold.decision` says which
    NOT_FOUND = "not_found"
    ALREADY_DECIDED = "already_decided"  # decided before (or found expired and discarded)
    EXPIRED = "expired"  # expired while being claimed: discarded now
    NOT_ALLOWED = "not_allowed"  # send as is, which the policy does not allow the sender
    BUSY = "busy"  # another decision on it is being carried out
    NOT_TAKEN = "not_taken"  # the MTA did not take the mail: still held, try again
    UNSENDABLE = "unsendable"  # its MIME cannot be read faithfully to send it securely
    NO_METHOD = "no_method"  # some recipient has no secure method yet


@dataclass(frozen=True)
class Outcome:
    result: Result
    hold: Hold | None  # as it is now (None: no such hold)
    reason: str = ""  # for UNSENDABLE and NO_METHOD, in words
    after: Callable[[], None] | None = None  # run once the answer is sent (tell the sender)


def carry_out_decision(service: Services, hold_id: uuid.UUID, choice: str, actor: str, *,
                       by_admin: bool = False, ip: str = "") -> Outcome:
    """Decide a hold and carry the decision out: claim it, hand the mail over, then record
    the decision (deleting the held content). Whoever decides (its sender through the
    decision page, or an administrator) goes through here, so a decision is made once and
    a failed hand-over leaves the hold as it was. An administrator may send it as is even
    where the policy does not let the sender: the audit event then says `override`."""
    assert choice in _DECISIONS, choice
    hold = holds.find(service.vault, hold_id)
    if hold is None:
        return Outcome(Result.NOT_FOUND, None)
    hold = _expired_now(hold)
    if hold.decision is not None:
        return Outcome(Result.ALREADY_DECIDED, hold)
    override = choice == SEND_AS_IS and not hold.allow_send_as_is
    if override and not by_admin:
        service.vault.record(actor, "hold.refused", "hold", str(hold.id),
                             {"choice": choice, "ip": ip})
        return Outcome(Result.NOT_ALLOWED, hold)
    try:
        holds.claim(service.vault, hold.id, now())
    except holds.AlreadyDecided as refusal:
        return Outcome(Result.ALREADY_DECIDED, refusal.hold)
    except holds.HoldExpired:
        return Outcome(Result.EXPIRED, _expired_now(hold))
    except holds.HoldBusy as refusal:
        return Outcome(Result.BUSY, refusal.hold)
    try:
        details, after = _carry_out(service, hold, choice)
    except DeliveryError:
        holds.release(service.vault, hold.id)
        return Outcome(Result.NOT_TAKEN, hold)
    except _Unsendable as problem:
        holds.release(service.vault, hold.id)
        return Outcome(Result.UNSENDABLE, hold, str(problem))
    except _NoMethodYet as problem:
        holds.release(service.vault, hold.id)
        return Outcome(Result.NO_METHOD, hold, str(problem))
    except BaseException:
        holds.release(service.vault, hold.id)
        raise
    if by_admin:  # the sender's own decisions need no saying who or what it was before
        details = {**details, "by": "administrator", "ip": ip,
                   "state": {"before": "held", "after": str(_DECISIONS[choice])}}
        if override:
            details["override"] = "the policy does not allow its sender to send it as is"
    decided = holds.decide(service.vault, hold.id, _DECISIONS[choice], actor, now(), details)
    return Outcome(Result.DONE, decided, after=after)


def _hold(token: str) -> Hold:
    service = services()
    hold_id = held_id(service.config, token)
    found = holds.find(service.vault, hold_id) if hold_id is not None else None
    if found is None:
        service.vault.record("anonymous", "portal.denied", "hold", "",
                             {"ip": request.remote_addr or ""})
        abort(404, description=_("This link is not valid. Use the whole link from the email "
                                 "that told you the message was held."))
    return found


def _expired_now(hold: Hold) -> Hold:
    """The hold, discarded first if it is undecided and past its expiry."""
    if hold.decision is not None or not holds.is_expired(hold, now()):
        return hold
    try:
        return holds.expire(services().vault, hold.id, now())
    except holds.AlreadyDecided as refusal:
        return refusal.hold


def _carry_out(service: Services, hold: Hold,
               choice: str) -> tuple[dict[str, Any], Callable[[], None] | None]:
    """Hand the message over as chosen; the audit details (no values) and what to do after
    the response. Raises DeliveryError when the MTA did not take it."""
    if choice == DISCARD:
        return {}, None
    config, vault = service.config, service.vault
    message = _message(config, holds.original(vault, hold), hold)
    if choice == SEND_AS_IS:
        send_raw(config, list(hold.recipients),
                 marked_original(message, config.internal_api.secret), hold.sender)
        return {"recipients": len(hold.recipients)}, None
    domains = config.organisation.domains
    internal = tuple(r for r in hold.recipients if is_internal(r, domains))
    external = tuple(r for r in hold.recipients if r not in internal)
    routed = None
    if external:  # each outside recipient the way the milter would have sent it
        try:
            routed = route(vault, config, message.raw(), hold.sender, external, hold.subject,
                           tls=service.verified_tls, wkd=service.wkd)
        except MimeError as error:
            raise _Unsendable(str(error)) from None
        except NoMethod as error:
            raise _NoMethodYet(str(error)) from None
    deposit = routed.deposit if routed is not None else None
    deposited = Deposited(str(deposit.message_id), deposit.notification) \
        if deposit is not None else None
    portal = routed.portal if routed is not None else ()
    sent = 0
    try:
        for copy in secure_copies(message, internal, portal, deposited,
                                  config.internal_api.secret):
            send_raw(config, list(copy.recipients), copy.data, hold.sender)
            sent += 1
        for encrypted in routed.copies if routed is not None else ():
            data = marked_copy(encrypted.data, config.internal_api.secret)
            if encrypted.envelope_id:  # verified TLS: its reports go to Sealgate
                hand_over_tls(config, list(encrypted.recipients), data, encrypted.envelope_id)
            else:
                send_raw(config, list(encrypted.recipients), data, hold.sender)
            sent += 1
    except DeliveryError:
        if deposit is not None and sent == 0:  # nobody was told of it: it goes again
            vault.delete_message(deposit.message_id, hold.sender, "hold hand-over failed")
        raise
    details: dict[str, Any] = {"external": len(external), "internal": len(internal)}
    if routed is not None:
        details["methods"] = {str(method): len(group)
                              for method, group in routed.plan.groups().items()}
    after = None
    if deposit is not None:
        details["message"] = str(deposit.message_id)
        if config.portal.notify_sender and internal_api.is_internal(config, hold.sender):
            after = partial(internal_api.tell_sender, config, deposit, list(external))
    return details, after


def _message(config: Config, raw: bytes, hold: Hold) -> InboundMessage:
    """The held message in the MTA's view, with a Message-ID: the processed mark binds it."""
    message = inbound(raw, hold.sender, tuple(hold.recipients))
    return message.with_message_id(make_msgid(domain=config.organisation.domains[0]))[0]


def _outcome(hold: Hold, status: int, again: bool = False) -> ResponseReturnValue:
    return render_template("holds/outcome.html", hold=hold, again=again), status


def _page(hold: Hold, status: int, title: str, message: str,
          retry: bool = False) -> ResponseReturnValue:
    token = (request.view_args or {}).get("token", "")
    return render_template("holds/problem.html", hold=hold, title=title, message=message,
                           retry=retry, token=token), status
