"""The private Sendmail of sealgate.lab.sendmail, for real: it relays to an SMTP sink, fails
closed while its milter is unavailable, and carries a milter's header and body changes."""

from __future__ import annotations

import contextlib
import smtplib
import stat
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.controller import Controller

from sealgate.lab.host import free_port
from sealgate.lab.sendmail import PrivateSendmail, SendmailLabError, prepare_prefix

pytestmark = pytest.mark.timeout(90)

DELIVERY_TIMEOUT = 15.0
MILTER_READY_TIMEOUT = 15.0
MESSAGE = (b"From: Alice <alice@sender.test>\r\n"
           b"To: Bob <bob@example.com>\r\n"
           b"Subject: lab check\r\n"
           b"\r\n"
           b"First line of the body.\r\n"
           b".A line that starts with a dot (SMTP dot-stuffing).\r\n"
           b"\r\n"
           b"Last line.\r\n")

# One pymilter process per milter (libmilter keeps global state). "noop" changes nothing
# and notes each message it sees; "rewrite" asks for ADDHDRS and CHGBODY only and uses both.
MILTER_SCRIPT = r'''
import sys
import Milter

mode, socket_spec, seen_file = sys.argv[1:4]


class Noop(Milter.Base):
    def envfrom(self, mail_from, *params):
        self.mail_from = mail_from
        return Milter.CONTINUE

    def eom(self):
        with open(seen_file, "a") as seen:
            seen.write(self.mail_from + "\n")
        return Milter.CONTINUE


class Rewrite(Noop):
    def eom(self):
        Noop.eom(self)
        self.addheader("X-Sealgate-Lab", "rewritten by milter")
        self.replacebody(b"Body replaced by the milter.\r\n")
        return Milter.ACCEPT


if mode == "rewrite":
    Milter.set_flags(Milter.ADDHDRS | Milter.CHGBODY)
    Milter.factory = Rewrite
else:
    Milter.set_flags(0)
    Milter.factory = Noop
Milter.runmilter("sealgate", socket_spec, 60)
'''


@dataclass(frozen=True)
class Received:
    mail_from: str
    rcpt_tos: tuple[str, ...]
    data: bytes


class Sink:
    """A minimal SMTP sink on 127.0.0.1 that records each delivery as it arrived."""

    def __init__(self) -> None:
        self.messages: list[Received] = []
        self._changed = threading.Condition()
        self.port = free_port()
        self._controller = Controller(self, hostname="127.0.0.1", port=self.port,
                                      server_hostname="sink.sealgate.test")

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        raw = envelope.original_content or envelope.content
        with self._changed:
            self.messages.append(Received(envelope.mail_from, tuple(envelope.rcpt_tos),
                                          bytes(raw)))
            self._changed.notify_all()
        return "250 2.0.0 stored"

    def wait_for(self, count: int, timeout: float = DELIVERY_TIMEOUT) -> list[Received]:
        with self._changed:
            if not self._changed.wait_for(lambda: len(self.messages) >= count, timeout):
                raise AssertionError(f"the sink got {len(self.messages)} message(s) within "
                                     f"{timeout:g} s, expected {count}")
            return list(self.messages)

    def __enter__(self) -> Sink:
        self._controller.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._controller.stop()


def split(data: bytes) -> tuple[bytes, bytes]:
    headers, _, body = data.partition(b"\r\n\r\n")
    return headers, body


def body_of(data: bytes) -> bytes:
    return split(data)[1]


def queue_details(sendmail: PrivateSendmail) -> str:
    return f"queue: {sendmail.queue_report()}, output: {sendmail.output_text()!r}"


@pytest.fixture(scope="session")
def sendmail_prefix() -> Path:
    """The unpacked sendmail, prepared by scripts/sendmail-prefix.sh on first use."""
    try:
        return prepare_prefix()
    except SendmailLabError as error:
        pytest.fail(f"cannot prepare the private sendmail (scripts/sendmail-prefix.sh): {error}")


@pytest.fixture
def sink() -> Iterator[Sink]:
    with Sink() as running:
        yield running


@contextlib.contextmanager
def milter(mode: str, directory: Path) -> Iterator[Path]:
    """A pymilter process on a unix socket in `directory`; yields the file it notes each
    message in. Always stopped, within a bounded time."""
    socket_path = directory / "milter.sock"
    seen = directory / f"milter-{mode}.seen"
    seen.touch()
    log = (directory / f"milter-{mode}.log").open("wb")
    process = subprocess.Popen(
        [sys.executable, "-c", MILTER_SCRIPT, mode, f"unix:{socket_path}", str(seen)],
        stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + MILTER_READY_TIMEOUT
        while not (socket_path.exists() and stat.S_ISSOCK(socket_path.stat().st_mode)):
            if process.poll() is not None or time.monotonic() > deadline:
                log.flush()
                raise AssertionError(f"the {mode} milter did not open {socket_path}: "
                                     f"{(directory / f'milter-{mode}.log').read_text()}")
            time.sleep(0.05)
        yield seen
    finally:
        # libmilter notices SIGTERM only at its next poll, up to 5 s later; this milter keeps
        # no state worth a graceful stop.
        process.kill()
        process.wait(timeout=5)
        log.close()


def test_relays_any_domain_to_the_sink_unchanged(sendmail_prefix: Path, sink: Sink,
                                                 tmp_path: Path) -> None:
    with PrivateSendmail(tmp_path / "sendmail", sink.port, prefix=sendmail_prefix) as sendmail:
        refused = sendmail.send("alice@sender.test", ["bob@example.com", "carol@example.org"],
                                MESSAGE)
        assert refused == {}
        (received,) = sink.wait_for(1)
        assert received.mail_from == "alice@sender.test"
        assert sorted(received.rcpt_tos) == ["bob@example.com", "carol@example.org"]
        headers, body = split(received.data)
        assert body == body_of(MESSAGE)
        assert b"Subject: lab check" in headers
        assert b"by lab.sealgate.test" in headers  # it did pass through this Sendmail
        sendmail.wait_until_queue_empty(timeout=5)
        assert sendmail.queue_is_empty()


def test_unavailable_milter_defers_at_mail_from_and_nothing_is_delivered(
        sendmail_prefix: Path, sink: Sink, tmp_path: Path) -> None:
    socket_path = tmp_path / "milter.sock"  # nobody listens there
    with PrivateSendmail(tmp_path / "sendmail", sink.port, milter=f"unix:{socket_path}",
                         prefix=sendmail_prefix) as sendmail:
        assert f"S=unix:{socket_path}, F=T," in sendmail.mc_lines()[-1]
        with pytest.raises(smtplib.SMTPSenderRefused) as refused:
            sendmail.send("alice@sender.test", ["bob@example.com"], MESSAGE)
        assert refused.value.smtp_code == 451, refused.value
        assert b"4.3.2" in refused.value.smtp_error
        assert sendmail.queue_is_empty(), queue_details(sendmail)  # refused, not queued
        sendmail.flush()
        time.sleep(1)
        assert sink.messages == []


def test_noop_milter_sees_the_message_and_it_is_delivered(sendmail_prefix: Path, sink: Sink,
                                                          tmp_path: Path) -> None:
    with milter("noop", tmp_path) as seen, PrivateSendmail(
            tmp_path / "sendmail", sink.port, milter=str(tmp_path / "milter.sock"),
            prefix=sendmail_prefix) as sendmail:
        assert sendmail.send("alice@sender.test", ["bob@example.com"], MESSAGE) == {}
        (received,) = sink.wait_for(1)
        assert seen.read_text().split() == ["<alice@sender.test>"]
        assert received.rcpt_tos == ("bob@example.com",)
        assert body_of(received.data) == body_of(MESSAGE)
        assert b"X-Sealgate-Lab" not in received.data


def test_milter_adds_a_header_and_replaces_the_body(sendmail_prefix: Path, sink: Sink,
                                                    tmp_path: Path) -> None:
    with milter("rewrite", tmp_path) as seen, PrivateSendmail(
            tmp_path / "sendmail", sink.port, milter=str(tmp_path / "milter.sock"),
            prefix=sendmail_prefix) as sendmail:
        sendmail.send("alice@sender.test", ["bob@example.com"], MESSAGE)
        (received,) = sink.wait_for(1)
        assert seen.read_text().split() == ["<alice@sender.test>"]
        headers, body = split(received.data)
        assert body == b"Body replaced by the milter.\r\n"
        assert b"\r\nX-Sealgate-Lab: rewritten by milter" in b"\r\n" + headers
        assert b"Subject: lab check" in headers
        assert b"First line of the body." not in received.data


def test_deferred_mail_is_retried_once_the_sink_answers(sendmail_prefix: Path,
                                                        tmp_path: Path) -> None:
    """The short queue interval: a message deferred while the sink is down arrives by itself
    a few seconds after the sink comes up."""
    sink = Sink()
    with PrivateSendmail(tmp_path / "sendmail", sink.port, prefix=sendmail_prefix,
                         queue_interval="2s") as sendmail:
        sendmail.send("alice@sender.test", ["bob@example.com"], MESSAGE)
        deadline = time.monotonic() + DELIVERY_TIMEOUT
        while not any("Deferred" in status for status in sendmail.queue_report().values()):
            assert time.monotonic() < deadline, queue_details(sendmail)
            time.sleep(0.1)
        with sink:
            (received,) = sink.wait_for(1)
            assert body_of(received.data) == body_of(MESSAGE)
            sendmail.wait_until_queue_empty(timeout=5)


def test_flush_delivers_deferred_mail_at_once(sendmail_prefix: Path, tmp_path: Path) -> None:
    """With the daemon's own queue runs an hour apart, only flush() can deliver."""
    sink = Sink()
    with PrivateSendmail(tmp_path / "sendmail", sink.port, prefix=sendmail_prefix,
                         queue_interval="1h") as sendmail:
        sendmail.send("alice@sender.test", ["bob@example.com"], MESSAGE)
        deadline = time.monotonic() + DELIVERY_TIMEOUT
        while not any("Deferred" in status for status in sendmail.queue_report().values()):
            assert time.monotonic() < deadline, queue_details(sendmail)
            time.sleep(0.1)
        with sink:
            transcript = sendmail.flush()
            assert sendmail.queue_is_empty(), (transcript, queue_details(sendmail))
            (received,) = sink.wait_for(1, timeout=1)
            assert body_of(received.data) == body_of(MESSAGE)
