"""A real Sendmail of its own (configuration, queue, pid and statistics files under one root
directory), listening only on loopback, running the gateway's milter and relaying every
message to the SMTP sink, so the milter is exercised through Sendmail as well as Postfix.

The binary and the cf/m4 files come from Debian's sendmail-bin and sendmail-cf, unpacked by
scripts/sendmail-prefix.sh into a private prefix (the packages cannot be installed beside
Postfix). What it takes to run that binary without touching the system:

- Every path is set in the generated .cf (`-C`), since the compiled-in defaults point into
  /etc/mail and /var: queue, pid, statistics, alias, help, service switch, hosts and
  dead-letter files all live under the root.
- Sendmail qualifies its own host name before it reads any configuration and, when the name
  has no dot (a machine called `vm`), sleeps 60 s and asks DNS. So the daemon runs in private
  UTS and mount namespaces (`unshare`) with the host name lab.sealgate.test and a private
  /etc/hosts bind-mounted over the system one (inside that namespace only): no sleep and no
  DNS query at all. A private PID namespace, whose init is the daemon kept in the foreground
  with `-d99.100`, guarantees that stopping it leaves no process behind. A non-root user gets
  user namespaces too (see `_command`), and is made sendmail's TrustedUser.
- Sendmail lists its own addresses in class w and skips a smart host that is one of them,
  so `SMART_HOST` must name the mailer (`relay:[127.0.0.1]`); `MAIL_HUB` sends local names
  (root, user@localhost) to the sink too, and `RELAY_MAILER_ARGS` carries the sink's port.
- Files under /tmp sit in a world-writable (sticky) directory, which Sendmail distrusts
  unless `DontBlameSendmail=TrustStickyBit`; the alias file is read as a `stab:` map, so
  no aliases.db has to be built.
- With F=T and no milter answering, Sendmail greets and accepts EHLO as usual, then answers
  MAIL FROM with `451 4.3.2 Please try again later`: nothing is accepted, nothing queued.
- Load-average throttles, the 30 min minimum queue age and the ident lookup are switched off;
  the daemon runs the queue every few seconds (`-q5s`).
- Sendmail logs only through syslog, which is often absent: read the daemon's own output
  (`output_text`), the status lines of queued messages (`queue_report`), and, with
  `traffic_log=True`, the SMTP traffic written by `-X`.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import subprocess
import time
from collections.abc import Sequence
from pathlib import Path
from types import TracebackType

from sealgate import smtp
from sealgate.errors import SealgateError
from sealgate.lab.host import ProcessGroup, free_port, greeting_problem, tail_of, text_of

LAB_HOSTNAME = "lab.sealgate.test"
CLIENT_HOSTNAME = "client.sealgate.test"  # smtplib would otherwise ask DNS for our own name
MILTER_NAME = "sealgate"
MILTER_FLAGS = "T"  # tempfail when the milter is unavailable: the gateway fails closed
MILTER_TIMEOUTS = "S:30s;R:60s;E:5m"
QUEUE_INTERVAL = "5s"

REPOSITORY = Path(__file__).resolve().parents[2]
PREFIX_SCRIPT = REPOSITORY / "scripts" / "sendmail-prefix.sh"
PREFIX_ENVIRONMENT = "SEALGATE_SENDMAIL_PREFIX"
BINARY = Path("usr/libexec/sendmail/sendmail")
CF_DIRECTORY = Path("usr/share/sendmail/cf")

PREPARE_TIMEOUT = 600.0  # may download two packages and install m4
READY_TIMEOUT = 30.0
STOP_TIMEOUT = 15.0
COMMAND_TIMEOUT = 60.0
OUTPUT_TAIL_LINES = 40
UNIX_PATH_MAX = 107  # sun_path is 108 bytes, NUL included

# Characters a path may hold and still be quoted safely in the .mc and the .cf.
_SAFE_PATH = re.compile(r"[A-Za-z0-9_./+@=-]+")
# Queue file prefixes that mean a message is still queued (control, held, quarantined).
_QUEUED_PREFIXES = ("qf", "hf", "Qf")


class SendmailLabError(SealgateError):
    """The private Sendmail could not be prepared, configured, started, stopped or queried."""


def default_prefix() -> Path:
    """Where scripts/sendmail-prefix.sh unpacks sendmail, unless $SEALGATE_SENDMAIL_PREFIX."""
    configured = os.environ.get(PREFIX_ENVIRONMENT)
    return Path(configured) if configured else REPOSITORY / ".cache" / "sendmail"


def prepare_prefix(prefix: Path | None = None, timeout: float = PREPARE_TIMEOUT) -> Path:
    """Run scripts/sendmail-prefix.sh (idempotent, quick when the prefix is complete), so a
    test session can ask for Sendmail on a fresh machine; raises with the script's output."""
    target = Path(prefix) if prefix is not None else default_prefix()
    try:
        result = subprocess.run(["bash", str(PREFIX_SCRIPT), str(target)], capture_output=True,
                                text=True, timeout=timeout, check=False,
                                stdin=subprocess.DEVNULL)
    except subprocess.TimeoutExpired as error:
        raise SendmailLabError(f"{PREFIX_SCRIPT} did not finish within {timeout:g} s"
                               ) from error
    if result.returncode != 0:
        raise SendmailLabError(f"{PREFIX_SCRIPT} {target} failed (exit {result.returncode}): "
                               f"{(result.stdout + result.stderr).strip()}")
    return target


def _tool(name: str) -> str:
    found = shutil.which(name, path="/usr/sbin:/usr/bin:/sbin:/bin:" + os.environ.get("PATH", ""))
    if found is None:
        raise SendmailLabError(f"{name} not found (Debian: util-linux, mount, hostname or m4)")
    return found


def _safe_path(path: Path, what: str) -> str:
    text = str(path)
    if not _SAFE_PATH.fullmatch(text):
        raise SendmailLabError(f"the {what} {text} holds characters the sendmail .mc cannot "
                               "quote (only letters, digits and _./+@=- are allowed)")
    return text


def _milter_socket(milter: str) -> str:
    """The milter's S= value: a bare path means a unix socket."""
    spec = f"unix:{milter}" if milter.startswith("/") else milter
    kind, _, where = spec.partition(":")
    if kind in ("unix", "local"):
        path = _safe_path(Path(where), "milter socket")
        if not path.startswith("/") or len(path.encode()) > UNIX_PATH_MAX:
            raise SendmailLabError(f"the milter socket {path} must be an absolute path of at "
                                   f"most {UNIX_PATH_MAX} bytes")
        return f"unix:{path}"
    if kind in ("inet", "inet6") and re.fullmatch(r"\d+@[A-Za-z0-9.:\[\]-]+", where):
        return spec
    raise SendmailLabError(f"milter {milter!r} is neither unix:/path nor inet:PORT@HOST")


class PrivateSendmail:
    """One Sendmail daemon under `root`, on 127.0.0.1:`smtp_port` (0: a free port), relaying
    every message, whatever its domain, to the SMTP sink at [127.0.0.1]:`sink_port`.

    `milter` (unix:/path, a bare /path, or inet:PORT@127.0.0.1) adds an INPUT_MAIL_FILTER with
    F=T, so mail is refused with 451 4.3.2 while the milter is unavailable. `prefix` is the
    unpacked sendmail (default: `default_prefix()`); `traffic_log` records the SMTP traffic
    in root/traffic.log (`-X`)."""

    def __init__(self, root: Path, sink_port: int, smtp_port: int = 0,
                 milter: str | None = None, *, prefix: Path | None = None,
                 milter_flags: str = MILTER_FLAGS, milter_timeouts: str = MILTER_TIMEOUTS,
                 queue_interval: str = QUEUE_INTERVAL, traffic_log: bool = False) -> None:
        self.root = Path(root).absolute()
        self.prefix = Path(prefix if prefix is not None else default_prefix()).absolute()
        _safe_path(self.root, "lab root")
        _safe_path(self.prefix, "sendmail prefix")
        if not 0 < sink_port < 65536:
            raise SendmailLabError(f"sink port {sink_port} is not a port (start the sink first)")
        if not re.fullmatch(r"[A-Za-z]*", milter_flags):
            raise SendmailLabError(f"milter flags {milter_flags!r} are not letters")
        if not re.fullmatch(r"[A-Za-z]:\d+[smh]?(;[A-Za-z]:\d+[smh]?)*", milter_timeouts):
            raise SendmailLabError(f"milter timeouts {milter_timeouts!r} are not like "
                                   f"{MILTER_TIMEOUTS}")
        if not re.fullmatch(r"\d+[smh]?", queue_interval):
            raise SendmailLabError(f"queue interval {queue_interval!r} is not like 5s")
        self.sink_port = sink_port
        self.smtp_port = smtp_port or free_port(exclude=[sink_port])
        if self.smtp_port == sink_port:
            raise SendmailLabError(f"the sink and sendmail cannot share port {sink_port}")
        self.milter = _milter_socket(milter) if milter is not None else None
        self.milter_flags = milter_flags
        self.milter_timeouts = milter_timeouts
        self.queue_interval = queue_interval
        self.traffic_log = traffic_log
        self.config_dir = self.root / "etc"
        self.queue_dir = self.root / "queue"
        self.run_dir = self.root / "run"
        self.mc_file = self.root / "sendmail.mc"
        self.cf_file = self.root / "sendmail.cf"
        self.hosts_file = self.config_dir / "hosts"
        self.output_file = self.root / "sendmail.out"
        self.traffic_file = self.root / "traffic.log"
        self._process: subprocess.Popen[bytes] | None = None
        self._group: ProcessGroup | None = None

    # -- configuration ------------------------------------------------------------------

    def mc_lines(self) -> list[str]:
        """The lines that make Sendmail a relay to the sink and run the milter: the part an
        operator copies into sendmail.mc (deploy/sendmail/)."""
        lines = [
            # relay: names the mailer, since [127.0.0.1] is in class w and would be skipped.
            "define(`SMART_HOST', `relay:[127.0.0.1]')dnl",
            "define(`MAIL_HUB', `relay:[127.0.0.1]')dnl",
            f"define(`RELAY_MAILER_ARGS', `TCP $h {self.sink_port}')dnl",
        ]
        if self.milter is not None:
            lines.append(f"INPUT_MAIL_FILTER(`{MILTER_NAME}', `S={self.milter}, "
                         f"F={self.milter_flags}, T={self.milter_timeouts}')dnl")
        return lines

    def mc_text(self) -> str:
        """The whole sendmail.mc, as written to root/sendmail.mc."""
        root, etc, run = self.root, self.config_dir, self.run_dir
        cf_dir = self.prefix / CF_DIRECTORY
        settings = [
            ("confDOMAIN_NAME", LAB_HOSTNAME),
            ("MAIL_SETTINGS_DIR", f"{etc}/"),
            ("QUEUE_DIR", f"{self.queue_dir}"),
            ("confPID_FILE", f"{run}/sendmail.pid"),
            ("STATUS_FILE", f"{run}/sendmail.st"),
            ("ALIAS_FILE", f"stab:{etc}/aliases"),
            ("HELP_FILE", f"{etc}/helpfile"),
            ("confSERVICE_SWITCH_FILE", f"{etc}/service.switch"),
            ("confHOSTS_FILE", f"{self.hosts_file}"),
            ("confDEAD_LETTER_DROP", f"{run}/dead.letter"),
            ("confDONT_BLAME_SENDMAIL", "TrustStickyBit"),
            ("confDONT_PROBE_INTERFACES", "True"),
            ("confTO_IDENT", "0s"),
            ("confMIN_QUEUE_AGE", "0s"),
            ("confQUEUE_LA", "1000"),
            ("confREFUSE_LA", "1000"),
            ("confTO_ICONNECT", "10s"),
            ("confTO_CONNECT", "10s"),
            ("confTO_INITIAL", "30s"),
            ("confTO_HELO", "30s"),
            ("confTO_MAIL", "30s"),
            ("confTO_RCPT", "30s"),
            ("confTO_DATAINIT", "30s"),
            ("confTO_DATABLOCK", "60s"),
            ("confTO_DATAFINAL", "60s"),
            ("confTO_RSET", "30s"),
            ("confTO_QUIT", "10s"),
            ("confTO_MISC", "30s"),
            # No X-Authentication-Warning headers when a non-root user runs the lab.
            ("confPRIVACY_FLAGS", "public"),
            # Only root and TrustedUser may run the daemon or a queue run.
            ("confTRUSTED_USER", str(os.geteuid())),
            # Nothing is delivered locally (MAIL_HUB takes local names); if anything were,
            # it fails visibly instead of running procmail.
            ("LOCAL_MAILER_PATH", "/bin/false"),
        ]
        lines = [
            "divert(-1)",
            f"# Generated by sealgate.lab.sendmail for {root}",
            "divert(0)dnl",
            f"include(`{cf_dir}/m4/cf.m4')dnl",
            "VERSIONID(`sealgate lab')dnl",
            "OSTYPE(`linux')dnl",
            *(f"define(`{name}', `{value}')dnl" for name, value in settings),
            "FEATURE(`no_default_msa')dnl",
            "FEATURE(`accept_unresolvable_domains')dnl",
            "FEATURE(`accept_unqualified_senders')dnl",
            "FEATURE(`nocanonify')dnl",
            f"DAEMON_OPTIONS(`Family=inet, Name=MTA, Addr=127.0.0.1, Port={self.smtp_port}')dnl",
            *[line for line in self.mc_lines() if not line.startswith("INPUT_MAIL_FILTER")],
            "MAILER(`local')dnl",
            "MAILER(`smtp')dnl",
            *[line for line in self.mc_lines() if line.startswith("INPUT_MAIL_FILTER")],
        ]
        return "\n".join(lines) + "\n"

    def _write_config(self) -> None:
        for directory in (self.root, self.config_dir, self.run_dir, self.queue_dir):
            directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        (self.config_dir / "aliases").write_text("")
        (self.config_dir / "service.switch").write_text("hosts files\naliases files\n")
        # Both families: sendmail also asks for IPv6 addresses, and a miss would go to DNS.
        self.hosts_file.write_text(f"127.0.0.1\tlocalhost {LAB_HOSTNAME}\n"
                                   f"::1\tlocalhost {LAB_HOSTNAME}\n")
        self.mc_file.write_text(self.mc_text())
        try:
            result = subprocess.run([_tool("m4"), str(self.mc_file)], capture_output=True,
                                    text=True, timeout=COMMAND_TIMEOUT, check=False,
                                    stdin=subprocess.DEVNULL)
        except subprocess.TimeoutExpired as error:
            raise SendmailLabError(f"m4 {self.mc_file} did not finish") from error
        if result.returncode != 0 or result.stderr.strip():
            raise SendmailLabError(f"m4 {self.mc_file} failed (exit {result.returncode}): "
                                   f"{result.stderr.strip()}")
        self.cf_file.write_text(result.stdout)

    # -- running the binary -------------------------------------------------------------

    def _binary(self) -> Path:
        binary = self.prefix / BINARY
        if not os.access(binary, os.X_OK) or not (self.prefix / CF_DIRECTORY).is_dir():
            raise SendmailLabError(f"no unpacked sendmail in {self.prefix}: run "
                                   f"scripts/sendmail-prefix.sh {self.prefix}")
        return binary

    def _command(self, *args: str) -> list[str]:
        """`sendmail -C our.cf ARGS` inside the private namespaces (see the module docstring):
        the host name is set and /etc/hosts replaced there, never on the machine."""
        unshare = _tool("unshare")
        outer = [unshare, "--uts", "--mount", "--propagation", "private", "--pid",
                 "--kill-child=SIGKILL"]
        inner: list[str] = []
        if os.geteuid() != 0:
            # A user namespace lends the capabilities for the host name and the mount, but
            # its "root" may not call setgroups(), which sendmail treats as fatal when it
            # runs as root: so it runs as the caller again, in a nested user namespace.
            outer[1:1] = ["--user", "--map-root-user"]
            inner = [unshare, f"--map-user={os.geteuid()}", f"--map-group={os.getegid()}"]
        script = 'hostname "$1"; mount --bind "$2" /etc/hosts; shift 2; exec "$@"'
        return [*outer, "/bin/sh", "-ec", script, "sendmail-lab", LAB_HOSTNAME,
                str(self.hosts_file), *inner, str(self._binary()), "-C", str(self.cf_file),
                "-L", "sendmail-lab", *args]

    def _environment(self) -> dict[str, str]:
        # The hostname/mount tools must be found; resolver variables would only add DNS.
        environment = {key: value for key, value in os.environ.items()
                       if key not in ("LOCALDOMAIN", "RES_OPTIONS", "HOSTALIASES")}
        environment["PATH"] = "/usr/sbin:/usr/bin:/sbin:/bin"
        return environment

    def start(self) -> None:
        """Write the configuration and start the daemon; returns once it greets on its port
        (bounded by READY_TIMEOUT), else stops it and raises with its output."""
        if self.running:
            return
        self._binary()
        self._write_config()
        arguments = ["-bd", f"-q{self.queue_interval}", "-d99.100"]  # -d99.100: foreground
        if self.traffic_log:
            arguments += ["-X", str(self.traffic_file)]
        with self.output_file.open("ab") as output:
            self._process = subprocess.Popen(
                self._command(*arguments), stdin=subprocess.DEVNULL, stdout=output,
                stderr=subprocess.STDOUT, env=self._environment(), start_new_session=True)
            self._group = ProcessGroup.of_leader(self._process.pid)
        try:
            self._wait_for_greeting(time.monotonic() + READY_TIMEOUT)
        except BaseException:
            self.stop()
            raise

    def _wait_for_greeting(self, deadline: float) -> None:
        while True:
            if self._process is None or self._process.poll() is not None:
                code = None if self._process is None else self._process.returncode
                raise SendmailLabError(f"sendmail exited (status {code}) before answering on "
                                       f"127.0.0.1:{self.smtp_port}{self._output_tail()}")
            problem = greeting_problem(self.smtp_port, deadline)
            if problem is None:
                return
            if "cannot bind" in self.output_text():  # it would retry for a minute
                raise SendmailLabError(f"sendmail cannot listen on 127.0.0.1:{self.smtp_port}"
                                       f"{self._output_tail()}")
            if time.monotonic() >= deadline:
                raise SendmailLabError(f"sendmail on 127.0.0.1:{self.smtp_port} did not answer "
                                       f"within {READY_TIMEOUT:g} s ({problem})"
                                       f"{self._output_tail()}")
            time.sleep(0.1)

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def stop(self) -> None:
        """SIGTERM to the daemon, then SIGKILL to the namespace if it lingers: when its init
        dies, the kernel kills every process in it. Bounded by STOP_TIMEOUT."""
        process = self._process
        if process is None:
            return
        deadline = time.monotonic() + STOP_TIMEOUT
        if process.poll() is None:
            # unshare --fork ignores SIGTERM while it waits; the daemon is its only child.
            for child in _children(process.pid):
                with contextlib.suppress(ProcessLookupError):
                    os.kill(child, signal.SIGTERM)
            try:
                process.wait(timeout=min(5.0, STOP_TIMEOUT / 2))
            except subprocess.TimeoutExpired:
                process.kill()  # --kill-child: the daemon gets SIGKILL, and its namespace too
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)  # anything that escaped the namespace
        try:
            process.wait(timeout=max(1.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired as error:
            raise SendmailLabError(f"sendmail of {self.root} (pid {process.pid}) survived "
                                   "SIGKILL") from error
        # The leader is reaped by now; its group id still finds whatever it left behind.
        group = self._group or ProcessGroup(process.pid, started=0)
        if not group.wait_for_exit(max(1.0, deadline - time.monotonic())):
            raise SendmailLabError(f"sendmail processes {group.members()} of {self.root} "
                                   "survived SIGKILL")
        self._process = None

    def __enter__(self) -> PrivateSendmail:
        self.start()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 traceback: TracebackType | None) -> None:
        self.stop()

    # -- queue and output ---------------------------------------------------------------

    def flush(self, timeout: float = COMMAND_TIMEOUT) -> str:
        """One queue run now, in the foreground (`sendmail -q -v`); returns its transcript.
        The daemon's own queue runs keep going every `queue_interval`."""
        try:
            result = subprocess.run(self._command("-q", "-v"), capture_output=True, text=True,
                                    timeout=timeout, check=False, env=self._environment(),
                                    stdin=subprocess.DEVNULL)
        except subprocess.TimeoutExpired as error:
            raise SendmailLabError(f"sendmail -q did not finish within {timeout:g} s"
                                   f"{self._queue_tail()}") from error
        if result.returncode != 0:
            raise SendmailLabError(f"sendmail -q failed (exit {result.returncode}): "
                                   f"{(result.stdout + result.stderr).strip()}")
        return result.stdout + result.stderr

    def queue_ids(self) -> list[str]:
        """Ids of the messages still queued (including held or quarantined ones)."""
        try:
            names = sorted(os.listdir(self.queue_dir))
        except FileNotFoundError:
            return []
        return [name[2:] for name in names if name.startswith(_QUEUED_PREFIXES)]

    def queue_is_empty(self) -> bool:
        return not self.queue_ids()

    def queue_report(self) -> dict[str, str]:
        """Queue id -> the status Sendmail recorded (the qf file's M line), e.g. why a
        message is deferred: the nearest thing to a log when syslog is absent."""
        report: dict[str, str] = {}
        for queue_id in self.queue_ids():
            for prefix in _QUEUED_PREFIXES:
                with contextlib.suppress(OSError):
                    text = (self.queue_dir / f"{prefix}{queue_id}").read_text(errors="replace")
                    status = [line[1:] for line in text.splitlines() if line.startswith("M")]
                    report[queue_id] = status[-1] if status else ""
        return report

    def wait_until_queue_empty(self, timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        while not self.queue_is_empty():
            if time.monotonic() >= deadline:
                raise TimeoutError(f"messages still queued in {self.queue_dir} after "
                                   f"{timeout:g} s{self._queue_tail()}")
            time.sleep(0.1)

    def output_text(self) -> str:
        """What the daemon wrote to stdout/stderr (warnings, such as a missing milter)."""
        return text_of(self.output_file)

    def _output_tail(self) -> str:
        return tail_of(self.output_file, OUTPUT_TAIL_LINES)

    def _queue_tail(self) -> str:
        report = self.queue_report()
        queued = "".join(f"\n  {queue_id}: {status}" for queue_id, status in report.items())
        return (f"\nqueued:{queued}" if queued else "") + self._output_tail()

    # -- sending ------------------------------------------------------------------------

    def send(self, mail_from: str, rcpt_tos: Sequence[str] | str, data: bytes,
             timeout: float = 30) -> dict[str, tuple[int, bytes]]:
        """One SMTP transaction with the daemon. smtplib's exceptions propagate unchanged
        (SMTPSenderRefused, SMTPDataError, ... carry `smtp_code`), so a test can assert on a
        4xx. Returns the recipients refused while others were accepted (empty if none)."""
        recipients = [rcpt_tos] if isinstance(rcpt_tos, str) else list(rcpt_tos)
        return smtp.send("127.0.0.1", self.smtp_port, mail_from, recipients, data, timeout,
                         local_hostname=CLIENT_HOSTNAME)


def _children(pid: int) -> list[int]:
    try:
        text = Path(f"/proc/{pid}/task/{pid}/children").read_text()
    except OSError:
        return []
    return [int(child) for child in text.split()]
