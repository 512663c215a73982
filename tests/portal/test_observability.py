"""/metrics, /readyz and the message id in the server's log lines, through Flask's test client,
on SQLite and PostgreSQL."""

from __future__ import annotations

import base64
import io
import json
import logging
from collections.abc import Iterator
from pathlib import Path

import pytest
from flask.testing import FlaskClient
from prometheus_client.parser import text_string_to_metric_families

from sealgate import logs
from sealgate.config import Config
from sealgate.lab.sink import SmtpSink
from sealgate.server.app import create_app
from sealgate.vault.vault import Vault
from tests.portal.conftest import (
    PATIENT,
    SENDER,
    csrf,
    deposit,
    original,
    sign_in_with_code,
)


def scrape(client: FlaskClient) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    response = client.get("/metrics")
    assert response.status_code == 200, response.data
    assert response.content_type.startswith("text/plain; version=")
    found = {}
    for family in text_string_to_metric_families(response.get_data(as_text=True)):
        for sample in family.samples:
            found[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return found


def deposit_over_api(client: FlaskClient, config: Config,
                     trace: str | None = None) -> dict[str, object]:
    response = client.post("/api/v1/internal/deposits", json={
        "mail_from": SENDER, "recipients": [PATIENT], "subject": "Lab results",
        "message": base64.b64encode(original()).decode()},
        headers={"Authorization": f"Bearer {config.internal_api.secret}",
                 **({logs.TRACE_HEADER: trace} if trace is not None else {})})
    assert response.status_code == 201, response.json
    answer: dict[str, object] = response.json  # type: ignore[assignment]
    return answer


DEPOSITS = ("sealgate_deposits_total", ())
PORTAL = ("sealgate_delivery_methods_total", (("method", "portal"),))
FAILED = ("sealgate_portal_logins_total", (("result", "failed"),))
OPENS = ("sealgate_portal_opens_total", ())


def test_metrics_count_a_deposit_and_its_delivery_method(client: FlaskClient,
                                                         config: Config) -> None:
    before = scrape(client)
    deposit_over_api(client, config)
    after = scrape(client)
    assert after[DEPOSITS] == before[DEPOSITS] + 1
    assert after[PORTAL] == before[PORTAL] + 1


def test_metrics_count_a_failed_sign_in(client: FlaskClient) -> None:
    before = scrape(client)
    page = client.get("/signin/password")
    wrong = client.post("/signin/password", data={
        "csrf_token": csrf(page.data), "address": PATIENT, "password": "not-the-password"})
    assert b"is wrong" in wrong.data
    after = scrape(client)
    assert after[FAILED] == before[FAILED] + 1
    ok = ("sealgate_portal_logins_total", (("result", "ok"),))
    assert after[ok] == before[ok]


def test_metrics_count_5xx_errors(config: Config, vault: Vault) -> None:
    """The internal API answers 503 while it has no secret: an operator's error, counted."""
    off = config.model_copy(update={
        "internal_api": config.internal_api.model_copy(update={"secret": ""})})
    client = create_app(off, vault).test_client()
    key = ("sealgate_errors_total", (("component", "server"), ("kind", "http_503")))
    before = scrape(client).get(key, 0)
    assert client.post("/api/v1/internal/deposits", json={}).status_code == 503
    assert scrape(client)[key] == before + 1


def test_metrics_count_a_recipient_opening_a_message(client: FlaskClient, vault: Vault,
                                                     config: Config, sink: SmtpSink) -> None:
    message_id = deposit(vault, config)
    sign_in_with_code(client, sink, PATIENT)
    before = scrape(client)
    assert client.get(f"/m/{message_id}").status_code == 200
    assert client.get(f"/m/{message_id}").status_code == 200
    after = scrape(client)
    assert after[OPENS] == before[OPENS] + 2
    ok = ("sealgate_portal_logins_total", (("result", "ok"),))
    assert after[ok] >= 1


@pytest.mark.parametrize("remote", ["10.0.0.7", "192.168.1.20", "2001:db8::5"])
def test_metrics_are_not_there_for_other_addresses(client: FlaskClient, remote: str) -> None:
    response = client.get("/metrics", environ_base={"REMOTE_ADDR": remote})
    assert response.status_code == 404
    assert b"sealgate_" not in response.data


def test_metrics_are_not_there_through_an_untrusted_proxy(client: FlaskClient) -> None:
    response = client.get("/metrics", headers={"X-Forwarded-For": "203.0.113.9"})
    assert response.status_code == 404


def test_metrics_from_ipv6_loopback(client: FlaskClient) -> None:
    assert client.get("/metrics", environ_base={"REMOTE_ADDR": "::1"}).status_code == 200


def test_ready_when_database_keyring_and_blobs_work(client: FlaskClient) -> None:
    response = client.get("/readyz")
    assert response.status_code == 200
    assert response.json == {"status": "ready", "failed": []}


@pytest.fixture
def unwritable_blobs(config: Config, tmp_path: Path) -> Iterator[FlaskClient]:
    """The blob directory below a regular file: nobody, root included, can make it."""
    blocker = tmp_path / "not-a-directory"
    blocker.write_text("a file")
    moved = config.model_copy(update={
        "vault": config.vault.model_copy(update={"blob_dir": str(blocker / "blobs")})})
    opened = Vault.open(moved)
    try:
        yield create_app(moved, opened).test_client()
    finally:
        opened.close()


def test_not_ready_when_the_blob_directory_cannot_be_written(
        unwritable_blobs: FlaskClient) -> None:
    response = unwritable_blobs.get("/readyz")
    assert response.status_code == 503
    assert response.json == {"status": "not_ready", "failed": ["blobs"]}
    assert unwritable_blobs.get("/healthz").status_code == 200  # alive, only not ready


def test_not_ready_without_the_keyring(client: FlaskClient, config: Config) -> None:
    config.keyring_path.unlink()
    response = client.get("/readyz")
    assert response.status_code == 503
    assert response.json == {"status": "not_ready", "failed": ["keyring"]}


@pytest.fixture
def json_lines() -> Iterator[io.StringIO]:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(logs.JsonFormatter())
    logger = logging.getLogger("sealgate")
    level = logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    yield stream
    logger.removeHandler(handler)
    logger.setLevel(level)


def test_a_deposit_labels_its_log_lines_with_its_id(client: FlaskClient, config: Config,
                                                    json_lines: io.StringIO) -> None:
    answer = deposit_over_api(client, config)
    lines = [json.loads(line) for line in json_lines.getvalue().splitlines()]
    routed = [line for line in lines if line["message"].startswith("routed a message")]
    assert len(routed) == 1
    assert routed[0]["message_id"] == answer["message_id"]
    assert routed[0]["logger"] == "sealgate.server.api.internal"


def test_the_milters_trace_id_labels_the_deposit_until_its_message_id_is_known(
        client: FlaskClient, config: Config, json_lines: io.StringIO) -> None:
    trace = "0123456789abcdef0123456789abcdef"
    answer = deposit_over_api(client, config, trace)
    lines = [json.loads(line) for line in json_lines.getvalue().splitlines()]
    deposited = [line for line in lines if line["message"].startswith("deposited as message")]
    assert len(deposited) == 1
    assert deposited[0]["message_id"] == trace
    assert deposited[0]["message"] == f"deposited as message {answer['message_id']}"
    routed = [line for line in lines if line["message"].startswith("routed a message")]
    assert routed[0]["message_id"] == answer["message_id"]
    # Anything but a trace id as the milter makes them is not taken as one.
    json_lines.truncate(0)
    json_lines.seek(0)
    deposit_over_api(client, config, "<script>")
    lines = [json.loads(line) for line in json_lines.getvalue().splitlines()]
    deposited = [line for line in lines if line["message"].startswith("deposited as message")]
    assert "message_id" not in deposited[0]


def test_the_next_request_does_not_inherit_the_message_id(
        client: FlaskClient, config: Config, json_lines: io.StringIO) -> None:
    deposit_over_api(client, config)
    page = client.get("/signin/password")
    client.post("/signin/password", data={
        "csrf_token": csrf(page.data), "address": PATIENT, "password": "wrong-password"})
    lines = [json.loads(line) for line in json_lines.getvalue().splitlines()]
    failed = [line for line in lines if line["message"].startswith("portal sign-in failed")]
    assert len(failed) == 1 and "message_id" not in failed[0]


def test_a_message_page_labels_its_log_lines(client: FlaskClient, vault: Vault,
                                             config: Config, json_lines: io.StringIO) -> None:
    """Whatever is logged while a page under /m/<id> is served is about that message."""
    message_id = deposit(vault, config)
    app = client.application
    with app.test_request_context(f"/m/{message_id}"):
        app.preprocess_request()
        logging.getLogger("sealgate.test").info("reading")
    with app.test_request_context("/messages"):
        app.preprocess_request()
        logging.getLogger("sealgate.test").info("the centre")
    lines = {line["message"]: line for line in map(json.loads, json_lines.getvalue().splitlines())}
    assert lines["reading"]["message_id"] == message_id
    assert "message_id" not in lines["the centre"]
