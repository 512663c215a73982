"""The Outlook add-in's API (/api/v1): a tag for Encrypt, the on-send scan, and a secure
message read inside Outlook, with its tracking and retraction for the sender.

Every route needs `Authorization: Bearer <token>`, a Microsoft identity platform access token
(see tokens.py). The signed-in user sees only messages addressed to them or sent by them;
anyone else gets the same 404 whether or not the message exists, and the attempt is audited.
Errors are JSON `{error, message}` with a fixed machine `error`.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import logging
import re
import secrets
import uuid
from dataclasses import dataclass
from functools import partial
from typing import Any, NoReturn

from flask import Blueprint, Response, abort, current_app, g, jsonify, request
from flask.blueprints import BlueprintSetupState
from sqlalchemy import select
from sqlalchemy.orm import Session, selectinload
from werkzeug.exceptions import RequestEntityTooLarge

from sealgate.config import Config
from sealgate.dlp.inspect import DraftFile, Inspector, Report
from sealgate.errors import ConfigError
from sealgate.exchange.mailbox import MailboxError
from sealgate.exchange.tokens import TokenBroker
from sealgate.exchange.tokens import TokenError as ExchangeTokenError
from sealgate.exchange.writeback import ItemIds, MailboxUser
from sealgate.exchange.writeback import save_to_mailbox as save_mime
from sealgate.mail.triggers import TAG_HEADER
from sealgate.mail.verdict import is_internal
from sealgate.server import reading_core as core
from sealgate.server.api.tokens import Identity, TokenError, TokenValidator
from sealgate.server.app import services
from sealgate.server.links import public_url
from sealgate.server.routing import cleaned_message
from sealgate.vault.models import MessageState, Part, PartKind, Recipient, SecureMessage

log = logging.getLogger(__name__)
addin = Blueprint("addin", __name__)

PREFIX = "/api/v1"  # where app.py registers this blueprint; part URLs are built from it
VALIDATOR = "sealgate.addin_tokens"
BROKER = "sealgate.exchange_tokens"
_ITEM_ID = re.compile(r"[A-Za-z0-9+/=_\-]{1,1024}")  # EWS ids (base64) and REST ids
MIB = 1024 * 1024
SMALL_BODY = 64 * 1024
MAX_ATTACHMENTS = 500
MAX_RECIPIENTS = 1000


# -- authentication ------------------------------------------------------------------------

@addin.record_once
def _create_validator(state: BlueprintSetupState) -> None:
    # One per application, so the key set stays cached from one request to the next.
    state.app.extensions[VALIDATOR] = TokenValidator(state.app.extensions["sealgate"].config)


def validator() -> TokenValidator:
    found: TokenValidator = current_app.extensions[VALIDATOR]
    return found


def _bearer() -> str | None:
    scheme, _, token = request.headers.get("Authorization", "").strip().partition(" ")
    return (token.strip() or None) if scheme.lower() == "bearer" else None


@addin.before_request
def _authenticate() -> None:
    g.addin_user = validator().validate(_bearer())


def current_user() -> Identity:
    found: Identity = g.addin_user
    return found


@addin.errorhandler(TokenError)
def _refused(error: TokenError) -> Response:
    log.info("add-in API refused %s %s from %s: %s", request.method, request.path,
             request.remote_addr, error.reason)
    response = jsonify(error=error.reason, message=error.message)
    response.status_code = error.status
    if error.reason == "missing_token":  # RFC 6750 §3.1: no error code when none was sent
        response.headers["WWW-Authenticate"] = 'Bearer realm="sealgate"'
    elif error.status == 401:
        response.headers["WWW-Authenticate"] = (
            f'Bearer realm="sealgate", error="invalid_token", '
            f'error_description="{error.message}"')
    elif error.status == 403:
        response.headers["WWW-Authenticate"] = (
            f'Bearer realm="sealgate", error="insufficient_scope", '
            f'scope="{services().config.addin.scope}"')
    else:
        response.headers["Retry-After"] = "30"
    return response


@addin.after_request
def _no_store(response: Response) -> Response:
    response.headers.setdefault("Cache-Control", "no-store")
    return response


def _refuse(status: int, error: str, message: str, **extra: Any) -> NoReturn:
    response = jsonify(error=error, message=message, **extra)
    response.status_code = status
    abort(response)


def _details(**extra: Any) -> dict[str, Any]:
    return {"ip": request.remote_addr or "", "via": "addin", **extra}


# -- request bodies ------------------------------------------------------------------------

def _json_object(limit: int, largest: str, empty_ok: bool = False) -> dict[str, Any]:
    """The body as a JSON object, read only when it fits in `limit` bytes."""
    if request.content_length is not None and request.content_length > limit:
        _too_large(largest)
    request.max_content_length = limit  # also holds for a body sent without a length
    try:
        data = request.get_data(cache=False)
    except RequestEntityTooLarge:
        _too_large(largest)
    if empty_ok and not data.strip():
        return {}
    try:
        payload = json.loads(data)
    except (ValueError, RecursionError):
        _refuse(400, "malformed_json", "the body is not valid JSON")
    if not isinstance(payload, dict):
        _refuse(400, "malformed_json", "the body must be a JSON object")
    return payload


def _too_large(largest: str) -> NoReturn:
    _refuse(413, "too_large", f"the request is larger than {largest}, the most this accepts")


def _invalid(name: str, expected: str) -> NoReturn:
    _refuse(400, "invalid_field", f"'{name}' must be {expected}", field=name)


def _text(payload: dict[str, Any], name: str, default: str = "") -> str:
    value = payload.get(name, default)
    if value is None:
        return default
    if not isinstance(value, str):
        _invalid(name, "a string")
    return value


# -- compose: the Encrypt tag ----------------------------------------------------------------

@addin.post("/tags")
def create_tag() -> tuple[Response, int]:
    """A fresh opaque value for the header the milter triggers on. Only its digest is kept:
    the audit trail says who asked for which tag, never the tag itself."""
    user = current_user()
    _text(_json_object(SMALL_BODY, "64 KB", empty_ok=True), "subject")
    tag = secrets.token_urlsafe(32)
    digest = hashlib.sha256(tag.encode("ascii")).hexdigest()
    services().vault.record(user.address, "addin.tagged", "tag", digest, _details())
    return jsonify(header=TAG_HEADER, value=tag), 201


# -- on send: the DLP scan ---------------------------------------------------------------------

@dataclass(frozen=True)
class Draft:
    subject: str
    body: str
    body_type: str  # "text" or "html"
    attachments: tuple[DraftFile, ...]
    recipients: tuple[str, ...]  # when the add-in sends them; policies may be scoped by them


def scan_draft(draft: Draft, config: Config, sender: str) -> dict[str, Any]:
    """The verdict on a draft: the same engine and policies as the milter on the sent
    message. Like the milter, mail that stays inside the organisation is not held back; when
    the add-in does not say who the recipients are, the draft is judged as going outside."""
    external = [r for r in draft.recipients if not is_internal(r, config.organisation.domains)]
    inspector = _inspector(config)
    if inspector is None or (draft.recipients and not external):
        return Report().as_dict()
    return inspector.draft(draft.subject, draft.body, draft.body_type, draft.attachments,
                           sender, external).as_dict()


def _inspector(config: Config) -> Inspector | None:
    """Built once per DLP settings: compiling the detectors takes a while. The settings it
    was built from are kept with it (so their identity cannot be reused): an administrator's
    change makes a new one."""
    cache = current_app.extensions.setdefault("sealgate.dlp", {})
    built = cache.get("inspector")
    if built is None or built[0] is not config.dlp:
        built = cache["inspector"] = (config.dlp, Inspector.from_config(config))
    return built[1]  # type: ignore[no-any-return]


def scan_limits(config: Config) -> tuple[int, int]:
    """(largest request body, largest decoded draft) in bytes: the body carries attachments
    in base64, a third larger, plus the JSON around them; never above the server's cap."""
    draft = config.addin.max_scan_mb * MIB
    body = draft * 4 // 3 + MIB
    cap = current_app.config.get("MAX_CONTENT_LENGTH")
    return (min(body, cap) if cap else body), draft


def _draft(payload: dict[str, Any], limit: int, largest: str) -> Draft:
    subject = _text(payload, "subject")
    body = _text(payload, "body")
    body_type = _text(payload, "body_type", "text")
    if body_type not in ("text", "html"):
        _invalid("body_type", '"text" or "html"')
    listed = payload.get("attachments") or []
    if not isinstance(listed, list):
        _invalid("attachments", "a list")
    if len(listed) > MAX_ATTACHMENTS:
        _invalid("attachments", f"at most {MAX_ATTACHMENTS} items")
    size = len(subject.encode("utf-8", "replace")) + len(body.encode("utf-8", "replace"))
    encoded: list[tuple[str, str, str | None]] = []
    for index, item in enumerate(listed):
        where = f"attachments[{index}]"
        if not isinstance(item, dict):
            _invalid(where, "an object")
        name = item.get("name")
        if not isinstance(name, str):
            _invalid(f"{where}.name", "a string")
        content_type = item.get("content_type") or "application/octet-stream"
        if not isinstance(content_type, str):
            _invalid(f"{where}.content_type", "a string")
        content = item.get("content_base64")
        if content is not None and not isinstance(content, str):
            _invalid(f"{where}.content_base64", "a base64 string")
        size += len(content) * 3 // 4 if content else 0
        encoded.append((name, content_type, content))
    if size > limit:  # before decoding anything
        _too_large(largest)
    attachments = []
    for index, (name, content_type, content) in enumerate(encoded):
        data = None
        if content is not None:
            try:
                data = base64.b64decode(content, validate=True)
            except (binascii.Error, ValueError):
                _invalid(f"attachments[{index}].content_base64", "a base64 string")
        attachments.append(DraftFile(name, content_type, data))
    return Draft(subject, body, body_type, tuple(attachments), _recipients(payload))


def _recipients(payload: dict[str, Any]) -> tuple[str, ...]:
    listed = payload.get("recipients") or []
    if not isinstance(listed, list) or len(listed) > MAX_RECIPIENTS or not all(
            isinstance(r, str) and "@" in r and len(r) <= 320 for r in listed):
        _invalid("recipients", f"a list of at most {MAX_RECIPIENTS} addresses")
    return tuple(r.strip().lower() for r in listed)


@addin.post("/scan")
def scan() -> Response:
    service = services()
    body_limit, draft_limit = scan_limits(service.config)
    largest = f"a draft of {service.config.addin.max_scan_mb} MB"
    draft = _draft(_json_object(body_limit, largest), draft_limit, largest)
    result = scan_draft(draft, service.config, current_user().address)
    log.info("add-in scan for %s: %d attachment(s), %d finding(s), action %s",
             current_user().address, len(draft.attachments), len(result["findings"]),
             result["action"])
    return jsonify(result)


# -- read mode ---------------------------------------------------------------------------------

@dataclass(frozen=True)
class Access:
    message: SecureMessage
    recipient: Recipient | None  # the user's row when they are a recipient
    is_sender: bool


def _access(db: Session, message_id: uuid.UUID, *, sender_only: bool = False,
            readable: bool = True) -> Access:
    """The message when the user may see it (and, unless `readable` is False, it can still be
    read); anyone else gets the same 404 whether or not it exists, and the trail says so."""
    user = current_user()
    message = db.get(SecureMessage, message_id, options=[
        selectinload(SecureMessage.recipients), selectinload(SecureMessage.parts)])
    # Addresses are stored lower-cased (server/deposit.py), as token addresses are.
    recipient = next((r for r in message.recipients if r.address == user.address),
                     None) if message is not None else None
    is_sender = message is not None and message.sender == user.address
    if message is None or not (is_sender or (recipient is not None and not sender_only)):
        log.warning("add-in API: %s asked for message %s, which is not theirs", user.address,
                    message_id)
        services().vault.record(user.address, "api.denied", "message", str(message_id),
                                _details(path=request.path))
        _refuse(404, "not_found", "There is no message for you at this address.")
    if readable and not message.is_readable(core.now()):
        reason = "retracted" if message.state is MessageState.RETRACTED else "expired"
        _refuse(410, reason, f"This message has been {reason}: it can no longer be read.",
                state=reason)
    if readable and not is_sender and recipient is not None \
            and recipient.answer_hash is not None:
        # The sender asked for an answer only the recipient knows; the portal asks it.
        _refuse(403, "question_required",
                "The sender set a question for this message: open it in the secure portal.",
                portal_url=public_url(services().config, f"/m/{message_id}"))
    return Access(message, recipient, is_sender)


def _part_url(config: Config, part: Part) -> str:
    return public_url(config, f"{PREFIX}/messages/{part.message_id}/parts/{part.id}")


def _iso(moment: Any) -> str | None:
    return moment.isoformat() if moment is not None else None


@addin.get("/messages")
def sent_by_me() -> Response:
    """The sender's own sent copy carries the original Message-ID, not a Sealgate link:
    `?internet_message_id=<...>` finds the secure messages the caller sent with it."""
    wanted = request.args.get("internet_message_id", "").strip()
    if not wanted or len(wanted) > 998:
        _refuse(400, "invalid_field", "give internet_message_id, the draft's Message-ID",
                field="internet_message_id")
    bare = wanted.strip("<>")
    user = current_user()
    with services().vault.database.session() as db:
        found = db.scalars(select(SecureMessage.id).where(
            SecureMessage.sender == user.address,
            SecureMessage.header_message_id.in_([f"<{bare}>", bare]))
            .order_by(SecureMessage.created_at.desc()).limit(20)).all()
    return jsonify(messages=[{"id": str(message_id)} for message_id in found])


@addin.get("/messages/<uuid:message_id>")
def message(message_id: uuid.UUID) -> Response:
    service = services()
    config, vault = service.config, service.vault
    user = current_user()
    with vault.database.session() as db:
        access = _access(db, message_id)
        found = access.message
        parts = list(found.parts)
        body = core.message_body(vault, found.id, parts, partial(_part_url, config),
                                 allow_remote=False)
        document: dict[str, Any] = {
            "id": str(found.id), "subject": found.subject, "sender": found.sender,
            "sender_name": found.sender_name, "created_at": _iso(found.created_at),
            "state": found.state.value, "expires_at": _iso(found.expires_at),
            "html": body.html, "text": core.message_text(vault, parts),
            "remote_images_blocked": body.blocked_remote,
            "attachments": [{"id": str(p.id), "filename": p.filename or "attachment",
                             "content_type": core.served_type(p.content_type),
                             "size": p.size, "url": _part_url(config, p)}
                            for p in parts if p.kind is PartKind.ATTACHMENT],
        }
        if access.recipient is not None and config.exchange.backend \
                and is_internal(user.address, config.organisation.domains):
            # The add-in offers "Save to mailbox" (or does it at once, with auto_save).
            document["mailbox"] = {"available": True, "auto": config.exchange.auto_save}
        if access.is_sender:
            document["tracking"] = {"recipients": [{
                "address": r.address, "method": r.delivery_method.value,
                "first_opened_at": _iso(r.first_opened_at),
                "last_opened_at": _iso(r.last_opened_at), "downloads": r.downloads}
                for r in found.recipients]}
        html = next((p for p in parts if p.kind is PartKind.HTML), None)
    response = jsonify(document)
    if access.recipient is not None:
        counted = html if html is not None and html.remote_images is None else None
        first = core.record_open(vault, access.recipient.id, user.address, found.id,
                                 _details(), counted, body.blocked_remote)
        if first is not None and config.portal.read_receipts:
            response.call_on_close(partial(core.send_read_receipt, config, found,
                                           user.address, first))
    return response


@addin.get("/messages/<uuid:message_id>/parts/<uuid:part_id>")
def part(message_id: uuid.UUID, part_id: uuid.UUID) -> Response:
    vault = services().vault
    user = current_user()
    with vault.database.session() as db:
        access = _access(db, message_id)
        found = next((p for p in access.message.parts
                      if p.id == part_id and p.kind in core.DOWNLOADABLE), None)
        if found is None:
            _refuse(404, "not_found", "This attachment is not part of the message.")
    if not core.shown_inline(found):
        core.record_download(vault, access.recipient.id if access.recipient else None,
                             user.address, found, _details())
    return core.part_response(vault, found)


@addin.post("/messages/<uuid:message_id>/mailbox")
def save_to_mailbox(message_id: uuid.UUID) -> Response:
    """Replace the placeholder in the caller's own mailbox (the item Outlook has open) by the
    full message. Only a recipient inside the organisation, for a message still readable;
    the placeholder goes only once the full message is confirmed in its folder."""
    service = services()
    config, vault = service.config, service.vault
    user = current_user()
    if not config.exchange.backend:
        _refuse(404, "not_enabled", "Saving secure messages to the mailbox is not enabled.")
    body = _json_object(SMALL_BODY, "64 KB")
    ids = ItemIds(_text(body, "item_id"), _text(body, "rest_id"))
    if not (ids.ews or ids.rest) or not all(
            _ITEM_ID.fullmatch(value) for value in (ids.ews, ids.rest) if value):
        _invalid("item_id", "the id Outlook gives the open item")
    with vault.database.session() as db:
        access = _access(db, message_id)
        if access.recipient is None or not is_internal(user.address,
                                                       config.organisation.domains):
            _refuse(403, "not_a_recipient",
                    "Only a recipient inside the organisation can save it to their mailbox.")
        subject = access.message.subject
    mime = cleaned_message(vault.original(message_id), subject)
    details = _details(backend=config.exchange.backend, item=ids.rest or ids.ews)
    try:
        done = save_mime(config, _broker(), MailboxUser(user.address, user.object_id,
                                                        _bearer() or ""), ids, mime)
    except ConfigError as error:  # a setting of [exchange] the backend cannot use
        log.error("saving to mailboxes is misconfigured: %s", error)
        vault.record(user.address, "mailbox.save_failed", "message", str(message_id),
                     {**details, "error": "ConfigError", "detail": str(error)[:300]})
        _refuse(503, "mailbox_not_configured", "Saving to the mailbox is not set up correctly; "
                "please tell your administrator. The message is still in the portal.")
    except ExchangeTokenError as error:
        vault.record(user.address, "mailbox.save_failed", "message", str(message_id),
                     {**details, "error": type(error).__name__, "detail": str(error)[:300]})
        _refuse(403, "mailbox_token", error.user_message)
    except MailboxError as error:
        vault.record(user.address, "mailbox.save_failed", "message", str(message_id),
                     {**details, "error": type(error).__name__, "detail": str(error)[:300]})
        if error.retry_after is not None:
            response = jsonify(error="mailbox_busy", message=error.user_message,
                               retry_after=error.retry_after)
            response.status_code = 429
            response.headers["Retry-After"] = str(max(1, round(error.retry_after)))
            abort(response)
        _refuse(502, "mailbox_refused", error.user_message)
    vault.record(user.address, "mailbox.saved", "message", str(message_id),
                 {**details, "new_item": done.new_item_id,
                  "placeholder_removed": done.placeholder_removed,
                  **({"problem": done.problem[:300]} if done.problem else {})})
    return jsonify(saved=True, item_id=done.new_item_id,
                   placeholder_removed=done.placeholder_removed)


def _broker() -> TokenBroker:
    """One per application: msal's token cache lives in it."""
    found = current_app.extensions.get(BROKER)
    if found is None:
        found = current_app.extensions[BROKER] = TokenBroker(services().config)
    broker: TokenBroker = found
    return broker


@addin.post("/messages/<uuid:message_id>/retract")
def retract(message_id: uuid.UUID) -> Response:
    vault = services().vault
    user = current_user()
    with vault.database.session() as db:
        _access(db, message_id, sender_only=True, readable=False)
    with vault.database.writing() as db:
        found = db.get(SecureMessage, message_id)
        if found is None:  # deleted in between
            _refuse(404, "not_found", "There is no message for you at this address.")
        core.retract(vault, db, found, user.address, _details())
        state = found.state.value
    return jsonify(id=str(message_id), state=state)
