"""What the lab's daemons share on this host: free loopback ports, the SMTP greeting they
are ready with, their process groups, and their logs."""

from __future__ import annotations

import contextlib
import os
import re
import signal
import socket
import subprocess
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path


def free_ports(count: int, exclude: Sequence[int] = ()) -> list[int]:
    """Distinct loopback ports that nothing listens on right now (all held open while
    choosing, so the kernel cannot hand out the same one twice)."""
    held: list[socket.socket] = []
    ports: list[int] = []
    try:
        while len(ports) < count:
            probe = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            held.append(probe)
            probe.bind(("127.0.0.1", 0))
            port = int(probe.getsockname()[1])
            if port not in exclude:
                ports.append(port)
    finally:
        for probe in held:
            probe.close()
    return ports


def free_port(exclude: Sequence[int] = ()) -> int:
    """A loopback port nothing listens on right now (not one of `exclude`)."""
    return free_ports(1, exclude)[0]


def greeting_problem(port: int, deadline: float) -> str | None:
    """None once an SMTP server greets on 127.0.0.1:`port` (any reply code counts: with a
    dead milter and tempfail a server may greet with 4xx), else what went wrong."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=2) as connection:
            connection.settimeout(max(0.5, min(5.0, deadline - time.monotonic())))
            greeting = connection.recv(512)
            if re.match(rb"\d{3}[ -]", greeting):
                with contextlib.suppress(OSError):
                    connection.sendall(b"QUIT\r\n")
                    connection.recv(512)
                return None
            return f"unexpected greeting {greeting[:80]!r}"
    except OSError as error:
        return str(error)


def text_of(path: Path) -> str:
    """A log file's text; empty while the program has not written it yet."""
    try:
        return path.read_text(errors="replace")
    except FileNotFoundError:
        return ""


def tail_of(path: Path, lines: int) -> str:
    """The last lines of a log, for error messages that say why something did not start."""
    last = text_of(path).splitlines()[-lines:]
    if not last:
        return f"\n(nothing in {path})"
    return f"\nlast lines of {path}:\n" + "\n".join(last)


@dataclass(frozen=True)
class ProcessGroup:
    """A daemon that ran setsid() and the processes it started: the leader's pid is the
    group id, and its start time tells our leader from a later process with its pid."""

    leader: int
    started: int

    @classmethod
    def of_leader(cls, pid: int) -> ProcessGroup | None:
        entry = _proc_stat(pid)
        if entry is None or entry[1] != pid or entry[0] in (b"Z", b"X"):
            return None
        return cls(pid, entry[2])

    def members(self, zombies: bool = False) -> list[int]:
        """Live members (zombies awaiting init's reaping count only when asked for)."""
        leader = _proc_stat(self.leader)
        if leader is not None and leader[2] != self.started:
            return []  # the pid was reused: nothing of ours can still be in that group
        members = []
        for entry in os.scandir("/proc"):
            if entry.name.isdigit():
                found = _proc_stat(int(entry.name))
                if found is not None and found[1] == self.leader and (
                        zombies or found[0] not in (b"Z", b"X")):
                    members.append(int(entry.name))
        return members

    def wait_for_exit(self, timeout: float, zombies: bool = False) -> bool:
        deadline = time.monotonic() + timeout
        while self.members(zombies):
            if time.monotonic() >= deadline:
                return False
            time.sleep(0.05)
        return True

    def kill(self) -> None:
        if self.members():
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.leader, signal.SIGKILL)


def _proc_stat(pid: int) -> tuple[bytes, int, int] | None:
    """State, process group and start time of a process, from /proc/PID/stat."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as file:
            fields = file.read().rsplit(b")", 1)[1].split()
    except (FileNotFoundError, ProcessLookupError, IndexError):
        return None
    # After the command name: state(3) ppid(4) pgrp(5) ... starttime(22), 1-based in proc(5)
    return fields[0], int(fields[2]), int(fields[19])


@contextlib.contextmanager
def logged_process(command: Sequence[str], log: Path, env: dict[str, str] | None = None,
                   cwd: Path | None = None, grace: float = 20) -> Iterator[subprocess.Popen[bytes]]:
    """A helper process for a benchmark or the lab, its output appended to `log`; stopped
    (SIGTERM, then SIGKILL after `grace` seconds) when the block ends."""
    with log.open("ab") as output:
        started = subprocess.Popen(list(command), stdout=output, stderr=output, env=env,
                                   cwd=cwd, stdin=subprocess.DEVNULL)
    try:
        yield started
    finally:
        started.terminate()
        try:
            started.wait(grace)
        except subprocess.TimeoutExpired:
            started.kill()
            started.wait()
