"""The milter on a real Sendmail: the private lab daemon (sealgate.lab.sendmail) with the
milter as an INPUT_MAIL_FILTER with F=T, the server and the milter as processes, and a
loopback sink that captures what Sendmail delivers.

Sendmail has no milter-free listener: the notification for the external half of a split
message is re-injected into Sendmail's own port, passes the milter a second time, and must
not be processed again (its X-Sealgate-Processed mark, or the missing trigger, lets it pass).
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import smtplib
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterator
from email import policy
from email.message import EmailMessage
from pathlib import Path

import pytest

from sealgate import config
from sealgate.crypto.marks import MARK_HEADER, mark_is_valid
from sealgate.lab.host import free_port
from sealgate.lab.sendmail import PrivateSendmail, SendmailLabError, prepare_prefix
from sealgate.lab.sink import Delivered, SmtpSink
from tests.conftest import run_cli
from tests.integration.messages import (
    SECRET_BYTES,
    SECRET_TEXT,
    assert_no_secret,
    compose,
    notification_link,
    parsed,
)

pytestmark = pytest.mark.timeout(120)

SENDER = "who@example.org"
READY_TIMEOUT = 30.0
STOP_TIMEOUT = 15.0
DELIVERY_TIMEOUT = 20.0
QUIET_PERIOD = 1.0  # how long "nothing arrives" is watched for
PROTECTED_LINE = re.compile(r"protected message from .*deposit ([0-9a-f-]{36})", re.MULTILINE)
MC_EXAMPLE = Path(__file__).resolve().parents[2] / "deploy" / "sendmail" / "sendmail.mc.example"


def example_filter() -> dict[str, str]:
    """The equates (S=, F=, T=) of the INPUT_MAIL_FILTER line deploy/sendmail tells an
    administrator to add: the lab runs the milter with the same flags and timeouts."""
    line = next(line for line in MC_EXAMPLE.read_text().splitlines()
                if line.startswith("INPUT_MAIL_FILTER(`sealgate',"))
    equates = line.split("`")[2].partition("'")[0]
    return dict(item.strip().split("=", 1) for item in equates.split(","))


class Gateway:
    """Sealgate's server and milter wired into one private Sendmail relaying to a sink.
    Everything started here is stopped by close(), also when the start fails half-way."""

    def __init__(self, root: Path, prefix: Path) -> None:
        self.root = root
        self.home = root / "home"
        self.sink = SmtpSink()
        self.server: subprocess.Popen[bytes] | None = None
        self.milter: subprocess.Popen[bytes] | None = None
        self.sendmail: PrivateSendmail | None = None
        try:
            self._start(prefix)
        except BaseException:
            self.close()
            raise

    def _start(self, prefix: Path) -> None:
        self.sink.start()
        self.web_port = free_port(exclude=[self.sink.port])
        smtp_port = free_port(exclude=[self.sink.port, self.web_port])
        # A unix socket in a directory of our own; Sendmail's daemon runs as root here (and
        # by default in production), so the socket's group (milter.socket_group) and mode
        # 0660 do not stand in its way.
        self.socket_path = self.root / "milter" / "sealgate.sock"
        self.socket_path.parent.mkdir(mode=0o700)
        documented = example_filter()
        self.sendmail = PrivateSendmail(self.root / "sendmail", self.sink.port,
                                        smtp_port=smtp_port, milter=f"unix:{self.socket_path}",
                                        prefix=prefix, milter_flags=documented["F"],
                                        milter_timeouts=documented["T"])
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("SEALGATE_")}
        self.env.update({
            "SEALGATE_SERVER__LISTEN": f"127.0.0.1:{self.web_port}",
            "SEALGATE_SERVER__BASE_URL": f"http://127.0.0.1:{self.web_port}",
            "SEALGATE_MILTER__LISTEN": f"unix:{self.socket_path}",
            # No milter-free listener: the split copy goes back into Sendmail itself.
            "SEALGATE_MILTER__REINJECT": f"127.0.0.1:{smtp_port}",
            "SEALGATE_MILTER__TIMEOUT": "10",
            # These tests count what the MTA delivers; the notice to the sender is tested
            # with the portal.
            "SEALGATE_PORTAL__NOTIFY_SENDER": "false",
        })
        run_cli("--home", str(self.home), "init", "--domain", "example.org")
        self.secret = config.load(self.home, self.env).internal_api.secret
        self.start_milter()
        self.start_server()
        self.sendmail.start()

    @property
    def mta(self) -> PrivateSendmail:
        assert self.sendmail is not None
        return self.sendmail

    # -- processes ----------------------------------------------------------------------

    def _spawn(self, command: str) -> subprocess.Popen[bytes]:
        with (self.root / f"{command}.log").open("ab") as log:
            return subprocess.Popen(
                [sys.executable, "-m", "sealgate", "--home", str(self.home), command],
                env=self.env, stdin=subprocess.DEVNULL, stdout=log, stderr=log,
                start_new_session=True)

    def start_server(self) -> None:
        self.server = self._spawn("serve")
        url = f"http://127.0.0.1:{self.web_port}/healthz"
        wait_until(lambda: _answers(url), READY_TIMEOUT, "the server to answer",
                   lambda: self.log("serve"), self.server)

    def stop_server(self) -> None:
        self.server, process = None, self.server
        _stop(process)

    def start_milter(self) -> None:
        # A socket left behind would look ready before the new milter listens.
        self.socket_path.unlink(missing_ok=True)
        self.milter = self._spawn("milter")

        def ready() -> bool:
            # Listening, not merely bound. Its group and mode are not waited for: Sendmail's
            # daemon runs as root and connects whatever they are.
            with socket.socket(socket.AF_UNIX) as probe:
                probe.settimeout(2)
                try:
                    probe.connect(str(self.socket_path))
                except OSError:
                    return False
            return True

        wait_until(ready, READY_TIMEOUT, "the milter socket", lambda: self.log("milter"),
                   self.milter)

    def stop_milter(self) -> None:
        self.milter, process = None, self.milter
        _stop(process)

    def crash_milter(self) -> None:
        """SIGKILL: no clean shutdown, the socket file stays behind (connections to it are
        refused), as after a crash."""
        self.milter, process = None, self.milter
        if process is not None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            process.wait(5)

    def close(self) -> None:
        """Stop everything; every step runs even if an earlier one fails."""
        steps: list[Callable[[], None]] = [self.stop_milter, self.stop_server, self.sink.stop]
        if self.sendmail is not None:
            steps.insert(0, self.sendmail.stop)
        errors: list[BaseException] = []
        for step in steps:
            try:
                step()
            except Exception as error:  # reported once the other steps ran
                errors.append(error)
        if errors:
            raise errors[0]

    # -- using it -----------------------------------------------------------------------

    def send(self, message: EmailMessage | bytes, recipients: list[str]) -> None:
        # CRLF throughout: Sendmail refuses a bare LF (421 4.5.0), unlike Postfix.
        data = message if isinstance(message, bytes) else message.as_bytes(policy=policy.SMTP)
        self.mta.send(SENDER, recipients, data)

    def log(self, name: str) -> str:
        try:
            return (self.root / f"{name}.log").read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def protected_deposits(self) -> list[str]:
        """The deposit id of every "protected message" line the milter logged."""
        return PROTECTED_LINE.findall(self.log("milter"))

    def details(self) -> str:
        """What to show when an assertion fails: the queue, Sendmail's and the milter's
        output."""
        return (f"\nqueue: {self.mta.queue_report()}\nsendmail output:\n"
                f"{self.mta.output_text()[-3000:]}\nmilter log:\n{self.log('milter')[-3000:]}")

    def wait_for(self, count: int) -> list[Delivered]:
        try:
            return self.sink.wait_for(count, timeout=DELIVERY_TIMEOUT)
        except TimeoutError as error:
            raise AssertionError(f"{error}{self.details()}") from None

    def assert_nothing_delivered(self) -> None:
        time.sleep(QUIET_PERIOD)
        assert self.sink.messages == [], self.details()
        assert self.mta.queue_is_empty(), self.details()  # refused, not queued for later


def _answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2):
            return True
    except OSError:
        return False


def wait_until(condition: Callable[[], bool], timeout: float, what: str,
               output: Callable[[], str], process: subprocess.Popen[bytes] | None = None
               ) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if process is not None and process.poll() is not None:
            raise AssertionError(f"waiting for {what}: the process exited "
                                 f"({process.returncode}):\n{output()[-3000:]}")
        if time.monotonic() >= deadline:
            raise AssertionError(f"waited {timeout:g} s for {what}:\n{output()[-3000:]}")
        time.sleep(0.05)


def _stop(process: subprocess.Popen[bytes] | None) -> None:
    """SIGTERM (libmilter notices it at its next poll, up to 5 s later; gunicorn drains its
    workers), SIGKILL if it lingers, and SIGKILL to whatever is left of its session."""
    if process is None or process.poll() is not None:
        return
    process.terminate()
    try:
        process.wait(STOP_TIMEOUT)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(5)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)  # a worker that outlived its master


@pytest.fixture(scope="module")
def sendmail_prefix() -> Path:
    """The unpacked sendmail, prepared by scripts/sendmail-prefix.sh on first use."""
    try:
        return prepare_prefix()
    except SendmailLabError as error:
        pytest.fail(f"cannot prepare the private sendmail (scripts/sendmail-prefix.sh): {error}")


@pytest.fixture(scope="module")
def gateway(tmp_path_factory: pytest.TempPathFactory, sendmail_prefix: Path
            ) -> Iterator[Gateway]:
    started = Gateway(tmp_path_factory.mktemp("milter-sendmail"), sendmail_prefix)
    try:
        yield started
    finally:
        started.close()


@pytest.fixture
def lab(gateway: Gateway) -> Gateway:
    gateway.sink.clear()
    # A test that failed half-way may have left a process down; every test starts whole.
    if gateway.milter is None:
        gateway.start_milter()
    if gateway.server is None:
        gateway.start_server()
    return gateway






def split(data: bytes) -> tuple[bytes, bytes]:
    head, _, body = data.partition(b"\r\n\r\n")
    return head, body


def without_received(head: bytes) -> bytes:
    """The header block minus every Received header (and its folded lines)."""
    kept: list[bytes] = []
    dropping = False
    for line in head.split(b"\r\n"):
        if line[:1] in (b" ", b"\t"):
            if not dropping:
                kept.append(line)
            continue
        dropping = line.lower().startswith(b"received:")
        if not dropping:
            kept.append(line)
    return b"\r\n".join(kept)




def assert_valid_mark(lab: Gateway, delivered: Delivered) -> None:
    """The notification carries a mark the milter accepts as its own."""
    message = parsed(delivered)
    mark = message[MARK_HEADER]
    assert mark is not None
    assert mark_is_valid(lab.secret, str(mark), str(message["Message-ID"]),
                         split(delivered.data)[1])




def test_the_lab_runs_the_documented_filter_line(lab: Gateway) -> None:
    documented = example_filter()
    assert documented["F"] == "T"  # fail closed
    assert documented["S"] == "unix:/var/lib/sealgate/milter.sock"
    assert (f"F={documented['F']}, T={documented['T']}')dnl"
            in lab.mta.mc_lines()[-1])
    assert 'reinject = "127.0.0.1:25"' in MC_EXAMPLE.read_text()


def test_keyword_gives_a_notification_whose_link_opens_the_message_page(lab: Gateway) -> None:
    lab.send(compose("encrypt/ Biopsy results"), ["patient@gmail.test"])
    (delivered,) = lab.wait_for(1)
    assert delivered.rcpt_tos == ("patient@gmail.test",)
    assert_no_secret(delivered)
    assert b"by lab.sealgate.test" in delivered.data  # it did pass through Sendmail
    message = parsed(delivered)
    assert message["Subject"] == "Biopsy results"
    assert message["From"] == "Dr Who <who@example.org>"
    assert message["X-Sealgate-Message-Id"]
    assert message.get_content_type() == "multipart/alternative"
    assert_valid_mark(lab, delivered)
    link = notification_link(message)
    assert link == f"http://127.0.0.1:{lab.web_port}/m/{message['X-Sealgate-Message-Id']}"
    with urllib.request.urlopen(link, timeout=10) as page:
        html = page.read().decode()
    assert "Dr Who" in html and "biopsy" not in html.lower()


def test_tag_header_triggers_and_is_removed(lab: Gateway) -> None:
    lab.send(compose("Quarterly figures", X_Sealgate_Encrypt="1"), ["cfo@partner.test"])
    (delivered,) = lab.wait_for(1)
    assert_no_secret(delivered)
    message = parsed(delivered)
    assert message["Subject"] == "Quarterly figures"
    assert message["X-Sealgate-Encrypt"] is None
    assert message["X-Sealgate-Message-Id"]


def test_clean_mail_passes_with_its_body_unchanged(lab: Gateway) -> None:
    original = compose("Lunch on Friday?", body="Plain text, nothing secret.\n" * 50)
    data = original.as_bytes(policy=policy.SMTP)
    lab.send(data, ["friend@gmail.test"])
    (delivered,) = lab.wait_for(1)
    assert split(delivered.data)[1] == split(data)[1]
    message = parsed(delivered)
    assert message["X-Sealgate-Message-Id"] is None
    assert message[MARK_HEADER] is None
    assert message["Subject"] == "Lunch on Friday?"


def test_mixed_recipients_are_split_and_the_reinjected_copy_is_not_processed_again(
        lab: Gateway) -> None:
    before = lab.protected_deposits()
    lab.send(compose("encrypt/ Case notes", to="nurse@example.org, patient@gmail.test"),
             ["nurse@example.org", "patient@gmail.test"])
    delivered = {d.rcpt_tos: d for d in lab.wait_for(2)}
    assert set(delivered) == {("nurse@example.org",), ("patient@gmail.test",)}, lab.details()
    internal = parsed(delivered[("nurse@example.org",)])
    assert SECRET_TEXT in internal.get_content()
    assert internal["Subject"] == "Case notes"
    assert internal["X-Sealgate-Message-Id"] is None
    external = delivered[("patient@gmail.test",)]
    assert_no_secret(external)
    notification = parsed(external)
    assert notification["Subject"] == "Case notes"
    assert notification["To"] == "nurse@example.org, patient@gmail.test"
    assert notification["Message-ID"] == internal["Message-ID"]
    # The copy came back through Sendmail (and so through the milter) with its mark intact.
    assert b"by lab.sealgate.test" in external.data
    assert_valid_mark(lab, external)
    # One deposit, one "protected message": the re-injected pass changed nothing.
    deposit = str(notification["X-Sealgate-Message-Id"])
    wait_until(lambda: len(lab.protected_deposits()) > len(before), 5,
               "the milter's log line", lambda: lab.log("milter"))
    time.sleep(QUIET_PERIOD)  # a second pass, if there were one, would log by now
    assert lab.protected_deposits()[len(before):] == [deposit], lab.details()
    assert len(lab.sink.messages) == 2
    lab.mta.wait_until_queue_empty(timeout=5)


def test_non_ascii_subject_and_8bit_body(lab: Gateway) -> None:
    message = compose("encrypt/ Résultats d'analyse — Zoë")
    message.set_content("Données médicales: " + SECRET_TEXT, cte="8bit")
    assert not message.as_bytes().isascii()
    lab.send(message, ["patient@gmail.test"])
    (delivered,) = lab.wait_for(1)
    assert "Données".encode() not in delivered.data
    assert_no_secret(delivered)
    assert parsed(delivered)["Subject"] == "Résultats d'analyse — Zoë"
    assert_valid_mark(lab, delivered)


def test_non_ascii_split_keeps_the_8bit_original_for_internal_recipients(lab: Gateway) -> None:
    message = compose("encrypt/ Résultats — Zoë", to="nurse@example.org, patient@gmail.test")
    message.set_content("Données médicales: " + SECRET_TEXT, cte="8bit")
    lab.send(message, ["nurse@example.org", "patient@gmail.test"])
    delivered = {d.rcpt_tos: d for d in lab.wait_for(2)}
    internal = delivered[("nurse@example.org",)]
    assert "Données médicales".encode() in internal.data
    assert parsed(internal)["Subject"] == "Résultats — Zoë"
    external = delivered[("patient@gmail.test",)]
    assert "Données".encode() not in external.data
    assert_no_secret(external)
    assert parsed(external)["Subject"] == "Résultats — Zoë"


def test_html_and_attachments_never_travel_in_clear(lab: Gateway) -> None:
    message = compose("encrypt/ Report")
    message.add_alternative(f"<p><b>{SECRET_TEXT}</b></p>", subtype="html")
    message.add_attachment(SECRET_BYTES, maintype="application", subtype="pdf",
                           filename="report.pdf")
    lab.send(message, ["patient@gmail.test", "insurer@partner.test"])
    (delivered,) = lab.wait_for(1)
    assert set(delivered.rcpt_tos) == {"patient@gmail.test", "insurer@partner.test"}
    assert_no_secret(delivered)
    assert b"report.pdf" not in delivered.data
    assert [p.get_content_type() for p in parsed(delivered).walk()] == [
        "multipart/alternative", "text/plain", "text/html"]


def test_unreadable_mime_on_a_triggered_message_is_refused_with_a_reason(lab: Gateway) -> None:
    data = (b"From: who@example.org\r\nTo: patient@gmail.test\r\nSubject: encrypt/ x\r\n"
            b"Message-ID: <unreadable@example.org>\r\n"
            b"MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=nowhere\r\n\r\n"
            + SECRET_TEXT.encode() + b"\r\n")
    with pytest.raises(smtplib.SMTPDataError) as refused:
        lab.send(data, ["patient@gmail.test"])
    assert refused.value.smtp_code == 554, refused.value
    assert b"5.6.0" in refused.value.smtp_error
    assert b"boundary" in refused.value.smtp_error
    lab.assert_nothing_delivered()


def test_server_down_defers_and_a_retry_after_it_is_back_is_delivered(lab: Gateway) -> None:
    lab.stop_server()
    try:
        with pytest.raises(smtplib.SMTPDataError) as deferred:
            lab.send(compose("encrypt/ While down"), ["patient@gmail.test"])
        assert deferred.value.smtp_code == 451, deferred.value
        assert b"4.3.0" in deferred.value.smtp_error
    finally:
        lab.start_server()
    lab.assert_nothing_delivered()
    assert "server unreachable" in lab.log("milter")
    lab.send(compose("encrypt/ While down"), ["patient@gmail.test"])  # the client's retry
    (delivered,) = lab.wait_for(1)
    assert_no_secret(delivered)
    assert parsed(delivered)["Subject"] == "While down"


def test_milter_down_defers_instead_of_passing(lab: Gateway) -> None:
    lab.crash_milter()
    assert lab.socket_path.exists()  # a stale socket: Sendmail's connect is refused
    try:
        for subject in ("encrypt/ Secret", "Clean"):
            # Sendmail with F=T refuses the transaction at MAIL FROM.
            with pytest.raises(smtplib.SMTPSenderRefused) as deferred:
                lab.send(compose(subject), ["patient@gmail.test"])
            assert deferred.value.smtp_code == 451, deferred.value
            assert b"4.3.2" in deferred.value.smtp_error
    finally:
        lab.start_milter()
    lab.assert_nothing_delivered()
    lab.send(compose("encrypt/ Secret"), ["patient@gmail.test"])
    (delivered,) = lab.wait_for(1)
    assert_no_secret(delivered)
    assert parsed(delivered)["Subject"] == "Secret"


def test_a_message_sealgate_already_processed_is_not_processed_again(lab: Gateway) -> None:
    lab.send(compose("encrypt/ Once"), ["patient@gmail.test"])
    (first,) = lab.wait_for(1)
    lab.sink.clear()
    head, body = split(first.data)
    head = without_received(head).replace(b"Subject: Once", b"Subject: encrypt/ Once")
    before = lab.protected_deposits()
    lab.send(head + b"\r\n\r\n" + body, ["patient@gmail.test"])
    (second,) = lab.wait_for(1)
    # The keyword put back would trigger, but the mark is bound to the body and verifies.
    assert parsed(second)["X-Sealgate-Message-Id"] == parsed(first)["X-Sealgate-Message-Id"]
    assert parsed(second)["Subject"] == "encrypt/ Once"
    assert lab.protected_deposits() == before
    lab.sink.clear()
    # The same mark on a changed body does not verify: that message is protected again.
    lab.send(head + b"\r\n\r\n" + body.replace(b"Dr Who", b"Mallory"), ["patient@gmail.test"])
    (third,) = lab.wait_for(1)
    assert parsed(third)["X-Sealgate-Message-Id"] != parsed(first)["X-Sealgate-Message-Id"]


def test_a_split_message_without_message_id_keeps_one_id_and_a_valid_mark(
        lab: Gateway) -> None:
    # Sendmail adds a missing Message-ID only after the milter has run (Postfix before):
    # the milter adds one itself so that both copies and the mark share it.
    message = compose("encrypt/ No id", to="nurse@example.org, patient@gmail.test")
    del message["Message-ID"]
    lab.send(message, ["nurse@example.org", "patient@gmail.test"])
    delivered = {d.rcpt_tos: d for d in lab.wait_for(2)}
    internal = parsed(delivered[("nurse@example.org",)])
    external = delivered[("patient@gmail.test",)]
    assert_no_secret(external)
    assert internal["Message-ID"] is not None
    assert parsed(external)["Message-ID"] == internal["Message-ID"]
    assert_valid_mark(lab, external)
