"""A fake Exchange Server EWS endpoint over real HTTPS on 127.0.0.1, for the Exchange Server
write-back (`sealgate.exchange.ews`).

SOAP at `/EWS/Exchange.asmx`, over an in-memory mailbox (folders holding items), answering
the operations the write-back uses with envelopes shaped as Microsoft's EWS reference shows
them (learn.microsoft.com/exchange/client-developer/web-service-reference: "GetItem operation
(email message)", "CreateItem operation (email message)", "DeleteItem operation"), each with
the `ServerVersionInfo` header of an Exchange 2016 server:

- GetItem: `t:Message` with the ItemId and the AdditionalProperties asked for
  (ParentFolderId, IsRead, DateTimeReceived); ErrorItemNotFound per missing id.
- CreateItem (`MessageDisposition="SaveOnly"`, `SavedItemFolderId`): keeps the MimeContent
  bytes and every ExtendedProperty; like Exchange, the item is a draft (PidTagMessageFlags has
  MSGFLAG_UNSENT) unless PidTagMessageFlags (`0xe07`) is given, its read state is that
  property's MSGFLAG_READ bit, and its received date is PidTagMessageDeliveryTime (`0xe06`)
  when given, else now.
- DeleteItem: MoveToDeletedItems moves to Deleted Items, SoftDelete to Recoverable Items,
  HardDelete removes.

Sign-in: the Authorization header must be `authorization` exactly (Bearer or Basic), else
401. With `ntlm=True` it plays the first steps of NTLM: a request without credentials gets
401 `WWW-Authenticate: NTLM`, the client's Negotiate message is recorded and answered by a
401 without a challenge (the fake cannot finish NTLM).

Every request is recorded (lower-cased HTTP headers, the SOAP envelope parsed with
defusedxml, the raw body) in `requests`. `fail(...)` makes the next calls of an operation
answer an EWS error: in the ResponseMessage (HTTP 200), as a SOAP fault (HTTP 500; for
ErrorServerBusy with BackOffMilliseconds in MessageXml, as Microsoft's "EWS throttling in
Exchange" describes) or as a bare HTTP status (401, 413, 503 with Retry-After).
`refuse_property(tag)` makes CreateItem refuse an extended property (ErrorInvalidPropertySet),
`stall` delays every answer, `misplace_into` stores created items in another folder."""

from __future__ import annotations

import base64
import http.server
import secrets
import ssl
import threading
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from xml.sax.saxutils import escape, quoteattr

from defusedxml import DefusedXmlException
from defusedxml.ElementTree import ParseError, fromstring

from sealgate.lab import pki
from tests import https
from tests.https import https_server

SOAP = "http://schemas.xmlsoap.org/soap/envelope/"
MESSAGES = "http://schemas.microsoft.com/exchange/services/2006/messages"
TYPES = "http://schemas.microsoft.com/exchange/services/2006/types"
ERRORS = "http://schemas.microsoft.com/exchange/services/2006/errors"
NS = {"s": SOAP, "m": MESSAGES, "t": TYPES}
PATH = "/EWS/Exchange.asmx"

MSGFLAG_READ = 0x1
MSGFLAG_UNSENT = 0x8
FLAGS_TAG = "0xe07"
DELIVERY_TAG = "0xe06"

_VERSION_HEADER = (
    '<s:Header><h:ServerVersionInfo MajorVersion="15" MinorVersion="1" '
    'MajorBuildNumber="2507" MinorBuildNumber="6" Version="V2017_07_11" '
    f'xmlns:h="{TYPES}" xmlns="{TYPES}" '
    'xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" '
    'xmlns:xsd="http://www.w3.org/2001/XMLSchema"/></s:Header>')

_TEXTS = {
    "ErrorItemNotFound": "The specified object was not found in the store.",
    "ErrorAccessDenied": "Access is denied. Check credentials and try again.",
    "ErrorImpersonateUserDenied": "The account does not have permission to impersonate the "
                                  "requested user.",
    "ErrorServerBusy": "The server cannot service this request right now. Try again later.",
    "ErrorMessageSizeExceeded": "The message exceeds the maximum supported size.",
    "ErrorInvalidPropertySet": "Set action is invalid for property.",
    "ErrorFolderNotFound": "The specified folder could not be found in the store.",
    "ErrorQuotaExceeded": "The mailbox database is temporarily unavailable.",
}


def server_context(ca: pki.TestCa, folder: Path) -> ssl.SSLContext:
    return https.server_context(ca, folder, "ews")


@dataclass(frozen=True)
class Recorded:
    operation: str  # the element in s:Body: GetItem, CreateItem, DeleteItem...; "" if none
    headers: dict[str, str]  # names lower-cased
    envelope: Any  # the parsed s:Envelope, or None when the body was not XML
    body: bytes

    def find(self, path: str) -> Any:
        return None if self.envelope is None else self.envelope.find(path, NS)

    def findall(self, path: str) -> list[Any]:
        return [] if self.envelope is None else self.envelope.findall(path, NS)

    @property
    def request(self) -> Any:
        """The operation element (m:GetItem, m:CreateItem...)."""
        return self.find(f"s:Body/m:{self.operation}")


@dataclass
class FakeItem:
    id: str
    folder_id: str
    is_read: bool = False
    received: datetime = field(default_factory=lambda: datetime.now(UTC))
    mime: bytes | None = None
    flags: int = MSGFLAG_READ
    extended: dict[str, str] = field(default_factory=dict)  # PropertyTag -> Value

    @property
    def is_draft(self) -> bool:
        return bool(self.flags & MSGFLAG_UNSENT)


@dataclass
class Failure:
    operation: str
    code: str
    message: str
    fault: bool
    status: int | None
    back_off_ms: int | None
    retry_after: str | None
    times: int


class FakeEws:
    """Start with `FakeEws(context, authorization=...)`; `url` is the EWS URL to give the
    client. Folders: "inbox", "deleteditems", "recoverableitemsdeletions" (see `folder`)."""

    def __init__(self, context: ssl.SSLContext, *, authorization: str | None = None,
                 ntlm: bool = False) -> None:
        self.authorization = authorization
        self.ntlm = ntlm
        self.folders = {name: _new_id("AAMkFolder")
                        for name in ("inbox", "deleteditems", "recoverableitemsdeletions")}
        self.items: dict[str, FakeItem] = {}
        self.requests: list[Recorded] = []
        self.failures: list[Failure] = []
        self.refused: set[str] = set()
        self.stall = 0.0
        self.misplace_into: str | None = None
        self.lock = threading.RLock()
        ews = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"  # keep-alive, as IIS: exchangelib reads a
            # "Connection: close" answer as ErrorServerBusy

            def do_POST(self) -> None:
                ews._handle(self)

            def log_message(self, format: str, *args: Any) -> None:
                pass


        self.server = https_server(context, Handler)
        self.port = self.server.server_address[1]
        self.url = f"https://127.0.0.1:{self.port}{PATH}"
        threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05},
                         daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    # setting up

    def folder(self, name: str) -> str:
        return self.folders[name]

    def put_item(self, folder: str = "inbox", **fields: Any) -> FakeItem:
        item = FakeItem(id=_new_id("AAMkItem"), folder_id=self.folder(folder), **fields)
        with self.lock:
            self.items[item.id] = item
        return item

    def fail(self, operation: str, code: str, *, fault: bool = False, status: int | None = None,
             back_off_ms: int | None = None, retry_after: str | None = None,
             message: str = "", times: int = 1) -> None:
        """The next `times` calls of `operation` answer `code` (or the bare HTTP `status`)."""
        with self.lock:
            self.failures.append(Failure(operation, code, message or _TEXTS.get(code, code),
                                         fault, status, back_off_ms, retry_after, times))

    def refuse_property(self, tag: str) -> None:
        """CreateItem refuses an ExtendedProperty with this PropertyTag ("0xe06")."""
        self.refused.add(tag.lower())

    def calls(self, operation: str | None = None) -> list[Recorded]:
        return [r for r in self.requests if operation is None or r.operation == operation]

    def operations(self) -> list[str]:
        return [r.operation for r in self.requests]

    def in_folder(self, name: str) -> list[FakeItem]:
        return [item for item in self.items.values() if item.folder_id == self.folder(name)]

    # serving

    def _handle(self, handler: http.server.BaseHTTPRequestHandler) -> None:
        length = int(handler.headers.get("Content-Length") or 0)
        body = handler.rfile.read(length) if length else b""
        headers = {name.lower(): value for name, value in handler.headers.items()}
        try:
            envelope = fromstring(body) if body else None
        except (ParseError, DefusedXmlException):
            envelope = None
        operation = ""
        if envelope is not None:
            soap_body = envelope.find("s:Body", NS)
            if soap_body is not None and len(soap_body):
                operation = soap_body[0].tag.rpartition("}")[2]
        self.requests.append(Recorded(operation, headers, envelope, body))
        if self.stall:
            time.sleep(self.stall)
        if handler.path != PATH:
            return _send(handler, 404, b"Not Found", "text/plain")
        denied = self._denied(headers)
        if denied is not None:
            return _send(handler, 401, b"", "text/plain", denied)
        with self.lock:
            failure = self._failure(operation)
            if failure is not None:
                return self._send_failure(handler, operation, failure)
            if envelope is None or operation not in ("GetItem", "CreateItem", "DeleteItem"):
                return _send(handler, 500, _fault("ErrorInvalidRequest",
                                                  "The request is invalid."), "text/xml")
            answer = getattr(self, f"_{operation}")(envelope.find(f"s:Body/m:{operation}", NS))
        _send(handler, 200, _envelope(answer), "text/xml; charset=utf-8")

    def _denied(self, headers: dict[str, str]) -> dict[str, str] | None:
        given = headers.get("authorization", "")
        if self.ntlm:
            # To the client's Negotiate (recorded) no challenge follows: it gives up.
            return {"WWW-Authenticate": "NTLM"}
        if self.authorization is not None and given != self.authorization:
            return {"WWW-Authenticate": 'Bearer realm="", Basic realm="EWS"'}
        return None

    def _failure(self, operation: str) -> Failure | None:
        for failure in self.failures:
            if failure.operation == operation and failure.times > 0:
                failure.times -= 1
                return failure
        return None

    def _send_failure(self, handler: http.server.BaseHTTPRequestHandler, operation: str,
                      failure: Failure) -> None:
        if failure.status is not None:
            extra = {"Retry-After": failure.retry_after} if failure.retry_after else {}
            return _send(handler, failure.status, b"", "text/html", extra)
        if failure.fault:
            return _send(handler, 500, _fault(failure.code, failure.message,
                                              failure.back_off_ms), "text/xml; charset=utf-8")
        _send(handler, 200, _envelope(_response(operation, [_error_message(
            operation, failure.code, failure.message)])), "text/xml; charset=utf-8")

    # operations

    def _GetItem(self, request: Any) -> str:
        wanted = {uri.get("FieldURI") for uri in
                  request.findall("m:ItemShape/t:AdditionalProperties/t:FieldURI", NS)}
        messages = []
        for item_id in request.findall("m:ItemIds/t:ItemId", NS):
            item = self.items.get(item_id.get("Id", ""))
            if item is None:
                messages.append(_error_message("GetItem", "ErrorItemNotFound",
                                               _TEXTS["ErrorItemNotFound"]))
                continue
            parts = [_item_id(item)]
            if "item:ParentFolderId" in wanted:
                parts.append(f"<t:ParentFolderId Id={quoteattr(item.folder_id)} "
                             f'ChangeKey="AQAAAA=="/>')
            if "item:DateTimeReceived" in wanted:
                parts.append(f"<t:DateTimeReceived>{_time(item.received)}</t:DateTimeReceived>")
            if "message:IsRead" in wanted:
                parts.append(f"<t:IsRead>{str(item.is_read).lower()}</t:IsRead>")
            messages.append(_success("GetItem", f"<m:Items><t:Message>{''.join(parts)}"
                                                f"</t:Message></m:Items>"))
        return _response("GetItem", messages)

    def _CreateItem(self, request: Any) -> str:
        folder = request.find("m:SavedItemFolderId/t:FolderId", NS)
        folder_id = folder.get("Id", "") if folder is not None else ""
        messages = []
        for message in request.findall("m:Items/t:Message", NS):
            if folder_id not in self.folders.values():
                messages.append(_error_message("CreateItem", "ErrorFolderNotFound",
                                               _TEXTS["ErrorFolderNotFound"]))
                continue
            extended = {}
            for prop in message.findall("t:ExtendedProperty", NS):
                uri = prop.find("t:ExtendedFieldURI", NS)
                tag = (uri.get("PropertyTag") or "").lower() if uri is not None else ""
                extended[tag] = prop.findtext("t:Value", "", NS)
            refused = sorted(set(extended) & self.refused)
            if refused:
                messages.append(_error_message(
                    "CreateItem", "ErrorInvalidPropertySet", _TEXTS["ErrorInvalidPropertySet"],
                    f'<m:MessageXml><t:ExtendedFieldURI PropertyTag="{refused[0]}" '
                    f'PropertyType="SystemTime"/></m:MessageXml>'))
                continue
            mime_text = message.findtext("t:MimeContent", "", NS)
            flags = int(extended[FLAGS_TAG]) if FLAGS_TAG in extended else (
                MSGFLAG_READ | MSGFLAG_UNSENT)
            received = (_parse_time(extended[DELIVERY_TAG]) if DELIVERY_TAG in extended
                        else datetime.now(UTC))
            item = FakeItem(id=_new_id("AAMkItem"),
                            folder_id=self.misplace_into or folder_id,
                            is_read=bool(flags & MSGFLAG_READ), received=received,
                            mime=base64.b64decode(mime_text) if mime_text else None,
                            flags=flags, extended=extended)
            self.items[item.id] = item
            messages.append(_success("CreateItem", f"<m:Items><t:Message>{_item_id(item)}"
                                                   f"</t:Message></m:Items>"))
        return _response("CreateItem", messages)

    def _DeleteItem(self, request: Any) -> str:
        how = request.get("DeleteType")
        messages = []
        for item_id in request.findall("m:ItemIds/t:ItemId", NS):
            item = self.items.get(item_id.get("Id", ""))
            if item is None:
                messages.append(_error_message("DeleteItem", "ErrorItemNotFound",
                                               _TEXTS["ErrorItemNotFound"], items=False))
                continue
            if how == "HardDelete":
                del self.items[item.id]
            elif how == "SoftDelete":
                item.folder_id = self.folder("recoverableitemsdeletions")
            else:
                item.folder_id = self.folder("deleteditems")
            messages.append(_success("DeleteItem", ""))
        return _response("DeleteItem", messages)


# --- SOAP ----------------------------------------------------------------------------------


def _envelope(body: str) -> bytes:
    return (f'<?xml version="1.0" encoding="utf-8"?><s:Envelope xmlns:s="{SOAP}">'
            f"{_VERSION_HEADER}<s:Body "
            'xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" '
            f'xmlns:xsd="http://www.w3.org/2001/XMLSchema">{body}</s:Body>'
            "</s:Envelope>").encode()


def _response(operation: str, messages: list[str]) -> str:
    return (f'<m:{operation}Response xmlns:m="{MESSAGES}" xmlns:t="{TYPES}">'
            f"<m:ResponseMessages>{''.join(messages)}</m:ResponseMessages>"
            f"</m:{operation}Response>")


def _success(operation: str, content: str) -> str:
    return (f'<m:{operation}ResponseMessage ResponseClass="Success">'
            f"<m:ResponseCode>NoError</m:ResponseCode>{content}"
            f"</m:{operation}ResponseMessage>")


def _error_message(operation: str, code: str, text: str, message_xml: str = "", *,
                   items: bool = True) -> str:
    return (f'<m:{operation}ResponseMessage ResponseClass="Error">'
            f"<m:MessageText>{escape(text)}</m:MessageText>"
            f"<m:ResponseCode>{code}</m:ResponseCode>"
            f"<m:DescriptiveLinkKey>0</m:DescriptiveLinkKey>{message_xml}"
            f"{'<m:Items/>' if items else ''}</m:{operation}ResponseMessage>")


def _fault(code: str, text: str, back_off_ms: int | None = None) -> bytes:
    message_xml = ""
    if back_off_ms is not None:
        message_xml = (f'<t:MessageXml xmlns:t="{TYPES}"><t:Value Name="BackOffMilliseconds">'
                       f"{back_off_ms}</t:Value></t:MessageXml>")
    return (f'<?xml version="1.0" encoding="utf-8"?><s:Envelope xmlns:s="{SOAP}"><s:Body>'
            f"<s:Fault><faultcode xmlns:a=\"{TYPES}\">a:{code}</faultcode>"
            f'<faultstring xml:lang="en-US">{escape(text)}</faultstring><detail>'
            f'<e:ResponseCode xmlns:e="{ERRORS}">{code}</e:ResponseCode>'
            f'<e:Message xmlns:e="{ERRORS}">{escape(text)}</e:Message>{message_xml}'
            f"</detail></s:Fault></s:Body></s:Envelope>").encode()


def _send(handler: http.server.BaseHTTPRequestHandler, status: int, payload: bytes,
          content_type: str, extra: dict[str, str] | None = None) -> None:
    handler.send_response(status)
    handler.send_header("Content-Type", content_type)
    handler.send_header("Content-Length", str(len(payload)))
    handler.send_header("X-FEServer", "EXCH16")
    for name, value in (extra or {}).items():
        handler.send_header(name, value)
    handler.end_headers()
    handler.wfile.write(payload)


def _item_id(item: FakeItem) -> str:
    return f'<t:ItemId Id={quoteattr(item.id)} ChangeKey="CQAAABYAAAA="/>'


def _time(when: datetime) -> str:
    return when.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _parse_time(text: str) -> datetime:
    return datetime.strptime(text, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)


def _new_id(prefix: str) -> str:
    return f"{prefix}{secrets.token_urlsafe(18)}="
