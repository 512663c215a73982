"""The real server under gunicorn, and `sealgate run` with both components."""

from __future__ import annotations

import base64
import json
import os
import shutil
import signal
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from sealgate import config
from sealgate.lab.host import free_port, free_ports
from tests.integration.helpers import get, sealgate, serving, start, stop, wait_until_up


@pytest.fixture
def server(home: Path) -> Iterator[str]:
    with serving(home) as base:
        yield base


def test_healthz_reports_database_and_keyring(server: str) -> None:
    status, headers, body = get(f"{server}/healthz")
    assert status == 200
    assert json.loads(body) == {"status": "ok", "database": "ok", "keyring": "ok"}
    assert headers["Content-Type"] == "application/json"


def test_healthz_fails_when_the_keyring_goes_bad(server: str, home: Path) -> None:
    os.chmod(home / "keyring.json", 0o644)
    status, _, body = get(f"{server}/healthz")
    assert status == 503
    assert json.loads(body) == {"status": "error", "database": "ok", "keyring": "error"}


def test_api_errors_are_json(server: str) -> None:
    status, headers, body = get(f"{server}/api/v1/no-such-thing")
    assert status == 404 and headers["Content-Type"] == "application/json"
    assert json.loads(body)["error"] == "not_found"
    status, _, body = get(f"{server}/api/v1/")
    assert status == 200 and json.loads(body)["service"] == "sealgate"


def test_pages_carry_security_headers(server: str) -> None:
    status, headers, body = get(f"{server}/")
    assert status == 200 and b"Example Organisation" in body
    assert "default-src 'self'" in headers["Content-Security-Policy"]
    assert "frame-ancestors 'none'" in headers["Content-Security-Policy"]
    assert headers["X-Content-Type-Options"] == "nosniff"
    assert headers["Referrer-Policy"] == "no-referrer"
    status, headers, body = get(f"{server}/nope")
    assert status == 404 and headers["Content-Type"].startswith("text/html")
    assert b"Not Found" in body and b"Traceback" not in body


def test_serve_refuses_to_start_on_a_bad_keyring(home: Path) -> None:
    os.chmod(home / "keyring.json", 0o640)
    process = start(home, "serve", free_port())
    output, _ = process.communicate(timeout=60)
    assert process.returncode == 1
    assert output.strip() == (
        f"sealgate: error: keyring {home / 'keyring.json'} has mode 0640; it must be readable "
        f"by its owner only (chmod 600 {home / 'keyring.json'})")


def test_run_starts_server_and_milter_and_ctrl_c_stops_both(home: Path) -> None:
    port = free_port()
    process = start(home, "run", port)
    wait_until_up(process, f"http://127.0.0.1:{port}/healthz")
    assert get(f"http://127.0.0.1:{port}/healthz")[0] == 200
    output = stop(process, signal.SIGINT)
    assert process.returncode == 0, output
    assert "portal    http://127.0.0.1:8025/" in output
    assert "smtpd_milters = unix:" in output and "milter_default_action = tempfail" in output
    assert "Traceback" not in output
    with pytest.raises(OSError):
        get(f"http://127.0.0.1:{port}/healthz")


def test_run_with_the_lab_delivers_a_notification_whose_link_opens() -> None:
    """The newcomer's path of the README: run --lab, lab send, look at the .eml, open it."""
    scratch = Path(tempfile.mkdtemp(prefix="sg-"))  # short: a unix socket path has 107 bytes
    home = scratch / "home"
    assert sealgate(home, "init").returncode == 0
    port, lab_port, reinject = free_ports(3)
    environ = {"SEALGATE_MILTER__REINJECT": f"127.0.0.1:{reinject}",
               "SEALGATE_SERVER__BASE_URL": f"http://127.0.0.1:{port}"}
    process = start(home, "run", port, "--lab", "--lab-port", str(lab_port), **environ)
    try:
        wait_until_up(process, f"http://127.0.0.1:{port}/healthz")
        deadline = time.monotonic() + 60
        while True:  # Postfix and the milter come up after the server: 4xx until then
            sent = sealgate(home, "lab", "send", "--port", str(lab_port))
            if sent.returncode == 0:
                break
            assert process.poll() is None, stop(process)
            assert time.monotonic() < deadline, sent.stderr
            time.sleep(0.5)
        delivered = home / "lab" / "delivered"
        deadline = time.monotonic() + 30
        notifications: list[bytes] = []
        while time.monotonic() < deadline and not notifications:
            # The sender's "sent securely" notice arrives there too.
            notifications = [data for data in (p.read_bytes() for p in delivered.glob("*.eml"))
                             if b"X-Sealgate-Message-Id:" in data]
            time.sleep(0.2)
        (data,) = notifications
        assert b"PDF-1.4" not in data and b"results look normal" not in data
        link = next(line for line in data.decode().splitlines() if line.startswith("http"))
        status, _, page = get(link.strip())
        assert status == 200 and b"has sent you a secure message" in page
    finally:
        output = stop(process, signal.SIGINT)
    assert process.returncode == 0, output
    assert f"lab       Postfix on 127.0.0.1:{lab_port}" in output
    shutil.rmtree(scratch)


def test_a_milter_socket_path_too_long_is_a_clear_error(home: Path) -> None:
    long_path = home / ("x" * 120) / "milter.sock"
    result = sealgate(home, "milter", env={"SEALGATE_MILTER__LISTEN": f"unix:{long_path}"})
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert "is longer than the 107 bytes a unix socket may have" in result.stderr


def _deposit(base: str, secret: str) -> str:
    message = (b"From: who@example.org\r\nTo: patient@gmail.test\r\nSubject: results\r\n"
               b"Message-ID: <m1@example.org>\r\n\r\nYour results are normal.\r\n")
    request = urllib.request.Request(
        f"{base}/api/v1/internal/deposits", method="POST",
        data=json.dumps({"mail_from": "who@example.org", "recipients": ["patient@gmail.test"],
                         "subject": "results",
                         "message": base64.b64encode(message).decode()}).encode(),
        headers={"Authorization": f"Bearer {secret}", "Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=10) as response:
        answer: str = json.loads(response.read())["message_id"]
        return answer


def _deposits_counted(base: str) -> float:
    status, _, body = get(f"{base}/metrics")
    assert status == 200, body
    for family in text_string_to_metric_families(body.decode()):
        for sample in family.samples:
            if sample.name == "sealgate_deposits_total":
                return sample.value
    raise AssertionError(f"no sealgate_deposits_total in {body.decode()}")


def _counting_pids(home: Path) -> set[str]:
    return {path.stem.rpartition("_")[2] for path in (home / "metrics").glob("counter_*.db")}


def test_metrics_add_up_the_workers_including_replaced_ones(home: Path) -> None:
    """gunicorn's workers each count on their own; /metrics must show the sum, also of workers
    a reload (SIGHUP) replaced. And the server's log lines are JSON carrying the deposit id."""
    secret = config.load(home, {}).internal_api.secret
    port = free_port()
    process = start(home, "serve", port, SEALGATE_LOGGING__FORMAT="json")
    base = f"http://127.0.0.1:{port}"
    try:
        wait_until_up(process, f"{base}/healthz")
        first = _deposit(base, secret)
        _deposit(base, secret)
        before = _counting_pids(home)
        assert before and _deposits_counted(base) == 2
        os.kill(process.pid, signal.SIGHUP)  # new workers; the old ones leave
        made = 2
        deadline = time.monotonic() + 30
        while not _counting_pids(home) - before:
            assert time.monotonic() < deadline, "no new worker counted a deposit"
            _deposit(base, secret)
            made += 1
            time.sleep(0.2)
        for _ in range(5):  # whichever worker answers
            assert _deposits_counted(base) == made
    finally:
        output = stop(process)
    routed = [json.loads(line) for line in output.splitlines() if "routed a message" in line]
    assert routed and routed[0]["message_id"] == first, output
    assert routed[0]["logger"] == "sealgate.server.api.internal"
