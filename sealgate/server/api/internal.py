"""The milter's door into the server: deposit a triggered message and get its notification;
hand over a message a DLP policy quarantines (a hold, decided by its sender through the
signed link we mail them); report what a DLP policy found. Authenticated by the shared
secret of the configuration, compared in constant time.

DLP reports arrive with their values already masked. They are checked field by field and
only the known fields are kept: nothing else of a report is ever stored or shown."""

from __future__ import annotations

import base64
import binascii
import hmac
import logging
import uuid
from datetime import UTC, datetime, timedelta
from functools import partial
from typing import Any, NoReturn

from flask import Blueprint, Response, abort, jsonify, request

from sealgate import logs
from sealgate.config import Config
from sealgate.crypto.harvest import NotHarvested, harvest
from sealgate.mail import notices
from sealgate.mail.message import domain_of
from sealgate.mail.parse import MimeError
from sealgate.metrics import DELIVERY_METHODS, metrics
from sealgate.server import tls_actions
from sealgate.server.app import services
from sealgate.server.branding import branding
from sealgate.server.deposit import Deposit
from sealgate.server.links import hold_link, tracking_link
from sealgate.server.outbox import send_after_response
from sealgate.server.routing import NoMethod, route
from sealgate.vault import holds, recipient_keys
from sealgate.vault import settings as settings_store
from sealgate.vault.models import KeyKind
from sealgate.vault.vault import Vault

log = logging.getLogger(__name__)
internal = Blueprint("internal", __name__)
NO_METHOD_POLICY = "No secure delivery method"


@internal.before_request
def _authenticate() -> None:
    secret = services().config.internal_api.secret
    if not secret:
        abort(503, description="the internal API is off: internal_api.secret is not set")
    offered = request.headers.get("Authorization", "").removeprefix("Bearer ")
    if not hmac.compare_digest(offered.encode(), secret.encode()):
        abort(401, description="a valid internal API secret is required")
    logs.set_message_id(logs.trace_from(request.headers.get(logs.TRACE_HEADER)))


def _field(payload: dict[str, Any], name: str, kind: type) -> Any:
    value = payload.get(name)
    if not isinstance(value, kind):
        abort(400, description=f"'{name}' is missing or not a {kind.__name__}")
    return value


def _payload() -> dict[str, Any]:
    payload = request.get_json(silent=True)
    if not isinstance(payload, dict):
        abort(400, description="expected a JSON object")
    return payload


def _recipients(payload: dict[str, Any]) -> list[str]:
    recipients: list[str] = _field(payload, "recipients", list)
    if not recipients or not all(isinstance(r, str) and "@" in r for r in recipients):
        abort(400, description="'recipients' must be a non-empty list of addresses")
    return recipients


def _message(payload: dict[str, Any]) -> bytes:
    try:
        raw = base64.b64decode(_field(payload, "message", str), validate=True)
    except (binascii.Error, ValueError):
        abort(400, description="'message' is not base64")
    return raw


@internal.get("/settings")
def running_settings() -> Response:
    """The newest settings revision the administrators saved, and its overlay, for the milter,
    which builds its rules from them (over its own file) and polls: when `have` is already
    the newest, only the number, so a poll costs one small query."""
    have = request.args.get("have", "")
    if have and not (have.isascii() and have.isdigit()):
        abort(400, description="'have' must be a settings revision number")
    vault = services().vault
    if have and int(have) == settings_store.latest_revision(vault):
        return jsonify(revision=int(have))
    revision, overlay = settings_store.latest(vault)
    return jsonify(revision=revision, overlay=overlay)


@internal.post("/deposits")
def create_deposit() -> tuple[Response, int]:
    payload = _payload()
    recipients = _recipients(payload)
    raw = _message(payload)
    force_portal = payload.get("force_portal", False)
    if not isinstance(force_portal, bool):
        abort(400, description="'force_portal' is not a boolean")
    service = services()
    try:
        routed = route(service.vault, service.config, raw, _field(payload, "mail_from", str),
                       recipients, _field(payload, "subject", str), force_portal,
                       service.verified_tls, service.wkd)
    except NoMethod as error:
        if service.config.routing.no_method == "hold":
            return _hold_without_method(service, raw, _field(payload, "mail_from", str),
                                        recipients, _field(payload, "subject", str),
                                        str(error))
        return jsonify(error="no_method", message=str(error)), 422
    except MimeError as error:
        return jsonify(error="unreadable_message", message=str(error)), 422
    except ValueError as error:  # a certificate or key that encryption refused
        log.warning("could not encrypt for a recipient: %s", error)
        return jsonify(error="encryption_failed", message=str(error)), 422
    deposit = routed.deposit
    counted = metrics()
    if deposit is not None:
        # The milter's trace id, then the secure message id: the portal's lines carry it.
        log.info("deposited as message %s", deposit.message_id)
        logs.set_message_id(str(deposit.message_id))
        counted.deposits.inc()
    for method, group in routed.plan.groups().items():
        if method in DELIVERY_METHODS:
            counted.delivery_methods.labels(method=str(method)).inc(len(group))
    log.info("routed a message for %d recipient(s): %s", len(recipients), ", ".join(
        f"{method} {len(group)}" for method, group in routed.plan.groups().items()))
    answer: dict[str, Any] = {
        "portal": list(routed.portal),
        "copies": [{"method": c.method, "recipients": list(c.recipients),
                    "message": base64.b64encode(c.data).decode("ascii"),
                    "mail_from": c.mail_from, "envelope_id": c.envelope_id}
                   for c in routed.copies],
        "plan": [{"address": c.address, "method": str(c.method),
                  "evidence": list(c.evidence)} for c in routed.plan.choices],
        "message_id": None, "body": None}
    if deposit is not None:
        answer.update(message_id=str(deposit.message_id), link=deposit.link,
                      content_type=deposit.notification.content_type,
                      body=base64.b64encode(deposit.notification.body).decode("ascii"))
    response = jsonify(answer)
    if deposit is not None and service.config.portal.notify_sender \
            and is_internal(service.config, deposit.sender):
        # After the milter has its answer: the notice never slows the mail it is about.
        response.call_on_close(partial(tell_sender, service.config, deposit,
                                       [c.address for c in routed.plan.choices]))
    return response, 201


@internal.post("/holds")
def create_hold() -> tuple[Response, int]:
    """Quarantine: the message is sealed and the hold recorded before the answer, since the
    milter then discards the MTA's copy. Its sender, if one of ours, gets the decision link."""
    payload = _payload()
    recipients = [r.lower() for r in _recipients(payload)]
    raw = _message(payload)
    if not raw:  # the vault would be the only copy of nothing
        abort(400, description="'message' is empty")
    mail_from = _field(payload, "mail_from", str)
    subject = _field(payload, "subject", str)
    report = dlp_report(payload.get("dlp"))
    service = services()
    sender = mail_from.lower()
    now = datetime.now(UTC)
    new = holds.NewHold(
        sender=sender, recipients=recipients, subject=subject, raw=raw, created_at=now,
        expires_at=now + timedelta(days=service.config.dlp.quarantine_days),
        policies=[p["name"] for p in report["policies"]], report=report,
        allow_send_as_is=report["allow_send_as_is"])
    hold_id = holds.create(service.vault, new, actor=sender or "milter")
    log.info("held a message from %s for %d recipient(s) as %s", sender, len(recipients),
             hold_id)
    response = jsonify(hold_id=str(hold_id))
    if sender and is_internal(service.config, sender):
        response.call_on_close(partial(_tell_sender_held, service.config, hold_id, new))
    response.call_on_close(partial(_expire_due, service))
    return response, 201


def _hold_without_method(service: Any, raw: bytes, mail_from: str, recipients: list[str],
                         subject: str, reason: str) -> tuple[Response, int]:
    """routing.no_method = "hold": the message waits for its sender (or for a certificate
    or key to be put on file) instead of bouncing. Durable before the answer."""
    now = datetime.now(UTC)
    sender = mail_from.lower()
    report = {"action": "quarantine", "reason": reason, "notify": False,
              "allow_send_as_is": False, "findings": [], "findings_total": 0,
              "unreadable": [], "unreadable_total": 0,
              "policies": [{"name": NO_METHOD_POLICY, "action": "quarantine", "count": 0,
                            "types": []}]}
    new = holds.NewHold(
        sender=sender, recipients=[r.lower() for r in recipients], subject=subject, raw=raw,
        created_at=now, expires_at=now + timedelta(days=service.config.dlp.quarantine_days),
        policies=[NO_METHOD_POLICY], report=report, allow_send_as_is=False)
    hold_id = holds.create(service.vault, new, actor=sender or "milter")
    log.info("held a message from %s: %s", sender, reason)
    response = jsonify(hold_id=str(hold_id), message=reason)
    if sender and is_internal(service.config, sender):
        response.call_on_close(partial(_tell_sender_held, service.config, hold_id, new))
    return response, 202


@internal.post("/delivery-reports")
def delivery_report() -> tuple[Response, int]:
    """A delivery status notification for a verified-TLS copy, taken by the milter from the
    return address. Anything that is not one of ours is accepted and dropped (the milter then
    drops it too): mail to the return address has nowhere else to go."""
    raw = _message(_payload())
    service = services()
    settled = service.tls.report(raw)
    if settled:
        tls_actions.tell_sender(service.config, service.vault, settled)
    return jsonify(settled=len(settled)), 202


@internal.post("/certificates")
def harvest_certificate() -> tuple[Response, int]:
    """A signed message the organisation received: its signer's S/MIME certificate is kept
    when the signature, the chain and the address check out. Checked after the answer (an
    OpenSSL child process), so the milter never waits for it."""
    raw = _message(_payload())
    service = services()
    if not service.config.routing.harvest_certificates:
        return jsonify(harvested=False, reason="harvesting is off"), 202
    response = jsonify(accepted=True)
    response.call_on_close(partial(keep_certificate, service.config, service.vault, raw))
    return response, 202


def keep_certificate(config: Config, vault: Vault, raw: bytes) -> None:
    routing = config.routing
    try:
        trust = config.path(routing.harvest_ca_file).read_bytes() \
            if routing.harvest_ca_file else None
    except OSError as error:
        log.warning("certificate not harvested: harvest_ca_file: %s", error.strerror)
        return
    result = harvest(raw, trust, datetime.now(UTC))
    if isinstance(result, NotHarvested):
        log.info("certificate not harvested: %s", result.reason)
        return
    try:
        added = recipient_keys.put(vault, "harvest", result.address, KeyKind.SMIME,
                                   result.fingerprint_sha256, result.certificate_pem,
                                   result.not_after, source="harvest")
    except Exception:  # after the answer: nobody to tell but the log
        log.exception("harvested certificate for %s not stored", result.address)
        return
    if added:
        log.info("certificate harvested for %s: %s", result.address, result.evidence)


@internal.post("/reports")
def create_report() -> tuple[Response, int]:
    """What a DLP policy found and what was done: audited, and mailed to the DLP address."""
    payload = _payload()
    recipients = [r.lower() for r in _recipients(payload)]
    sender = _field(payload, "mail_from", str).lower()
    subject = _field(payload, "subject", str)
    action = _text(_field(payload, "action", str), "action", 32)
    report = dlp_report(payload.get("dlp"))
    service = services()
    service.vault.record(sender or "milter", "dlp.reported", "message", "", {
        "sender": sender, "recipients": len(recipients), "action": action,
        "policies": [p["name"] for p in report["policies"]],
        "findings": summary(report)})
    response = jsonify(status="recorded")
    if service.config.dlp.notify_address:
        response.call_on_close(partial(_send_report, service.config, sender, recipients,
                                       subject, action, report))
    return response, 202


def is_internal(config: Config, address: str) -> bool:
    return domain_of(address) in config.organisation.domains


def tell_sender(config: Config, deposit: Deposit, recipients: list[str]) -> None:
    """To the sender of record, the envelope sender the MTA accepted (never a From header,
    which anyone can write): the notice carries the link that can withdraw the message."""
    send_after_response(config, lambda: notices.sent_securely(
        branding(config), from_address=config.from_address, to=deposit.sender,
        subject=deposit.subject, recipients=recipients,
        tracking_link=tracking_link(config, deposit.message_id)),
        f"'sent securely' notice for {deposit.message_id}")


def _tell_sender_held(config: Config, hold_id: uuid.UUID, hold: holds.NewHold) -> None:
    send_after_response(config, lambda: notices.held(
        branding(config), from_address=config.from_address, to=hold.sender,
        subject=hold.subject, recipients=hold.recipients,
        found=notices.found_items(hold.report["findings"], hold.report["unreadable"]),
        policies=hold.policies, link=hold_link(config, hold_id),
        expires_at=hold.expires_at, reason=hold.report.get("reason")),
        f"'held' notice for hold {hold_id}")


def _send_report(config: Config, sender: str, recipients: list[str], subject: str,
                 action: str, report: dict[str, Any]) -> None:
    send_after_response(config, lambda: notices.dlp_report(
        branding(config), from_address=config.from_address, to=config.dlp.notify_address,
        sender=sender, recipients=recipients, subject=subject, action=action,
        policies=[p["name"] for p in report["policies"]],
        found=notices.found_items(report["findings"], report["unreadable"], limit=50)),
        f"DLP report on a message from {sender}")


def _expire_due(service: Any) -> None:
    """Held content does not outlive its hold, even when nobody opens the link."""
    try:
        holds.expire_due(service.vault, datetime.now(UTC))
    except Exception:  # after the response: nobody to tell; the next hold tries again
        log.exception("expired holds not discarded")


# -- DLP reports -----------------------------------------------------------------------------

_KEPT_FINDINGS = 100  # a report keeps this many findings; the rest are only counted
_KEPT_UNREADABLE = 50
_ACTIONS = {"encrypt", "quarantine", "block", "notify"}


def dlp_report(value: object) -> dict[str, Any]:
    """The report with only its known fields, each checked; 400 with the reason otherwise.
    A finding's value must be masked: at most four letters or digits showing."""
    if not isinstance(value, dict):
        _bad("'dlp' is missing or not an object")
    action = value.get("action")
    if action is not None and action not in _ACTIONS:
        _bad(f"'dlp.action' must be one of {', '.join(sorted(_ACTIONS))}")
    policies = _list(value, "policies", 100)
    findings = _list(value, "findings", 100_000)
    unreadable = _list(value, "unreadable", 10_000)
    return {
        "action": action,
        "policies": [{
            "name": _text(_key(p, "name", str, "dlp.policies"), "dlp.policies[].name", 200),
            "action": _text(_key(p, "action", str, "dlp.policies"), "dlp.policies[].action", 16),
            "count": _count(p),
            "types": [_text(t, "dlp.policies[].types[]", 64)
                      for t in _key(p, "types", list, "dlp.policies")[:50]],
        } for p in policies],
        "notify": _flag(value, "notify"),
        "allow_send_as_is": _flag(value, "allow_send_as_is"),
        "findings": [_finding(f) for f in findings[:_KEPT_FINDINGS]],
        "findings_total": len(findings),
        "unreadable": [{
            "part": _text(_key(u, "part", str, "dlp.unreadable"), "dlp.unreadable[].part", 255),
            "problem": _text(_key(u, "problem", str, "dlp.unreadable"),
                             "dlp.unreadable[].problem", 32),
            "detail": _text(u.get("detail", ""), "dlp.unreadable[].detail", 300),
        } for u in unreadable[:_KEPT_UNREADABLE]],
        "unreadable_total": len(unreadable),
    }


def summary(report: dict[str, Any]) -> dict[str, Any]:
    """For the audit trail: how many of each type, the masked values, the unreadable parts."""
    types: dict[str, int] = {}
    for finding in report["findings"]:
        types[finding["type"]] = types.get(finding["type"], 0) + 1
    return {"types": types, "total": report["findings_total"],
            "masked": [f"{f['type']} {f['value']}" for f in report["findings"][:20]],
            "unreadable": [f"{u['part']}: {u['problem']}" for u in report["unreadable"][:20]]}


def _finding(item: object) -> dict[str, str]:
    where = "dlp.findings"
    value = _text(_key(item, "value", str, where), "dlp.findings[].value", 200)
    if sum(ch.isalnum() for ch in value) > 4:
        _bad("'dlp.findings[].value' must be masked (at most four characters showing)")
    finding = {
        "part": _text(_key(item, "part", str, where), "dlp.findings[].part", 255),
        "type": _text(_key(item, "type", str, where), "dlp.findings[].type", 64),
        "confidence": _text(_key(item, "confidence", str, where),
                            "dlp.findings[].confidence", 16),
        "value": value,
    }
    label = item.get("label") if isinstance(item, dict) else None
    if isinstance(label, str) and label:
        finding["label"] = _text(label, "dlp.findings[].label", 100)
    return finding


def _list(value: dict[str, Any], name: str, limit: int) -> list[Any]:
    found = value.get(name, [])
    if not isinstance(found, list):
        _bad(f"'dlp.{name}' must be a list")
    if len(found) > limit:
        _bad(f"'dlp.{name}' has more than {limit} entries")
    return found


def _key(item: object, name: str, kind: type, where: str) -> Any:
    if not isinstance(item, dict):
        _bad(f"'{where}' must hold objects")
    value = item.get(name)
    if not isinstance(value, kind) or isinstance(value, bool) != (kind is bool):
        _bad(f"'{where}[].{name}' is missing or not a {kind.__name__}")
    return value


def _count(policy: object) -> int:
    count: int = _key(policy, "count", int, "dlp.policies")
    if count < 0:
        _bad("'dlp.policies[].count' must not be negative")
    return count


def _flag(value: dict[str, Any], name: str) -> bool:
    flag = value.get(name, False)
    if not isinstance(flag, bool):
        _bad(f"'dlp.{name}' must be true or false")
    return flag


def _text(value: object, name: str, limit: int) -> str:
    if not isinstance(value, str):
        _bad(f"'{name}' must be a string")
    if len(value) > limit:
        _bad(f"'{name}' is longer than {limit} characters")
    return value


def _bad(reason: str) -> NoReturn:
    abort(400, description=reason)
