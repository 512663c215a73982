"""The settings the milter runs: the internal endpoint it polls, and its reloads against the
real server (the app served on loopback), on SQLite and PostgreSQL. A new revision is
swapped in whole while a message under way keeps the rules it started with; a revision, a
file or a server the milter cannot use leaves the running rules as they were."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from flask.testing import FlaskClient
from werkzeug.serving import BaseWSGIServer, make_server

from sealgate import config
from sealgate.config import Config
from sealgate.lab.host import free_ports
from sealgate.metrics import metrics
from sealgate.milter.daemon import CONTINUE, Gateway, SealgateMilter, SettingsUnknown
from sealgate.server.app import create_app
from sealgate.vault import settings as stored
from sealgate.vault.models import SettingsRevision
from sealgate.vault.vault import Vault

KEYWORDS = {"milter": {"subject_keywords": ["encrypt/", "private/"]}}


def _save(vault: Vault, overlay: dict[str, Any]) -> int:
    return stored.save(vault, "admin@example.org", overlay, stored.latest_revision(vault), {})


def _store_unchecked(vault: Vault, overlay: dict[str, Any]) -> int:
    """A row the console would refuse, written anyway (a file edited since, a bug)."""
    with vault.database.writing() as session:
        session.add(SettingsRevision(actor="test", overlay=overlay,
                                     parent=stored.latest_revision(vault)))
    return stored.latest_revision(vault)


def _reload_errors() -> float:
    return metrics().registry.get_sample_value(
        "sealgate_errors_total", {"component": "milter", "kind": "reload"}) or 0.0


def _running_gauge() -> float | None:
    return metrics().registry.get_sample_value("sealgate_settings_revision")


# -- the endpoint ------------------------------------------------------------------------------

@pytest.fixture
def client(settings: Config, vault: Vault) -> FlaskClient:
    return create_app(settings, vault).test_client()


def _get(client: FlaskClient, settings: Config, query: str = "",
         secret: str | None = None) -> tuple[int, object]:
    answer = client.get(f"/api/v1/internal/settings{query}", headers={
        "Authorization": f"Bearer {settings.internal_api.secret if secret is None else secret}"})
    return answer.status_code, answer.json


def test_the_endpoint_gives_the_newest_revision_and_its_overlay(
        client: FlaskClient, settings: Config, vault: Vault) -> None:
    assert _get(client, settings) == (200, {"revision": 0, "overlay": {}})
    assert _get(client, settings, "?have=0") == (200, {"revision": 0})
    first = _save(vault, KEYWORDS)
    second = _save(vault, {**KEYWORDS, "organisation": {"name": "Example Clinic"}})
    assert _get(client, settings, f"?have={first}") == (200, {"revision": second, "overlay": {
        **KEYWORDS, "organisation": {"name": "Example Clinic"}}})
    assert _get(client, settings, f"?have={second}") == (200, {"revision": second})


def test_the_endpoint_wants_the_secret_and_a_revision_number(
        client: FlaskClient, settings: Config) -> None:
    status, _ = _get(client, settings, secret="not-the-secret")
    assert status == 401
    for wrong in ("?have=x", "?have=-1", "?have=1.5", "?have=%D9%A3"):
        status, answer = _get(client, settings, wrong)
        assert status == 400, wrong
        assert "'have' must be a settings revision number" in str(answer)


# -- the milter's reloads ----------------------------------------------------------------------

class Served:
    """The server app on a loopback port, for the milter's client to reach."""

    def __init__(self, settings: Config, vault: Vault, port: int) -> None:
        self.server: BaseWSGIServer = make_server("127.0.0.1", port,
                                                  create_app(settings, vault), threaded=True)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def port() -> int:
    (found,) = free_ports(1)
    return found


@pytest.fixture
def served(settings: Config, vault: Vault, port: int) -> Iterator[Served]:
    server = Served(settings, vault, port)
    yield server
    server.stop()


def _milter_environment(port: int) -> dict[str, str]:
    return {"SEALGATE_MILTER__SERVER_URL": f"http://127.0.0.1:{port}",
            "SEALGATE_MILTER__TIMEOUT": "5"}


def _gateway(home: Path, port: int) -> Gateway:
    """The milter's shared state, as `sealgate milter` makes it: from the file and the
    environment, read again by the same means on SIGHUP."""
    environ = _milter_environment(port)
    return Gateway(config.load(home, environ), lambda: config.load(home, environ))


def _started(gateway: Gateway) -> SealgateMilter:
    """A connection's milter object at MAIL FROM, which takes the running rules."""
    connection = SealgateMilter(gateway)
    assert connection.envfrom("<who@example.org>") == CONTINUE
    return connection


def test_a_new_revision_is_swapped_in_and_a_message_under_way_keeps_its_rules(
        settings: Config, vault: Vault, served: Served, port: int) -> None:
    gateway = _gateway(settings.home, port)
    under_way = _started(gateway)
    assert under_way.rules.revision == 0
    assert under_way.rules.policy.keywords == ("encrypt/", "secure/")

    revision = _save(vault, {**KEYWORDS, "organisation": {"domains": ["example.org",
                                                                      "example.net"]}})
    gateway.reload()
    assert gateway.running.revision == revision and _running_gauge() == revision
    assert under_way.rules.revision == 0  # this message finishes as it started
    assert under_way.rules.policy.keywords == ("encrypt/", "secure/")
    after = _started(gateway)
    assert after.rules.policy.keywords == ("encrypt/", "private/", "secure/")
    assert after.rules.policy.internal_domains == ("example.org", "example.net")
    assert after.rules.config.organisation.domains == ["example.org", "example.net"]
    assert _started(gateway).rules is after.rules  # nothing new: the same rules
    gateway.reload()
    assert gateway.running is after.rules


def test_a_revision_that_cannot_be_built_is_refused_once_and_the_next_good_one_runs(
        settings: Config, vault: Vault, served: Served, port: int,
        caplog: pytest.LogCaptureFixture) -> None:
    gateway = _gateway(settings.home, port)
    good = _save(vault, KEYWORDS)
    gateway.reload()
    running = gateway.running
    errors = _reload_errors()
    broken = _store_unchecked(vault, {"dlp": {"detectors": [
        {"name": "BROKEN", "pattern": "(unclosed"}]}})
    gateway.reload()
    assert gateway.running is running and running.revision == good
    assert _running_gauge() == good
    assert _reload_errors() == errors + 1
    assert f"still running revision {good}" in caplog.text
    assert "dlp.detectors.0.pattern = '(unclosed'" in caplog.text
    assert "not a valid regular expression" in caplog.text
    gateway.reload()  # the same broken revision is not built (nor logged) again
    assert _reload_errors() == errors + 1
    assert _started(gateway).rules is running

    fixed = stored.save(vault, "admin@example.org", {"organisation": {"name": "Clinic"}},
                        broken, {})
    gateway.reload()
    assert gateway.running.revision == fixed
    assert gateway.running.config.organisation.name == "Clinic"
    assert gateway.running.policy.keywords == ("encrypt/", "secure/")  # the overlay is whole


def test_an_unreachable_server_changes_nothing_and_is_said_once(
        settings: Config, vault: Vault, served: Served, port: int,
        caplog: pytest.LogCaptureFixture) -> None:
    gateway = _gateway(settings.home, port)
    revision = _save(vault, KEYWORDS)
    gateway.reload()
    running = gateway.running
    served.stop()
    errors = _reload_errors()
    gateway.reload()
    gateway.reload()
    assert gateway.running is running and running.revision == revision
    assert _started(gateway).rules is running  # the milter keeps filtering
    assert _reload_errors() == errors + 2
    assert caplog.text.count("cannot ask the server for the running settings, still running "
                             f"revision {revision}: server unreachable") == 1


def test_until_the_server_has_answered_no_message_is_judged(
        settings: Config, vault: Vault, port: int) -> None:
    _save(vault, KEYWORDS)
    gateway = _gateway(settings.home, port)  # nothing listens on the port yet
    with pytest.raises(SettingsUnknown):
        gateway.rules()
    server = Served(settings, vault, port)
    try:
        rules = gateway.rules()  # asks again for this message
    finally:
        server.stop()
    assert rules.revision == stored.latest_revision(vault)
    assert "private/" in rules.policy.keywords


def test_sighup_reads_the_file_again_under_the_revision_and_a_broken_file_changes_nothing(
        settings: Config, vault: Vault, served: Served, port: int,
        caplog: pytest.LogCaptureFixture) -> None:
    toml = settings.home / "sealgate.toml"
    original = toml.read_text()
    gateway = _gateway(settings.home, port)
    revision = _save(vault, KEYWORDS)
    gateway.reload()
    toml.write_text(original.replace('portal_keywords = ["secure/"]',
                                     'portal_keywords = ["secure/", "sealed/"]')
                            .replace('subject_keywords = ["encrypt/"]',
                                     'subject_keywords = ["file/"]')
                            .replace("reinject = ",
                                     'metrics_listen = "127.0.0.1:9125"\nreinject = '))
    gateway.reload(reread_file=True)
    rules = gateway.running
    assert rules.revision == revision
    # The file's portal keyword, and the console's subject keywords over the file's.
    assert rules.policy.keywords == ("encrypt/", "private/", "secure/", "sealed/")
    assert "milter.metrics_listen changed: the milter applies it when it restarts" \
        in caplog.text

    errors = _reload_errors()
    toml.write_text(original.replace("[milter]", "[milter"))
    gateway.reload(reread_file=True)
    assert gateway.running is rules
    assert _reload_errors() == errors + 1
    assert "settings file not reloaded, still running revision" in caplog.text
    assert "is not valid TOML" in caplog.text

    # A file the running revision no longer fits is refused as a whole, too.
    toml.write_text(original.replace("[milter]", "[milter]\nsubject_keywords = 3\n", 1)
                    .replace('subject_keywords = ["encrypt/"]\n', ""))
    gateway.reload(reread_file=True)
    assert gateway.running is rules
    assert _reload_errors() == errors + 2
