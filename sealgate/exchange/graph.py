"""Exchange Online write-back over Microsoft Graph v1.0: the `Mailbox` of `mailbox.py` for one
user ("me" with a delegated token, or a user id / UPN with an app-only token).

How the full message gets into the folder, and why this way
-----------------------------------------------------------
The message is created from JSON (`POST /{user}/mailFolders/{folder}/messages`), built here
from the original MIME, with three MAPI properties set in the same request as
`singleValueExtendedProperties`:

- PidTagMessageFlags (`Integer 0x0E07`): MSGFLAG_READ (0x1) or 0, and never MSGFLAG_UNSENT
  (0x8), so the item is a received message, not a draft, with the placeholder's read state.
  Exchange takes this property only while the item is being created, so it has to be in
  the create request (learn.microsoft.com/office/client-developer/outlook/mapi/
  pidtagmessageflags-canonical-property; the exchangelib issue #716 thread on "saved
  messages are flagged as Draft"; Glen Scales' article below).
- PidTagMessageDeliveryTime (`SystemTime 0x0E06`): the placeholder's received date, which
  Exchange reports as the received time (Graph's `receivedDateTime`); PidTagClientSubmitTime
  (`SystemTime 0x0039`): the original `Date`, reported as the sent time (`sentDateTime`)
  (MAPI canonical property pages; gsexdev.blogspot.com 2014/08, "Sent and Received Time on
  a Message and EWS").

The alternatives, and why not:

- MIME create (`Content-Type: text/plain`, base64 MIME) keeps the MIME as sent but always
  makes a draft (`isDraft: true`, shown as "[Draft]" in Outlook), and the draft flag cannot
  be cleared afterwards: Graph takes no extended properties with a MIME body and
  PidTagMessageFlags is read-only once the item exists. Microsoft's docs call this
  operation "Create draft message", and the question keeps coming back
  (microsoftgraph/microsoft-graph-docs issues #14829 and #14843, where re-creating the draft
  as a non-draft lost the original headers; docs-contrib #8631; msgraph-sdk-python #791,
  "equivalent to IMAP APPEND", answered: JSON or MIME create only, ask for the feature).
  Glen Scales, "Work around for importing Mime messages into Exchange Online using the
  Microsoft Graph" (glenscales.substack.com) explains why: PidTagMessageFlags cannot be set
  in the MIME create and cannot be changed after it.
- The mailbox import/export API (`/admin/exchange/mailboxes/{id}/createImportSession`, then a
  POST to the returned `importUrl`) creates items in full fidelity, but it imports only items
  in the FastTransfer stream format that `exportItems` produced: an opaque serialisation of
  MAPI properties, not MIME, that Microsoft says is not for parsing or building
  (learn.microsoft.com/graph/import-exchange-mailbox-item, mailbox-createimportsession;
  Glen Scales, "A first look at the new Import Export Mailbox API", parts 2 and 3). There
  is no MIME to FTS conversion to call, and it needs a separate permission
  (MailboxItem.ImportExport). If Microsoft adds MIME import there, that is the better road.

What is kept: subject; body (the HTML alternative, else the plain text); From, Sender, To, Cc,
Bcc (when present) and Reply-To; every attachment, byte for byte, with its name and media
type, and the images the HTML shows by `cid:` as inline attachments with their Content-ID
(a part the HTML does not show stays a visible attachment, since Outlook hides inline ones);
attached messages as `.eml` files; text parts that are not the body, as attachments; the
Message-ID (`internetMessageId`); In-Reply-To and References (PidTagInReplyToId
`String 0x1042`, PidTagInternetReferences `String 0x1039`) so the conversation threads; the
`x-` headers as `internetMessageHeaders` (Graph refuses other names there:
InvalidInternetMessageHeader); importance; the whole original header block as the transport
headers (PidTagTransportMessageHeaders `String 0x007D`, what Outlook shows as "Internet
headers" on a received message); the read state, the received date and the folder.

What is not: the MIME bytes themselves. Exchange stores the message as properties and makes
new MIME when asked for it (`/$value`), so boundaries, transfer encodings, header folding and
order differ from the original, and a signature over the whole MIME (S/MIME, DKIM) no longer
verifies. Parts nested in ways Graph has no place for (a second text body beside the first,
for example) become attachments. Headers other than `x-` are kept only in the transport
headers, not as individual headers.

Not verified against a live tenant: this module was tested against the fake Graph in
tests/exchange/graph_server.py, which models the behaviour described above. Three points rest
on community reports and MAPI documentation rather than on a Graph page: that Exchange
Online honours PidTagMessageFlags and the two times in a JSON create; that it accepts a
written PidTagTransportMessageHeaders (if a tenant refuses it, create the mailbox with
`transport_headers=False`); and that attachments can be added, by POST or upload session,
to an item that is no longer a draft.

Sizes: Graph takes at most 4 MB in one request. The message (without attachments) must fit
in `CREATE_BUDGET` of JSON, or TooLarge. Attachments ride in the create request while it
stays under that budget; the others are added after it: under 3 MB by a POST on the
message's attachments, from 3 MB to 150 MB through an upload session (`createUploadSession`,
then PUTs of at most 4 MB to the pre-authenticated `uploadUrl`, which get no Authorization
header) (learn.microsoft.com/graph/outlook-large-attachments). A message over
`max_message_bytes` (150 MB, Exchange Online's highest per-mailbox limit, by default; the
mailbox's own limit, 35 MB unless the administrator raised it, is enforced by the service
and answered as TooLarge) is refused before anything is created. When adding an attachment
fails, the incomplete copy is deleted again before the error is raised: the placeholder is
untouched.
"""

from __future__ import annotations

import base64
import json
import logging
import mimetypes
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email import policy
from email.message import EmailMessage, Message, MIMEPart
from email.parser import BytesParser
from email.utils import parsedate_to_datetime
from typing import Any
from urllib.parse import quote, urlsplit

import requests

from sealgate.exchange.mailbox import (
    AccessDenied,
    ItemNotFound,
    MailboxError,
    MailboxItem,
    Throttled,
    TooLarge,
)

log = logging.getLogger(__name__)

GRAPH_URL = "https://graph.microsoft.com/v1.0"

MESSAGE_FLAGS = "Integer 0x0E07"  # PidTagMessageFlags
DELIVERY_TIME = "SystemTime 0x0E06"  # PidTagMessageDeliveryTime: receivedDateTime
SUBMIT_TIME = "SystemTime 0x0039"  # PidTagClientSubmitTime: sentDateTime
TRANSPORT_HEADERS = "String 0x007D"  # PidTagTransportMessageHeaders
IN_REPLY_TO = "String 0x1042"  # PidTagInReplyToId
REFERENCES = "String 0x1039"  # PidTagInternetReferences
MSGFLAG_READ = 0x1

MIB = 1024 * 1024
CREATE_BUDGET = 3 * MIB  # JSON in the create request: well under Graph's 4 MB
SINGLE_POST_LIMIT = 3 * MIB  # attachments below this: one POST; from it: an upload session
UPLOAD_SESSION_LIMIT = 150 * MIB
UPLOAD_CHUNK = 3 * MIB  # each PUT to an upload session: at most 4 MB
MAX_MESSAGE_BYTES = 150 * MIB
TRANSPORT_HEADERS_LIMIT = 256 * 1024  # Exchange Online's limit on a message's headers
X_HEADERS_LIMIT = 32 * 1024  # our own cap on the x- headers sent as internetMessageHeaders

_THROTTLED = {"ApplicationThrottled", "ErrorServerBusy", "MailboxConcurrency",
              "TooManyRequests", "ErrorTooManyObjectsOpened"}
_TOO_LARGE = {"ErrorMessageSizeExceeded", "RequestEntityTooLarge", "ErrorQuotaExceeded",
              "ErrorAttachmentSizeLimitExceeded"}
_NOT_FOUND = {"ErrorItemNotFound", "ItemNotFound", "ErrorInvalidUser", "ErrorFolderNotFound",
              "ErrorObjectNotFound"}
_DENIED = {"ErrorAccessDenied", "AccessDenied", "Authorization_RequestDenied",
           "InvalidAuthenticationToken", "ErrorInsufficientPermissions"}


# --- the message, from MIME to Graph JSON (pure) ---------------------------------------------


@dataclass(frozen=True)
class Attachment:
    name: str
    content_type: str
    data: bytes
    is_inline: bool = False
    content_id: str | None = None

    def file_attachment(self) -> dict[str, Any]:
        """The fileAttachment resource, content included."""
        body: dict[str, Any] = {"@odata.type": "#microsoft.graph.fileAttachment",
                                "name": self.name, "contentType": self.content_type,
                                "isInline": self.is_inline,
                                "contentBytes": base64.b64encode(self.data).decode("ascii")}
        if self.content_id:
            body["contentId"] = self.content_id
        return body

    def upload_item(self) -> dict[str, Any]:
        """The attachmentItem that opens an upload session for it."""
        item: dict[str, Any] = {"attachmentType": "file", "name": self.name,
                                "size": len(self.data), "contentType": self.content_type,
                                "isInline": self.is_inline}
        if self.content_id:
            item["contentId"] = self.content_id
        return item


@dataclass(frozen=True)
class GraphMessage:
    """What to send: `create` (the JSON of the create request, with the attachments that fit
    in it), then each of `posted` (one POST each) and `uploaded` (an upload session each)."""

    create: dict[str, Any]
    posted: list[Attachment] = field(default_factory=list)
    uploaded: list[Attachment] = field(default_factory=list)


def graph_message(mime: bytes, *, is_read: bool, received: datetime | None,
                  transport_headers: bool = True,
                  max_message_bytes: int = MAX_MESSAGE_BYTES) -> GraphMessage:
    """The Graph requests that store `mime` as a received message (see the module's
    docstring). TooLarge when it cannot fit; MailboxError when there is nothing to store."""
    if not mime.strip():
        raise MailboxError("the message to store is empty")
    if len(mime) > max_message_bytes:
        raise TooLarge(f"the message is {_mb(len(mime))}; the mailbox write-back takes at "
                       f"most {_mb(max_message_bytes)}")
    message = BytesParser(policy=policy.default).parsebytes(mime)
    assert isinstance(message, EmailMessage)  # policy.default builds EmailMessage
    body_part = message.get_body(preferencelist=("html", "plain"))
    body = "" if body_part is None else _text(body_part)
    html = body_part is not None and body_part.get_content_subtype() == "html"
    attachments = _attachments(message, body_part, body if html else "")
    for attachment in attachments:
        if len(attachment.data) > UPLOAD_SESSION_LIMIT:
            raise TooLarge(f"the attachment {attachment.name!r} is "
                           f"{_mb(len(attachment.data))}; Exchange Online takes at most "
                           f"{_mb(UPLOAD_SESSION_LIMIT)} per attachment")

    create: dict[str, Any] = {"subject": _header_text(message, "Subject")}
    create["body"] = {"contentType": "html" if html else "text", "content": body}
    sender = _addresses(message, "From")
    if sender:
        create["from"] = sender[0]
    on_behalf = _addresses(message, "Sender") or sender
    if on_behalf:
        create["sender"] = on_behalf[0]
    for header, name in (("To", "toRecipients"), ("Cc", "ccRecipients"),
                         ("Bcc", "bccRecipients"), ("Reply-To", "replyTo")):
        found = _addresses(message, header)
        if found:
            create[name] = found
    create["isRead"] = is_read
    importance = _importance(message)
    if importance:
        create["importance"] = importance
    message_id = _header_text(message, "Message-ID").strip()
    if message_id:
        create["internetMessageId"] = message_id
    x_headers = _x_headers(message)
    if x_headers:
        create["internetMessageHeaders"] = x_headers

    sent = _date(message)
    properties = [{"id": MESSAGE_FLAGS, "value": str(MSGFLAG_READ if is_read else 0)}]
    delivered = received or sent
    if delivered is not None:
        properties.append({"id": DELIVERY_TIME, "value": _graph_time(delivered)})
    if sent is not None:
        properties.append({"id": SUBMIT_TIME, "value": _graph_time(sent)})
    for header, property_id in (("In-Reply-To", IN_REPLY_TO), ("References", REFERENCES)):
        value = _unfold(_header_text(message, header))
        if value:
            properties.append({"id": property_id, "value": value})
    if transport_headers:
        block = _header_block(mime)
        if block:
            properties.append({"id": TRANSPORT_HEADERS, "value": block})
    create["singleValueExtendedProperties"] = properties

    size = _json_size(create)
    if size > CREATE_BUDGET:
        raise TooLarge(f"the message without its attachments is {_mb(size)} as Graph JSON; "
                       f"one request to Microsoft Graph takes at most {_mb(CREATE_BUDGET)}")
    inline: list[dict[str, Any]] = []
    posted: list[Attachment] = []
    uploaded: list[Attachment] = []
    for attachment in attachments:
        if len(attachment.data) >= SINGLE_POST_LIMIT:
            uploaded.append(attachment)
            continue
        resource = attachment.file_attachment()
        grown = size + _json_size(resource) + 2
        if grown <= CREATE_BUDGET:
            inline.append(resource)
            size = grown
        else:
            posted.append(attachment)
    if inline:
        create["attachments"] = inline
    return GraphMessage(create, posted, uploaded)


def _leaves(part: Message, ancestors: tuple[Message, ...] = ()
            ) -> Iterator[tuple[Message, tuple[Message, ...]]]:
    """The parts that hold content, each with the multiparts around it. An attached message
    is one leaf: it stays an attachment, not a heap of parts."""
    if part.get_content_maintype() == "multipart" and part.is_multipart():
        for child in part.get_payload():
            if isinstance(child, Message):
                yield from _leaves(child, (*ancestors, part))
    else:
        yield part, ancestors


def _attachments(message: EmailMessage, body: Message | None, html: str) -> list[Attachment]:
    # The body's other renderings (the plain text beside the HTML) are not attachments;
    # any other text part is, so that nothing of the message is lost.
    alternatives: set[int] = set()
    if body is not None:
        for leaf, ancestors in _leaves(message):
            if leaf is body:
                alternatives = {id(ancestor) for ancestor in ancestors
                                if ancestor.get_content_type() == "multipart/alternative"}
                break
    found: list[Attachment] = []
    for number, (leaf, ancestors) in enumerate(_leaves(message), start=1):
        if leaf is body:
            continue
        disposition = leaf.get_content_disposition()
        filename = leaf.get_filename()
        if (leaf.get_content_type() in ("text/plain", "text/html") and filename is None
                and disposition != "attachment"
                and any(id(ancestor) in alternatives for ancestor in ancestors)):
            continue
        found.append(_attachment(leaf, number, filename, html))
    return found


def _attachment(part: Message, number: int, filename: str | None, html: str) -> Attachment:
    content_type = part.get_content_type()
    if part.get_content_maintype() == "message" and part.is_multipart():
        inner = [piece for piece in part.get_payload() if isinstance(piece, Message)]
        data = b"\n".join(piece.as_bytes(policy=policy.default) for piece in inner)
        if filename is None and content_type == "message/rfc822" and inner:
            subject = _unfold(str(inner[0].get("Subject", ""))).strip()
            filename = f"{_safe_name(subject) or f'message-{number}'}.eml"
    else:
        payload = part.get_payload(decode=True)
        data = payload if isinstance(payload, bytes) else b""
    if not filename:
        extension = mimetypes.guess_extension(content_type) or ".bin"
        filename = f"attachment-{number}{extension}"
    content_id = str(part.get("Content-ID", "")).strip().strip("<>").strip() or None
    # Inline exactly when the HTML shows it: Outlook hides inline attachments, so a part the
    # body does not show stays a visible attachment, whatever its Content-Disposition says.
    is_inline = content_id is not None and f"cid:{content_id}".lower() in html.lower()
    return Attachment(filename, content_type, data, is_inline, content_id)


def _text(part: MIMEPart) -> str:
    try:
        content = part.get_content()
    except (LookupError, UnicodeError):  # an unknown or lying charset
        payload = part.get_payload(decode=True)
        return payload.decode("utf-8", "replace") if isinstance(payload, bytes) else ""
    return content if isinstance(content, str) else ""


def _header_text(message: EmailMessage, name: str) -> str:
    try:
        value = message.get(name)
    except (ValueError, TypeError, IndexError):  # a header the parser cannot make sense of
        return ""
    return "" if value is None else str(value)


def _addresses(message: EmailMessage, name: str) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = []
    try:
        headers = message.get_all(name) or []
        for header in headers:
            for address in getattr(header, "addresses", ()):
                spec = address.addr_spec
                if "@" not in spec or spec.startswith("@") or spec.endswith("@"):
                    continue  # kept in the transport headers, but no recipient for Graph
                found.append({"emailAddress": {"name": address.display_name or spec,
                                               "address": spec}})
    except (ValueError, TypeError, IndexError):
        return found
    return found


def _importance(message: EmailMessage) -> str:
    value = _header_text(message, "Importance").strip().lower()
    if value in ("high", "low", "normal"):
        return value
    priority = _header_text(message, "X-Priority").strip()[:1]
    return {"1": "high", "2": "high", "4": "low", "5": "low"}.get(priority, "")


def _date(message: EmailMessage) -> datetime | None:
    raw = _header_text(message, "Date")
    if not raw:
        return None
    try:
        when = parsedate_to_datetime(raw)
    except (ValueError, TypeError, IndexError):
        return None
    return when.replace(tzinfo=UTC) if when.tzinfo is None else when


def _x_headers(message: EmailMessage) -> list[dict[str, str]]:
    kept: list[dict[str, str]] = []
    budget = X_HEADERS_LIMIT
    for name, value in message.raw_items():
        if not name.lower().startswith("x-"):
            continue
        text = _unfold(str(value)).strip()
        if not text:
            continue
        budget -= len(name) + len(text) + 4
        if budget < 0:
            break
        kept.append({"name": name, "value": text})
    return kept


def _header_block(mime: bytes) -> str:
    """The original header section, CRLF line ends, whole headers up to Exchange's limit."""
    ends = [index for index in (mime.find(b"\r\n\r\n"), mime.find(b"\n\n")) if index >= 0]
    text = mime[:min(ends)] if ends else mime
    lines = text.decode("utf-8", "replace").replace("\r\n", "\n").split("\n")
    if not re.match(r"[!-9;-~]+:", lines[0]):
        return ""  # no header section to speak of
    headers: list[str] = []
    for line in lines:
        if line[:1] in (" ", "\t") and headers:
            headers[-1] += "\r\n" + line  # a folded header stays whole
        else:
            headers.append(line)
    kept: list[str] = []
    used = 0
    for header in headers:
        used += len(header.encode("utf-8")) + 2
        if used > TRANSPORT_HEADERS_LIMIT:
            break
        kept.append(header + "\r\n")
    return "".join(kept)


def _unfold(value: str) -> str:
    return re.sub(r"\r?\n[ \t]*", " ", value)


def _safe_name(text: str) -> str:
    return " ".join(re.sub(r'[\\/:*?"<>|\x00-\x1f]+', " ", text).split())[:100]


def _graph_time(when: datetime) -> str:
    aware = when if when.tzinfo is not None else when.replace(tzinfo=UTC)
    return aware.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _json_size(value: Any) -> int:
    return len(json.dumps(value, ensure_ascii=False).encode("utf-8"))


def _mb(size: int) -> str:
    return f"{size / MIB:.1f} MB"


# --- the mailbox over HTTPS (adapter) ----------------------------------------------------------


class GraphMailbox:
    """One user's mailbox in Exchange Online through Microsoft Graph (`Mailbox` protocol).

    `token` is an access token for Graph with Mail.ReadWrite (delegated for "me", application
    for a user id or UPN). It goes only in the Authorization header of requests to
    `base_url`, never in a message, a log line or the upload-session URLs."""

    def __init__(self, token: str, user: str = "me", *, base_url: str = GRAPH_URL,
                 session: requests.Session | None = None, verify: str | bool = True,
                 timeout: float = 30, transport_headers: bool = True,
                 max_message_bytes: int = MAX_MESSAGE_BYTES) -> None:
        # MailboxError, not ConfigError: every failure of a write-back reaches the person in
        # Outlook the same way ("still in the portal"); the detail is for the log.
        if not token:
            raise MailboxError("Microsoft Graph needs an access token")
        if not user:
            raise MailboxError('Microsoft Graph needs a user: "me" or a user id')
        if urlsplit(base_url).scheme != "https":
            raise MailboxError(f"the Microsoft Graph URL must be https, not {base_url!r}: "
                               f"the access token travels with every request")
        self._token = token
        self._base = base_url.rstrip("/")
        self._user = "/me" if user == "me" else f"/users/{quote(user, safe='@')}"
        self._owns_session = session is None
        self._session = session if session is not None else requests.Session()
        self._verify = verify
        self._timeout = timeout
        self._transport_headers = transport_headers
        self._max_message_bytes = max_message_bytes

    def close(self) -> None:
        if self._owns_session:
            self._session.close()

    def __enter__(self) -> GraphMailbox:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    # Mailbox

    def item(self, item_id: str) -> MailboxItem:
        found = self._call("GET", f"/messages/{_segment(item_id)}", "reading the item",
                           params={"$select": "parentFolderId,isRead,receivedDateTime"})
        folder = found.get("parentFolderId")
        if not isinstance(folder, str) or not folder:
            raise MailboxError("reading the item: Graph's answer has no parentFolderId")
        return MailboxItem(item_id=item_id, folder_id=folder,
                           is_read=found.get("isRead") is True,
                           received=_parse_time(found.get("receivedDateTime")))

    def import_message(self, folder_id: str, mime: bytes, *, is_read: bool,
                       received: datetime | None) -> str:
        plan = graph_message(mime, is_read=is_read, received=received,
                             transport_headers=self._transport_headers,
                             max_message_bytes=self._max_message_bytes)
        created = self._call("POST", f"/mailFolders/{_segment(folder_id)}/messages",
                             "creating the message", json_body=plan.create)
        new_id = created.get("id")
        if not isinstance(new_id, str) or not new_id:
            raise MailboxError("creating the message: Graph's answer has no id")
        try:
            for attachment in plan.posted:
                self._call("POST", f"/messages/{_segment(new_id)}/attachments",
                           f"adding the attachment {attachment.name!r}",
                           json_body=attachment.file_attachment())
            for attachment in plan.uploaded:
                self._upload(new_id, attachment)
        except MailboxError:
            self._discard(new_id)
            raise
        return new_id

    def delete(self, item_id: str) -> None:
        self._call("DELETE", f"/messages/{_segment(item_id)}", "deleting the item")

    # HTTP

    def _call(self, method: str, path: str, doing: str, *,
              params: dict[str, str] | None = None,
              json_body: dict[str, Any] | None = None) -> dict[str, Any]:
        headers = {"Authorization": f"Bearer {self._token}", "Accept": "application/json"}
        data: bytes | None = None
        if json_body is not None:
            headers["Content-Type"] = "application/json"
            data = json.dumps(json_body).encode("utf-8")
        response = self._send(method, f"{self._base}{self._user}{path}", doing,
                              headers=headers, params=params, data=data)
        log.debug("Graph %s %s%s: %s", method, self._user, path, response.status_code)
        if not 200 <= response.status_code < 300:
            raise self._error(response, doing)
        if response.status_code == 204 or not response.content:
            return {}
        try:
            found = response.json()
        except ValueError:
            raise MailboxError(f"{doing}: Graph answered {response.status_code} with no "
                               f"JSON") from None
        if not isinstance(found, dict):
            raise MailboxError(f"{doing}: Graph answered {response.status_code} with JSON "
                               f"that is not an object")
        return found

    def _send(self, method: str, url: str, doing: str, *, headers: dict[str, str],
              params: dict[str, str] | None = None, data: bytes | None = None
              ) -> requests.Response:
        try:
            return self._session.request(method, url, headers=headers, params=params,
                                         data=data, verify=self._verify,
                                         timeout=self._timeout, allow_redirects=False)
        except requests.RequestException as error:
            # The exception's text can hold the URL, and upload URLs carry a token.
            raise MailboxError(f"{doing}: Microsoft Graph could not be reached at "
                               f"{urlsplit(url).hostname} ({type(error).__name__})") from None

    def _upload(self, message_id: str, attachment: Attachment) -> None:
        doing = f"uploading the attachment {attachment.name!r}"
        session = self._call("POST", f"/messages/{_segment(message_id)}/attachments/"
                             "createUploadSession", doing,
                             json_body={"AttachmentItem": attachment.upload_item()})
        upload_url = session.get("uploadUrl")
        if not isinstance(upload_url, str) or urlsplit(upload_url).scheme != "https":
            raise MailboxError(f"{doing}: Graph's upload session has no https uploadUrl")
        data, total, offset = attachment.data, len(attachment.data), 0
        while offset < total:
            chunk = data[offset:offset + UPLOAD_CHUNK]
            # Pre-authenticated URL: no Authorization header (Microsoft's instructions).
            response = self._send("PUT", upload_url, doing, headers={
                "Content-Type": "application/octet-stream",
                "Content-Range": f"bytes {offset}-{offset + len(chunk) - 1}/{total}"},
                data=chunk)
            if response.status_code == 201:
                return
            if response.status_code != 200:
                raise self._error(response, doing)
            offset = _next_offset(response, offset + len(chunk), offset, doing)
        raise MailboxError(f"{doing}: all {total} bytes were sent but Graph did not confirm "
                           f"the attachment")

    def _discard(self, message_id: str) -> None:
        try:
            self.delete(message_id)
        except MailboxError as error:
            log.warning("the incomplete copy %s stays in the mailbox: %s", message_id, error)

    def _error(self, response: requests.Response, doing: str) -> MailboxError:
        status = response.status_code
        code, text = _graph_error(response)
        text = text.replace(self._token, "[token]")
        detail = f"{doing}: Graph answered {status} {code}: {text}".rstrip(": ")
        if status in (429, 503, 504) or code in _THROTTLED:
            return Throttled(detail, retry_after=_retry_after(response))
        if status == 413 or code in _TOO_LARGE:
            return TooLarge(detail)
        if status == 404 or code in _NOT_FOUND:
            return ItemNotFound(detail)
        if status in (401, 403) or code in _DENIED:
            return AccessDenied(detail)
        return MailboxError(detail)


def _segment(value: str) -> str:
    return quote(value, safe="")


def _graph_error(response: requests.Response) -> tuple[str, str]:
    """The `code` and `message` of Graph's error JSON; the reason phrase when there is none."""
    code, text = "", ""
    try:
        found = response.json()
    except ValueError:
        found = None
    error = found.get("error") if isinstance(found, dict) else None
    if isinstance(error, dict):
        code = str(error.get("code") or "")
        text = str(error.get("message") or "")
    if not code:
        code = response.reason or "error"
    text = re.sub(r"[\x00-\x1f\x7f]+", " ", text).strip()
    return code[:80], (text[:300] + "…" if len(text) > 300 else text)


def _retry_after(response: requests.Response) -> float | None:
    value = (response.headers.get("Retry-After") or "").strip()
    if not value:
        return None
    if value.isdigit():
        return float(value)
    try:
        when = parsedate_to_datetime(value)
    except (ValueError, TypeError, IndexError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - datetime.now(UTC)).total_seconds())


def _next_offset(response: requests.Response, sent_to: int, previous: int, doing: str) -> int:
    """Where the upload goes on: the start of Graph's `nextExpectedRanges` ("{start}" for
    Outlook attachments), else right after what was sent."""
    try:
        ranges = response.json().get("nextExpectedRanges") or []
        start = int(str(ranges[0]).split("-", 1)[0]) if ranges else sent_to
    except (ValueError, AttributeError, IndexError):
        start = sent_to
    if start <= previous:
        raise MailboxError(f"{doing}: Graph asked for bytes from {start} again; the upload "
                           f"makes no progress")
    return start


def _parse_time(value: object) -> datetime | None:
    if not isinstance(value, str) or not value:
        return None
    try:
        when = datetime.fromisoformat(value)
    except ValueError:
        return None
    return when.replace(tzinfo=UTC) if when.tzinfo is None else when
