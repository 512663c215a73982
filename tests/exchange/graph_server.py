"""A fake Microsoft Graph v1.0 over real HTTPS on 127.0.0.1, for the Exchange Online write-back.

Just enough of Graph for `sealgate.exchange.graph`, over an in-memory set of mailboxes
(folders holding messages), with answers shaped as Microsoft's docs show them:

- GET    /v1.0/{me|users/{id}}/messages/{id}[?$select=...]           200 message
- POST   /v1.0/{..}/mailFolders/{id}/messages (JSON)                  201 message
- POST   /v1.0/{..}/messages/{id}/attachments (fileAttachment)         201 fileAttachment
- POST   /v1.0/{..}/messages/{id}/attachments/createUploadSession     201 uploadSession
- PUT    {uploadUrl} (pre-authenticated, no Authorization)            200 / 201 + Location
- DELETE /v1.0/{..}/messages/{id}                                     204 (to Deleted Items)

Errors are Graph's error JSON (`{"error": {"code", "message", "innerError"}}`). Like
Exchange, a message created from JSON is a draft unless PidTagMessageFlags (`Integer
0x0E07`) is given without MSGFLAG_UNSENT; its received and sent dates come from
PidTagMessageDeliveryTime / PidTagClientSubmitTime when given; only `x-` names are taken as
internetMessageHeaders; a request body over 4 MB is refused with 413, and an upload session
wants 3 MB to 150 MB and PUTs of at most 4 MB.

Every request is recorded (method, path, query, headers, JSON body) in `requests`, and
`fail(...)` makes the next matching calls answer an error instead."""

from __future__ import annotations

import base64
import http.server
import json
import secrets
import ssl
import threading
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, unquote, urlsplit

from sealgate.lab import pki
from tests import https
from tests.https import https_server

MIB = 1024 * 1024
REQUEST_LIMIT = 4 * MIB
UPLOAD_MIN = 3 * MIB
UPLOAD_MAX = 150 * MIB
MSGFLAG_READ = 0x1
MSGFLAG_UNSENT = 0x8


def server_context(ca: pki.TestCa, folder: Path) -> ssl.SSLContext:
    return https.server_context(ca, folder, "graph")


@dataclass(frozen=True)
class Recorded:
    method: str
    path: str  # as sent: ids percent-encoded
    query: dict[str, str]
    headers: dict[str, str]  # names lower-cased
    json: Any
    size: int  # bytes of the request body


@dataclass
class FakeAttachment:
    id: str
    name: str
    content_type: str
    data: bytes
    is_inline: bool = False
    content_id: str | None = None


@dataclass
class FakeMessage:
    id: str
    folder_id: str
    subject: str = ""
    body_type: str = "text"
    body: str = ""
    from_: dict[str, Any] | None = None
    sender: dict[str, Any] | None = None
    to: list[dict[str, Any]] = field(default_factory=list)
    cc: list[dict[str, Any]] = field(default_factory=list)
    bcc: list[dict[str, Any]] = field(default_factory=list)
    reply_to: list[dict[str, Any]] = field(default_factory=list)
    is_read: bool = False
    is_draft: bool = False
    received: datetime = field(default_factory=lambda: datetime.now(UTC))
    sent: datetime | None = None
    importance: str = "normal"
    internet_message_id: str = ""
    headers: list[dict[str, str]] = field(default_factory=list)
    extended: dict[str, str] = field(default_factory=dict)
    attachments: list[FakeAttachment] = field(default_factory=list)
    created: datetime = field(default_factory=lambda: datetime.now(UTC))

    def resource(self, context: str) -> dict[str, Any]:
        """The message resource as Graph returns it."""
        change_key = base64.b64encode(self.id.encode()[:16]).decode()
        return {
            "@odata.context": context,
            "@odata.etag": f'W/"{change_key}"',
            "id": self.id,
            "createdDateTime": _time(self.created),
            "lastModifiedDateTime": _time(self.created),
            "changeKey": change_key,
            "categories": [],
            "receivedDateTime": _time(self.received),
            "sentDateTime": _time(self.sent) if self.sent else None,
            "hasAttachments": any(not a.is_inline for a in self.attachments),
            "internetMessageId": self.internet_message_id,
            "subject": self.subject,
            "bodyPreview": self.body[:255],
            "importance": self.importance,
            "parentFolderId": self.folder_id,
            "conversationId": "AAQkAGI2" + self.id[-8:],
            "isDeliveryReceiptRequested": False,
            "isReadReceiptRequested": False,
            "isRead": self.is_read,
            "isDraft": self.is_draft,
            "webLink": f"https://outlook.office365.com/owa/?ItemID={self.id}",
            "inferenceClassification": "focused",
            "body": {"contentType": self.body_type, "content": self.body},
            "sender": self.sender,
            "from": self.from_,
            "toRecipients": self.to,
            "ccRecipients": self.cc,
            "bccRecipients": self.bcc,
            "replyTo": self.reply_to,
            "flag": {"flagStatus": "notFlagged"},
        }


@dataclass
class FakeUser:
    id: str
    upn: str
    folders: dict[str, str] = field(default_factory=dict)  # id -> display name
    messages: dict[str, FakeMessage] = field(default_factory=dict)

    def folder(self, name: str) -> str:
        """The id of the folder with this display name (well-known names are folders too)."""
        for folder_id, display in self.folders.items():
            if display == name:
                return folder_id
        raise KeyError(name)

    def in_folder(self, name: str) -> list[FakeMessage]:
        folder_id = self.folder(name)
        return [m for m in self.messages.values() if m.folder_id == folder_id]


@dataclass
class Failure:
    method: str
    path_part: str
    status: int
    code: str
    message: str
    retry_after: str | None
    times: int


@dataclass
class _Upload:
    user: FakeUser
    message_id: str
    item: dict[str, Any]
    token: str
    data: bytearray = field(default_factory=bytearray)


class GraphError(Exception):
    def __init__(self, status: int, code: str, message: str,
                 retry_after: str | None = None) -> None:
        super().__init__(message)
        self.status, self.code, self.message, self.retry_after = (status, code, message,
                                                                  retry_after)


class FakeGraph:
    """Start with `FakeGraph(context)`; `url` is the Graph base URL to give the client."""

    def __init__(self, context: ssl.SSLContext) -> None:
        self.users: dict[str, FakeUser] = {}
        self.tokens: dict[str, str | None] = {}  # token -> user id (delegated) / None (app)
        self.requests: list[Recorded] = []
        self.failures: list[Failure] = []
        self.uploads: dict[str, _Upload] = {}
        self.lock = threading.RLock()
        graph = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_GET(self) -> None:
                graph._handle(self)

            def do_POST(self) -> None:
                graph._handle(self)

            def do_PUT(self) -> None:
                graph._handle(self)

            def do_DELETE(self) -> None:
                graph._handle(self)

            def log_message(self, format: str, *args: Any) -> None:
                pass


        self.server = https_server(context, Handler)
        self.port = self.server.server_address[1]
        self.origin = f"https://127.0.0.1:{self.port}"
        self.url = f"{self.origin}/v1.0"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    # setting up

    def add_user(self, upn: str, *, token: str | None = None) -> FakeUser:
        """A mailbox with the well-known folders; `token` (if given) signs in as this user."""
        user = FakeUser(id=str(uuid.uuid4()), upn=upn)
        for name in ("Inbox", "Drafts", "Sent Items", "Deleted Items", "Archive"):
            user.folders[_new_id("AAMkFolder")] = name
        with self.lock:
            self.users[user.id] = user
            if token is not None:
                self.tokens[token] = user.id
        return user

    def add_app_token(self, token: str) -> None:
        """An application token: any user by /users/{id}, no /me."""
        self.tokens[token] = None

    def put_message(self, user: FakeUser, folder: str, **fields: Any) -> FakeMessage:
        message = FakeMessage(id=_new_id("AAMkMsg"), folder_id=user.folder(folder), **fields)
        with self.lock:
            user.messages[message.id] = message
        return message

    def fail(self, method: str, path_part: str, status: int, code: str, message: str = "",
             *, retry_after: str | None = None, times: int = 1) -> None:
        """The next `times` requests with this method whose path contains `path_part`
        answer `status` with Graph's error JSON (and Retry-After, if given)."""
        self.failures.append(Failure(method, path_part, status, code,
                                     message or f"Simulated {code}.", retry_after, times))

    def calls(self, method: str | None = None) -> list[Recorded]:
        return [r for r in self.requests if method is None or r.method == method]

    # serving

    def _handle(self, handler: http.server.BaseHTTPRequestHandler) -> None:
        split = urlsplit(handler.path)
        path = split.path
        query = dict(parse_qsl(split.query, keep_blank_values=True))
        length = int(handler.headers.get("Content-Length") or 0)
        body = handler.rfile.read(length) if length else b""
        headers = {name.lower(): value for name, value in handler.headers.items()}
        parsed: Any = None
        if headers.get("content-type", "").startswith("application/json") and body:
            try:
                parsed = json.loads(body)
            except ValueError:
                parsed = None
        method = handler.command
        self.requests.append(Recorded(method, path, query, headers, parsed, len(body)))
        try:
            with self.lock:
                status, answer, extra = self._route(method, path, query, headers, body,
                                                    parsed)
        except GraphError as error:
            status = error.status
            answer = {"error": {"code": error.code, "message": error.message,
                                "innerError": {"date": _time(datetime.now(UTC)),
                                               "request-id": str(uuid.uuid4()),
                                               "client-request-id": str(uuid.uuid4())}}}
            extra = {"Retry-After": error.retry_after} if error.retry_after else {}
        payload = b"" if answer is None else json.dumps(answer).encode()
        handler.send_response(status)
        if answer is not None:
            handler.send_header("Content-Type",
                                "application/json;odata.metadata=minimal;"
                                "odata.streaming=true;IEEE754Compatible=false;charset=utf-8")
        handler.send_header("Content-Length", str(len(payload)))
        handler.send_header("request-id", str(uuid.uuid4()))
        for name, value in extra.items():
            handler.send_header(name, value)
        handler.end_headers()
        handler.wfile.write(payload)

    def _route(self, method: str, path: str, query: dict[str, str], headers: dict[str, str],
               body: bytes, parsed: Any) -> tuple[int, Any, dict[str, str]]:
        segments = [unquote(segment) for segment in path.split("/")[1:]]
        if segments[:1] == ["upload"] and len(segments) == 2:
            return self._upload(method, segments[1], query, headers, body)
        if segments[:1] != ["v1.0"]:
            raise GraphError(400, "BadRequest", "Invalid version.")
        user, parts = self._user(segments[1:], headers)
        self._injected(method, path)
        if len(body) > REQUEST_LIMIT:
            raise GraphError(413, "RequestEntityTooLarge",
                             "The request body exceeds the maximum allowed size.")
        context_base = f"https://graph.microsoft.com/v1.0/$metadata#users('{user.id}')"
        if method == "GET" and len(parts) == 2 and parts[0] == "messages":
            message = self._message(user, parts[1])
            resource = message.resource(f"{context_base}/messages/$entity")
            selected = [s for s in query.get("$select", "").split(",") if s]
            if selected:
                keep = {"@odata.context", "@odata.etag", "id", *selected}
                resource = {k: v for k, v in resource.items() if k in keep}
                resource["@odata.context"] = (f"{context_base}/messages"
                                              f"({','.join(selected)})/$entity")
            return 200, resource, {}
        if method == "POST" and len(parts) == 3 and parts[0] == "mailFolders" \
                and parts[2] == "messages":
            if parts[1] not in user.folders:
                raise GraphError(404, "ErrorItemNotFound",
                                 "The specified object was not found in the store.")
            message = self._create(user, parts[1], _json_object(parsed))
            return 201, message.resource(
                f"{context_base}/mailFolders('{parts[1]}')/messages/$entity"), {}
        if method == "POST" and len(parts) == 3 and parts[0] == "messages" \
                and parts[2] == "attachments":
            message = self._message(user, parts[1])
            attachment = _file_attachment(_json_object(parsed))
            message.attachments.append(attachment)
            return 201, _attachment_resource(
                attachment, f"{context_base}/messages('{message.id}')/attachments/$entity"), {}
        if method == "POST" and len(parts) == 4 and parts[0] == "messages" \
                and parts[2:] == ["attachments", "createUploadSession"]:
            message = self._message(user, parts[1])
            item = _json_object(parsed).get("AttachmentItem")
            if not isinstance(item, dict) or item.get("attachmentType") != "file" \
                    or not isinstance(item.get("size"), int) or not item.get("name"):
                raise GraphError(400, "ErrorInvalidRequest", "Invalid AttachmentItem.")
            if item["size"] < UPLOAD_MIN:
                raise GraphError(400, "ErrorAttachmentSizeShouldNotBeLessThanMinimumSize",
                                 "Attachment size must be greater than the minimum size.")
            if item["size"] > UPLOAD_MAX:
                raise GraphError(413, "ErrorAttachmentSizeLimitExceeded",
                                 "The attachment exceeds the maximum size.")
            session_id = secrets.token_hex(8)
            token = secrets.token_urlsafe(24)
            self.uploads[session_id] = _Upload(user, message.id, item, token)
            return 201, {
                "@odata.context": "https://graph.microsoft.com/v1.0/$metadata#"
                                  "microsoft.graph.uploadSession",
                "uploadUrl": f"{self.origin}/upload/{session_id}?authtoken={token}",
                "expirationDateTime": _time(datetime.now(UTC) + timedelta(minutes=15)),
                "nextExpectedRanges": ["0-"]}, {}
        if method == "DELETE" and len(parts) == 2 and parts[0] == "messages":
            message = self._message(user, parts[1])
            del user.messages[message.id]
            message.id = _new_id("AAMkMsg")  # a moved item gets a new id, as in Exchange
            message.folder_id = user.folder("Deleted Items")
            user.messages[message.id] = message
            return 204, None, {}
        raise GraphError(400, "BadRequest", f"Resource not found for the segment '{parts[0]}'.")

    def _user(self, segments: list[str], headers: dict[str, str]
              ) -> tuple[FakeUser, list[str]]:
        authorization = headers.get("authorization", "")
        token = authorization[len("Bearer "):] if authorization.startswith("Bearer ") else ""
        if token not in self.tokens:
            raise GraphError(401, "InvalidAuthenticationToken", "Access token is empty.")
        signed_in = self.tokens[token]
        if segments[:1] == ["me"]:
            if signed_in is None:
                raise GraphError(400, "BadRequest", "/me request is only valid with "
                                 "delegated authentication flow.")
            return self.users[signed_in], segments[1:]
        if segments[:1] == ["users"] and len(segments) > 1:
            key, remainder = segments[1], segments[2:]
            user = next((u for u in self.users.values()
                         if key.lower() in (u.id, u.upn.lower())), None)
            if user is None:
                raise GraphError(404, "ErrorInvalidUser",
                                 f"The requested user '{key}' is invalid.")
            if signed_in is not None and signed_in != user.id:
                raise GraphError(403, "ErrorAccessDenied",
                                 "Access is denied. Check credentials and try again.")
            return user, remainder
        raise GraphError(400, "BadRequest", "Unsupported segment type.")

    def _injected(self, method: str, path: str) -> None:
        for failure in self.failures:
            if failure.times > 0 and failure.method == method and failure.path_part in path:
                failure.times -= 1
                raise GraphError(failure.status, failure.code, failure.message,
                                 failure.retry_after)

    def _message(self, user: FakeUser, message_id: str) -> FakeMessage:
        message = user.messages.get(message_id)
        if message is None:
            raise GraphError(404, "ErrorItemNotFound",
                             "The specified object was not found in the store.")
        return message

    def _create(self, user: FakeUser, folder_id: str, body: dict[str, Any]) -> FakeMessage:
        extended: dict[str, str] = {}
        for prop in body.get("singleValueExtendedProperties") or []:
            if not isinstance(prop, dict) or not isinstance(prop.get("id"), str) \
                    or not isinstance(prop.get("value"), str):
                raise GraphError(400, "ErrorInvalidExtendedProperty",
                                 "The extended property id or value is not valid.")
            kind = prop["id"].split(" ", 1)[0]
            if kind == "Integer":
                _integer(prop["value"])
            elif kind == "SystemTime":
                _system_time(prop["value"])
            extended[prop["id"]] = prop["value"]
        headers = body.get("internetMessageHeaders") or []
        for header in headers:
            if not str(header.get("name", "")).lower().startswith("x-"):
                raise GraphError(400, "InvalidInternetMessageHeader",
                                 "The internet message header name "
                                 f"'{header.get('name')}' should start with 'x-' or 'X-'.")
        flags = extended.get("Integer 0x0E07")
        if flags is None:
            is_draft, is_read = True, True  # Graph's "create draft"
        else:
            value = _integer(flags)
            is_draft, is_read = bool(value & MSGFLAG_UNSENT), bool(value & MSGFLAG_READ)
        if isinstance(body.get("isRead"), bool):
            is_read = body["isRead"]
        received = extended.get("SystemTime 0x0E06")
        submitted = extended.get("SystemTime 0x0039")
        now = datetime.now(UTC)
        message = FakeMessage(
            id=_new_id("AAMkMsg"), folder_id=folder_id,
            subject=str(body.get("subject") or ""),
            body_type=str((body.get("body") or {}).get("contentType", "text")).lower(),
            body=str((body.get("body") or {}).get("content", "")),
            from_=body.get("from"), sender=body.get("sender") or body.get("from"),
            to=body.get("toRecipients") or [], cc=body.get("ccRecipients") or [],
            bcc=body.get("bccRecipients") or [], reply_to=body.get("replyTo") or [],
            is_read=is_read, is_draft=is_draft,
            received=_system_time(received) if received else now,
            sent=_system_time(submitted) if submitted else (None if is_draft else now),
            importance=str(body.get("importance") or "normal"),
            internet_message_id=str(body.get("internetMessageId") or f"<{uuid.uuid4()}@fake>"),
            headers=list(headers), extended=extended,
            attachments=[_file_attachment(a) for a in body.get("attachments") or []])
        user.messages[message.id] = message
        return message

    def _upload(self, method: str, session_id: str, query: dict[str, str],
                headers: dict[str, str], body: bytes) -> tuple[int, Any, dict[str, str]]:
        upload = self.uploads.get(session_id)
        if method != "PUT" or upload is None:
            raise GraphError(404, "ErrorItemNotFound", "The upload session was not found.")
        if "authorization" in headers:
            raise GraphError(401, "InvalidAudience", "The Authorization header must not be "
                             "sent to a pre-authenticated upload URL.")
        if query.get("authtoken") != upload.token:
            raise GraphError(401, "InvalidAuthenticationToken", "The authtoken is invalid.")
        self._injected(method, "/upload/")
        if len(body) > REQUEST_LIMIT:
            raise GraphError(413, "RequestEntityTooLarge", "The fragment is too large.")
        unit, _, spec = headers.get("content-range", "").partition(" ")
        span, _, total = spec.partition("/")
        first, _, last = span.partition("-")
        if unit != "bytes" or not (first.isdigit() and last.isdigit() and total.isdigit()) \
                or int(last) - int(first) + 1 != len(body) \
                or int(total) != upload.item["size"]:
            raise GraphError(400, "InvalidContentRange", "The Content-Range is not valid.")
        if int(first) != len(upload.data):
            raise GraphError(416, "invalidRange",
                             "Uploaded fragment overlaps with existing data.")
        upload.data.extend(body)
        if len(upload.data) < upload.item["size"]:
            return 200, {"expirationDateTime": _time(datetime.now(UTC) + timedelta(minutes=15)),
                         "nextExpectedRanges": [str(len(upload.data))]}, {}
        del self.uploads[session_id]
        message = self._message(upload.user, upload.message_id)
        attachment = FakeAttachment(
            id=_new_id("AAMkAtt"), name=upload.item["name"],
            content_type=upload.item.get("contentType") or "application/octet-stream",
            data=bytes(upload.data), is_inline=bool(upload.item.get("isInline")),
            content_id=upload.item.get("contentId"))
        message.attachments.append(attachment)
        location = (f"https://outlook.office.com/api/v2.0/Users('{upload.user.id}')/"
                    f"Messages('{message.id}')/Attachments('{attachment.id}')")
        return 201, None, {"Location": location}


def _json_object(parsed: Any) -> dict[str, Any]:
    if not isinstance(parsed, dict):
        raise GraphError(400, "BadRequest", "Empty Payload. JSON content expected.")
    return parsed


def _file_attachment(body: dict[str, Any]) -> FakeAttachment:
    if body.get("@odata.type") != "#microsoft.graph.fileAttachment" or not body.get("name"):
        raise GraphError(400, "ErrorInvalidRequest", "Invalid attachment.")
    try:
        data = base64.b64decode(body.get("contentBytes") or "", validate=True)
    except ValueError:
        raise GraphError(400, "ErrorInvalidRequest", "contentBytes is not base64.") from None
    return FakeAttachment(id=_new_id("AAMkAtt"), name=body["name"],
                          content_type=body.get("contentType") or "application/octet-stream",
                          data=data, is_inline=bool(body.get("isInline")),
                          content_id=body.get("contentId"))


def _attachment_resource(attachment: FakeAttachment, context: str) -> dict[str, Any]:
    return {"@odata.context": context, "@odata.type": "#microsoft.graph.fileAttachment",
            "id": attachment.id, "lastModifiedDateTime": _time(datetime.now(UTC)),
            "name": attachment.name, "contentType": attachment.content_type,
            "size": len(attachment.data), "isInline": attachment.is_inline,
            "contentId": attachment.content_id, "contentLocation": None,
            "contentBytes": base64.b64encode(attachment.data).decode()}


def _integer(value: str) -> int:
    try:
        return int(value)
    except ValueError:
        raise GraphError(400, "ErrorInvalidExtendedPropertyValue",
                         f"'{value}' is not a valid Integer.") from None


def _system_time(value: str) -> datetime:
    try:
        when = datetime.fromisoformat(value)
    except ValueError:
        raise GraphError(400, "ErrorInvalidExtendedPropertyValue",
                         f"'{value}' is not a valid SystemTime.") from None
    return when if when.tzinfo else when.replace(tzinfo=UTC)


def _time(when: datetime) -> str:
    return when.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _new_id(prefix: str) -> str:
    # Graph ids are base64-like and may hold "/", "+" and "=": the client must escape them.
    return f"{prefix}{base64.b64encode(secrets.token_bytes(24)).decode()}="
