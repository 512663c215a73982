from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

from sealgate.lab.host import free_port


def sealgate(home: Path, *args: str, env: dict[str, str] | None = None,
             timeout: float = 60) -> subprocess.CompletedProcess[str]:
    """The installed command in a process of its own, as an operator would run it."""
    environ = {k: v for k, v in os.environ.items() if not k.startswith("SEALGATE_")}
    environ.update(env or {})
    return subprocess.run([sys.executable, "-m", "sealgate", "--home", str(home), *args],
                          capture_output=True, text=True, env=environ, timeout=timeout,
                          check=False)


def start(home: Path, command: str, port: int, *args: str,
          **overrides: str) -> subprocess.Popen[str]:
    """`sealgate COMMAND` in the background, in a session of its own, listening on `port`."""
    environ = {k: v for k, v in os.environ.items() if not k.startswith("SEALGATE_")}
    environ["SEALGATE_SERVER__LISTEN"] = f"127.0.0.1:{port}"
    environ.update(overrides)
    return subprocess.Popen([sys.executable, "-m", "sealgate", "--home", str(home), command,
                             *args],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            env=environ, start_new_session=True)


def get(url: str) -> tuple[int, dict[str, str], bytes]:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return response.status, dict(response.headers), response.read()
    except urllib.error.HTTPError as error:
        return error.code, dict(error.headers), error.read()


def wait_until_up(process: subprocess.Popen[str], url: str, seconds: float = 30) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(f"exited {process.returncode}: {process.stdout.read()}")  # type: ignore[union-attr]
        try:
            get(url)
            return
        except OSError:
            time.sleep(0.2)
    raise AssertionError(f"{url} did not answer within {seconds}s")


def stop(process: subprocess.Popen[str], sig: int = signal.SIGTERM) -> str:
    if process.poll() is None:
        os.killpg(process.pid, sig)
    try:
        output, _ = process.communicate(timeout=30)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        output, _ = process.communicate()
    return output


@contextlib.contextmanager
def serving(home: Path, **overrides: str) -> Iterator[str]:
    """`sealgate serve` (the server under gunicorn) on a free port, up; yields its base URL.
    A test module's `server` fixture is `with serving(home) as base: yield base`."""
    port = free_port()
    process = start(home, "serve", port, **overrides)
    base = f"http://127.0.0.1:{port}"
    try:
        wait_until_up(process, f"{base}/healthz")
        yield base
    finally:
        stop(process)
