"""The milter daemon: pymilter callbacks collect the message, one call into the core decides,
and the adapter applies the changes. Any failure on a triggered message is a temporary
failure (4xx): the MTA keeps the message and retries; nothing leaves in clear."""

from __future__ import annotations

import logging
import os
import signal
import socket
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from email.utils import make_msgid
from functools import partial
from pathlib import Path
from typing import Any

import Milter
import milter

from sealgate import logs, settings
from sealgate.config import Config, load
from sealgate.crypto.harvest import is_signed
from sealgate.dlp.inspect import Inspector, Report
from sealgate.errors import ConfigError, SealgateError
from sealgate.mail.dkim import DkimKey, signature_field
from sealgate.mail.message import InboundMessage
from sealgate.mail.rewrite import Changes, applied, plan
from sealgate.mail.triggers import find_keyword
from sealgate.mail.verdict import Action, MailPolicy, Verdict, decide, is_internal, triggers
from sealgate.metrics import count_error, metrics
from sealgate.milter.client import (
    DepositClient,
    Held,
    PermanentFailure,
    TemporaryFailure,
    reinject,
)

log = logging.getLogger("sealgate.milter")

UNIX_PATH_MAX = 107  # sun_path holds 108 bytes with the final NUL
SPOOL_IN_MEMORY = 1024 * 1024  # bodies above this go to a temporary file
CONTINUE: int = Milter.CONTINUE
ACCEPT: int = Milter.ACCEPT
REJECT: int = Milter.REJECT
TEMPFAIL: int = Milter.TEMPFAIL
DISCARD: int = Milter.DISCARD
LIBMILTER_SIGNALS = {signal.SIGHUP, signal.SIGTERM, signal.SIGINT}

# Until the server first answers, the reload thread asks this often.
START_RETRY_SECONDS = 1.0

# What the milter takes once, at start: a reload leaves these as they were.
AT_START: dict[str, Callable[[Config], object]] = {
    "milter.listen": lambda config: config.milter_socket,
    "milter.socket_group": lambda config: config.milter.socket_group,
    "milter.server_url": lambda config: config.deposit_url,
    "milter.timeout": lambda config: config.milter.timeout,
    "milter.metrics_listen": lambda config: config.milter.metrics_listen,
    "internal_api.secret": lambda config: config.internal_api.secret,
    "logging.format": lambda config: config.logging.format,
}


def needs_restart(running: Config, new: Config) -> list[str]:
    """The settings that differ in `new` but that only a restart applies."""
    return [name for name, value in AT_START.items() if value(running) != value(new)]


@dataclass(frozen=True)
class Rules:
    """How a message is judged, made from one configuration and never changed: a reload makes
    new Rules and swaps them in whole, and a message keeps the Rules it started with."""

    revision: int  # the settings revision they were made from; 0: the file's settings alone
    config: Config
    policy: MailPolicy
    # The portal keywords (`secure/`) trigger too, and ask for the portal.
    portal_keywords: tuple[str, ...]
    inspector: Inspector | None  # None: DLP is off
    # Re-injected copies from the organisation's domain are DKIM-signed (None: off).
    dkim: DkimKey | None
    return_address: str
    harvest: bool

    @classmethod
    def build(cls, config: Config, revision: int = 0) -> Rules:
        """Raises what the parts raise: DLP patterns that do not compile, a DKIM key file
        that cannot be read."""
        portal_keywords = tuple(config.routing.portal_keywords)
        return cls(
            revision=revision, config=config,
            policy=MailPolicy(keywords=(*config.milter.subject_keywords, *portal_keywords),
                              internal_domains=tuple(config.organisation.domains),
                              mark_secret=config.internal_api.secret),
            portal_keywords=portal_keywords,
            inspector=Inspector.from_config(config),
            dkim=DkimKey.from_config(config),
            return_address=config.return_address.lower(),
            harvest=config.routing.harvest_certificates)

    def is_delivery_report(self, message: InboundMessage) -> bool:
        """Mail for Sealgate's return address only: the MTA's reports on verified-TLS copies
        (or anything else sent there), for the server, never for a mailbox."""
        return bool(message.recipients) and all(
            r.lower() == self.return_address for r in message.recipients)

    def harvests(self, message: InboundMessage) -> bool:
        """A signed message from outside, whose certificate the server may keep."""
        return self.harvest and not is_internal(message.mail_from,
                                                self.policy.internal_domains) \
            and is_signed(message.header("Content-Type") or "")

    def needs_body(self, message: InboundMessage) -> bool:
        """Whether the decision needs the body: a trigger in the headers, or DLP and a
        recipient outside the organisation. Internal mail is accepted without it."""
        if triggers(message, self.policy) or self.is_delivery_report(message) \
                or self.harvests(message):
            return True
        return self.inspector is not None and not all(
            is_internal(r, self.policy.internal_domains) for r in message.recipients)


class SettingsUnknown(Exception):
    """The server has not yet said which settings run: no message is judged without them."""


class Gateway:
    """What every milter connection shares: the server client, the DLP threads, the metrics,
    and the Rules for the next message, which a reload replaces whole.

    The running settings are the file's with the newest revision administrators saved on top
    (sealgate/settings.py). The reload thread asks the server for that revision every
    milter.reload_seconds and reads the file again on SIGHUP; whatever fails (the server
    unreachable, a revision that does not fit the file, DLP patterns that do not compile, a
    key file gone) is logged and counted, and the running Rules stay."""

    def __init__(self, config: Config,
                 load_file: Callable[[], Config] | None = None) -> None:
        self.client = DepositClient(config.deposit_url, config.internal_api.secret,
                                    config.milter.timeout)
        self.spool_dir = config.home / "spool"
        self.spool_dir.mkdir(mode=0o700, exist_ok=True)
        self.metrics = metrics()
        # DLP runs on threads Python made, not on libmilter's: pymilter gives its threads
        # their own interpreter states, and Hyperscan's callback re-enters Python through the
        # GIL-state API, which does not know them; mixing the two crashes the process.
        self.dlp_threads = ThreadPoolExecutor(max(2, os.cpu_count() or 2),
                                              thread_name_prefix="dlp")
        self._file = config  # the file and the environment, under every revision
        self._load_file = load_file or (lambda: load(config.home))
        # Made now so that a file the milter cannot use stops it at start, with the reason.
        self._rules = Rules.build(config)
        # The newest revision the server named (None: not asked yet); one that cannot be
        # built is not tried again until a newer one comes, or SIGHUP.
        self._seen: int | None = None
        self._unreachable = False
        self._reloading = threading.Lock()
        self._reread_file = threading.Event()

    @property
    def running(self) -> Rules:
        return self._rules

    def rules(self) -> Rules:
        """The Rules for a message starting now. Before the server has said which settings
        run, the file's alone could miss a policy an administrator added: one attempt to ask
        it now, else SettingsUnknown."""
        if self._seen is None:
            self.dlp_threads.submit(self.reload).result()  # on a thread of Python's own
            if self._seen is None:
                raise SettingsUnknown("the running settings are not known yet: the server "
                                      "has not answered")
        return self._rules

    def dlp(self, inspector: Inspector, message: InboundMessage,
            external: Sequence[str]) -> Report:
        with self.metrics.dlp_seconds.time():
            return self.dlp_threads.submit(inspector.message, message.raw(),
                                           message.mail_from, external).result()

    # -- reloading -------------------------------------------------------------------------

    def request_file_reload(self) -> None:
        """SIGHUP: read sealgate.toml again (on the reload thread; a signal handler must
        not wait for the server)."""
        self._reread_file.set()

    def keep_reloading(self) -> None:
        """The reload thread's loop."""
        self.reload()
        while True:
            every = self._rules.config.milter.reload_seconds
            wait = START_RETRY_SECONDS if self._seen is None else (every or None)
            reread = self._reread_file.wait(wait)
            if reread:  # cleared before the file is read: a SIGHUP from now on counts again
                self._reread_file.clear()
            self.reload(reread_file=reread)

    def reload(self, reread_file: bool = False) -> None:
        """Run the newest settings revision (with `reread_file`, over the file read again).
        Never raises: a failure is logged and counted, and the running Rules stay."""
        with self._reloading:
            running = self._rules
            try:
                self._reload(reread_file)
            except TemporaryFailure as error:
                count_error("milter", "reload")
                if self._unreachable and not reread_file:
                    pass  # said once per outage
                elif self._seen is None:  # starting: the server may well be starting too
                    log.warning("waiting for the server to say which settings run (messages "
                                "are deferred until it does): %s", error)
                else:
                    log.error("cannot ask the server for the running settings, still running "
                              "revision %d: %s", running.revision, error)
                self._unreachable = True
            except Exception as error:  # whatever building the rules raised
                count_error("milter", "reload")
                log.error("settings %snot reloaded, still running revision %d: %s",
                          "file " if reread_file else "", running.revision,
                          error if isinstance(error, SealgateError)
                          else f"{type(error).__name__}: {error}")

    def _reload(self, reread_file: bool) -> None:
        file = self._load_file() if reread_file else self._file
        latest = self.client.settings(None if reread_file else self._seen)
        if self._unreachable:
            log.info("the server answers: settings revision %d is the newest", latest.revision)
            self._unreachable = False
        self._seen = latest.revision
        if latest.overlay is None or (latest.revision == self._rules.revision
                                      and not reread_file):
            return  # nothing new
        config = settings.effective(file, latest.overlay)
        rules = Rules.build(config, latest.revision)
        for name in needs_restart(self._rules.config, config):
            log.warning("%s changed: the milter applies it when it restarts", name)
        self._rules, self._file = rules, file
        self.metrics.settings_revision.set(rules.revision)
        log.info("running settings revision %d%s", rules.revision,
                 ", with sealgate.toml read again" if reread_file else "")


class SealgateMilter(Milter.Base):  # type: ignore[misc]
    """One SMTP connection. Every callback replies (no `noreply`): over inet: sockets a
    skipped reply costs a delayed-ACK stall per message."""

    def __init__(self, gateway: Gateway) -> None:
        self.gateway = gateway
        self.rules = gateway.running  # taken again at every MAIL FROM
        self._reset()

    def _reset(self) -> None:
        self.mail_from = ""
        self.recipients: list[str] = []
        self.headers: list[tuple[str, str]] = []
        self.spool: Any = None

    def data(self) -> int:
        # Not needed for the decision, but answering it matters: without a reply here the
        # MTA writes the DATA macros and the first header back to back, and Nagle holds the
        # second write for the milter's delayed ACK: about 40 ms a message over inet:.
        return CONTINUE

    def envfrom(self, mail_from: str, *_params: str) -> int:
        self._close_body()
        self._reset()
        self.mail_from = mail_from.strip("<>")
        try:
            # This message is judged by the Rules running now to its end, whatever a reload
            # swaps in meanwhile.
            self.rules = self.gateway.rules()
        except SettingsUnknown as error:
            log.warning("deferred a message from %s: %s", self.mail_from, error)
            self.setreply("451", "4.3.0", "Sealgate cannot check its settings yet; "
                                          "it will be retried")
            return TEMPFAIL
        return CONTINUE

    def envrcpt(self, recipient: str, *_params: str) -> int:
        self.recipients.append(recipient.strip("<>"))
        return CONTINUE

    def header(self, name: str, value: str) -> int:
        self.headers.append((name, value))
        return CONTINUE

    def eoh(self) -> int:
        self.gateway.metrics.messages_seen.inc()
        # Mail that nothing could trigger is accepted right here; its body never crosses
        # the milter socket.
        if not self.rules.needs_body(self._message(b"")):
            return ACCEPT
        self.spool = tempfile.SpooledTemporaryFile(  # noqa: SIM115 - closed by _close_body
            SPOOL_IN_MEMORY, dir=str(self.gateway.spool_dir))
        return CONTINUE

    def body(self, chunk: bytes) -> int:
        self.spool.write(chunk)
        return CONTINUE

    def eom(self) -> int:
        # A trace id for this message's log lines, here and (sent along with every call)
        # on the server, which logs the secure message id the portal's lines carry with it.
        with logs.message_id(uuid.uuid4().hex):
            return self._end_of_message_or_refusal()

    def _end_of_message_or_refusal(self) -> int:
        try:
            return self._end_of_message()
        except PermanentFailure as refusal:
            log.warning("refused message from %s: %s", self.mail_from, refusal)
            self.setreply("554", "5.6.0", f"Sealgate cannot send this message securely: "
                                          f"{_reply_text(str(refusal))}")
            return REJECT
        except Exception as error:
            log.exception("temporary failure for message from %s", self.mail_from)
            count_error("milter", type(error).__name__)
            self.setreply("451", "4.3.0", "Sealgate could not secure this message yet; "
                                          "it will be retried")
            return TEMPFAIL
        finally:
            self._close_body()

    def abort(self) -> int:
        self._close_body()
        self._reset()
        return CONTINUE

    def close(self) -> int:
        self._close_body()
        return CONTINUE

    # -- the work --------------------------------------------------------------------------

    def _message(self, body: bytes) -> InboundMessage:
        return InboundMessage(self.mail_from, tuple(self.recipients), tuple(self.headers), body)

    def _end_of_message(self) -> int:
        self.spool.seek(0)
        message = self._message(self.spool.read())
        gateway, rules = self.gateway, self.rules
        if rules.is_delivery_report(message):
            gateway.client.delivery_report(message.raw())
            return DISCARD  # the server has what it needs; there is no mailbox to deliver to
        if rules.harvests(message):
            try:
                gateway.client.harvest(message.raw())
            except TemporaryFailure:  # a certificate is a bonus: the mail is never held up
                log.warning("signed message from %s not offered for harvesting",
                            message.mail_from, exc_info=True)
        with gateway.metrics.milter_verdict_seconds.time():
            verdict = decide(message, rules.policy,
                             partial(gateway.dlp, rules.inspector)
                             if rules.inspector is not None else None)
        for cause in _causes(verdict):
            gateway.metrics.messages_triggered.labels(cause=cause).inc()
        if verdict.dlp is not None and verdict.dlp.action is not None:
            log.info("DLP on message from %s: %s; found %s; policies %s", message.mail_from,
                     verdict.action, verdict.dlp.summary(), ", ".join(verdict.dlp.verdict.policies))
        if verdict.action is Action.REJECT:
            self._report(message, verdict, "block", required=False)
            raise PermanentFailure(verdict.reason)
        if verdict.dlp is not None and verdict.dlp.verdict.notify:
            # A report that cannot be filed defers the message: the policy asked for it.
            self._report(message, verdict, str(verdict.action), required=True)
        if verdict.action is Action.PASS:
            return ACCEPT
        if verdict.action is Action.HOLD:
            assert verdict.dlp is not None
            hold_id = gateway.client.hold(message.raw(), message.mail_from, message.recipients,
                                          verdict.display_subject, verdict.dlp.as_dict())
            log.info("held message from %s as %s until the sender decides", message.mail_from,
                     hold_id)
            # The vault has it, durably: the MTA may drop its copy.
            return DISCARD
        message, added_headers = message.with_message_id(
            make_msgid(domain=rules.config.organisation.domains[0]))
        deposited = None
        if verdict.external:
            try:
                deposited = gateway.client.deposit(
                    message.raw(), message.mail_from, verdict.external,
                    verdict.display_subject,
                    force_portal=bool(rules.portal_keywords) and find_keyword(
                        message.subject, rules.portal_keywords) is not None)
            except Held as held:
                log.info("held message from %s as %s: %s", message.mail_from, held.hold_id,
                         held)
                if not verdict.internal:
                    return DISCARD  # the vault has it, durably
                # Colleagues still get it; the held copy waits for the outside recipients.
                verdict = replace(verdict, external=())
                changes = replace(plan(message, verdict, None, rules.policy.mark_secret),
                                  remove_recipients=tuple(
                                      r for r in message.recipients
                                      if r not in verdict.internal))
                self._apply(message, changes, added_headers)
                return ACCEPT
        changes = plan(message, verdict, deposited, rules.policy.mark_secret)
        for copy in changes.reinjections:
            # Before this transaction is acknowledged: if re-injection fails the whole
            # message is retried (at worst a second copy, never a lost one).
            reinject(rules.config.milter.reinject, copy, rules.config.milter.timeout,
                     signer=rules.dkim)
        log.info("protected message from %s: %s; external %d, internal %d, deposit %s, "
                 "encrypted copies %s", message.mail_from, ", ".join(verdict.reasons),
                 len(verdict.external), len(verdict.internal),
                 deposited.message_id if deposited and deposited.message_id else "-",
                 ", ".join(f"{c.method} {len(c.recipients)}" for c in deposited.copies)
                 if deposited and deposited.copies else "-")
        if changes.discard:  # every recipient has its copy in the MTA's queue
            return DISCARD
        self._apply(message, changes, added_headers)
        return ACCEPT

    def _report(self, message: InboundMessage, verdict: Verdict, action: str,
                required: bool) -> None:
        assert verdict.dlp is not None
        try:
            self.gateway.client.report(message.mail_from, message.recipients,
                                       verdict.display_subject or message.subject, action,
                                       verdict.dlp.as_dict())
        except TemporaryFailure:
            if required:
                raise
            log.warning("could not file the DLP report for a message from %s",
                        message.mail_from, exc_info=True)

    def _apply(self, message: InboundMessage, changes: Changes,
               added: Sequence[tuple[str, str]]) -> None:
        """Make the changes on this transaction; a message Sealgate rewrote leaves signed
        with the organisation's DKIM key, over the result. The signature is made before any
        change is sent (a signing failure defers the message with nothing half-done) and
        goes in last; without a key the result is never assembled."""
        rewritten = changes.body is not None or changes.delete_headers or changes.set_headers \
            or changes.add_headers
        signature = signature_field(self.rules.dkim, applied(message, changes, added)) \
            if rewritten and self.rules.dkim is not None else None
        for name, value in added:
            self.addheader(name, value)
        for name, index in changes.delete_headers:
            self.chgheader(name, index, None)
        for name, value in changes.set_headers:
            self.chgheader(name, 1, value)
        for name, value in changes.add_headers:
            self.addheader(name, value)
        for recipient in changes.remove_recipients:
            self.delrcpt(f"<{recipient}>")
        if changes.body is not None:
            self.replacebody(changes.body)
        if signature is not None:
            self.addheader("DKIM-Signature", signature, 0)  # at the top, as signers put it

    def _close_body(self) -> None:
        if self.spool is not None:
            self.spool.close()
            self.spool = None


def _causes(verdict: Verdict) -> set[str]:
    """Why a message was protected, for the metrics: the sender's keyword or the add-in's
    tag, and a DLP policy."""
    if verdict.action in (Action.PASS, Action.REJECT):
        return set()
    causes = set()
    for reason in verdict.reasons:
        if reason.startswith("subject keyword"):
            causes.add("keyword")
        elif reason.endswith(" header"):
            causes.add("tag")
        elif reason.startswith("policy "):
            causes.add("dlp")
    return causes


def _reply_text(text: str) -> str:
    """An SMTP reply line: one line, ASCII, '%' doubled as libmilter wants."""
    flat = " ".join(text.split()).encode("ascii", "replace").decode("ascii")
    return flat.replace("%", "%%")[:400]


def _restrict_socket(path: Path, group: str) -> None:
    """Let the MTA's group, and nobody else, connect once libmilter has made the socket."""
    import grp

    deadline = time.monotonic() + 30
    while not path.exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    try:
        os.chown(path, -1, grp.getgrnam(group).gr_gid)
        os.chmod(path, 0o660)
    except (KeyError, OSError) as error:
        log.warning("milter socket %s left owner-only (%s); the MTA may not reach it",
                    path, error)


def _disable_nagle_on_listener(port: int) -> None:
    """TCP_NODELAY on libmilter's listening socket, which Linux copies to every accepted
    connection: several changes at end-of-message are several small writes, and with Nagle
    each waits for the MTA's delayed ACK (about 40 ms a message over inet:)."""
    for name in os.listdir("/proc/self/fd"):
        try:
            candidate = socket.socket(fileno=os.dup(int(name)))
        except OSError:
            continue
        with candidate:
            try:
                if candidate.type == socket.SOCK_STREAM and candidate.family in (
                        socket.AF_INET, socket.AF_INET6) and candidate.getsockname()[1] == port:
                    candidate.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                    return
            except OSError:
                continue
    log.warning("could not find the milter's listening socket to disable Nagle")


def _open_socket_without_nagle(port: int) -> None:
    """Milter.runmilter opens libmilter's socket and serves in one call; this wraps the
    opening step so the listener gets TCP_NODELAY before the first connection."""
    open_socket = milter.opensocket

    def opensocket(remove_old: bool) -> Any:
        opened = open_socket(remove_old)
        _disable_nagle_on_listener(port)
        return opened

    milter.opensocket = opensocket


def run_milter(config: Config) -> None:
    # libmilter waits for these on a thread of its own, and each one stops it, SIGHUP too.
    # Blocked here, they are blocked in every thread made from now on, which leaves SIGHUP
    # to this main thread alone once it unblocks it (see _serve).
    signal.pthread_sigmask(signal.SIG_BLOCK, LIBMILTER_SIGNALS)
    logs.setup(config.logging.format, "sealgate-milter")
    gateway = Gateway(config)
    if config.milter.metrics_listen:
        from prometheus_client import start_http_server

        host, _, port = config.milter.metrics_listen.rpartition(":")
        start_http_server(int(port), host.strip("[]"), registry=gateway.metrics.registry)
    threading.Thread(target=gateway.keep_reloading, name="reload", daemon=True).start()
    address = config.milter_socket
    if address.startswith("inet"):
        _open_socket_without_nagle(int(address.partition(":")[2].partition("@")[0]))
    if address.startswith("unix:"):
        path = Path(address.removeprefix("unix:"))
        if len(os.fsencode(path)) > UNIX_PATH_MAX:
            raise ConfigError(f"milter socket path {path} is longer than the {UNIX_PATH_MAX} "
                              "bytes a unix socket may have: use a shorter milter.listen")
        path.unlink(missing_ok=True)
        threading.Thread(target=_restrict_socket, args=(path, config.milter.socket_group),
                         daemon=True).start()
    Milter.factory = lambda: SealgateMilter(gateway)
    Milter.set_flags(Milter.ADDHDRS | Milter.CHGHDRS | Milter.MODBODY | Milter.DELRCPT)
    # An exception escaping any callback (eom catches its own) defers the message.
    milter.set_exception_policy(milter.TEMPFAIL)
    log.info("listening on %s, depositing with %s", address, config.deposit_url)
    _serve(gateway, lambda: Milter.runmilter("sealgate", address,
                                             timeout=int(config.milter.timeout) + 30))


def _serve(gateway: Gateway, serve: Callable[[], None]) -> None:
    """Run libmilter on a thread of its own while this main thread takes SIGHUP: Linux offers
    a signal sent to the process to its main thread first, when that thread does not block
    it, and libmilter's signal thread (which would stop the milter) gets it only otherwise.
    SIGTERM and SIGINT stay blocked here: libmilter takes those, and stops."""
    failed: list[BaseException] = []

    def run() -> None:
        try:
            serve()
        except BaseException as error:  # for the main thread to raise
            failed.append(error)

    signal.signal(signal.SIGHUP, lambda _number, _frame: gateway.request_file_reload())
    signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGHUP})
    serving = threading.Thread(target=run, name="libmilter")
    serving.start()
    while serving.is_alive():
        serving.join(1.0)  # wakes for the SIGHUP handler, which Python runs on this thread
    if failed:
        raise failed[0]
