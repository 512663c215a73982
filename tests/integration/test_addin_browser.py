"""The Outlook add-in's pages from the real server (gunicorn) in a real headless Chromium, with
tokens minted for the run and checked against a key set served on loopback.

Outlook itself cannot run here, so the page gets, at office.js's address, tests/data/
office-stub.js: the host half of office.js (the mailbox item, Office.actions.associate, single
sign-on), which records what the add-in does to the item. The stub's header explains why the
real office.js (npm @microsoft/office-js) cannot stand in for a host; the last test loads the
real one, from addin/node_modules, to check that the pages start with it all the same.

Every request the page makes must go to 127.0.0.1 unless the test answered it itself (office.js
and what it loads); anything else is refused and fails the test.
"""

from __future__ import annotations

import hashlib
import json
import urllib.request
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
from cryptography.hazmat.primitives.asymmetric import rsa
from playwright.sync_api import Page, Route, expect
from sqlalchemy import select

from sealgate import config as sealgate_config
from sealgate.server.deposit import deposit_message
from sealgate.vault.models import AuditEvent, MessageState, SecureMessage
from sealgate.vault.vault import Vault
from tests.api.conftest import CLIENT_ID, KID, TENANT, KeyServer, mint_with, new_key, public_jwk
from tests.browser import console_errors, screenshot
from tests.conftest import run_cli
from tests.integration.helpers import serving
from tests.portal.conftest import PATIENT, SENDER, original

ROOT = Path(__file__).resolve().parents[2]
OFFICE_STUB = ROOT / "tests" / "data" / "office-stub.js"
OFFICE_JS_DIST = ROOT / "addin" / "node_modules" / "@microsoft" / "office-js" / "dist"
OFFICE_JS = "https://appsforoffice.microsoft.com/lib/1/hosted/office.js"
OFFICE_JS_FOLDER = "https://appsforoffice.microsoft.com/lib/1/hosted/"
# office.js opens this frame when it runs outside Office; the test answers it with nothing.
OFFICE_TELEMETRY = "https://telemetryservice.firstpartyapps.oaspapps.com/"
LOOPBACK = "127.0.0.1"

SECRET = "Your biopsy results are normal."
PDF_NAME = "report.pdf"
PDF = b"%PDF-1.7\n% the lab report\n%%EOF\n"
PIXEL = bytes.fromhex(
    "89504e470d0a1a0a0000000d4948445200000001000000010806000000"
    "1f15c4890000000d49444154789c63f8cfc0f01f0005000201e2b4a5b80000000049454e44ae426082")


@dataclass
class Gateway:
    home: Path
    base: str
    key: rsa.RSAPrivateKey

    def token(self, user: str) -> str:
        return mint_with(self.key, preferred_username=user)

    def vault(self) -> Vault:
        opened = Vault.open(sealgate_config.load(self.home, {}))
        opened.database.check()
        return opened

    def deposit(self) -> str:
        """A secure message from SENDER to PATIENT, as the milter would leave it."""
        raw = original(html=f'<p>Dear patient,</p><p><b>{SECRET}</b></p><img src="cid:logo@lab">',
                       text=SECRET, attachments=((PDF_NAME, "application/pdf", PDF),),
                       inline=(("logo@lab", "image/png", PIXEL),))
        vault = self.vault()
        try:
            made = deposit_message(vault, sealgate_config.load(self.home, {}), raw, SENDER,
                                   [PATIENT], "Lab results")
        finally:
            vault.close()
        return str(made.message_id)

    def audited(self, action: str) -> list[AuditEvent]:
        vault = self.vault()
        try:
            with vault.database.session() as db:
                return list(db.scalars(select(AuditEvent).where(AuditEvent.action == action)
                                       .order_by(AuditEvent.seq)))
        finally:
            vault.close()

    def state(self, message_id: str) -> MessageState:
        vault = self.vault()
        try:
            with vault.database.session() as db:
                found = db.get(SecureMessage, uuid.UUID(message_id))
                assert found is not None
                return found.state
        finally:
            vault.close()


@pytest.fixture(scope="module")
def gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    home = tmp_path_factory.mktemp("addin") / "home"
    run_cli("--home", str(home), "init")
    key = new_key()
    with KeyServer([public_jwk(key, KID)]) as keys, serving(
            home, SEALGATE_ADDIN__CLIENT_ID=CLIENT_ID, SEALGATE_ADDIN__TENANTS=TENANT,
            SEALGATE_ADDIN__JWKS_URL=keys.url) as base:
        yield Gateway(home, base, key)


@dataclass
class Traffic:
    """Every request of the page; what the test answered itself; what it refused."""
    seen: list[str] = field(default_factory=list)
    answered: list[str] = field(default_factory=list)
    refused: list[str] = field(default_factory=list)

    def off_loopback(self) -> list[str]:
        return [url for url in self.seen
                if urlsplit(url).scheme not in ("blob", "data", "about")
                and urlsplit(url).hostname != LOOPBACK and url not in self.answered]


def guard(page: Page, office: str = "stub") -> Traffic:
    """Route every request: office.js (the stub, or with office="npm" the real one and the files
    it loads) answered locally, loopback let through, anything else refused."""
    traffic = Traffic()
    page.on("request", lambda request: traffic.seen.append(request.url))

    def route(route: Route) -> None:
        url = route.request.url
        if office == "stub" and url == OFFICE_JS:
            traffic.answered.append(url)
            route.fulfill(body=OFFICE_STUB.read_text(encoding="utf-8"),
                          content_type="text/javascript")
        elif office == "npm" and url.startswith(OFFICE_JS_FOLDER):
            served = OFFICE_JS_DIST / urlsplit(url).path.removeprefix("/lib/1/hosted/")
            if served.resolve().is_relative_to(OFFICE_JS_DIST) and served.is_file():
                traffic.answered.append(url)
                route.fulfill(path=served, content_type="text/javascript")
            else:
                traffic.refused.append(url)
                route.abort()
        elif office == "npm" and url.startswith(OFFICE_TELEMETRY):
            traffic.answered.append(url)
            route.fulfill(body="<!DOCTYPE html><title>telemetry</title>",
                          content_type="text/html")
        elif urlsplit(url).hostname == LOOPBACK:
            route.continue_()
        else:
            traffic.refused.append(url)
            route.abort()

    page.route("**/*", route)
    return traffic


def as_outlook(page: Page, **office: Any) -> None:
    """What the stub's mailbox holds (see tests/data/office-stub.js), before any script runs."""
    page.add_init_script(f"window.__sealgateOffice = {json.dumps(office)};")


def check_traffic(traffic: Traffic) -> None:
    assert traffic.refused == [], f"the page asked for {traffic.refused}"
    assert traffic.off_loopback() == []
    assert any(urlsplit(url).hostname == LOOPBACK for url in traffic.seen)


def unexpected(errors: list[str], *statuses: int) -> list[str]:
    """The console errors but Chromium's report of an API answer the test expects (it logs
    every 4xx a fetch gets)."""
    expected = tuple(f"the server responded with a status of {status} " for status in statuses)
    return [error for error in errors if not any(text in error for text in expected)]


def api(gateway: Gateway, token: str, path: str) -> dict[str, Any]:
    request = urllib.request.Request(f"{gateway.base}/api/v1{path}",
                                     headers={"Authorization": f"Bearer {token}"})
    with urllib.request.urlopen(request, timeout=10) as response:
        found: dict[str, Any] = json.load(response)
        return found


# -- compose: Encrypt and the on-send check ------------------------------------------------------

def open_commands(page: Page, gateway: Gateway, **office: Any) -> Traffic:
    traffic = guard(page)
    as_outlook(page, mode="compose", token=gateway.token(SENDER), user=SENDER, **office)
    response = page.goto(f"{gateway.base}/addin/commands.html")
    assert response is not None and response.status == 200
    page.wait_for_function("() => window.__officeStub && Object.keys("
                           "window.__officeStub.handlers).length === 3")
    return traffic


def test_encrypt_tags_the_draft_with_the_servers_tag_and_untags_it(
        gateway: Gateway, page: Page) -> None:
    errors = console_errors(page)
    traffic = open_commands(page, gateway, subject="Quarterly figures")
    assert page.evaluate("Object.keys(window.__officeStub.handlers).sort()") == [
        "onMessageSendHandler", "toggleEncrypt", "togglePortal"]

    assert page.evaluate("window.__officeStub.run('toggleEncrypt')") is None
    headers = page.evaluate("window.__officeStub.headers()")
    assert list(headers) == ["X-Sealgate-Encrypt"]
    tag = headers["X-Sealgate-Encrypt"]
    assert len(tag) >= 32
    notice = page.evaluate("window.__officeStub.notices.sealgateEncrypt")
    assert notice["message"] == "This message will be sent securely."
    assert notice["type"] == "informationalMessage"
    # The server made that tag for this user, and kept only its digest.
    tagged = gateway.audited("addin.tagged")
    assert [event.actor for event in tagged] == [SENDER]
    assert tagged[0].object_id == hashlib.sha256(tag.encode("ascii")).hexdigest()
    log = page.evaluate("window.__officeStub.log")
    assert ('OfficeRuntime.auth.getAccessToken({"allowSignInPrompt":true,'
            '"allowConsentPrompt":true})') in log
    assert "internetHeaders.setAsync" in log and "event.completed(toggleEncrypt)" in log

    # With the tag on, the on-send check lets the draft go without asking the server.
    scans_before = [url for url in traffic.seen if url.endswith("/api/v1/scan")]
    assert page.evaluate("window.__officeStub.run('onMessageSendHandler')") == {
        "allowEvent": True}
    assert [url for url in traffic.seen if url.endswith("/api/v1/scan")] == scans_before

    # Clicked again: the header and the bar go; the server is not asked again.
    assert page.evaluate("window.__officeStub.run('toggleEncrypt')") is None
    assert page.evaluate("window.__officeStub.headers()") == {}
    assert page.evaluate("window.__officeStub.notices") == {}
    assert page.evaluate("window.__officeStub.subject()") == "Quarterly figures"
    assert len(gateway.audited("addin.tagged")) == 1
    assert [url for url in traffic.seen if url.endswith("/api/v1/tags")] == [
        f"{gateway.base}/api/v1/tags"]

    check_traffic(traffic)

    # Secure portal: the portal keyword goes into the subject, and out again.
    assert page.evaluate("window.__officeStub.run('togglePortal')") is None
    assert page.evaluate("window.__officeStub.subject()") == "secure/ Quarterly figures"
    assert "event.completed(togglePortal)" in page.evaluate("window.__officeStub.log")
    assert page.evaluate("window.__officeStub.run('togglePortal')") is None
    assert page.evaluate("window.__officeStub.subject()") == "Quarterly figures"
    assert errors == []


def test_the_on_send_check_asks_the_servers_scan_and_lets_a_clean_draft_go(
        gateway: Gateway, page: Page) -> None:
    errors = console_errors(page)
    traffic = open_commands(page, gateway, subject="Lunch", body="See you at noon.")
    with page.expect_response(f"{gateway.base}/api/v1/scan") as scanned:
        assert page.evaluate("window.__officeStub.run('onMessageSendHandler')") == {
            "allowEvent": True}
    response = scanned.value
    assert response.status == 200
    answer = response.json()
    assert (answer["sensitive"], answer["action"], answer["findings"]) == (False, None, [])
    assert response.request.post_data_json == {
        "subject": "Lunch", "body": "See you at noon.", "body_type": "text", "attachments": []}
    assert response.request.headers["authorization"].startswith("Bearer ")
    check_traffic(traffic)
    assert errors == []


def test_the_on_send_check_stops_a_draft_with_a_card_number_and_offers_encrypt(
        gateway: Gateway, page: Page) -> None:
    errors = console_errors(page)
    traffic = open_commands(page, gateway, subject="Booking",
                            body="Please charge 4111 1111 1111 1111 for the room.")
    with page.expect_response(f"{gateway.base}/api/v1/scan") as scanned:
        options = page.evaluate("window.__officeStub.run('onMessageSendHandler')")
    assert options["allowEvent"] is False
    assert options["errorMessage"].startswith("This message contains payment card number.")
    assert "4111" not in options["errorMessage"] and "4111" not in scanned.value.text()
    check_traffic(traffic)
    assert errors == []


def test_without_sign_in_encrypt_falls_back_to_the_subject_keyword(
        gateway: Gateway, page: Page) -> None:
    errors = console_errors(page)
    traffic = guard(page)
    as_outlook(page, mode="compose", user=SENDER, subject="Payroll")  # no token
    page.goto(f"{gateway.base}/addin/commands.html")
    page.wait_for_function("() => window.__officeStub && window.__officeStub.handlers"
                           ".toggleEncrypt")
    page.evaluate("window.__officeStub.run('toggleEncrypt')")
    assert page.evaluate("window.__officeStub.subject()") == "encrypt/ Payroll"
    assert page.evaluate("window.__officeStub.headers()") == {}
    assert "not signed in" in page.evaluate(
        "window.__officeStub.notices.sealgateEncrypt.message")
    check_traffic(traffic)
    assert errors == []


# -- read mode: the task pane --------------------------------------------------------------------

def notification_headers(message_id: str) -> str:
    return "\r\n".join([
        "Received: from gate.example.org by mail.example.org",
        "Subject: Lab results",
        f"X-Sealgate-Message-Id: {message_id}",
        "Content-Type: multipart/alternative; boundary=x",
    ])


def open_pane(page: Page, gateway: Gateway, user: str, **item: Any) -> Traffic:
    traffic = guard(page)
    as_outlook(page, mode="read", token=gateway.token(user), user=user, **item)
    response = page.goto(f"{gateway.base}/addin/taskpane.html")
    assert response is not None and response.status == 200
    return traffic


def test_the_pane_shows_a_delivered_notification_decrypted(gateway: Gateway,
                                                           page: Page) -> None:
    message_id = gateway.deposit()
    errors = console_errors(page)
    page.set_viewport_size({"width": 420, "height": 900})
    traffic = open_pane(page, gateway, PATIENT, subject="Lab results",
                        allHeaders=notification_headers(message_id))

    expect(page.get_by_role("heading", name="Lab results")).to_be_visible()
    body = page.frame_locator("iframe.body").locator("body")
    expect(body).to_contain_text(SECRET)
    frame = page.locator("iframe.body")
    assert frame.get_attribute("sandbox") == "allow-popups allow-popups-to-escape-sandbox"
    # The inline image came through the API with the token, as a data: URL.
    image = page.frame_locator("iframe.body").locator("img")
    expect(image).to_have_count(1)
    assert (image.get_attribute("src") or "").startswith("data:image/png;base64,")
    assert image.evaluate("img => img.complete && img.naturalWidth") == 1
    # The frame's document has no script and no access to the pane.
    assert page.frames[1].evaluate("() => { try { return !!window.parent.document; }"
                                   " catch (e) { return false; } }") is False

    expect(page.get_by_role("listitem")).to_contain_text(PDF_NAME)
    with page.expect_download() as downloading:
        page.get_by_role("button", name=f"Download {PDF_NAME}").click()
    download = downloading.value
    assert download.suggested_filename == PDF_NAME
    assert Path(download.path()).read_bytes() == PDF
    expect(page.get_by_role("table")).to_have_count(0)  # tracking is the sender's alone
    expect(page.get_by_role("button", name="Retract")).to_have_count(0)
    assert screenshot(page, "addin-taskpane").stat().st_size > 0

    # The server saw this user open it and download the attachment.
    assert [e.actor for e in gateway.audited("message.viewed")
            if e.object_id == message_id] == [PATIENT]
    assert [(e.actor, e.details["filename"]) for e in gateway.audited("message.downloaded")
            if e.object_id == message_id] == [(PATIENT, PDF_NAME)]
    check_traffic(traffic)
    assert errors == []


def test_the_sender_sees_who_opened_it_and_retracts_it(gateway: Gateway, page: Page) -> None:
    message_id = gateway.deposit()
    api(gateway, gateway.token(PATIENT), f"/messages/{message_id}")  # the patient opens it
    errors = console_errors(page)
    page.set_viewport_size({"width": 420, "height": 900})
    # No id header this time: the pane finds the message by the link in the body.
    traffic = open_pane(page, gateway, SENDER, subject="Lab results",
                        allHeaders="Subject: Lab results\r\n",
                        htmlBody=f'<p><a href="{gateway.base}/m/{message_id}">Read it</a></p>')

    table = page.get_by_role("table")
    expect(table).to_be_visible()
    row = table.get_by_role("row").nth(1)
    expect(row.get_by_role("cell").nth(0)).to_have_text(PATIENT)
    expect(row.get_by_role("cell").nth(1)).not_to_have_text("Not yet")
    expect(row.get_by_role("cell").nth(2)).to_have_text("0")
    expect(page.frame_locator("iframe.body").locator("body")).to_contain_text(SECRET)
    assert screenshot(page, "addin-taskpane-sender").stat().st_size > 0

    page.get_by_role("button", name="Retract").click()
    expect(page.get_by_text("Retract it?")).to_be_visible()
    assert gateway.state(message_id) is MessageState.ACTIVE  # one click only asks
    page.get_by_role("button", name="Retract message").click()
    expect(page.get_by_text("Retracted: recipients can no longer read this message.")) \
        .to_be_visible()
    assert gateway.state(message_id) is MessageState.RETRACTED

    # Opened again, the pane says it was withdrawn.
    page.reload()
    expect(page.get_by_role("alert")).to_have_text(
        "The sender has withdrawn this message: it can no longer be read.")
    check_traffic(traffic)
    assert unexpected(errors, 410) == []


def test_the_pane_says_when_a_message_is_not_for_this_user(gateway: Gateway,
                                                          page: Page) -> None:
    message_id = gateway.deposit()
    errors = console_errors(page)
    traffic = open_pane(page, gateway, "someone.else@example.org", subject="Lab results",
                        allHeaders=notification_headers(message_id))
    expect(page.get_by_role("alert")).to_have_text(
        "This secure message is not addressed to you, or it no longer exists.")
    check_traffic(traffic)
    assert unexpected(errors, 404) == []


# -- the real office.js ------------------------------------------------------------------------

@pytest.mark.parametrize(("page_name", "shows"), [
    ("taskpane.html", "Select a message to see its Sealgate details."),
    ("commands.html", None),
])
def test_the_pages_start_with_microsofts_office_js(gateway: Gateway, page: Page,
                                                  page_name: str, shows: str | None) -> None:
    if not (OFFICE_JS_DIST / "office.js").is_file():
        pytest.fail(f"office.js from npm is missing at {OFFICE_JS_DIST}: run "
                    "`npm ci --prefix addin` (make test does)")
    errors = console_errors(page)
    traffic = guard(page, office="npm")
    page.goto(f"{gateway.base}/addin/{page_name}")
    if shows is not None:
        expect(page.locator("#content")).to_have_text(shows)
    else:
        page.wait_for_function("() => typeof Office !== 'undefined' && !!Office.actions")
    page.wait_for_load_state("load")
    assert OFFICE_JS in traffic.answered
    check_traffic(traffic)
    assert errors == []

