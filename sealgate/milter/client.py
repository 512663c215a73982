"""The milter's outbound calls: deposit with the server (HTTP), ask it for the settings
administrators changed, and re-inject a split copy into the MTA (SMTP). Each raises on
failure; the caller turns that into a 4xx (or, for settings, keeps the rules it has)."""

from __future__ import annotations

import base64
import http.client
import json
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from sealgate import logs, smtp
from sealgate.mail.dkim import DkimError, DkimKey, sign_if_ours
from sealgate.mail.notification import Notification
from sealgate.mail.rewrite import Deposited, EncryptedCopy, Reinjection


class PermanentFailure(Exception):
    """The message can never be processed as it is; the sender must change something."""


class Held(Exception):
    """The server keeps the message for its sender: no secure method fits its recipients."""

    def __init__(self, hold_id: str, reason: str) -> None:
        super().__init__(reason)
        self.hold_id = hold_id


class TemporaryFailure(Exception):
    """Worth retrying later: the server is down, busy or failing."""


@dataclass(frozen=True)
class SettingsRevision:
    revision: int  # 0: no change was ever saved; the file's settings run
    overlay: dict[str, Any] | None  # None: the caller has this revision already


class DepositClient:
    """One kept-alive connection per milter thread (libmilter runs a thread per SMTP
    connection), so a busy sender does not pay a TCP handshake per message."""

    def __init__(self, base_url: str, secret: str, timeout: float) -> None:
        parts = urlsplit(base_url)
        self._https = parts.scheme == "https"
        self._host = parts.hostname or "127.0.0.1"
        self._port = parts.port or (443 if self._https else 80)
        self._base = parts.path.rstrip("/") + "/api/v1/internal"
        self._secret = secret
        self._timeout = timeout
        self._local = threading.local()

    def _connection(self) -> http.client.HTTPConnection:
        connection: http.client.HTTPConnection | None = getattr(self._local, "connection", None)
        if connection is None:
            kind = http.client.HTTPSConnection if self._https else http.client.HTTPConnection
            connection = self._local.connection = kind(self._host, self._port,
                                                       timeout=self._timeout)
        return connection

    def _post(self, route: str, body: bytes) -> tuple[int, bytes]:
        return self._request("POST", route, body)

    def _request(self, method: str, route: str, body: bytes | None = None
                 ) -> tuple[int, bytes]:
        headers = {"Authorization": f"Bearer {self._secret}"}
        trace = logs.current_message_id.get()
        if trace is not None:  # the server logs this message's lines under the same id
            headers[logs.TRACE_HEADER] = trace
        if body is not None:
            headers["Content-Type"] = "application/json"
        for attempt in (1, 2):
            connection = self._connection()
            try:
                connection.request(method, self._base + route, body, headers)
                response = connection.getresponse()
                return response.status, response.read()
            except (http.client.RemoteDisconnected, BrokenPipeError,
                    ConnectionResetError) as error:
                # The server closed an idle kept-alive connection: retry once on a new one.
                # (A deposit the server did complete would at worst be stored twice.)
                connection.close()
                self._local.connection = None
                if attempt == 2:
                    raise TemporaryFailure(f"server unreachable: {error}") from error
            except OSError as error:
                connection.close()
                self._local.connection = None
                raise TemporaryFailure(f"server unreachable: {error}") from error
        raise AssertionError("unreachable")

    def settings(self, have: int | None = None) -> SettingsRevision:
        """The newest settings revision the administrators saved, with its overlay (None when
        it is `have`: nothing changed)."""
        status, payload = self._request(
            "GET", "/settings" if have is None else f"/settings?have={have}")
        if status != 200:
            raise TemporaryFailure(f"server answered {status}: {payload[:200]!r}")
        try:
            answer = json.loads(payload)
            revision = answer["revision"]
            overlay = answer.get("overlay")
            if not isinstance(revision, int) or not (overlay is None
                                                     or isinstance(overlay, dict)):
                raise ValueError("not a revision number and an object")
        except (ValueError, KeyError, TypeError) as error:
            raise TemporaryFailure(f"server answered settings the milter cannot read: "
                                   f"{error}") from None
        return SettingsRevision(revision, overlay)

    def deposit(self, raw: bytes, mail_from: str, recipients: Sequence[str],
                subject: str, force_portal: bool = False) -> Deposited:
        """The server plans each recipient's method: the portal (a deposit and its
        notification) or a copy encrypted to the recipient's certificate or key."""
        body = json.dumps({"mail_from": mail_from, "recipients": list(recipients),
                           "subject": subject, "force_portal": force_portal,
                           "message": base64.b64encode(raw).decode("ascii")}).encode()
        status, payload = self._post("/deposits", body)
        if status == 202:  # no secure method, and the configuration says hold
            answer = json.loads(payload)
            raise Held(str(answer["hold_id"]), str(answer.get("message", "")))
        if status == 422:
            raise PermanentFailure(json.loads(payload).get("message", "unreadable message"))
        if status != 201:
            raise TemporaryFailure(f"server answered {status}: {payload[:200]!r}")
        answer = json.loads(payload)
        notification = Notification(content_type=answer["content_type"],
                                    body=base64.b64decode(answer["body"])) \
            if answer.get("body") is not None else None
        copies = tuple(EncryptedCopy(copy["method"], tuple(copy["recipients"]),
                                     base64.b64decode(copy["message"]),
                                     copy.get("mail_from", ""), copy.get("envelope_id", ""))
                       for copy in answer.get("copies", []))
        portal = answer.get("portal")
        return Deposited(answer.get("message_id"), notification,
                         tuple(portal) if portal is not None else None, copies)

    def hold(self, raw: bytes, mail_from: str, recipients: Sequence[str], subject: str,
             report: dict[str, object]) -> str:
        """Quarantine: the server keeps the message until its sender decides. Returns the
        hold's id once the message is durable there."""
        body = json.dumps({"mail_from": mail_from, "recipients": list(recipients),
                           "subject": subject, "dlp": report,
                           "message": base64.b64encode(raw).decode("ascii")}).encode()
        status, payload = self._post("/holds", body)
        if status != 201:
            raise TemporaryFailure(f"server answered {status}: {payload[:200]!r}")
        return str(json.loads(payload)["hold_id"])

    def delivery_report(self, raw: bytes) -> None:
        """A delivery status notification for the return address: the server settles the
        verified-TLS deliveries it reports on (and drops anything else)."""
        body = json.dumps({"message": base64.b64encode(raw).decode("ascii")}).encode()
        status, payload = self._post("/delivery-reports", body)
        if status != 202:
            raise TemporaryFailure(f"server answered {status}: {payload[:200]!r}")

    def harvest(self, raw: bytes) -> None:
        """A signed message the organisation received: the server may keep its signer's
        certificate (checked after it answers; the message is not held up)."""
        body = json.dumps({"message": base64.b64encode(raw).decode("ascii")}).encode()
        status, payload = self._post("/certificates", body)
        if status != 202:
            raise TemporaryFailure(f"server answered {status}: {payload[:200]!r}")

    def report(self, mail_from: str, recipients: Sequence[str], subject: str, action: str,
               report: dict[str, object]) -> None:
        """What a DLP policy found and what was done, for the audit trail and the reports."""
        body = json.dumps({"mail_from": mail_from, "recipients": list(recipients),
                           "subject": subject, "action": action, "dlp": report}).encode()
        status, payload = self._post("/reports", body)
        if status != 202:
            raise TemporaryFailure(f"server answered {status}: {payload[:200]!r}")


def reinject(address: str, copy: Reinjection, timeout: float,
             signer: DkimKey | None = None) -> None:
    """Hand a copy to the MTA's milter-free listener; any refusal raises. With a `signer`,
    a copy whose From is in its domain is DKIM-signed first (nothing changes it after)."""
    try:
        data = sign_if_ours(signer, copy.data)
    except DkimError as error:
        raise TemporaryFailure(str(error)) from None
    host, _, port = address.rpartition(":")
    refused = smtp.send(host, int(port), copy.mail_from, copy.recipients, data, timeout,
                        envelope_id=copy.envelope_id)
    if refused:
        raise TemporaryFailure(f"re-injection refused recipients: {sorted(refused)}")
