"""The Exchange Online backend (`sealgate.exchange.graph`) against a fake Microsoft Graph over
real HTTPS on loopback (`graph_server.py`): the placeholder replaced end to end, what the new
message carries, the order of the calls, and every error on the way."""

from __future__ import annotations

import base64
import socket
import ssl
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from email.utils import format_datetime, make_msgid
from pathlib import Path

import pytest

from sealgate.exchange.graph import (
    DELIVERY_TIME,
    IN_REPLY_TO,
    MESSAGE_FLAGS,
    SUBMIT_TIME,
    TRANSPORT_HEADERS,
    GraphMailbox,
    graph_message,
)
from sealgate.exchange.mailbox import (
    AccessDenied,
    ItemNotFound,
    MailboxError,
    Throttled,
    TooLarge,
    replace_placeholder,
)
from sealgate.lab import pki
from tests.exchange.graph_server import FakeGraph, FakeMessage, FakeUser, server_context

TOKEN = "eyJ0eXAiOiJKV1QiLCJhbGciOiJSUzI1NiJ9.delegated-token-for-megan"
APP_TOKEN = "eyJ0eXAiOiJKV1QiLCJhbGciOiJSUzI1NiJ9.app-only-token"
SENT = datetime(2026, 11, 2, 9, 15, 30, tzinfo=UTC)
RECEIVED = datetime(2026, 11, 2, 9, 16, 5, tzinfo=UTC)
PDF = b"%PDF-1.7\n" + bytes(range(256)) * 40 + b"\n%%EOF\n"
PNG = b"\x89PNG\r\n\x1a\n" + bytes(range(255, -1, -1)) * 8


@pytest.fixture(scope="session")
def tls(tmp_path_factory: pytest.TempPathFactory) -> tuple[ssl.SSLContext, str]:
    folder = tmp_path_factory.mktemp("graph-tls")
    ca = pki.TestCa.create("Graph test CA")
    ca_file = folder / "ca.pem"
    ca_file.write_bytes(ca.cert_pem)
    return server_context(ca, folder), str(ca_file)


@pytest.fixture
def graph(tls: tuple[ssl.SSLContext, str]) -> Iterator[FakeGraph]:
    fake = FakeGraph(tls[0])
    yield fake
    fake.close()


@pytest.fixture
def megan(graph: FakeGraph) -> FakeUser:
    return graph.add_user("megan@contoso.test", token=TOKEN)


@pytest.fixture
def placeholder(graph: FakeGraph, megan: FakeUser) -> FakeMessage:
    """The notification Megan received, filed by her in Archive and already read."""
    return graph.put_message(megan, "Archive", subject="Secure message: Q3 figures",
                             body="Open it in the portal.", is_read=True, received=RECEIVED)


def mailbox(graph: FakeGraph, tls: tuple[ssl.SSLContext, str], token: str = TOKEN,
            user: str = "me", **options: object) -> GraphMailbox:
    return GraphMailbox(token, user, base_url=graph.url, verify=tls[1], timeout=10,
                        **options)  # type: ignore[arg-type]


def original(*, extra_attachment: bytes | None = None) -> bytes:
    """A message as the sender wrote it: text and HTML bodies, an inline image the HTML
    shows by cid, a PDF; plus threading and an x- header."""
    message = EmailMessage()
    message["From"] = "Alex Wilber <alex@fabrikam.test>"
    message["To"] = "Megan Bowen <megan@contoso.test>, lee@contoso.test"
    message["Cc"] = "Finance <finance@contoso.test>"
    message["Reply-To"] = "alex.wilber@fabrikam.test"
    message["Subject"] = "Q3 figures — confidential"
    message["Date"] = format_datetime(SENT)
    message["Message-ID"] = "<q3-figures.1@fabrikam.test>"
    message["In-Reply-To"] = "<q3-question.7@contoso.test>"
    message["References"] = "<q3-question.7@contoso.test>"
    message["Importance"] = "High"
    message["X-Sealgate-Tag"] = "encrypt"
    message["Received"] = "from mx.fabrikam.test by mx.contoso.test; " + format_datetime(SENT)
    message.set_content("Hello Megan,\nthe Q3 figures are attached.\n")
    image_cid = make_msgid(domain="fabrikam.test")
    message.add_alternative(
        f'<html><body><p>Hello Megan,</p><img src="cid:{image_cid[1:-1]}"></body></html>',
        subtype="html")
    html_part = message.get_body(("html",))
    assert html_part is not None
    html_part.add_related(PNG, maintype="image", subtype="png", cid=image_cid,
                          filename="logo.png")
    message.add_attachment(PDF, maintype="application", subtype="pdf",
                           filename="Q3 figures.pdf")
    if extra_attachment is not None:
        message.add_attachment(extra_attachment, maintype="application",
                               subtype="octet-stream", filename="ledger.bin")
    return message.as_bytes()


def extended(message: FakeMessage) -> dict[str, str]:
    return message.extended


# --- end to end --------------------------------------------------------------------------------


def test_the_placeholder_is_replaced_by_the_full_message_in_its_folder(
        graph: FakeGraph, megan: FakeUser, placeholder: FakeMessage,
        tls: tuple[ssl.SSLContext, str]) -> None:
    result = replace_placeholder(mailbox(graph, tls), placeholder.id, original())

    assert result.placeholder_removed and result.problem == ""
    assert result.folder_id == megan.folder("Archive")
    [stored] = megan.in_folder("Archive")
    assert stored.id == result.new_item_id and stored.id != placeholder.id
    assert not stored.is_draft
    assert stored.is_read
    assert stored.received == RECEIVED
    assert stored.sent == SENT
    assert stored.subject == "Q3 figures — confidential"
    assert stored.body_type == "html" and "<p>Hello Megan,</p>" in stored.body
    assert stored.from_ == {"emailAddress": {"name": "Alex Wilber",
                                             "address": "alex@fabrikam.test"}}
    assert [r["emailAddress"]["address"] for r in stored.to] == ["megan@contoso.test",
                                                                 "lee@contoso.test"]
    assert [r["emailAddress"]["address"] for r in stored.cc] == ["finance@contoso.test"]
    assert [r["emailAddress"]["address"] for r in stored.reply_to] == [
        "alex.wilber@fabrikam.test"]
    assert stored.importance == "high"
    assert stored.internet_message_id == "<q3-figures.1@fabrikam.test>"
    attachments = {a.name: a for a in stored.attachments}
    assert set(attachments) == {"Q3 figures.pdf", "logo.png"}
    assert attachments["Q3 figures.pdf"].data == PDF
    assert attachments["Q3 figures.pdf"].content_type == "application/pdf"
    assert not attachments["Q3 figures.pdf"].is_inline
    logo = attachments["logo.png"]
    assert logo.data == PNG and logo.is_inline and logo.content_id
    assert f"cid:{logo.content_id}" in stored.body
    # The placeholder went to Deleted Items, not away for good.
    assert placeholder in megan.in_folder("Deleted Items")


def test_the_create_request_makes_a_received_message_not_a_draft(
        graph: FakeGraph, megan: FakeUser, placeholder: FakeMessage,
        tls: tuple[ssl.SSLContext, str]) -> None:
    mime = original()
    replace_placeholder(mailbox(graph, tls), placeholder.id, mime)

    [create] = [r for r in graph.calls("POST") if r.path.endswith("/messages")]
    assert create.path == f"/v1.0/me/mailFolders/{_quoted(megan.folder('Archive'))}/messages"
    assert create.headers["content-type"].startswith("application/json")
    properties = {p["id"]: p["value"] for p in create.json["singleValueExtendedProperties"]}
    assert properties[MESSAGE_FLAGS] == "1"  # MSGFLAG_READ, without MSGFLAG_UNSENT
    assert properties[DELIVERY_TIME] == "2026-11-02T09:16:05Z"
    assert properties[SUBMIT_TIME] == "2026-11-02T09:15:30Z"
    assert properties[IN_REPLY_TO] == "<q3-question.7@contoso.test>"
    # The original header section, as written (folding included), with CRLF line ends.
    header_section = mime.split(b"\n\n", 1)[0].decode("ascii")
    assert properties[TRANSPORT_HEADERS] == header_section.replace("\n", "\r\n") + "\r\n"
    assert "\r\nReceived:\r\n from mx.fabrikam.test by mx.contoso.test;" in header_section \
        .replace("\n", "\r\n")
    # Only x- headers may be internetMessageHeaders (the fake refuses others, as Graph does).
    assert create.json["internetMessageHeaders"] == [{"name": "X-Sealgate-Tag",
                                                      "value": "encrypt"}]


def test_an_unread_placeholder_gives_an_unread_message(
        graph: FakeGraph, megan: FakeUser, tls: tuple[ssl.SSLContext, str]) -> None:
    unread = graph.put_message(megan, "Inbox", subject="Secure message", is_read=False,
                               received=RECEIVED)

    result = replace_placeholder(mailbox(graph, tls), unread.id, original())

    stored = megan.messages[result.new_item_id]
    assert stored.folder_id == megan.folder("Inbox")
    assert not stored.is_read and not stored.is_draft
    [create] = [r for r in graph.calls("POST") if r.path.endswith("/messages")]
    flags = {p["id"]: p["value"] for p in create.json["singleValueExtendedProperties"]}
    assert flags[MESSAGE_FLAGS] == "0"


def test_the_placeholder_goes_only_after_the_new_message_is_confirmed(
        graph: FakeGraph, megan: FakeUser, placeholder: FakeMessage,
        tls: tuple[ssl.SSLContext, str]) -> None:
    placeholder_id = placeholder.id  # Exchange gives an item a new id when it moves
    result = replace_placeholder(mailbox(graph, tls), placeholder_id, original())

    steps = [(r.method, r.path) for r in graph.requests]
    assert steps == [
        ("GET", f"/v1.0/me/messages/{_quoted(placeholder_id)}"),
        ("POST", f"/v1.0/me/mailFolders/{_quoted(megan.folder('Archive'))}/messages"),
        ("GET", f"/v1.0/me/messages/{_quoted(result.new_item_id)}"),
        ("DELETE", f"/v1.0/me/messages/{_quoted(placeholder_id)}"),
    ]
    assert graph.requests[0].query == {"$select": "parentFolderId,isRead,receivedDateTime"}


def test_every_graph_request_carries_the_bearer_token(
        graph: FakeGraph, placeholder: FakeMessage, tls: tuple[ssl.SSLContext, str]) -> None:
    replace_placeholder(mailbox(graph, tls), placeholder.id, original())

    assert graph.requests
    assert {r.headers.get("authorization") for r in graph.requests} == {f"Bearer {TOKEN}"}


def test_an_app_only_token_names_the_user(graph: FakeGraph, megan: FakeUser,
                                          placeholder: FakeMessage,
                                          tls: tuple[ssl.SSLContext, str]) -> None:
    graph.add_app_token(APP_TOKEN)

    result = replace_placeholder(mailbox(graph, tls, APP_TOKEN, "megan@contoso.test"),
                                 placeholder.id, original())

    assert result.placeholder_removed
    assert all(r.path.startswith("/v1.0/users/megan@contoso.test/") for r in graph.requests)
    assert megan.messages[result.new_item_id].folder_id == megan.folder("Archive")


def test_a_delegated_token_cannot_reach_another_users_mailbox(
        graph: FakeGraph, megan: FakeUser, tls: tuple[ssl.SSLContext, str]) -> None:
    lee = graph.add_user("lee@contoso.test")
    theirs = graph.put_message(lee, "Inbox", subject="Secure message")

    with pytest.raises(AccessDenied, match="ErrorAccessDenied"):
        replace_placeholder(mailbox(graph, tls, user=lee.id), theirs.id, original())
    assert lee.in_folder("Inbox") == [theirs]


# --- failures ----------------------------------------------------------------------------------


def test_an_item_that_is_not_the_users_is_not_found_and_nothing_changes(
        graph: FakeGraph, megan: FakeUser, tls: tuple[ssl.SSLContext, str]) -> None:
    lee = graph.add_user("lee@contoso.test")
    theirs = graph.put_message(lee, "Inbox", subject="Secure message")

    with pytest.raises(ItemNotFound, match="ErrorItemNotFound") as raised:
        replace_placeholder(mailbox(graph, tls), theirs.id, original())

    assert raised.value.user_message == "That item is no longer in your mailbox."
    assert [r.method for r in graph.requests] == ["GET"]
    assert lee.in_folder("Inbox") == [theirs]
    assert all(not user.in_folder("Deleted Items") for user in (megan, lee))


def test_a_failed_create_leaves_the_placeholder(
        graph: FakeGraph, megan: FakeUser, placeholder: FakeMessage,
        tls: tuple[ssl.SSLContext, str]) -> None:
    graph.fail("POST", "/mailFolders/", 503, "ServiceUnavailable", retry_after="12")

    with pytest.raises(Throttled) as raised:
        replace_placeholder(mailbox(graph, tls), placeholder.id, original())

    assert raised.value.retry_after == 12
    assert not graph.calls("DELETE")
    assert megan.in_folder("Archive") == [placeholder]
    assert list(megan.messages.values()) == [placeholder]


def test_a_failed_delete_keeps_both_and_says_why(
        graph: FakeGraph, megan: FakeUser, placeholder: FakeMessage,
        tls: tuple[ssl.SSLContext, str]) -> None:
    graph.fail("DELETE", "/messages/", 403, "ErrorAccessDenied",
               "Access is denied. Check credentials and try again.")

    result = replace_placeholder(mailbox(graph, tls), placeholder.id, original())

    assert not result.placeholder_removed
    assert "403 ErrorAccessDenied" in result.problem
    archive = megan.in_folder("Archive")
    assert {m.id for m in archive} == {placeholder.id, result.new_item_id}


def test_a_message_over_the_cap_is_refused_before_anything_is_created(
        graph: FakeGraph, megan: FakeUser, placeholder: FakeMessage,
        tls: tuple[ssl.SSLContext, str]) -> None:
    mime = original()

    with pytest.raises(TooLarge, match="at most 0.0 MB") as raised:
        replace_placeholder(mailbox(graph, tls, max_message_bytes=len(mime) - 1),
                            placeholder.id, mime)

    assert "still in the portal" in raised.value.user_message
    assert [r.method for r in graph.requests] == ["GET"]
    assert list(megan.messages.values()) == [placeholder]


@pytest.mark.parametrize(("status", "code", "retry_after", "error", "waits"), [
    (429, "ApplicationThrottled", "7", Throttled, 7.0),
    (503, "ServiceUnavailable", "30", Throttled, 30.0),
    (504, "GatewayTimeout", None, Throttled, None),
    (404, "ErrorItemNotFound", None, ItemNotFound, None),
    (403, "ErrorAccessDenied", None, AccessDenied, None),
    (401, "InvalidAuthenticationToken", None, AccessDenied, None),
    (413, "ErrorMessageSizeExceeded", None, TooLarge, None),
    (400, "ErrorInvalidRecipients", None, MailboxError, None),
    (500, "ErrorInternalServerError", None, MailboxError, None),
])
def test_graph_errors_map_to_mailbox_errors(
        graph: FakeGraph, placeholder: FakeMessage, tls: tuple[ssl.SSLContext, str],
        status: int, code: str, retry_after: str | None, error: type[MailboxError],
        waits: float | None) -> None:
    graph.fail("GET", "/messages/", status, code, f"Simulated {code}; token {TOKEN}",
               retry_after=retry_after)

    with pytest.raises(MailboxError) as raised:
        mailbox(graph, tls).item(placeholder.id)

    assert type(raised.value) is error
    assert raised.value.retry_after == waits
    assert f"{status} {code}" in str(raised.value)
    assert TOKEN not in str(raised.value)  # even when the service echoes it


def test_retry_after_as_a_date(graph: FakeGraph, placeholder: FakeMessage,
                               tls: tuple[ssl.SSLContext, str]) -> None:
    later = format_datetime(datetime.now(UTC) + timedelta(seconds=90), usegmt=True)
    graph.fail("GET", "/messages/", 429, "ApplicationThrottled", retry_after=later)

    with pytest.raises(Throttled) as raised:
        mailbox(graph, tls).item(placeholder.id)

    assert raised.value.retry_after is not None and 60 < raised.value.retry_after <= 90


def test_an_error_without_graph_json_still_says_what_happened(
        graph: FakeGraph, tls: tuple[ssl.SSLContext, str]) -> None:
    box = GraphMailbox(TOKEN, base_url=f"{graph.origin}/nowhere", verify=tls[1])
    with pytest.raises(MailboxError, match="reading the item: Graph answered 400"):
        box.item("AAMk")


def test_an_unreachable_service_is_a_mailbox_error(tls: tuple[ssl.SSLContext, str]) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    box = GraphMailbox(TOKEN, base_url=f"https://127.0.0.1:{port}/v1.0", verify=tls[1],
                       timeout=5)

    with pytest.raises(MailboxError, match="could not be reached at 127.0.0.1") as raised:
        box.item("AAMk")

    assert type(raised.value) is MailboxError and TOKEN not in str(raised.value)


def test_a_service_with_an_untrusted_certificate_is_refused(
        graph: FakeGraph, placeholder: FakeMessage, tmp_path: Path) -> None:
    other = tmp_path / "other-ca.pem"
    other.write_bytes(pki.TestCa.create("Someone else").cert_pem)
    box = GraphMailbox(TOKEN, base_url=graph.url, verify=str(other))

    with pytest.raises(MailboxError, match="SSLError"):
        box.item(placeholder.id)
    assert not graph.requests


def test_graph_only_over_https() -> None:
    with pytest.raises(MailboxError, match="must be https"):
        GraphMailbox(TOKEN, base_url="http://graph.microsoft.com/v1.0")


# --- sizes: attachments after the create, upload sessions -----------------------------------


def test_a_large_attachment_goes_through_an_upload_session(
        graph: FakeGraph, megan: FakeUser, placeholder: FakeMessage,
        tls: tuple[ssl.SSLContext, str]) -> None:
    ledger = bytes(range(256)) * (14 * 1024 + 7)  # 3.5 MB and a bit: over 3 MB

    result = replace_placeholder(mailbox(graph, tls), placeholder.id,
                                 original(extra_attachment=ledger))

    assert result.placeholder_removed
    stored = megan.messages[result.new_item_id]
    attachments = {a.name: a.data for a in stored.attachments}
    assert attachments == {"Q3 figures.pdf": PDF, "logo.png": PNG, "ledger.bin": ledger}
    [create] = [r for r in graph.calls("POST") if r.path.endswith("/messages")]
    assert create.size < 4 * 1024 * 1024
    assert "ledger.bin" not in {a["name"] for a in create.json["attachments"]}
    [session] = [r for r in graph.calls("POST") if r.path.endswith("/createUploadSession")]
    assert session.json == {"AttachmentItem": {
        "attachmentType": "file", "name": "ledger.bin", "size": len(ledger),
        "contentType": "application/octet-stream", "isInline": False}}
    puts = graph.calls("PUT")
    assert len(puts) == 2
    assert all("authorization" not in put.headers for put in puts)
    assert all(put.size <= 4 * 1024 * 1024 for put in puts)
    # Everything is in place before the placeholder goes.
    assert graph.requests[-1].method == "DELETE"
    assert graph.requests.index(puts[-1]) < len(graph.requests) - 2


def test_attachments_that_do_not_fit_the_create_are_posted_one_by_one(
        graph: FakeGraph, megan: FakeUser, placeholder: FakeMessage,
        tls: tuple[ssl.SSLContext, str]) -> None:
    message = EmailMessage()
    message["From"] = "alex@fabrikam.test"
    message["To"] = "megan@contoso.test"
    message["Subject"] = "Scans"
    message.set_content("Two scans.")
    scans = [bytes([n]) * (2 * 1024 * 1024) for n in (1, 2)]  # 2 MB each: 5.3 MB as base64
    for number, scan in enumerate(scans, start=1):
        message.add_attachment(scan, maintype="image", subtype="tiff",
                               filename=f"scan{number}.tiff")

    result = replace_placeholder(mailbox(graph, tls), placeholder.id, message.as_bytes())

    stored = megan.messages[result.new_item_id]
    assert [(a.name, a.data) for a in stored.attachments] == [("scan1.tiff", scans[0]),
                                                              ("scan2.tiff", scans[1])]
    posted = [r for r in graph.calls("POST") if r.path.endswith("/attachments")]
    assert [r.json["name"] for r in posted] == ["scan2.tiff"]
    assert stored.body_type == "text" and stored.body.startswith("Two scans.")


def test_a_failed_upload_removes_the_incomplete_copy_and_keeps_the_placeholder(
        graph: FakeGraph, megan: FakeUser, placeholder: FakeMessage,
        tls: tuple[ssl.SSLContext, str]) -> None:
    graph.fail("PUT", "/upload/", 429, "ApplicationThrottled", retry_after="5")
    ledger = b"\x00" * (3 * 1024 * 1024 + 1)

    with pytest.raises(Throttled) as raised:
        replace_placeholder(mailbox(graph, tls), placeholder.id,
                            original(extra_attachment=ledger))

    assert raised.value.retry_after == 5
    assert megan.in_folder("Archive") == [placeholder]
    [deleted] = megan.in_folder("Deleted Items")  # the half-made copy, not the placeholder
    assert deleted.subject == "Q3 figures — confidential"
    [delete] = graph.calls("DELETE")
    assert _quoted(placeholder.id) not in delete.path


# --- the conversion itself (pure) ---------------------------------------------------------------


def test_a_plain_text_message_with_encoded_headers() -> None:
    mime = (b"From: =?utf-8?q?Ren=C3=A9e?= <renee@fabrikam.test>\r\n"
            b"To: megan@contoso.test, undisclosed-recipients:;\r\n"
            b"Subject: =?utf-8?b?w6l0w6kgMjAyNg==?=\r\n"
            b"Date: Mon, 2 Nov 2026 10:15:30 +0100\r\n"
            b"X-Mailer: Tests\r\n"
            b"Content-Type: text/plain; charset=iso-8859-1\r\n"
            b"Content-Transfer-Encoding: quoted-printable\r\n\r\n"
            b"Caf=E9 at ten.\r\n")

    plan = graph_message(mime, is_read=False, received=None)

    create = plan.create
    assert create["subject"] == "été 2026"
    assert create["from"] == {"emailAddress": {"name": "Renée",
                                               "address": "renee@fabrikam.test"}}
    assert create["toRecipients"] == [{"emailAddress": {"name": "megan@contoso.test",
                                                        "address": "megan@contoso.test"}}]
    assert create["body"] == {"contentType": "text", "content": "Café at ten.\r\n"}
    properties = {p["id"]: p["value"] for p in create["singleValueExtendedProperties"]}
    # No placeholder date: the message's own Date stands for the received date.
    assert properties[DELIVERY_TIME] == properties[SUBMIT_TIME] == "2026-11-02T09:15:30Z"
    assert "attachments" not in create and not plan.posted and not plan.uploaded


def test_an_attached_message_stays_one_attachment() -> None:
    inner = EmailMessage()
    inner["Subject"] = "Original: figures?"
    inner["From"] = "lee@contoso.test"
    inner.set_content("Are the figures ready?")
    outer = EmailMessage()
    outer["Subject"] = "Fwd: figures"
    outer.set_content("See below.")
    outer.add_attachment(inner)

    plan = graph_message(outer.as_bytes(), is_read=True, received=RECEIVED)

    [attachment] = plan.create["attachments"]
    assert attachment["name"] == "Original figures.eml"
    assert attachment["contentType"] == "message/rfc822"
    assert b"Are the figures ready?" in base64.b64decode(attachment["contentBytes"])


def test_an_empty_message_is_refused() -> None:
    with pytest.raises(MailboxError, match="empty"):
        graph_message(b"  \r\n", is_read=True, received=None)


def test_transport_headers_can_be_left_out() -> None:
    plan = graph_message(original(), is_read=True, received=RECEIVED, transport_headers=False)
    ids = {p["id"] for p in plan.create["singleValueExtendedProperties"]}
    assert TRANSPORT_HEADERS not in ids and MESSAGE_FLAGS in ids


def _quoted(item_id: str) -> str:
    from urllib.parse import quote

    return quote(item_id, safe="")


def test_only_parts_the_html_shows_are_inline() -> None:
    message = EmailMessage()
    message["Subject"] = "Logos"
    message.set_content('<p><img src="cid:shown@test"></p>', subtype="html")
    message.add_related(PNG, maintype="image", subtype="png", cid="<shown@test>",
                        disposition="inline")
    message.add_related(PNG[::-1], maintype="image", subtype="png", cid="<hidden@test>",
                        disposition="inline")

    plan = graph_message(message.as_bytes(), is_read=True, received=RECEIVED)

    parts = {a["contentId"]: a["isInline"] for a in plan.create["attachments"]}
    assert parts == {"shown@test": True, "hidden@test": False}
