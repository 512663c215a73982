"""A real Postfix instance of its own (configuration, queue, data and log under one root
directory), listening only on loopback and relaying every message to the SMTP sink, so tests,
`make run` and benchmarks exercise the MTA that production uses without touching the
system's Postfix (which may not even be configured).

What Postfix needs to run like this, as root, with the Debian package:

- `postfix -c DIR` with a non-default DIR is allowed for the super-user without listing DIR in
  the system main.cf (`alternate_config_directories` and `multi_instance_directories` only
  matter for set-gid commands run by other users and for postmulti). The system's main.cf and
  master.cf are not needed at all (a package installed with "No configuration" has none);
  only the package's own files are used (postfix-files, postfix-script, post-install).
- `postfix start` runs `post-install create-missing`, which creates the queue's
  subdirectories and the data directory with the right owners; the queue directory itself
  must belong to root.
- Postfix's daemons drop to `mail_owner` (postfix) and reach most files by absolute path, but
  they enter the queue directory while still root and work relative to it. A pytest tmp_path
  lies under /tmp/pytest-of-root (mode 0700), which the postfix user cannot traverse, so the
  data directory (master.lock) is named relative to the queue directory, and a milter's unix
  socket should live in `socket_dir` (inside the queue directory), where it is written
  relative too. The log file is opened by postlogd while still root, so it may live anywhere;
  `maillog_file_prefixes` has to allow its directory.
- `maillog_file` needs the `postlog` service in master.cf (postlogd, Postfix 3.4+).
"""

from __future__ import annotations

import contextlib
import grp
import json
import os
import pwd
import re
import shutil
import stat
import subprocess
import time
from collections.abc import Sequence
from pathlib import Path
from types import TracebackType

from sealgate import smtp
from sealgate.errors import SealgateError
from sealgate.lab.host import (
    ProcessGroup,
    free_ports,
    greeting_problem,
    tail_of,
    text_of,
)
from sealgate.routing import mta

MAIL_OWNER = "postfix"
SETGID_GROUP = "postdrop"
LAB_HOSTNAME = "lab.sealgate.test"
CLIENT_HOSTNAME = "client.sealgate.test"  # smtplib would otherwise ask DNS for our own name
MESSAGE_SIZE_LIMIT = 30 * 1024 * 1024
MILTER_DEFAULT_ACTIONS = ("accept", "reject", "tempfail", "quarantine")

START_TIMEOUT = 60.0  # `postfix start` runs its integrity check (a few seconds) first
READY_TIMEOUT = 30.0
STOP_TIMEOUT = 30.0  # `postfix stop` itself gives up after 5 s and kills the process group
COMMAND_TIMEOUT = 30.0
LOG_TAIL_LINES = 40

# Services of Debian's master.cf that a relay-only instance uses, with chroot off (a chroot
# would need copies of /etc files in the queue directory). No local delivery; TLS only on
# Sealgate's verified-TLS transports.
# (service, type, private, unpriv, chroot, wakeup, maxproc, command)
_BASE_SERVICES = (
    ("pickup", "unix", "n", "-", "n", "60", "1", "pickup"),
    ("cleanup", "unix", "n", "-", "n", "-", "0", "cleanup"),
    ("qmgr", "unix", "n", "-", "n", "300", "1", "qmgr"),
    ("rewrite", "unix", "-", "-", "n", "-", "-", "trivial-rewrite"),
    ("bounce", "unix", "-", "-", "n", "-", "0", "bounce"),
    ("defer", "unix", "-", "-", "n", "-", "0", "bounce"),
    ("trace", "unix", "-", "-", "n", "-", "0", "bounce"),
    ("verify", "unix", "-", "-", "n", "-", "1", "verify"),
    ("flush", "unix", "n", "-", "n", "1000?", "0", "flush"),
    ("proxymap", "unix", "-", "-", "n", "-", "-", "proxymap"),
    ("proxywrite", "unix", "-", "-", "n", "-", "1", "proxymap"),
    ("smtp", "unix", "-", "-", "n", "-", "-", "smtp"),
    ("relay", "unix", "-", "-", "n", "-", "-", "smtp"),
    ("showq", "unix", "n", "-", "n", "-", "-", "showq"),
    ("error", "unix", "-", "-", "n", "-", "-", "error"),
    ("retry", "unix", "-", "-", "n", "-", "-", "error"),
    ("discard", "unix", "-", "-", "n", "-", "-", "discard"),
    ("anvil", "unix", "-", "-", "n", "-", "1", "anvil"),
    ("scache", "unix", "-", "-", "n", "-", "1", "scache"),
    ("tlsmgr", "unix", "-", "-", "n", "1000?", "1", "tlsmgr"),  # the verified-TLS transports
    ("postlog", "unix-dgram", "n", "-", "n", "-", "1", "postlogd"),
)


class LabError(SealgateError):
    """The private Postfix could not be configured, started, stopped or queried."""


def _command(name: str) -> str:
    found = shutil.which(name, path="/usr/sbin:/usr/bin:/sbin:/bin:" + os.environ.get("PATH", ""))
    if found is None:
        raise LabError(f"{name} not found: the Debian package postfix is needed "
                       "(make install installs it)")
    return found


def _blocking_directory(path: Path, user: str) -> Path | None:
    """The first directory on the way to `path` that `user` may not traverse, if any."""
    entry = pwd.getpwnam(user)
    groups = set(os.getgrouplist(user, entry.pw_gid))
    for directory in (*reversed(path.parents), path):
        try:
            info = directory.stat()
        except FileNotFoundError:
            return None  # created later by whoever creates the socket
        if info.st_uid == entry.pw_uid:
            allowed = info.st_mode & stat.S_IXUSR
        elif info.st_gid in groups:
            allowed = info.st_mode & stat.S_IXGRP
        else:
            allowed = info.st_mode & stat.S_IXOTH
        if not allowed:
            return directory
    return None


class PrivatePostfix:
    """One Postfix instance under `root`: smtpd on 127.0.0.1:`smtp_port` (runs the milter, if
    any), a second smtpd on 127.0.0.1:`reinject_port` that never runs it (where the gateway
    re-injects split copies), and every message relayed to 127.0.0.1:`sink_port`.

    Port 0 picks a free loopback port. `milter` is a Postfix milter address
    (`unix:/path` or `inet:127.0.0.1:PORT`); see the module docstring about unix sockets.
    `extra_main` adds or overrides main.cf parameters.
    """

    def __init__(self, root: Path, sink_port: int, smtp_port: int = 0, reinject_port: int = 0,
                 milter: str | None = None, milter_default_action: str = "tempfail",
                 extra_main: dict[str, str] | None = None,
                 transports: dict[str, str] | None = None, tls_ca_file: Path | None = None,
                 tls_policy: dict[str, str] | None = None) -> None:
        self.root = Path(root).absolute()
        if re.search(r"[\s,$]", str(self.root)):
            raise LabError(f"the lab root {self.root} contains a space, comma or $, "
                           "which main.cf cannot hold")
        if milter_default_action not in MILTER_DEFAULT_ACTIONS:
            raise LabError(f"milter_default_action {milter_default_action!r} is not one of "
                           f"{', '.join(MILTER_DEFAULT_ACTIONS)}")
        if not 0 < sink_port < 65536:
            raise LabError(f"sink port {sink_port} is not a port (start the sink first)")
        self.sink_port = sink_port
        self.milter = milter
        self.milter_default_action = milter_default_action
        self.extra_main = dict(extra_main or {})
        # Verified-TLS delivery (sealgate.routing.mta): next hops by recipient domain, the CA
        # the verified-TLS transports trust, and policies for literal-address next hops
        # (`[127.0.0.2]:2525` -> `secure match=mx.example.test`), which have no name to verify.
        self.transports = dict(transports or {})
        self.tls_ca_file = tls_ca_file
        self.tls_policy = dict(tls_policy or {})
        self._requested_ports = (smtp_port, reinject_port)
        self._pick_ports()
        if len({self.sink_port, self.smtp_port, self.reinject_port}) != 3:
            raise LabError(f"the sink, smtpd and re-injection ports must differ: {self.sink_port}, "
                           f"{self.smtp_port}, {self.reinject_port}")
        self.config_dir = self.root / "etc"
        self.queue_dir = self.root / "queue"
        self.socket_dir = self.queue_dir / "sockets"  # for milter sockets Postfix must reach
        self.maillog = self.root / "maillog"
        self._group: ProcessGroup | None = None

    def _pick_ports(self) -> None:
        smtp_port, reinject_port = self._requested_ports
        taken = [port for port in (self.sink_port, smtp_port, reinject_port) if port]
        spare = iter(free_ports(2, exclude=taken))
        self.smtp_port = smtp_port or next(spare)
        self.reinject_port = reinject_port or next(spare)

    # -- configuration ------------------------------------------------------------------

    def _milter_address(self) -> str | None:
        """The milter address as main.cf gets it: a unix socket inside the queue directory is
        named relative to it, since the daemons' working directory is the only way the
        postfix user reaches a path under a private (0700) parent."""
        if self.milter is None or not self.milter.startswith("unix:/"):
            return self.milter
        path = Path(self.milter.removeprefix("unix:"))
        if path.is_relative_to(self.queue_dir):
            return f"unix:{path.relative_to(self.queue_dir)}"
        return self.milter

    def _main_settings(self) -> dict[str, str]:
        sink = f"[127.0.0.1]:{self.sink_port}"
        settings = {
            "compatibility_level": "3.6",
            "queue_directory": str(self.queue_dir),
            # Relative to queue_directory: see the module docstring.
            "data_directory": "data",
            "mail_owner": MAIL_OWNER,
            "setgid_group": SETGID_GROUP,
            "maillog_file": str(self.maillog),  # no syslog needed; needs the postlog service
            "maillog_file_prefixes": str(self.root),  # the default allows only /var
            "myhostname": LAB_HOSTNAME,
            "inet_interfaces": "127.0.0.1",
            "inet_protocols": "ipv4",
            "mynetworks": "127.0.0.0/8",
            # Nothing is local: every address, of any domain, is relayed to the sink, and
            # /etc/aliases is never read.
            "mydestination": "",
            "local_recipient_maps": "",
            "relay_domains": "",
            "alias_maps": "",
            "alias_database": "",
            "smtpd_relay_restrictions": "permit_mynetworks, reject_unauth_destination",
            "relayhost": sink,
            "default_transport": f"smtp:{sink}",
            "relay_transport": f"relay:{sink}",
            "smtp_dns_support_level": "disabled",  # the next hop is an address; no network
            "smtp_tls_security_level": "none",
            "smtpd_tls_security_level": "none",
            "smtputf8_enable": "yes",
            "message_size_limit": str(MESSAGE_SIZE_LIMIT),
            # Deferred mail is retried within seconds, not minutes.
            "queue_run_delay": "1s",
            "minimal_backoff_time": "1s",
            "maximal_backoff_time": "5s",
            "smtp_destination_concurrency_limit": "20",
            "biff": "no",  # no comsat notifications
            **mta.main_cf(),
        }
        if self.transports:
            settings["transport_maps"] = f"texthash:{self.config_dir / 'transport'}"
        milter = self._milter_address()
        if milter is not None:
            settings.update({
                "smtpd_milters": milter,
                "non_smtpd_milters": milter,
                "milter_protocol": "6",
                "milter_default_action": self.milter_default_action,
            })
        settings.update(self.extra_main)
        return settings

    def main_cf_lines(self) -> list[str]:
        """main.cf exactly as written (one `name = value` per line)."""
        return [f"{name} = {value}".rstrip() for name, value in self._main_settings().items()]

    def master_cf_lines(self) -> list[str]:
        """master.cf exactly as written."""
        row = "{:<22} {:<10} {:<3} {:<3} {:<3} {:<6} {:<3} {}"
        lines = [
            row.format(f"127.0.0.1:{self.smtp_port}", "inet", "n", "-", "n", "-", "-", "smtpd"),
            row.format(f"127.0.0.1:{self.reinject_port}", "inet", "n", "-", "n", "-", "-",
                       "smtpd"),
            "  -o syslog_name=postfix/reinject",
            "  -o smtpd_milters=",
            "  -o non_smtpd_milters=",
            "  -o receive_override_options=no_milters",
            "  -o smtpd_client_restrictions=permit_mynetworks,reject",
            "  -o mynetworks=127.0.0.0/8",
            *(f"  {option}" for option in mta.reinject_options()),
        ]
        lines += [row.format(*service) for service in _BASE_SERVICES]
        extra = [f"smtp_tls_CAfile={self.tls_ca_file}"] if self.tls_ca_file else []
        if self.tls_policy:
            extra.append(f"smtp_tls_policy_maps=texthash:{self.config_dir / 'tls_policy'}")
        lines += mta.master_cf(f"regexp:{self.config_dir / 'sealgate_header_checks'}",
                               f"regexp:{self.config_dir / 'sealgate_status_filter'}", extra)
        return lines

    def _tables(self) -> dict[str, str]:
        """The lookup tables main.cf and master.cf name, by file name."""
        return {
            "sealgate_header_checks": mta.header_checks(),
            "sealgate_status_filter": mta.status_filter(),
            "transport": "".join(f"{k} {v}\n" for k, v in self.transports.items()),
            "tls_policy": "".join(f"{k} {v}\n" for k, v in self.tls_policy.items()),
        }

    def write_config(self) -> None:
        """Write main.cf and master.cf and make the folders, the milter socket's included
        (so a milter can start listening before Postfix does)."""
        # Modes set explicitly: the caller's umask (Sealgate's CLI uses 077) must not lock
        # Postfix's unprivileged daemons out of their own directories.
        self.config_dir.mkdir(parents=True, exist_ok=True)
        self.config_dir.chmod(0o755)
        # post-install insists that root owns the queue directory (it is, we are root).
        self.queue_dir.mkdir(exist_ok=True)
        self.queue_dir.chmod(0o755)
        self.socket_dir.mkdir(exist_ok=True)
        self.socket_dir.chmod(0o755)
        (self.config_dir / "main.cf").write_text("\n".join(self.main_cf_lines()) + "\n")
        (self.config_dir / "master.cf").write_text("\n".join(self.master_cf_lines()) + "\n")
        for name, text in self._tables().items():
            (self.config_dir / name).write_text(text)

    def _check_milter_reachable(self) -> None:
        milter = self._milter_address()
        if milter is None or not milter.startswith("unix:/"):
            return
        blocked = _blocking_directory(Path(milter.removeprefix("unix:")).parent, MAIL_OWNER)
        if blocked is not None:
            raise LabError(
                f"Postfix (user {MAIL_OWNER}) cannot reach the milter socket {milter}: it may "
                f"not traverse {blocked}; put the socket in {self.socket_dir}")

    # -- life cycle ---------------------------------------------------------------------

    def _environment(self) -> dict[str, str]:
        # A MAIL_CONFIG from the caller's shell would point the commands elsewhere.
        blocked = {"MAIL_CONFIG", "MAIL_DEBUG", "MAIL_VERBOSE", "MAIL_LOGTAG"}
        return {key: value for key, value in os.environ.items() if key not in blocked}

    def _run(self, *args: str, timeout: float = COMMAND_TIMEOUT,
             ) -> subprocess.CompletedProcess[str]:
        try:
            return subprocess.run(list(args), capture_output=True, text=True, timeout=timeout,
                                  umask=0o022,  # post-install creates the queue's folders
                                  env=self._environment(), check=False, stdin=subprocess.DEVNULL)
        except subprocess.TimeoutExpired as error:
            raise LabError(f"{' '.join(args)} did not finish within {timeout:g} s"
                           f"{self._log_tail()}") from error

    def start(self) -> None:
        """Returns once both smtpd listeners answer. Ports this instance picked itself are
        picked again, once, if another process took one meanwhile (`postfix start` spends a
        second or two on its checks before the master binds them)."""
        if self.running:
            return
        self._check_prerequisites()
        for attempt in range(2):
            try:
                self._start_once()
                return
            except LabError as error:
                clash = re.search(r"bind 127\.0\.0\.1 port (\d+): Address already in use",
                                  str(error))
                picked = {port for port, requested in zip(
                    (self.smtp_port, self.reinject_port), self._requested_ports, strict=True)
                    if not requested}
                if attempt or clash is None or int(clash.group(1)) not in picked:
                    raise
                self._pick_ports()

    def _check_prerequisites(self) -> None:
        if os.geteuid() != 0:
            raise LabError("a private Postfix instance must be started as root "
                           "(postfix start and its daemons need it)")
        for lookup, name in ((pwd.getpwnam, MAIL_OWNER), (grp.getgrnam, SETGID_GROUP)):
            try:
                lookup(name)
            except KeyError:
                raise LabError(f"{name} does not exist: install the Debian package postfix"
                               ) from None
        _command("postfix")

    def _start_once(self) -> None:
        self.write_config()
        self._check_milter_reachable()
        try:
            result = self._run(_command("postfix"), "-c", str(self.config_dir), "start",
                               timeout=START_TIMEOUT)
            self._group = self._master_group()
            if result.returncode != 0 or self._group is None:
                output = (result.stdout + result.stderr).strip()
                raise LabError(f"postfix start failed (exit {result.returncode})"
                               f"{': ' + output if output else ''}{self._log_tail()}")
            deadline = time.monotonic() + READY_TIMEOUT
            for port in (self.smtp_port, self.reinject_port):
                self._wait_for_greeting(port, deadline)
        except BaseException:
            self.stop()
            raise

    def _wait_for_greeting(self, port: int, deadline: float) -> None:
        while (problem := greeting_problem(port, deadline)) is not None:
            if time.monotonic() >= deadline:
                raise LabError(f"Postfix's smtpd on 127.0.0.1:{port} did not answer within "
                               f"{READY_TIMEOUT:g} s ({problem}){self._log_tail()}")
            time.sleep(0.1)

    def _master_group(self) -> ProcessGroup | None:
        try:
            text = (self.queue_dir / "pid" / "master.pid").read_text().strip()
        except (FileNotFoundError, PermissionError):
            return None
        if not text.isdigit():
            return None
        return ProcessGroup.of_leader(int(text))

    def processes(self) -> list[int]:
        """The instance's live processes: the master and every daemon it started."""
        return self._group.members() if self._group is not None else []

    @property
    def running(self) -> bool:
        return bool(self.processes())

    def stop(self) -> None:
        """Orderly stop, then SIGKILL to whatever is left of the instance's process group;
        returns only when no process of the instance runs (bounded by STOP_TIMEOUT)."""
        group = self._group = self._group or self._master_group()
        if group is None:
            return
        deadline = time.monotonic() + STOP_TIMEOUT
        if group.members():
            with contextlib.suppress(LabError):
                self._run(_command("postfix"), "-c", str(self.config_dir), "stop",
                          timeout=STOP_TIMEOUT / 2)
        if not group.wait_for_exit(min(5.0, deadline - time.monotonic())):
            group.kill()
            if not group.wait_for_exit(max(1.0, deadline - time.monotonic())):
                raise LabError(f"Postfix processes {group.members()} of {self.root} "
                               "survived SIGKILL")
        # Exited daemons stay zombies until init reaps them (well under a second here);
        # waiting a little keeps `pgrep master` clean right after a test run.
        group.wait_for_exit(2.0, zombies=True)

    def use_milter(self, milter: str | None) -> None:
        """Point the running instance at another milter (or none): main.cf is rewritten and
        Postfix reloaded; smtpd processes started from now on use it."""
        self.milter = milter
        self.write_config()
        self._check_milter_reachable()
        result = self._run(_command("postfix"), "-c", str(self.config_dir), "reload")
        if result.returncode != 0:
            raise LabError(f"postfix reload failed: {(result.stdout + result.stderr).strip()}")

    def __enter__(self) -> PrivatePostfix:
        self.start()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 traceback: TracebackType | None) -> None:
        self.stop()

    # -- queue and log ------------------------------------------------------------------

    def queue_ids(self) -> list[str]:
        """Queue ids of every message still in the queue (incoming, active, deferred, hold)."""
        result = self._run(_command("postqueue"), "-c", str(self.config_dir), "-j")
        if result.returncode != 0:
            raise LabError(f"postqueue -j failed (exit {result.returncode}): "
                           f"{result.stderr.strip()}{self._log_tail()}")
        return [json.loads(line)["queue_id"] for line in result.stdout.splitlines()
                if line.strip()]

    def flush(self) -> None:
        """Retry every deferred message now instead of at the next queue run."""
        result = self._run(_command("postqueue"), "-c", str(self.config_dir), "-f")
        if result.returncode != 0:
            raise LabError(f"postqueue -f failed (exit {result.returncode}): "
                           f"{result.stderr.strip()}")

    def wait_until_queue_empty(self, timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        while True:
            remaining = self.queue_ids()
            if not remaining:
                return
            if time.monotonic() >= deadline:
                raise TimeoutError(f"{len(remaining)} message(s) still in the queue of "
                                   f"{self.root} after {timeout:g} s: {', '.join(remaining)}"
                                   f"{self._log_tail()}")
            time.sleep(0.1)

    def log_text(self) -> str:
        """Everything Postfix logged (maillog_file, written by postlogd)."""
        return text_of(self.maillog)

    def _log_tail(self) -> str:
        return tail_of(self.maillog, LOG_TAIL_LINES)

    # -- sending ------------------------------------------------------------------------

    def send(self, mail_from: str, rcpt_tos: Sequence[str] | str, data: bytes,
             port: int | None = None, timeout: float = 30) -> dict[str, tuple[int, bytes]]:
        """One SMTP transaction to 127.0.0.1:`port` (default: the milter-running smtpd).

        smtplib's exceptions propagate unchanged (SMTPSenderRefused, SMTPDataError, ... all
        carry `smtp_code`), so a test can assert on a 4xx or 5xx. Returns the recipients
        refused while others were accepted (empty when all were). BODY=8BITMIME and SMTPUTF8
        are asked for when the data or the addresses need them."""
        recipients = [rcpt_tos] if isinstance(rcpt_tos, str) else list(rcpt_tos)
        return smtp.send("127.0.0.1", port or self.smtp_port, mail_from, recipients, data,
                         timeout, local_hostname=CLIENT_HOSTNAME)
