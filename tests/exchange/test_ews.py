"""The Exchange Server write-back (`sealgate.exchange.ews`) against a fake EWS endpoint over real
HTTPS on loopback (`ews_server.py`): the placeholder replaced by the full message, the SOAP it
takes, sign-in, TLS, and every error mapped to the mailbox errors."""

from __future__ import annotations

import base64
import logging
import ssl
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from email.message import EmailMessage
from email.policy import SMTP
from pathlib import Path
from typing import Any

import pytest
from exchangelib.protocol import CachingProtocol

from sealgate.errors import ConfigError
from sealgate.exchange.ews import EwsMailbox
from sealgate.exchange.mailbox import (
    AccessDenied,
    ItemNotFound,
    MailboxError,
    Throttled,
    TooLarge,
    replace_placeholder,
)
from sealgate.lab import pki
from tests.exchange.ews_server import NS, FakeEws, server_context

ADDRESS = "alice@corp.example"
TOKEN = "eyJ0eXAiOiJKV1QiLCJhbGciOiJSUzI1NiJ9.ews-token-for-alice.sig"
RECEIVED = datetime(2024, 5, 1, 8, 30, tzinfo=UTC)


def _mime() -> bytes:
    message = EmailMessage(policy=SMTP)
    message["From"] = "Bob Sender <bob@partner.example>"
    message["To"] = ADDRESS
    message["Subject"] = "Quarterly figures — confidential"
    message["Date"] = "Wed, 01 May 2024 10:29:58 +0200"
    message["Message-ID"] = "<q2-figures@partner.example>"
    message["Importance"] = "high"
    message.set_content("The figures are attached.\n")
    message.add_alternative("<p>The figures are <b>attached</b>.</p>", subtype="html")
    message.add_attachment(bytes(range(256)) * 8, maintype="application",
                           subtype="octet-stream", filename="figures.bin")
    return message.as_bytes()


MIME = _mime()


@pytest.fixture(scope="module")
def tls(tmp_path_factory: pytest.TempPathFactory) -> tuple[ssl.SSLContext, Path]:
    folder = tmp_path_factory.mktemp("ews")
    ca = pki.TestCa.create("EWS test CA")
    ca_file = folder / "ca.pem"
    ca_file.write_bytes(ca.cert_pem)
    return server_context(ca, folder), ca_file


@pytest.fixture
def ews(tls: tuple[ssl.SSLContext, Path]) -> Iterator[FakeEws]:
    server = FakeEws(tls[0], authorization=f"Bearer {TOKEN}")
    yield server
    server.close()


@pytest.fixture
def ca_file(tls: tuple[ssl.SSLContext, Path]) -> str:
    return str(tls[1])


def _mailbox(ews: FakeEws, ca_file: str | None, /, **overrides: Any) -> EwsMailbox:
    options: dict[str, Any] = {"url": ews.url, "auth": "oauth", "token": TOKEN,
                               "ca_file": ca_file, "timeout": 5}
    options.update(overrides)
    return EwsMailbox(ADDRESS, **options)


def _extended(request: Any) -> dict[str, tuple[str, str]]:
    """PropertyTag -> (PropertyType, Value) of the ExtendedProperty elements sent."""
    found = {}
    for prop in request.findall("m:Items/t:Message/t:ExtendedProperty", NS):
        uri = prop.find("t:ExtendedFieldURI", NS)
        found[uri.get("PropertyTag")] = (uri.get("PropertyType"), prop.findtext("t:Value", "",
                                                                                  NS))
    return found


# --- the replacement -----------------------------------------------------------------------


def test_the_full_message_replaces_the_placeholder_in_its_folder(ews: FakeEws,
                                                                   ca_file: str) -> None:
    placeholder = ews.put_item("inbox", is_read=True, received=RECEIVED)

    result = replace_placeholder(_mailbox(ews, ca_file), placeholder.id, MIME)

    new = ews.items[result.new_item_id]
    assert result.placeholder_removed and result.problem == ""
    assert result.folder_id == new.folder_id == ews.folder("inbox")
    assert new.mime == MIME  # byte for byte
    assert new.is_read and not new.is_draft
    assert new.received == RECEIVED
    assert placeholder.folder_id == ews.folder("deleteditems")
    # Read, create, confirm the new item, and only then remove the placeholder.
    assert ews.operations() == ["GetItem", "CreateItem", "GetItem", "DeleteItem"]
    confirm, delete = ews.calls("GetItem")[1], ews.calls("DeleteItem")[0]
    assert confirm.request.find("m:ItemIds/t:ItemId", NS).get("Id") == new.id
    assert delete.request.find("m:ItemIds/t:ItemId", NS).get("Id") == placeholder.id
    assert {r.headers["authorization"] for r in ews.requests} == {f"Bearer {TOKEN}"}


def test_create_sends_the_mime_and_only_the_two_mapi_properties(ews: FakeEws,
                                                                 ca_file: str) -> None:
    placeholder = ews.put_item("inbox", is_read=True, received=RECEIVED)

    replace_placeholder(_mailbox(ews, ca_file), placeholder.id, MIME)

    create = ews.calls("CreateItem")[0].request
    assert create.get("MessageDisposition") == "SaveOnly"
    assert create.find("m:SavedItemFolderId/t:FolderId", NS).get("Id") == ews.folder("inbox")
    message = create.find("m:Items/t:Message", NS)
    # No IsRead, Importance, Sensitivity... that would override what Exchange reads from
    # the MIME.
    assert [child.tag.rpartition("}")[2] for child in message] == [
        "MimeContent", "ExtendedProperty", "ExtendedProperty"]
    assert base64.b64decode(message.findtext("t:MimeContent", "", NS)) == MIME
    assert _extended(create) == {"0xe07": ("Integer", "1"),
                                 "0xe06": ("SystemTime", "2024-05-01T08:30:00Z")}


def test_an_unread_placeholder_gives_an_unread_message_that_is_not_a_draft(
        ews: FakeEws, ca_file: str) -> None:
    placeholder = ews.put_item("inbox", is_read=False, received=RECEIVED)

    result = replace_placeholder(_mailbox(ews, ca_file), placeholder.id, MIME)

    assert _extended(ews.calls("CreateItem")[0].request)["0xe07"] == ("Integer", "0")
    new = ews.items[result.new_item_id]
    assert not new.is_read and not new.is_draft


def test_item_reads_only_the_folder_read_state_and_received_date(ews: FakeEws,
                                                                 ca_file: str) -> None:
    placeholder = ews.put_item("inbox", is_read=True, received=RECEIVED)

    found = _mailbox(ews, ca_file).item(placeholder.id)

    assert (found.item_id, found.folder_id, found.is_read) == (
        placeholder.id, ews.folder("inbox"), True)
    assert found.received == RECEIVED and found.received.tzinfo is not None
    shape = ews.calls("GetItem")[0].request.find("m:ItemShape", NS)
    assert shape.findtext("t:BaseShape", "", NS) == "IdOnly"
    assert {uri.get("FieldURI") for uri in shape.findall("t:AdditionalProperties/t:FieldURI",
                                                         NS)} == {
        "item:ParentFolderId", "message:IsRead", "item:DateTimeReceived"}


def test_delete_moves_to_deleted_items_without_read_receipts(ews: FakeEws,
                                                             ca_file: str) -> None:
    placeholder = ews.put_item("inbox", is_read=False)

    _mailbox(ews, ca_file).delete(placeholder.id)

    request = ews.calls("DeleteItem")[0].request
    assert request.get("DeleteType") == "MoveToDeletedItems"
    assert request.get("SuppressReadReceipts") == "true"
    assert placeholder.id in ews.items  # recoverable by the user, not purged
    assert placeholder.folder_id == ews.folder("deleteditems")


def test_a_refused_received_date_is_retried_without_it(ews: FakeEws, ca_file: str) -> None:
    ews.refuse_property("0xe06")
    placeholder = ews.put_item("inbox", is_read=True, received=RECEIVED)

    result = replace_placeholder(_mailbox(ews, ca_file), placeholder.id, MIME)

    first, second = ews.calls("CreateItem")
    assert "0xe06" in _extended(first.request)
    assert _extended(second.request) == {"0xe07": ("Integer", "1")}
    assert result.placeholder_removed
    assert ews.items[result.new_item_id].mime == MIME


# --- failures: nothing removed before the new item is confirmed ----------------------------


@pytest.mark.parametrize(("code", "error"), [("ErrorMessageSizeExceeded", TooLarge),
                                             ("ErrorAccessDenied", AccessDenied),
                                             ("ErrorQuotaExceeded", MailboxError)])
def test_a_create_failure_changes_nothing(ews: FakeEws, ca_file: str, code: str,
                                          error: type[MailboxError]) -> None:
    placeholder = ews.put_item("inbox", is_read=True)
    ews.fail("CreateItem", code)

    with pytest.raises(error) as raised:
        replace_placeholder(_mailbox(ews, ca_file), placeholder.id, MIME)

    assert type(raised.value) is error and code in str(raised.value)
    assert ews.operations() == ["GetItem", "CreateItem"]
    assert list(ews.items) == [placeholder.id]
    assert placeholder.folder_id == ews.folder("inbox")


def test_http_413_is_too_large(ews: FakeEws, ca_file: str) -> None:
    placeholder = ews.put_item("inbox")
    ews.fail("CreateItem", "", status=413)

    with pytest.raises(TooLarge):
        replace_placeholder(_mailbox(ews, ca_file), placeholder.id, MIME)
    assert "DeleteItem" not in ews.operations()


def test_a_new_item_in_another_folder_is_not_taken_as_confirmed(ews: FakeEws,
                                                                ca_file: str) -> None:
    placeholder = ews.put_item("inbox")
    ews.misplace_into = ews.folder("deleteditems")

    with pytest.raises(MailboxError, match="not in the placeholder's"):
        replace_placeholder(_mailbox(ews, ca_file), placeholder.id, MIME)
    assert "DeleteItem" not in ews.operations()
    assert placeholder.folder_id == ews.folder("inbox")


def test_a_delete_failure_keeps_both_and_says_why(ews: FakeEws, ca_file: str) -> None:
    placeholder = ews.put_item("inbox", is_read=True)
    ews.fail("DeleteItem", "ErrorAccessDenied")

    result = replace_placeholder(_mailbox(ews, ca_file), placeholder.id, MIME)

    assert not result.placeholder_removed
    assert "ErrorAccessDenied" in result.problem
    assert ews.items[result.new_item_id].folder_id == placeholder.folder_id == ews.folder(
        "inbox")


# --- errors --------------------------------------------------------------------------------


def test_a_missing_item_is_item_not_found(ews: FakeEws, ca_file: str) -> None:
    with pytest.raises(ItemNotFound, match="ErrorItemNotFound"):
        _mailbox(ews, ca_file).item("AAMkNoSuchItem=")


@pytest.mark.parametrize(("code", "fault"), [("ErrorAccessDenied", False),
                                             ("ErrorImpersonateUserDenied", True)])
def test_refusals_are_access_denied(ews: FakeEws, ca_file: str, code: str,
                                    fault: bool) -> None:
    placeholder = ews.put_item("inbox")
    ews.fail("GetItem", code, fault=fault)

    with pytest.raises(AccessDenied, match=code):
        _mailbox(ews, ca_file).item(placeholder.id)


def test_a_rejected_token_is_access_denied(ews: FakeEws, ca_file: str) -> None:
    placeholder = ews.put_item("inbox")

    with pytest.raises(AccessDenied):
        _mailbox(ews, ca_file, token="expired-or-forged").item(placeholder.id)
    assert ews.operations() == ["GetItem"]  # fail fast: no retry


def test_server_busy_is_throttled_with_the_back_off_and_no_waiting(ews: FakeEws,
                                                                   ca_file: str) -> None:
    placeholder = ews.put_item("inbox")
    ews.fail("GetItem", "ErrorServerBusy", fault=True, back_off_ms=297749)

    started = time.monotonic()
    with pytest.raises(Throttled) as raised:
        _mailbox(ews, ca_file).item(placeholder.id)

    assert raised.value.retry_after == pytest.approx(297.749)
    assert time.monotonic() - started < 5
    assert ews.operations() == ["GetItem"]


def test_http_503_is_throttled_with_retry_after(ews: FakeEws, ca_file: str) -> None:
    placeholder = ews.put_item("inbox")
    ews.fail("DeleteItem", "", status=503, retry_after="120")

    with pytest.raises(Throttled) as raised:
        _mailbox(ews, ca_file).delete(placeholder.id)

    assert raised.value.retry_after == 120
    assert ews.operations() == ["DeleteItem"]


def test_a_silent_server_times_out(ews: FakeEws, ca_file: str) -> None:
    placeholder = ews.put_item("inbox")
    ews.stall = 2.0

    started = time.monotonic()
    with pytest.raises(MailboxError, match="did not answer in time") as raised:
        _mailbox(ews, ca_file, timeout=0.5).item(placeholder.id)

    assert type(raised.value) is MailboxError
    assert time.monotonic() - started < 1.9


# --- sign-in and TLS -----------------------------------------------------------------------


def test_basic_sign_in_with_impersonation(tls: tuple[ssl.SSLContext, Path],
                                          ca_file: str) -> None:
    basic = "Basic " + base64.b64encode(b"CORP\\svc-sealgate:s3cret pass").decode()
    server = FakeEws(tls[0], authorization=basic)
    try:
        placeholder = server.put_item("inbox", is_read=True)
        mailbox = _mailbox(server, ca_file, auth="basic", token=None,
                           username="CORP\\svc-sealgate", password="s3cret pass",
                           impersonate=True)

        result = replace_placeholder(mailbox, placeholder.id, MIME)

        assert result.placeholder_removed
        assert {r.headers["authorization"] for r in server.requests} == {basic}
        for request in server.requests:
            assert request.find("s:Header/t:ExchangeImpersonation/t:ConnectingSID/"
                                "t:PrimarySmtpAddress").text == ADDRESS
            assert request.headers["x-anchormailbox"] == ADDRESS
    finally:
        server.close()


def test_ntlm_sign_in_starts_the_ntlm_handshake(tls: tuple[ssl.SSLContext, Path],
                                                ca_file: str) -> None:
    server = FakeEws(tls[0], ntlm=True)
    try:
        mailbox = _mailbox(server, ca_file, auth="ntlm", token=None,
                           username="CORP\\svc-sealgate", password="s3cret pass",
                           impersonate=True)

        with pytest.raises(AccessDenied):
            mailbox.item("AAMkAnyItem=")

        sent = [r.headers.get("authorization", "") for r in server.requests]
        # An NTLM Negotiate message (base64 of "NTLMSSP\0" and type 1), and no password.
        assert any(value.startswith("NTLM TlRMTVNTUAAB") for value in sent)
        assert not any("s3cret" in value or value.startswith("Basic") for value in sent)
    finally:
        server.close()


def test_a_server_outside_the_trusted_ca_is_refused(ews: FakeEws, ca_file: str) -> None:
    placeholder = ews.put_item("inbox")

    with pytest.raises(MailboxError, match="(?i)certificate"):
        _mailbox(ews, None).item(placeholder.id)
    assert ews.requests == []  # refused during the handshake, before any SOAP

    assert _mailbox(ews, ca_file).item(placeholder.id).item_id == placeholder.id


@pytest.mark.parametrize(("overrides", "message"), [
    ({"auth": "kerberos"}, "must be one of"),
    ({"url": "http://mail.corp.example/EWS/Exchange.asmx"}, "https"),
    ({"token": ""}, "access token"),
    ({"auth": "basic", "token": None, "username": "svc"}, "ews_password"),
    ({"ca_file": "/nonexistent/ca.pem"}, "cannot read the CA file"),
    ({"timeout": 0}, "timeout"),
])
def test_bad_settings_are_clear_errors(ews: FakeEws, ca_file: str, overrides: dict[str, Any],
                                       message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        _mailbox(ews, ca_file, **overrides)


# --- what exchangelib keeps and logs -------------------------------------------------------


def test_tokens_and_messages_stay_out_of_the_logs(ews: FakeEws, ca_file: str,
                                                  caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger="exchangelib")
    placeholder = ews.put_item("inbox", is_read=True)

    replace_placeholder(_mailbox(ews, ca_file), placeholder.id, MIME)

    assert "[withheld]" in caplog.text  # exchangelib did log the requests...
    assert TOKEN not in caplog.text  # ...without the Authorization header
    assert base64.b64encode(MIME).decode()[:60] not in caplog.text  # ...or the message


def test_user_tokens_do_not_pile_up_in_exchangelibs_cache(ews: FakeEws, ca_file: str) -> None:
    before = len(CachingProtocol._protocol_cache)

    for number in range(3):
        _mailbox(ews, ca_file, token=f"{TOKEN}-{number}")

    assert len(CachingProtocol._protocol_cache) == before
