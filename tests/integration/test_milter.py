"""The milter on a real Postfix: the private lab instance, the server and the milter as
processes, and a loopback sink that captures what Postfix delivers."""

from __future__ import annotations

import json
import os
import smtplib
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from email import policy
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import pytest

from sealgate.lab.host import free_ports
from sealgate.lab.postfix import PrivatePostfix
from sealgate.lab.sink import SmtpSink
from tests.api.conftest import CLIENT_ID, KID, TENANT, KeyServer, mint_with, new_key, public_jwk
from tests.conftest import run_cli
from tests.integration.messages import (
    SECRET_BYTES,
    SECRET_TEXT,
    assert_no_secret,
    compose,
    notification_link,
    parsed,
)


class Gateway:
    """Sealgate's server and milter for one Postfix lab."""

    def __init__(self, root: Path, env: dict[str, str] | None = None,
                 **postfix_options: Any) -> None:
        self.home = root / "home"
        self.sink = SmtpSink()
        self.sink.start()
        web, reinject = free_ports(2, exclude=[self.sink.port])
        self.web_port = web
        self.postfix = PrivatePostfix(root / "postfix", self.sink.port, reinject_port=reinject,
                                      milter=f"unix:{root / 'postfix/queue/sockets/sealgate.sock'}",
                                      **postfix_options)
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("SEALGATE_")}
        self.env.update({
            "SEALGATE_SERVER__LISTEN": f"127.0.0.1:{web}",
            "SEALGATE_SERVER__BASE_URL": f"http://127.0.0.1:{web}",
            "SEALGATE_MILTER__LISTEN": f"unix:{self.postfix.socket_dir / 'sealgate.sock'}",
            "SEALGATE_MILTER__REINJECT": f"127.0.0.1:{self.postfix.reinject_port}",
            "SEALGATE_MILTER__TIMEOUT": "10",
            # These tests count what the MTA delivers; the notice to the sender is tested
            # with the portal.
            "SEALGATE_PORTAL__NOTIFY_SENDER": "false",
            **(env or {}),
        })
        run_cli("--home", str(self.home), "init", "--domain", "example.org")
        self.server: subprocess.Popen[bytes] | None = None
        self.milter: subprocess.Popen[bytes] | None = None
        self.postfix.start()
        self.start_milter()
        self.start_server()

    def _spawn(self, command: str, **overrides: str) -> subprocess.Popen[bytes]:
        log = (self.home.parent / f"{command}.log").open("ab")
        return subprocess.Popen([sys.executable, "-m", "sealgate", "--home", str(self.home),
                                 command], env={**self.env, **overrides}, stdout=log,
                                stderr=log)

    def start_server(self) -> None:
        self.server = self._spawn("serve")
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{self.web_port}/healthz", timeout=2)
                return
            except OSError:
                time.sleep(0.2)
        raise AssertionError("server did not start")

    def stop_server(self) -> None:
        if self.server is not None:
            self.server.terminate()
            self.server.wait(30)
            self.server = None

    def start_milter(self, **overrides: str) -> None:
        self.milter = self._spawn("milter", **overrides)
        socket = self.postfix.socket_dir / "sealgate.sock"
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if socket.exists() and socket.stat().st_mode & 0o060:  # group access given
                return
            time.sleep(0.05)
        raise AssertionError("milter socket did not appear")

    def stop_milter(self) -> None:
        if self.milter is not None:
            self.milter.terminate()
            self.milter.wait(30)
            self.milter = None
            # libmilter leaves its socket behind; a stale one must not look like a live one.
            (self.postfix.socket_dir / "sealgate.sock").unlink(missing_ok=True)

    def close(self) -> None:
        self.stop_milter()
        self.stop_server()
        self.postfix.stop()
        self.sink.stop()

    def send(self, message: EmailMessage | bytes, recipients: list[str]) -> None:
        data = message if isinstance(message, bytes) else message.as_bytes()
        self.postfix.send("who@example.org", recipients, data)

    def log(self, name: str) -> str:
        return (self.home.parent / f"{name}.log").read_text(errors="replace")


@pytest.fixture(scope="module")
def gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    started = Gateway(tmp_path_factory.mktemp("milter"))
    yield started
    started.close()


@pytest.fixture
def lab(gateway: Gateway) -> Gateway:
    gateway.sink.clear()
    return gateway










def test_keyword_gives_a_notification_whose_link_opens_the_message_page(lab: Gateway) -> None:
    lab.send(compose("encrypt/ Biopsy results"), ["patient@gmail.test"])
    (delivered,) = lab.sink.wait_for(1)
    assert_no_secret(delivered)
    message = parsed(delivered)
    assert message["Subject"] == "Biopsy results"
    assert message["From"] == "Dr Who <who@example.org>"
    assert message["X-Sealgate-Message-Id"]
    assert message.get_content_type() == "multipart/alternative"
    link = notification_link(message)
    assert link.endswith(f"/m/{message['X-Sealgate-Message-Id']}")
    with urllib.request.urlopen(link, timeout=10) as page:
        html = page.read().decode()
    assert "Dr Who" in html and "biopsy" not in html.lower()


def test_tag_header_triggers_and_is_removed(lab: Gateway) -> None:
    lab.send(compose("Quarterly figures", X_Sealgate_Encrypt="1"), ["cfo@partner.test"])
    (delivered,) = lab.sink.wait_for(1)
    assert_no_secret(delivered)
    message = parsed(delivered)
    assert message["Subject"] == "Quarterly figures"
    assert message["X-Sealgate-Encrypt"] is None


def test_a_draft_tagged_by_the_addin_arrives_as_a_notification(lab: Gateway) -> None:
    """The add-in's path: a tag from the API (with a Microsoft identity platform token
    checked against a key set on loopback), set as the header Outlook would set."""
    key = new_key()
    with KeyServer([public_jwk(key, KID)]) as keys:
        lab.stop_server()
        saved = dict(lab.env)
        lab.env.update({"SEALGATE_ADDIN__CLIENT_ID": CLIENT_ID,
                        "SEALGATE_ADDIN__TENANTS": TENANT,
                        "SEALGATE_ADDIN__JWKS_URL": keys.url})
        try:
            lab.start_server()
            request = urllib.request.Request(
                f"http://127.0.0.1:{lab.web_port}/api/v1/tags", data=b"{}", method="POST",
                headers={"Authorization": f"Bearer {mint_with(key)}",
                         "Content-Type": "application/json"})
            with urllib.request.urlopen(request, timeout=10) as answer:
                tag = json.loads(answer.read())
        finally:
            lab.stop_server()
            lab.env.clear()
            lab.env.update(saved)
            lab.start_server()
    assert tag["header"] == "X-Sealgate-Encrypt" and len(tag["value"]) >= 20
    lab.send(compose("Board minutes", X_Sealgate_Encrypt=tag["value"]), ["chair@partner.test"])
    (delivered,) = lab.sink.wait_for(1)
    assert_no_secret(delivered)
    message = parsed(delivered)
    assert message["X-Sealgate-Message-Id"] and message["X-Sealgate-Encrypt"] is None


def test_clean_mail_passes_with_its_body_unchanged(lab: Gateway) -> None:
    original = compose("Lunch on Friday?", body="Plain text, nothing secret.\n" * 50)
    data = original.as_bytes(policy=policy.SMTP)
    lab.send(data, ["friend@gmail.test"])
    (delivered,) = lab.sink.wait_for(1)
    assert delivered.data.split(b"\r\n\r\n", 1)[1] == data.split(b"\r\n\r\n", 1)[1]
    assert parsed(delivered)["X-Sealgate-Message-Id"] is None


def test_mixed_recipients_are_split(lab: Gateway) -> None:
    lab.send(compose("encrypt/ Case notes", to="nurse@example.org, patient@gmail.test"),
             ["nurse@example.org", "patient@gmail.test"])
    delivered = {d.rcpt_tos: d for d in lab.sink.wait_for(2)}
    assert set(delivered) == {("nurse@example.org",), ("patient@gmail.test",)}
    internal = parsed(delivered[("nurse@example.org",)])
    assert SECRET_TEXT in internal.get_content()
    assert internal["Subject"] == "Case notes"
    external = delivered[("patient@gmail.test",)]
    assert_no_secret(external)
    assert parsed(external)["To"] == "nurse@example.org, patient@gmail.test"
    assert parsed(external)["Message-ID"] == internal["Message-ID"]


def test_non_ascii_subject_and_8bit_body(lab: Gateway) -> None:
    message = compose("encrypt/ Résultats d'analyse — Zoë")
    message.set_content("Données médicales: " + SECRET_TEXT, cte="8bit")
    assert not message.as_bytes().isascii()
    lab.send(message.as_bytes(), ["patient@gmail.test"])
    (delivered,) = lab.sink.wait_for(1)
    assert "Données".encode() not in delivered.data
    assert_no_secret(delivered)
    assert parsed(delivered)["Subject"] == "Résultats d'analyse — Zoë"


def test_html_and_attachments_never_travel_in_clear(lab: Gateway) -> None:
    message = compose("encrypt/ Report")
    message.add_alternative(f"<p><b>{SECRET_TEXT}</b></p>", subtype="html")
    message.add_attachment(SECRET_BYTES, maintype="application", subtype="pdf",
                           filename="report.pdf")
    lab.send(message, ["patient@gmail.test", "insurer@partner.test"])
    (delivered,) = lab.sink.wait_for(1)
    assert set(delivered.rcpt_tos) == {"patient@gmail.test", "insurer@partner.test"}
    assert_no_secret(delivered)
    assert b"report.pdf" not in delivered.data
    assert [p.get_content_type() for p in parsed(delivered).walk()] == [
        "multipart/alternative", "text/plain", "text/html"]


def test_unreadable_mime_on_a_triggered_message_is_refused_with_a_reason(lab: Gateway) -> None:
    data = (b"From: who@example.org\r\nTo: patient@gmail.test\r\nSubject: encrypt/ x\r\n"
            b"MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=nowhere\r\n\r\n"
            + SECRET_TEXT.encode() + b"\r\n")
    with pytest.raises(smtplib.SMTPDataError) as refused:
        lab.send(data, ["patient@gmail.test"])
    assert refused.value.smtp_code == 554
    assert b"boundary" in refused.value.smtp_error
    time.sleep(1)
    assert lab.sink.messages == []


def test_unreadable_mime_without_a_trigger_is_refused_outside_and_passes_inside(
        lab: Gateway) -> None:
    """DLP cannot check what it cannot read: to the outside that is a refusal with the reason
    (fail closed); mail that stays inside is not scanned and goes through."""
    data = (b"From: who@example.org\r\nTo: friend@gmail.test\r\nSubject: hello\r\n"
            b"MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=nowhere\r\n\r\n"
            b"just text\r\n")
    with pytest.raises(smtplib.SMTPDataError) as refused:
        lab.send(data, ["friend@gmail.test"])
    assert refused.value.smtp_code == 554 and b"boundary" in refused.value.smtp_error
    lab.send(data.replace(b"friend@gmail.test", b"nurse@example.org"), ["nurse@example.org"])
    (delivered,) = lab.sink.wait_for(1)
    assert b"just text" in delivered.data


def test_server_down_defers_and_a_retry_after_it_is_back_is_delivered(lab: Gateway) -> None:
    lab.stop_server()
    try:
        with pytest.raises(smtplib.SMTPDataError) as deferred:
            lab.send(compose("encrypt/ While down"), ["patient@gmail.test"])
        assert deferred.value.smtp_code == 451
    finally:
        lab.start_server()
    time.sleep(1)
    assert lab.sink.messages == []
    lab.send(compose("encrypt/ While down"), ["patient@gmail.test"])  # the client's retry
    (delivered,) = lab.sink.wait_for(1)
    assert_no_secret(delivered)
    assert "server unreachable" in lab.log("milter")


def test_milter_down_defers_instead_of_passing(lab: Gateway) -> None:
    lab.stop_milter()
    try:
        for subject in ("encrypt/ Secret", "Clean"):
            with pytest.raises(smtplib.SMTPException) as deferred:
                lab.send(compose(subject), ["patient@gmail.test"])
            assert getattr(deferred.value, "smtp_code", 0) // 100 == 4
    finally:
        lab.start_milter()
    time.sleep(1)
    assert lab.sink.messages == []
    lab.send(compose("encrypt/ Secret"), ["patient@gmail.test"])
    assert_no_secret(lab.sink.wait_for(1)[0])


def test_a_failed_reinjection_defers_the_whole_message(lab: Gateway) -> None:
    lab.stop_milter()
    (dead_port,) = free_ports(1)
    lab.start_milter(SEALGATE_MILTER__REINJECT=f"127.0.0.1:{dead_port}")
    try:
        with pytest.raises(smtplib.SMTPDataError) as deferred:
            lab.send(compose("encrypt/ Split", to="nurse@example.org, patient@gmail.test"),
                     ["nurse@example.org", "patient@gmail.test"])
        assert deferred.value.smtp_code == 451
    finally:
        lab.stop_milter()
        lab.start_milter()
    time.sleep(1)
    assert lab.sink.messages == []  # not even the internal half went out


def test_a_message_sealgate_already_processed_is_not_processed_again(lab: Gateway) -> None:
    lab.send(compose("encrypt/ Once"), ["patient@gmail.test"])
    (first,) = lab.sink.wait_for(1)
    lab.sink.clear()
    head, body = first.data.split(b"\r\n", 3)[3].split(b"\r\n\r\n", 1)  # minus Received
    head = head.replace(b"Subject: Once", b"Subject: encrypt/ Once")
    lab.send(head + b"\r\n\r\n" + body, ["patient@gmail.test"])
    (second,) = lab.sink.wait_for(1)
    # The keyword put back would trigger, but the mark is bound to the body and verifies.
    assert parsed(second)["X-Sealgate-Message-Id"] == parsed(first)["X-Sealgate-Message-Id"]
    assert parsed(second)["Subject"] == "encrypt/ Once"
    lab.sink.clear()
    # The same mark on a changed body does not verify: that message is protected again.
    lab.send(head + b"\r\n\r\n" + body.replace(b"Dr Who", b"Mallory"), ["patient@gmail.test"])
    (third,) = lab.sink.wait_for(1)
    assert parsed(third)["X-Sealgate-Message-Id"] != parsed(first)["X-Sealgate-Message-Id"]


def test_the_milter_counts_what_it_sees_on_its_own_metrics_port(lab: Gateway) -> None:
    (port,) = free_ports(1, exclude=[lab.sink.port, lab.web_port])
    lab.stop_milter()
    try:
        lab.start_milter(SEALGATE_MILTER__METRICS_LISTEN=f"127.0.0.1:{port}")
        lab.send(compose("encrypt/ Counted"), ["patient@gmail.test"])
        lab.send(compose("Not protected", to="nurse@example.org"), ["nurse@example.org"])
        lab.sink.wait_for(2)
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as page:
            text = page.read().decode()
    finally:
        lab.stop_milter()
        lab.start_milter()
    samples = {line.rsplit(" ", 1)[0]: float(line.rsplit(" ", 1)[1])
               for line in text.splitlines() if line and not line.startswith("#")}
    assert samples["sealgate_messages_seen_total"] == 2
    assert samples['sealgate_messages_triggered_total{cause="keyword"}'] == 1
    assert samples['sealgate_messages_triggered_total{cause="dlp"}'] == 0
    assert samples["sealgate_milter_verdict_seconds_count"] == 1  # the clean one: at EOH
