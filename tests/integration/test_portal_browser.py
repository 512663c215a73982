"""The whole journey of one secure message, in a real Chromium against the real gateway: the
mail goes through the private Postfix and the milter, the recipient signs in with the code the
server mails, reads, downloads, replies; the sender follows it from the "sent securely" notice
and withdraws it. Screenshots of every page land in .cache/screenshots/ for a person to look at.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Iterator
from email.message import EmailMessage
from pathlib import Path

import pytest
from playwright.sync_api import Browser, FilePayload, Page, ViewportSize, expect

from sealgate.lab.sink import Delivered
from tests.browser import console_errors, screenshot
from tests.integration.messages import (
    SECRET_TEXT,
    assert_no_secret,
    compose,
    notification_link,
    parsed,
)
from tests.integration.test_milter import Gateway

PATIENT = "patient@gmail.test"
SENDER = "who@example.org"
SUBJECT = "Biopsy results"
HTML_TEXT = "Please book a follow-up appointment."
TRACKER = "https://tracker.test/pixel.gif"
PDF_NAME = "report.pdf"
PDF = (b"%PDF-1.4\n1 0 obj << /Type /Catalog /Pages 2 0 R >> endobj\n"
       b"2 0 obj << /Type /Pages /Kids [] /Count 0 >> endobj\n"
       b"trailer << /Root 1 0 R >>\n%%EOF\n")
REPLY_TEXT = "Thank you, doctor. I will call on Monday to book the appointment."
REPLY_FILE: FilePayload = {"name": "questions.txt", "mimeType": "text/plain",
                           "buffer": b"1. Do I need to fast before the appointment?\n"}
PHONE: ViewportSize = {"width": 390, "height": 844}
DESKTOP: ViewportSize = {"width": 1280, "height": 800}
MAIL_WAIT = 20.0


@pytest.fixture(scope="module")
def gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    started = Gateway(tmp_path_factory.mktemp("milter"))
    try:
        # Gateway turns the "sent securely" notice off for the milter tests; this test follows
        # the sender's tracking link from it, so the server runs again with it on.
        started.stop_server()
        started.env["SEALGATE_PORTAL__NOTIFY_SENDER"] = "true"
        started.start_server()
        yield started
    finally:
        started.close()


def mail_for(gateway: Gateway, address: str, subject_start: str,
             after: int = 0) -> Delivered:
    """The first message delivered to `address` (from the `after`-th delivery on) whose
    Subject starts with `subject_start`; waits for it up to MAIL_WAIT seconds."""
    deadline = time.monotonic() + MAIL_WAIT
    while True:
        for delivered in gateway.sink.messages[after:]:
            if address in delivered.rcpt_tos \
                    and str(parsed(delivered)["Subject"] or "").startswith(subject_start):
                return delivered
        if time.monotonic() > deadline:
            seen = [(d.rcpt_tos, parsed(d)["Subject"]) for d in gateway.sink.messages]
            raise AssertionError(f"no mail to {address} with a subject starting "
                                 f"{subject_start!r} within {MAIL_WAIT:g} s; the sink has {seen}")
        time.sleep(0.1)


def wait_until(condition: Callable[[], bool], what: str, timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"gave up waiting for {what} after {timeout:g} s")
        time.sleep(0.05)


def plain_text(delivered: Delivered) -> str:
    body = parsed(delivered).get_body(("plain",))
    assert body is not None
    text: str = body.get_content()
    return text


def original_message() -> EmailMessage:
    message = compose(f"encrypt/ {SUBJECT}")
    message.add_alternative(
        f"<p>Dear patient,</p><p><b>{SECRET_TEXT}</b></p><p>{HTML_TEXT}</p>"
        f'<p><img src="{TRACKER}" alt="" width="1" height="1"></p>', subtype="html")
    message.add_attachment(PDF, maintype="application", subtype="pdf", filename=PDF_NAME)
    return message


def no_horizontal_scroll(page: Page) -> bool:
    return bool(page.evaluate(
        "document.documentElement.scrollWidth <= window.innerWidth + 1"))


def frame_shows_all(page: Page) -> bool:
    """The body frame is at least as tall as its content: portal.js sized it, nothing is cut."""
    return bool(page.evaluate("""() => {
        const frame = document.querySelector("iframe.body");
        const content = frame.contentDocument.body;
        return content.childElementCount > 0
            && frame.clientHeight >= content.getBoundingClientRect().height;
    }"""))


def sign_in_with_code(page: Page, gateway: Gateway) -> None:
    """From the landing page: ask for a code, read it from the patient's mail, type it."""
    before = len(gateway.sink.messages)
    page.get_by_label("Your email address").fill(PATIENT)
    page.get_by_role("button", name="Email me a code").click()
    expect(page.get_by_role("heading", name="Check your email")).to_be_visible()
    assert "/signin/code" in page.url
    mail = mail_for(gateway, PATIENT, "Your Example Organisation secure message code", before)
    found = re.search(r"\b(\d{6})\b", plain_text(mail))
    assert found, plain_text(mail)
    page.get_by_label("Code from the email").fill(found.group(1))
    page.get_by_role("button", name="Continue").click()


def test_a_recipient_reads_downloads_and_replies_and_the_sender_withdraws(
        gateway: Gateway, page: Page, browser: Browser) -> None:
    gateway.sink.clear()
    requests: list[str] = []
    page.on("request", lambda request: requests.append(request.url))
    errors = console_errors(page)
    page.set_viewport_size(DESKTOP)

    # 1-2. The mail goes out: a notification for the patient, a notice for the sender.
    original = original_message()
    gateway.send(original, [PATIENT])
    delivered = mail_for(gateway, PATIENT, SUBJECT)
    assert_no_secret(delivered)
    assert PDF not in delivered.data and HTML_TEXT.encode() not in delivered.data
    notification = parsed(delivered)
    message_id = notification["X-Sealgate-Message-Id"]
    assert message_id
    link = notification_link(notification)
    assert link.endswith(f"/m/{message_id}")
    notice = mail_for(gateway, SENDER, "Sent securely")
    assert_no_secret(notice)
    tracking = re.search(r"http://\S+/t/[\w.-]+", plain_text(notice))
    assert tracking, plain_text(notice)

    # 3. The patient opens the link, signs in with a code, and reads.
    response = page.goto(link)
    assert response is not None and response.status == 200
    expect(page.get_by_role("heading", name="You have a secure message")).to_be_visible()
    expect(page.get_by_text("Dr Who has sent you a secure message")).to_be_visible()
    screenshot(page, "landing")
    sign_in_with_code(page, gateway)
    expect(page).to_have_url(link)
    expect(page.get_by_role("heading", level=1)).to_have_text(SUBJECT)
    expect(page.locator("dl.meta")).to_contain_text(f"Dr Who <{SENDER}>")
    expect(page.locator("dl.meta")).to_contain_text(PATIENT)
    body = page.frame_locator("iframe.body")
    expect(body.locator("b")).to_have_text(SECRET_TEXT)
    expect(body.get_by_text(HTML_TEXT)).to_be_visible()
    expect(page.locator("#remote-notice")).to_contain_text(
        "1 picture(s) from the internet were not loaded")
    expect(page.get_by_role("link", name="Show them")).to_be_visible()
    page.wait_for_load_state("load")
    wait_until(lambda: frame_shows_all(page), "the message frame to be sized to its content")
    screenshot(page, "message")

    # 8. The same page on a phone: nothing sticks out sideways.
    page.set_viewport_size(PHONE)
    page.reload()
    expect(body.locator("b")).to_have_text(SECRET_TEXT)
    page.wait_for_load_state("load")
    assert no_horizontal_scroll(page), page.evaluate("document.documentElement.scrollWidth")
    wait_until(lambda: frame_shows_all(page), "the message frame to fit the phone")
    screenshot(page, "message-phone")
    page.set_viewport_size(DESKTOP)

    # 4. The attachment downloads, byte for byte, under its own name.
    attachment = page.get_by_role("link", name=PDF_NAME)
    expect(page.get_by_role("heading", name="Attachments")).to_be_visible()
    download_url = attachment.evaluate("a => a.href")
    with page.expect_download() as info:
        attachment.click()
    download = info.value
    assert download.suggested_filename == PDF_NAME
    assert Path(download.path()).read_bytes() == PDF

    # 5. A secure reply, with a file, reaches the sender threaded under the original.
    before = len(gateway.sink.messages)
    page.get_by_role("link", name="Reply securely").click()
    expect(page.get_by_role("heading", name="Reply securely")).to_be_visible()
    page.get_by_label("Your reply").fill(REPLY_TEXT)
    page.get_by_label("Attach files").set_input_files(REPLY_FILE)
    page.get_by_role("button", name="Send securely").click()
    expect(page.get_by_role("heading", name="Your reply was sent securely")).to_be_visible()
    expect(page.get_by_text(f"It went to {SENDER}.")).to_be_visible()
    screenshot(page, "replied")
    reply = parsed(mail_for(gateway, SENDER, f"Re: {SUBJECT}", before))
    assert reply["In-Reply-To"] == original["Message-ID"]
    assert original["Message-ID"] in reply["References"]
    assert PATIENT in reply["From"]
    reply_body = reply.get_body(("plain",))
    assert reply_body is not None and REPLY_TEXT in reply_body.get_content()
    files = {part.get_filename(): part.get_content() for part in reply.iter_attachments()}
    assert files == {REPLY_FILE["name"]: REPLY_FILE["buffer"].decode()}
    receipt = mail_for(gateway, SENDER, "Opened:")
    assert PATIENT in plain_text(receipt)

    # 6. The message centre lists it (read); the print view shows it without the portal's
    # buttons.
    page.get_by_role("navigation", name="Account").get_by_role("link", name="My messages").click()
    expect(page.get_by_role("heading", name="My secure messages")).to_be_visible()
    row = page.get_by_role("row").filter(has_text=SUBJECT)
    expect(row).to_contain_text("Dr Who")
    expect(row).to_contain_text("read")
    expect(row.get_by_role("link", name=SUBJECT)).to_have_attribute("href", f"/m/{message_id}")
    expect(page.get_by_role("heading", name="Replies you sent")).to_be_visible()
    screenshot(page, "centre")
    page.goto(link)
    page.get_by_role("link", name="Print").click()
    expect(page.get_by_role("button", name="Print this message")).to_be_visible()
    expect(page.locator(".printed-body b")).to_have_text(SECRET_TEXT)
    expect(page.locator(".printed-body")).not_to_contain_text("tracker.test")
    screenshot(page, "print")
    page.emulate_media(media="print")
    expect(page.get_by_role("button", name="Print this message")).to_be_hidden()
    screenshot(page, "print-media")
    page.emulate_media(media="screen")

    assert errors == []
    assert not [url for url in requests if "tracker.test" in url]

    # 7. The sender, not signed in, follows the tracking link and withdraws the message.
    sender = browser.new_context()
    try:
        tracker = sender.new_page()
        sender_errors = console_errors(tracker)
        tracker.set_default_timeout(10_000)
        response = tracker.goto(tracking.group(0))
        assert response is not None and response.status == 200
        expect(tracker.get_by_role("heading", name="Your secure message")).to_be_visible()
        recipient = tracker.get_by_role("row").filter(has_text=PATIENT)
        expect(recipient.locator("td[data-label='Delivered by']")).to_have_text("secure portal")
        opened = recipient.locator("td[data-label='First opened']")
        expect(opened).not_to_have_text("not yet")
        expect(opened.locator("time")).to_have_attribute("datetime", re.compile(r"^\d{4}-"))
        expect(recipient.locator("td[data-label='Downloads']")).to_have_text("1")
        expect(tracker.get_by_text("Secure replies received: 1.")).to_be_visible()
        screenshot(tracker, "tracking")
        tracker.get_by_role("button", name="Withdraw it now").click()
        expect(tracker.get_by_text("The message is withdrawn")).to_be_visible()
        expect(tracker.get_by_text("Withdrawn: recipients can no longer open it.")).to_be_visible()
        expect(tracker.get_by_role("button", name="Withdraw it now")).to_have_count(0)
        screenshot(tracker, "tracking-withdrawn")
        assert sender_errors == []
    finally:
        sender.close()

    # The patient, still signed in, finds it gone, and the attachment with it.
    response = page.goto(link)
    assert response is not None and response.status == 410
    expect(page.get_by_role("heading", name="This message is no longer available")).to_be_visible()
    expect(page.get_by_text("Dr Who has withdrawn this message")).to_be_visible()
    screenshot(page, "withdrawn")
    gone = page.request.get(download_url)
    assert gone.status == 410
    assert PDF not in gone.body()
    # Chromium reports the 410 document itself as a failed resource; nothing else may fail.
    assert [e for e in errors if "status of 410" not in e] == []
    assert not [url for url in requests if "tracker.test" in url]
