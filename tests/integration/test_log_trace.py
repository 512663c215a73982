"""One message followed through the logs, on the real Postfix with JSON logs: the milter's
lines for it and the server's lines for the calls it made carry the same trace id, and the
server's line that names the secure message id joins it to the portal's lines (which carry
that id: tests/portal/test_observability.py)."""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.integration.messages import compose
from tests.integration.test_milter import Gateway


@pytest.fixture(scope="module")
def gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    started = Gateway(tmp_path_factory.mktemp("trace"),
                      env={"SEALGATE_LOGGING__FORMAT": "json"})
    yield started
    started.close()


def _lines(path: Path) -> list[dict[str, str]]:
    found = []
    for line in path.read_text(errors="replace").splitlines():
        try:
            parsed = json.loads(line)
        except ValueError:
            continue  # gunicorn's own lines before logging is set up
        if isinstance(parsed, dict):
            found.append(parsed)
    return found


def test_a_protected_message_carries_one_id_from_milter_to_server(gateway: Gateway) -> None:
    gateway.send(compose("encrypt/ Scan results"), ["patient@gmail.test"])
    gateway.sink.wait_for(1)
    deadline = time.monotonic() + 10
    while True:
        protected = [line for line in _lines(gateway.home.parent / "milter.log")
                     if line["message"].startswith("protected message")]
        if protected or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    assert len(protected) == 1, gateway.log("milter")
    trace = protected[0]["message_id"]
    assert re.fullmatch(r"[0-9a-f]{32}", trace)
    deposit = re.search(r"deposit ([0-9a-f-]{36})", protected[0]["message"])
    assert deposit, protected[0]
    server = _lines(gateway.home.parent / "serve.log")
    joined = [line for line in server if line.get("message_id") == trace]
    assert [line["message"] for line in joined] == [f"deposited as message {deposit[1]}"]
    after = [line for line in server if line.get("message_id") == deposit[1]]
    assert any(line["message"].startswith("routed a message") for line in after)
