"""The lab that the gateway's own integration tests stand on: a real Postfix relaying to the
SMTP sink, with no milter, a dead one and a live one, and a stop that leaves nothing behind."""

from __future__ import annotations

import re
import smtplib
import socket
import stat
import struct
import time
from collections.abc import Iterator
from email import message_from_bytes, policy
from pathlib import Path

import Milter
import pytest

from sealgate.lab import noop_milter
from sealgate.lab.host import free_ports
from sealgate.lab.postfix import LabError, PrivatePostfix
from sealgate.lab.sink import SmtpSink

SENDER = "alice@sender.test"


def message(subject: str, body: bytes, extra_headers: str = "") -> bytes:
    head = (f"From: Alice <{SENDER}>\r\nTo: Bob <bob@recipient.test>\r\n"
            f"Subject: {subject}\r\nMessage-ID: <lab-test@sender.test>\r\n"
            f"Date: Mon, 2 Jun 2025 10:00:00 +0000\r\n{extra_headers}")
    return head.encode("ascii") + b"\r\n" + body


def split(data: bytes) -> tuple[bytes, bytes]:
    head, separator, body = data.partition(b"\r\n\r\n")
    assert separator, f"no end of headers in {data[:200]!r}"
    return head + b"\r\n", body


# Lines Postfix or an SMTP hop could plausibly damage: dot-stuffing, mbox "From ", trailing
# white space, a tab, empty lines, a long line.
AWKWARD_BODY = (b"Hello Bob,\r\n\r\n.a line that starts with a dot\r\n..two dots\r\n.\r\n"
                b"From the start of a line\r\ntrailing spaces   \r\n\tindented\r\n\r\n\r\n"
                + b"x" * 900 + b"\r\nend\r\n")


@pytest.fixture(scope="module")
def sink() -> Iterator[SmtpSink]:
    with SmtpSink() as running:
        yield running


@pytest.fixture(scope="module")
def plain_postfix(tmp_path_factory: pytest.TempPathFactory,
                  sink: SmtpSink) -> Iterator[PrivatePostfix]:
    with PrivatePostfix(tmp_path_factory.mktemp("plain"), sink.port) as postfix:
        yield postfix


@pytest.fixture(scope="module")
def dead_milter_postfix(tmp_path_factory: pytest.TempPathFactory,
                        sink: SmtpSink) -> Iterator[PrivatePostfix]:
    (nobody_listens,) = free_ports(1, exclude=[sink.port])
    with PrivatePostfix(tmp_path_factory.mktemp("dead-milter"), sink.port,
                        milter=f"inet:127.0.0.1:{nobody_listens}") as postfix:
        yield postfix


@pytest.fixture
def empty_sink(sink: SmtpSink) -> SmtpSink:
    sink.clear()
    return sink


def test_message_reaches_the_sink_with_its_envelope_and_body(
        plain_postfix: PrivatePostfix, empty_sink: SmtpSink) -> None:
    recipients = ["bob@recipient.test", "carol@elsewhere.test", "dave@recipient.test"]
    data = message("Lab check", AWKWARD_BODY)

    assert plain_postfix.send(SENDER, recipients, data) == {}
    empty_sink.wait_for(1)
    plain_postfix.wait_until_queue_empty(timeout=15)

    delivered = empty_sink.messages
    assert sorted(r for copy in delivered for r in copy.rcpt_tos) == sorted(recipients)
    for copy in delivered:
        assert copy.mail_from == SENDER
        head, body = split(copy.data)
        assert body == AWKWARD_BODY
        assert b"by lab.sealgate.test (Postfix)" in head  # it did go through Postfix
        assert b"Subject: Lab check\r\n" in head


def test_eight_bit_body_and_encoded_subject_survive(
        plain_postfix: PrivatePostfix, empty_sink: SmtpSink) -> None:
    subject = "=?utf-8?q?Gr=C3=BC=C3=9Fe_aus_K=C3=B6ln_=E2=9C=93?="
    body = "Grüße aus Köln — naïve café ✓\r\nZeile zwei: 日本語\r\n".encode()
    data = message(subject, body, "MIME-Version: 1.0\r\n"
                   "Content-Type: text/plain; charset=utf-8\r\n"
                   "Content-Transfer-Encoding: 8bit\r\n")

    plain_postfix.send(SENDER, ["bob@recipient.test"], data)
    (delivered,) = empty_sink.wait_for(1)

    head, received_body = split(delivered.data)
    assert received_body == body
    assert f"Subject: {subject}\r\n".encode() in head
    assert b"Content-Transfer-Encoding: 8bit\r\n" in head  # not converted to quoted-printable
    parsed = message_from_bytes(delivered.data, policy=policy.default)
    assert parsed["Subject"] == "Grüße aus Köln ✓"


def test_internationalised_addresses_are_relayed_with_smtputf8(
        plain_postfix: PrivatePostfix, empty_sink: SmtpSink) -> None:
    sender, recipient = "jörg@absender.test", "zoë@empfänger.test"
    data = message("SMTPUTF8", "Hallo Zoë\r\n".encode())

    plain_postfix.send(sender, [recipient], data)
    (delivered,) = empty_sink.wait_for(1)

    assert (delivered.mail_from, delivered.rcpt_tos) == (sender, (recipient,))
    assert split(delivered.data)[1] == "Hallo Zoë\r\n".encode()


def test_dead_milter_defers_and_nothing_leaves(
        dead_milter_postfix: PrivatePostfix, empty_sink: SmtpSink) -> None:
    with pytest.raises(smtplib.SMTPResponseException) as refused:
        dead_milter_postfix.send(SENDER, ["bob@recipient.test"], message("held", b"secret\r\n"))

    assert refused.value.smtp_code == 451
    assert dead_milter_postfix.queue_ids() == []  # refused before queueing: client retries
    assert empty_sink.messages == []
    assert "milter-reject" in dead_milter_postfix.log_text()


def test_reinjection_port_does_not_run_the_milter(
        dead_milter_postfix: PrivatePostfix, empty_sink: SmtpSink) -> None:
    data = message("split copy", AWKWARD_BODY)

    dead_milter_postfix.send(SENDER, ["bob@recipient.test"], data,
                             port=dead_milter_postfix.reinject_port)
    (delivered,) = empty_sink.wait_for(1)

    assert delivered.rcpt_tos == ("bob@recipient.test",)
    assert split(delivered.data)[1] == AWKWARD_BODY
    assert "postfix/reinject/smtpd" in dead_milter_postfix.log_text()


def test_live_milter_on_a_unix_socket_passes_mail(tmp_path: Path, sink: SmtpSink) -> None:
    sink.clear()
    postfix = PrivatePostfix(tmp_path / "postfix", sink.port)
    postfix.milter = f"unix:{postfix.socket_dir / 'noop.sock'}"
    with postfix:
        with noop_milter.running(postfix.milter):
            postfix.send(SENDER, ["bob@recipient.test"], message("via milter", AWKWARD_BODY))
            (delivered,) = sink.wait_for(1)
            assert split(delivered.data)[1] == AWKWARD_BODY

        # The milter really is in the path: without it the same send is deferred.
        with pytest.raises(smtplib.SMTPResponseException) as refused:
            postfix.send(SENDER, ["bob@recipient.test"], message("no milter", b"x\r\n"))
        assert refused.value.smtp_code == 451
        assert len(sink.messages) == 1


def test_deferred_mail_is_retried_within_seconds(tmp_path: Path) -> None:
    (sink_port,) = free_ports(1)
    with PrivatePostfix(tmp_path / "postfix", sink_port) as postfix:
        for phase in ("flushed", "retried"):
            postfix.send(SENDER, [f"{phase}@recipient.test"], message(phase, b"x\r\n"))
            (queue_id,) = wait_for_deferral(postfix)
            with SmtpSink(port=sink_port) as sink:
                if phase == "flushed":
                    postfix.flush()
                (delivered,) = sink.wait_for(1, timeout=20)
                postfix.wait_until_queue_empty(timeout=10)
            assert delivered.rcpt_tos == (f"{phase}@recipient.test",)
            assert f"{queue_id}: removed" in postfix.log_text()


def wait_for_deferral(postfix: PrivatePostfix) -> list[str]:
    """The queue ids once every queued message has had a delivery attempt deferred."""
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        queued = postfix.queue_ids()
        deferred = set(re.findall(r": ([0-9A-F]+): to=<.*status=deferred", postfix.log_text()))
        if queued and set(queued) <= deferred:
            return queued
        time.sleep(0.1)
    raise AssertionError(f"no delivery attempt was deferred:\n{postfix.log_text()}")


def test_failed_start_explains_and_leaves_nothing_running(tmp_path: Path,
                                                           sink: SmtpSink) -> None:
    with socket.create_server(("127.0.0.1", 0)) as squatter:
        taken = squatter.getsockname()[1]
        postfix = PrivatePostfix(tmp_path / "postfix", sink.port, smtp_port=taken)
        with pytest.raises(LabError) as failed:
            postfix.start()

    assert "postfix start failed" in str(failed.value)
    assert f"port {taken}" in str(failed.value)  # the master's own words, from the maillog
    assert postfix.processes() == []


def test_milter_socket_postfix_cannot_reach_is_refused_with_advice(tmp_path: Path) -> None:
    private = tmp_path / "private"
    private.mkdir(mode=0o700)
    postfix = PrivatePostfix(tmp_path / "postfix", 2525, milter=f"unix:{private}/milter.sock")

    with pytest.raises(LabError, match="put the socket in .*/queue/sockets"):
        postfix.start()
    assert postfix.processes() == []


def test_noop_milter_asks_for_every_event_and_no_changes(tmp_path: Path) -> None:
    """The benchmark baseline must pay for every round trip a real milter pays for."""
    path = tmp_path / "noop.sock"
    with noop_milter.running(f"unix:{path}"), socket.socket(socket.AF_UNIX) as connection:
        connection.settimeout(10)
        connection.connect(str(path))
        # SMFIC_OPTNEG as Postfix sends it: protocol 6, every action, every protocol bit.
        offer = b"O" + struct.pack(">III", 6, 0x1FF, 0x1FFFFF)
        connection.sendall(struct.pack(">I", len(offer)) + offer)
        (length,) = struct.unpack(">I", connection.recv(4))
        reply = connection.recv(length)

    assert reply[:1] == b"O"
    version, actions, protocol = struct.unpack(">III", reply[1:13])
    skipped_or_unanswered = 0
    for no_reply, no_callback in Milter.OPTIONAL_CALLBACKS.values():
        skipped_or_unanswered |= no_reply | no_callback
    assert (version, actions) == (6, 0)
    assert protocol & skipped_or_unanswered == 0


def test_sink_keeps_eml_files_private(tmp_path: Path) -> None:
    maildir = tmp_path / "mail"
    data = "Subject: hi\r\n\r\nGrüße\r\n".encode()
    with SmtpSink(maildir=maildir) as sink, smtplib.SMTP(
            "127.0.0.1", sink.port, local_hostname="client.test", timeout=10) as client:
        client.sendmail("", ["zoë@empfänger.test"], data,
                        mail_options=["SMTPUTF8", "BODY=8BITMIME"])
        (delivered,) = sink.wait_for(1, timeout=10)
        with pytest.raises(TimeoutError, match="received 1 of 2"):
            sink.wait_for(2, timeout=0.2)

    assert delivered.mail_from == ""  # the null sender of bounces
    (eml,) = maildir.iterdir()
    assert eml.suffix == ".eml"
    assert eml.read_bytes() == data
    assert stat.S_IMODE(eml.stat().st_mode) == 0o600


def test_instances_run_side_by_side_and_stop_without_leftovers(
        tmp_path: Path, empty_sink: SmtpSink) -> None:
    first = PrivatePostfix(tmp_path / "one", empty_sink.port)
    second = PrivatePostfix(tmp_path / "two", empty_sink.port)
    with first, second:
        for instance in (first, second):
            instance.send(SENDER, [f"bob@{instance.root.name}.test"], message("hi", b"x\r\n"))
        empty_sink.wait_for(2)
        processes = first.processes() + second.processes()
        assert len(processes) >= 6  # master, qmgr, pickup, postlogd, ... for each
        assert not set(first.processes()) & set(second.processes())

    for instance in (first, second):
        assert instance.processes() == []
        for port in (instance.smtp_port, instance.reinject_port):
            with pytest.raises(ConnectionRefusedError):
                socket.create_connection(("127.0.0.1", port), timeout=2).close()
    assert sorted(r for m in empty_sink.messages for r in m.rcpt_tos) == [
        "bob@one.test", "bob@two.test"]
