"""Exchange Server write-back over EWS with exchangelib: the `Mailbox` of `mailbox.py` for one
user's mailbox on Exchange Server 2016, 2019 or Subscription Edition.

How the full message gets into the folder, and why this way
-----------------------------------------------------------
One CreateItem request (`MessageDisposition="SaveOnly"`, `SavedItemFolderId` = the
placeholder's folder) carries a `t:Message` with exactly three things:

- `t:MimeContent`: the original RFC 5322 message, base64, byte for byte. Exchange's MIME
  converter makes the item from it: subject, body, every attachment and inline part,
  addresses, Message-ID, In-Reply-To/References, importance, sensitivity and all the headers
  (Outlook's "Internet headers"). Microsoft documents this as the way to import an .eml
  ("Import items by using EWS in Exchange", learn.microsoft.com/exchange/client-developer/
  exchange-web-services/how-to-import-items-by-using-ews-in-exchange).
- PidTagMessageFlags (`ExtendedFieldURI PropertyTag="0xe07" PropertyType="Integer"`): 1
  (mfRead) when the placeholder was read, else 0; never mfUnsent (0x8). Without it the item
  is a draft (the same Microsoft page: "Indicate that this email is not a draft. Otherwise,
  the email will appear as a draft to clients", and exchangelib issue #716). MS-OXCMSG 2.2.1.6
  says these flags are writable only until the first save, hence in the create request; the
  read state rides on the mfRead bit, so `IsRead` is not sent beside it.
- PidTagMessageDeliveryTime (`PropertyTag="0xe06" PropertyType="SystemTime"`): the
  placeholder's received date, the property behind EWS's read-only `DateTimeReceived` (Glen
  Scales, "Sent and Received Time on a Message and EWS", gsexdev.blogspot.com, 2014). Set
  on create like the flags. Microsoft's reference does not promise it is writable, so if a
  server refuses it (ErrorInvalidPropertySet and kin) the create is retried once without it
  and the item keeps the import time as its received date.

Nothing else is sent: exchangelib's `Message` would add `IsRead`, `Importance`,
`Sensitivity`, `IsReadReceiptRequested` and more with default values, and those would
override what the converter read from the MIME, so `_ImportedMessage` sends only the three
fields above (it is its own class: nothing is registered on exchangelib's `Message`).

Not chosen: UploadItems (full fidelity, but its `Data` is the opaque export stream of
ExportItems, not MIME: "This data stream representation of an item has to come from the
results of an ExportItems operation call", same Microsoft page); sending the message to the
mailbox (it would run transport rules, journaling and Sealgate's own milter again).

What is kept: the whole MIME as Exchange's converter reads it (body, attachments, headers,
threading), the read state, the received date (where the server allows it) and the folder.
What is not: Exchange stores properties, not the MIME bytes, so a later MIME export differs
in boundaries, encodings and folding; a signature over the whole MIME (S/MIME, DKIM) does not
survive. The flags are written without MSGFLAG_NOTIFYREAD (0x100, "the sender asked for a
read receipt", set by delivery), so opening the new item should not send the sender a second
receipt; like the received date, this was not tried against a live server here.

The placeholder is removed with DeleteItem `DeleteType="MoveToDeletedItems"`
(`SuppressReadReceipts="true"`): the user finds it in Deleted Items and can restore it, the
same as Microsoft Graph's DELETE on the Exchange Online side. Not SoftDelete (straight to
Recoverable Items, out of the user's sight) and never HardDelete (purged). A delegate of
someone else's mailbox cannot move to Deleted Items (ErrorCannotDeleteObject, DeleteItem
reference); Sealgate acts as the user or impersonates them, so that case does not arise.

Requests: GetItem with `BaseShape IdOnly` and only ParentFolderId, IsRead and
DateTimeReceived. Item ids are EWS ids, as Office.js `item.itemId` gives them in Outlook on
the desktop and on the web (REST-format ids must be converted by the add-in first).

What exchangelib makes process-wide (it has no per-configuration hook for these):

- TLS: every EWS session in the process uses `BaseProtocol.HTTP_ADAPTER_CLS`, a class
  attribute. Sealgate sets it once to `_TrustingAdapter`, a plain requests `HTTPAdapter` that
  always verifies: against the `ca_file` registered for the endpoint's origin (scheme, host,
  port; the last mailbox made for an origin sets it), else against requests' default bundle
  (or REQUESTS_CA_BUNDLE). It never lets verification be turned off, and Sealgate refuses to
  start EWS if something else already replaced exchangelib's adapter.
- Logging: exchangelib logs whole requests at DEBUG (the Authorization header, the SOAP body
  with the message's MIME) and, on an unexpected transport error, the request XML at ERROR.
  A filter on its `exchangelib.util` loggers keeps those lines but withholds the headers and
  the XML.
- Sessions: exchangelib caches one `Protocol` (connection pool) per endpoint and credentials
  for the life of the process. A service account (basic, NTLM) keeps its cached protocol,
  which is what lets NTLM reuse its authenticated connection. An OAuth protocol is taken out
  of the cache as soon as it is made: every user token would otherwise stay cached forever.
  The timeout is set on the protocol object, not on exchangelib's class-wide default.

Errors and throttling: the configuration's retry policy is fail-fast (exchangelib's
FaultTolerance would sleep and retry for up to an hour), extended to read `Retry-After` on
HTTP 503 and to treat HTTP 413 as too large. Exchange signals throttling as ErrorServerBusy
in an HTTP 500 SOAP fault with a BackOffMilliseconds hint, or as HTTP 503 (Microsoft, "EWS
throttling in Exchange"); the hint (or Retry-After) becomes `Throttled.retry_after`, and
when the server gives neither, exchangelib's default of 10 seconds. The OAuth token is
handed over without an expiry, so an expired token gets a 401 from the server (AccessDenied)
instead of exchangelib's refresh loop."""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, ClassVar, TypeVar
from urllib.parse import urlsplit

import requests
import requests.adapters
from exchangelib import (
    BASIC,
    DELEGATE,
    IMPERSONATION,
    NTLM,
    OAUTH2,
    Account,
    Configuration,
    Credentials,
    EWSDateTime,
    ExtendedProperty,
    Message,
    OAuth2AuthorizationCodeCredentials,
    Version,
)
from exchangelib import UTC as EWS_UTC
from exchangelib.errors import (
    ErrorAccessDenied,
    ErrorImpersonateUserDenied,
    ErrorImpersonationFailed,
    ErrorInternalServerTransientError,
    ErrorInvalidExtendedPropertyValue,
    ErrorInvalidPropertyRequest,
    ErrorInvalidPropertySet,
    ErrorInvalidValueForProperty,
    ErrorItemNotFound,
    ErrorMessageSizeExceeded,
    ErrorServerBusy,
    ErrorTimeoutExpired,
    EWSError,
    TransportError,
    UnauthorizedError,
)
from exchangelib.fields import ExtendedPropertyField, FieldPath
from exchangelib.folders import Folder, Root
from exchangelib.items import (
    ALL_OCCURRENCES,
    ID_ONLY,
    MOVE_TO_DELETED_ITEMS,
    SAVE_ONLY,
    SEND_TO_NONE,
)
from exchangelib.properties import ItemId
from exchangelib.protocol import BaseProtocol, FailFast, Protocol
from exchangelib.services import CreateItem, DeleteItem, GetItem
from exchangelib.version import EXCHANGE_2016
from oauthlib.oauth2 import OAuth2Error

from sealgate.errors import ConfigError
from sealgate.exchange.mailbox import (
    AccessDenied,
    ItemNotFound,
    MailboxError,
    MailboxItem,
    Throttled,
    TooLarge,
)

log = logging.getLogger(__name__)

AUTH_KINDS = ("oauth", "ntlm", "basic")
MSGFLAG_READ = 0x1  # MS-OXCMSG 2.2.1.6 mfRead; mfUnsent (0x8) is what makes a draft

# Exchange 2016, 2019 and SE all speak the Exchange2016 schema; pinning it skips
# exchangelib's version guessing (extra requests against every version it knows).
_VERSION = Version(build=EXCHANGE_2016, api_version="Exchange2016")

# What a server may answer when it will not take PidTagMessageDeliveryTime on create.
_PROPERTY_REFUSED = (ErrorInvalidPropertySet, ErrorInvalidPropertyRequest,
                     ErrorInvalidExtendedPropertyValue, ErrorInvalidValueForProperty)


class _MessageFlags(ExtendedProperty):  # type: ignore[misc]  # exchangelib ships no types
    """PidTagMessageFlags (PR_MESSAGE_FLAGS)."""

    property_tag = 0x0E07
    property_type = "Integer"


class _DeliveryTime(ExtendedProperty):  # type: ignore[misc]  # exchangelib ships no types
    """PidTagMessageDeliveryTime (PR_MESSAGE_DELIVERY_TIME), EWS's DateTimeReceived."""

    property_tag = 0x0E06
    property_type = "SystemTime"


_IMPORTED_FIELDS = frozenset({"mime_content", "message_flags", "delivery_time"})


class _ImportedMessage(Message):  # type: ignore[misc]  # exchangelib ships no types
    """A `t:Message` that carries only its MIME and the two MAPI properties: the fields
    declared here give the class its own field list (exchangelib's `Message` is left as it
    is), and `supported_fields` keeps every default-valued field of `Message` out of the
    request so that the MIME converter's values stand."""

    message_flags = ExtendedPropertyField(value_cls=_MessageFlags)
    delivery_time = ExtendedPropertyField(value_cls=_DeliveryTime)

    @classmethod
    def supported_fields(cls, version: Any) -> tuple[Any, ...]:
        return tuple(field for field in super().supported_fields(version)
                     if field.name in _IMPORTED_FIELDS)


def _item_fields() -> frozenset[Any]:
    return frozenset(FieldPath(field=Message.get_field_by_fieldname(name))
                     for name in ("parent_folder_id", "is_read", "datetime_received"))


_ITEM_FIELDS = _item_fields()


# --- process-wide settings exchangelib forces ----------------------------------------------


def _origin(url: str) -> tuple[str, str, int]:
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    return scheme, (parts.hostname or "").lower(), parts.port or (443 if scheme == "https"
                                                                  else 80)


class _TrustingAdapter(requests.adapters.HTTPAdapter):
    """exchangelib's adapter for every EWS session of the process: it verifies against the
    CA file registered for the request's origin, else against what requests chose (its
    bundle, or REQUESTS_CA_BUNDLE); it never lets verification be turned off."""

    trusted: ClassVar[dict[tuple[str, str, int], str]] = {}

    def send(self, request: requests.PreparedRequest, stream: bool = False,
             timeout: Any = None, verify: bool | str = True, cert: Any = None,
             proxies: Any = None) -> requests.Response:
        ca_file = self.trusted.get(_origin(request.url or ""))
        if ca_file:
            verify = ca_file
        elif verify is False:
            verify = True
        return super().send(request, stream=stream, timeout=timeout, verify=verify,
                            cert=cert, proxies=proxies)


_WITHHELD = frozenset({"request_headers", "response_headers", "xml_request", "xml_response"})
_ERROR_DUMP = "%s: %s\n%s\n%s"


class _WithholdRequests(logging.Filter):
    """Keeps exchangelib's request log lines, without the headers (Authorization) and the
    SOAP XML (the message itself)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.args, dict):
            record.args = {key: "[withheld]" if key in _WITHHELD else value
                           for key, value in record.args.items()}
        elif (record.msg == _ERROR_DUMP and isinstance(record.args, tuple)
              and len(record.args) == 4):
            record.args = (*record.args[:2], "[request withheld]", "")
        return True


_install_lock = threading.Lock()


def _install_process_settings() -> None:
    with _install_lock:
        current = BaseProtocol.HTTP_ADAPTER_CLS
        if current is not _TrustingAdapter:
            if current is not requests.adapters.HTTPAdapter:
                raise ConfigError(f"exchangelib's HTTP adapter was already replaced by "
                                  f"{current.__name__}; Sealgate only uses EWS through its "
                                  f"own, verifying, adapter")
            BaseProtocol.HTTP_ADAPTER_CLS = _TrustingAdapter
        for name in ("exchangelib.util", "exchangelib.util.xml"):
            logger = logging.getLogger(name)
            if not any(isinstance(existing, _WithholdRequests) for existing in logger.filters):
                logger.addFilter(_WithholdRequests())


class _FailFast(FailFast):  # type: ignore[misc]  # exchangelib ships no types
    """Fail fast (no sleeping, no retries), keeping the server's Retry-After on 503 and
    calling HTTP 413 (IIS's request limit) too large."""

    def raise_response_errors(self, response: requests.Response) -> None:
        if response.status_code == 413:
            raise ErrorMessageSizeExceeded("the EWS server refused the request as too large "
                                           "(HTTP 413)")
        try:
            super().raise_response_errors(response)
        except (ErrorInternalServerTransientError, ErrorServerBusy) as error:
            raise ErrorServerBusy(str(error), back_off=_retry_after(response)) from None


def _retry_after(response: requests.Response) -> float | None:
    try:
        seconds = float(response.headers.get("Retry-After", ""))
    except ValueError:
        return None
    return seconds if seconds > 0 else None


# --- the mailbox ---------------------------------------------------------------------------

_T = TypeVar("_T")


class EwsMailbox:
    """One user's mailbox on Exchange Server through EWS (`Mailbox` protocol).

    `auth`: "oauth" with `token` (a bearer token for the EWS resource), or "ntlm" / "basic"
    with a service account's `username` and `password`. `impersonate`: act as `address`
    through EWS impersonation (the service account's or the app's ApplicationImpersonation
    right); otherwise the credentials are the user's own. `ca_file`: a PEM bundle to verify
    the server against instead of the default one. Credentials and tokens go only into the
    Authorization header, never into a message or a log line."""

    def __init__(self, address: str, *, url: str, auth: str, token: str | None = None,
                 username: str = "", password: str = "", ca_file: str | None = None,
                 timeout: float = 30, impersonate: bool = False) -> None:
        if auth not in AUTH_KINDS:
            raise ConfigError(f"EWS sign-in must be one of {', '.join(AUTH_KINDS)}, "
                              f"not {auth!r}")
        if urlsplit(url).scheme != "https" or not urlsplit(url).hostname:
            raise ConfigError(f"the EWS URL must be an https URL: {url!r}")
        if "@" not in address:
            raise ConfigError(f"not a mailbox address: {address!r}")
        if not timeout > 0:
            raise ConfigError(f"the EWS timeout must be positive, not {timeout!r}")
        credentials: Any
        if auth == "oauth":
            if not token:
                raise ConfigError("EWS with OAuth needs an access token")
            # No expiry in the token dict: exchangelib would otherwise try to refresh it.
            credentials = OAuth2AuthorizationCodeCredentials(
                access_token={"access_token": token, "token_type": "Bearer"})
        else:
            if not username or not password:
                raise ConfigError(f"EWS with {auth} sign-in needs ews_username and "
                                  f"ews_password")
            credentials = Credentials(username=username, password=password)
        if ca_file:
            _check_ca_file(ca_file)
        _install_process_settings()
        if ca_file:
            _TrustingAdapter.trusted[_origin(url)] = ca_file
        else:
            _TrustingAdapter.trusted.pop(_origin(url), None)

        config = Configuration(service_endpoint=url, credentials=credentials,
                               auth_type={"oauth": OAUTH2, "ntlm": NTLM, "basic": BASIC}[auth],
                               version=_VERSION, retry_policy=_FailFast(), max_connections=1)
        self._host = urlsplit(url).hostname
        self._account = Account(primary_smtp_address=address, config=config,
                                autodiscover=False, default_timezone=EWS_UTC,
                                access_type=IMPERSONATION if impersonate else DELEGATE)
        protocol = self._account.protocol
        protocol.TIMEOUT = timeout  # this protocol's requests, not exchangelib's default
        if auth == "oauth":
            with contextlib.suppress(KeyError):  # see the module docstring: a user token's
                del Protocol[config]  # protocol is not kept in exchangelib's cache
        self._root = Root(account=self._account)

    # Mailbox

    def item(self, item_id: str) -> MailboxItem:
        found = self._call("reading the item", lambda: GetItem(account=self._account).get(
            items=[ItemId(id=item_id)], additional_fields=_ITEM_FIELDS, shape=ID_ONLY))
        folder = getattr(found, "parent_folder_id", None)
        if folder is None or not folder.id:
            raise MailboxError("reading the item: the EWS answer has no ParentFolderId")
        received = getattr(found, "datetime_received", None)
        return MailboxItem(item_id=found.id or item_id, folder_id=folder.id,
                           is_read=getattr(found, "is_read", None) is True,
                           received=_plain_utc(received) if received is not None else None)

    def import_message(self, folder_id: str, mime: bytes, *, is_read: bool,
                       received: datetime | None) -> str:
        flags = MSGFLAG_READ if is_read else 0
        delivery = EWSDateTime.from_datetime(received.astimezone(UTC)) if received else None
        try:
            created = self._create(folder_id, mime, flags, delivery,
                                   passing=_PROPERTY_REFUSED if delivery else ())
        except _PROPERTY_REFUSED as error:
            log.info("the EWS server refused the received date (%s: %s); the message keeps "
                     "the import time", type(error).__name__, error)
            created = self._create(folder_id, mime, flags, None)
        new_id = getattr(created, "id", None)
        if not isinstance(new_id, str) or not new_id:
            raise MailboxError("creating the message: the EWS answer has no ItemId")
        return new_id

    def delete(self, item_id: str) -> None:
        self._call("deleting the item", lambda: DeleteItem(account=self._account).get(
            items=[ItemId(id=item_id)], delete_type=MOVE_TO_DELETED_ITEMS,
            send_meeting_cancellations=SEND_TO_NONE,
            affected_task_occurrences=ALL_OCCURRENCES, suppress_read_receipts=True))

    # EWS

    def _create(self, folder_id: str, mime: bytes, flags: int, delivery: EWSDateTime | None,
                passing: tuple[type[Exception], ...] = ()) -> Any:
        message = _ImportedMessage(account=self._account, mime_content=mime,
                                   message_flags=flags, delivery_time=delivery)
        folder = Folder(root=self._root, id=folder_id)
        service = CreateItem(account=self._account)
        return self._call("creating the message", lambda: service.get(
            items=[message], folder=folder, message_disposition=SAVE_ONLY,
            send_meeting_invitations=SEND_TO_NONE), passing=passing)

    def _call(self, doing: str, request: Callable[[], _T],
              passing: tuple[type[Exception], ...] = ()) -> _T:
        try:
            return request()
        except passing:
            raise
        except (EWSError, OAuth2Error, requests.RequestException, PermissionError,
                ValueError) as error:
            # PermissionError: requests_ntlm's "server did not respond with NTLM challenge".
            # ValueError: exchangelib's answer for a response with the wrong number of items.
            raise self._error(error, doing) from None

    def _error(self, error: Exception, doing: str) -> MailboxError:
        name = type(error).__name__
        detail = f"{doing}: {name}: {error}".rstrip(": ")
        if isinstance(error, ErrorServerBusy):
            return Throttled(detail, retry_after=error.back_off)
        if isinstance(error, ErrorItemNotFound):
            return ItemNotFound(detail)
        if isinstance(error, ErrorMessageSizeExceeded):
            return TooLarge(detail)
        if isinstance(error, (ErrorAccessDenied, ErrorImpersonateUserDenied,
                              ErrorImpersonationFailed, UnauthorizedError, OAuth2Error,
                              PermissionError)):
            return AccessDenied(detail)
        if isinstance(error, (ErrorTimeoutExpired, requests.RequestException)) or (
                type(error) is TransportError):
            # Connection, timeout and TLS failures (exchangelib wraps them in these two).
            return MailboxError(f"{doing}: the EWS server at {self._host} could not be "
                                f"reached or did not answer in time: {error}")
        return MailboxError(detail)


def _check_ca_file(path: str) -> None:
    try:
        with open(path, "rb") as handle:
            head = handle.read(1 << 16)
    except OSError as error:
        raise ConfigError(f"cannot read the CA file {path}: {error.strerror}") from None
    if b"-----BEGIN CERTIFICATE-----" not in head:
        raise ConfigError(f"the CA file {path} holds no PEM certificate")


def _plain_utc(when: datetime) -> datetime:
    """exchangelib's EWSDateTime as a plain, timezone-aware UTC datetime."""
    return datetime.fromtimestamp(when.timestamp(), tz=UTC)
