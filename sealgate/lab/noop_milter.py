"""A milter that changes nothing: the baseline a benchmark compares Sealgate's milter with,
and a live milter for lab tests.

    python -m sealgate.lab.noop_milter unix:/path/to/socket    (or inet:127.0.0.1:PORT)

It answers every event (no `noreply`, no skipped callbacks) and asks for no modification
actions (flags 0), so what it costs is the milter protocol round trips and nothing else.
libmilter keeps global state, so one process runs one milter: tests start it as a subprocess
with `running()`.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import Milter

CONTINUE: int = Milter.CONTINUE
ACCEPT: int = Milter.ACCEPT
NAME = "sealgate-noop"
READY_TIMEOUT = 15.0
GRACE_PERIOD = 1.0
STOP_TIMEOUT = 10.0


class NoopMilter(Milter.Base):  # type: ignore[misc]
    """Overriding every optional callback undecorated makes pymilter negotiate all of them,
    each with a reply."""

    def negotiate(self, opts: list[int]) -> int:
        result: int = super().negotiate(opts)
        opts[0] = self._actions = 0  # no header, body or recipient changes requested
        return result

    def connect(self, hostname: str, family: int, hostaddr: Any) -> int:
        return CONTINUE

    def hello(self, hostname: str) -> int:
        return CONTINUE

    def envfrom(self, mail_from: str, *params: str) -> int:
        return CONTINUE

    def envrcpt(self, recipient: str, *params: str) -> int:
        return CONTINUE

    def data(self) -> int:
        return CONTINUE

    def header(self, name: str, value: str) -> int:
        return CONTINUE

    def eoh(self) -> int:
        return CONTINUE

    def body(self, chunk: bytes) -> int:
        return CONTINUE

    def unknown(self, command: str) -> int:
        return CONTINUE

    def eom(self) -> int:
        return ACCEPT

    def abort(self) -> int:
        return CONTINUE

    def close(self) -> int:
        return CONTINUE


def libmilter_address(address: str) -> str:
    """Postfix writes inet:HOST:PORT, libmilter wants inet:PORT@HOST; unix: is the same."""
    if address.startswith("inet:") and "@" not in address:
        host, _, port = address.removeprefix("inet:").rpartition(":")
        return f"inet:{port}@{host or '127.0.0.1'}"
    return address


def main(socket_address: str, timeout: int = 600) -> None:
    """Serve until SIGTERM or SIGINT (libmilter's own signal handling ends the loop)."""
    # Postfix connects as its own user: the unix socket must be writable by it.
    os.umask(0o111)
    Milter.factory = NoopMilter
    Milter.set_flags(0)
    Milter.runmilter(NAME, libmilter_address(socket_address), timeout)


def wait_until_listening(address: str, timeout: float = READY_TIMEOUT,
                         process: subprocess.Popen[bytes] | None = None) -> None:
    """Returns once a connection to the milter address succeeds (Postfix-style address)."""
    deadline = time.monotonic() + timeout
    problem = "no answer"
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise RuntimeError(f"the milter for {address} exited with {process.returncode}")
        try:
            with _connect(address):
                return
        except OSError as error:
            problem = str(error)
        time.sleep(0.05)
    raise TimeoutError(f"no milter answered on {address} within {timeout:g} s ({problem})")


def _connect(address: str) -> socket.socket:
    if address.startswith(("unix:", "local:")):
        client = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        target: Any = address.split(":", 1)[1]
    elif address.startswith("inet:"):
        client = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        host, _, port = address.removeprefix("inet:").rpartition(":")
        target = (host or "127.0.0.1", int(port))
    else:
        raise ValueError(f"milter address {address!r} is neither unix:PATH nor inet:HOST:PORT")
    client.settimeout(2)
    try:
        client.connect(target)
    except OSError:
        client.close()
        raise
    return client


@contextlib.contextmanager
def running(address: str, timeout: float = READY_TIMEOUT) -> Iterator[subprocess.Popen[bytes]]:
    """The no-op milter in a process of its own, listening on `address` (Postfix-style)
    until the block ends. It is always stopped: SIGTERM, then SIGKILL after a second, since
    libmilter looks at its stop flag only every 5 s and this milter has no state to lose."""
    process = subprocess.Popen([sys.executable, "-m", "sealgate.lab.noop_milter", address],
                               stdin=subprocess.DEVNULL)
    try:
        wait_until_listening(address, timeout, process)
        yield process
    finally:
        process.terminate()
        try:
            process.wait(GRACE_PERIOD)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(STOP_TIMEOUT)
        if address.startswith(("unix:", "local:")):  # libmilter leaves its socket behind
            Path(address.split(":", 1)[1]).unlink(missing_ok=True)


def _cli(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m sealgate.lab.noop_milter", description=__doc__.splitlines()[0]
        if __doc__ else None)
    parser.add_argument("socket", help="unix:/path/to/socket or inet:127.0.0.1:PORT")
    parser.add_argument("--timeout", type=int, default=600,
                        help="seconds libmilter waits on a silent MTA (default 600)")
    arguments = parser.parse_args(argv)
    main(arguments.socket, arguments.timeout)


if __name__ == "__main__":
    _cli()
