"""The milter takes changed settings without a restart, on a real Postfix: a change saved the
way the admin console saves it reaches the running milter within its reload interval, and
sealgate.toml is read again on SIGHUP. A revision or a file it cannot use is refused: the
rules it ran keep running, and the milter keeps filtering."""

from __future__ import annotations

import json
import signal
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from sealgate import config
from sealgate.lab.host import free_ports
from sealgate.server.admin.checks import CHECKS
from sealgate.server.live import LiveConfig
from sealgate.vault import admins
from sealgate.vault import settings as stored
from sealgate.vault.models import SettingsRevision
from sealgate.vault.vault import Vault
from tests.integration.messages import compose, parsed
from tests.integration.test_milter import Gateway

PLAIN = "Tea in the garden at four."
ORCHID = "The figures for project orchid are attached below."
ORCHID_POLICY = {
    "detectors": [{"name": "PROJECT_ORCHID", "keywords": ["project orchid"]}],
    "policies": [{"name": "Orchid stays private", "detectors": ["PROJECT_ORCHID"],
                  "action": "encrypt"}],
}
RELOAD_WITHIN = 20.0  # seconds, with milter.reload_seconds = 1


class ReloadingGateway(Gateway):
    metrics_port: int

    def samples(self) -> dict[str, float]:
        url = f"http://127.0.0.1:{self.metrics_port}/metrics"
        with urllib.request.urlopen(url, timeout=10) as page:
            text = page.read().decode()
        return {line.rsplit(" ", 1)[0]: float(line.rsplit(" ", 1)[1])
                for line in text.splitlines() if line and not line.startswith("#")}

    def running_revision(self) -> int:
        return int(self.samples()["sealgate_settings_revision"])

    def reload_errors(self) -> float:
        return self.samples().get(
            'sealgate_errors_total{component="milter",kind="reload"}', 0.0)

    def wait_until(self, condition: str, check: Callable[[], bool]) -> None:
        deadline = time.monotonic() + RELOAD_WITHIN
        while time.monotonic() < deadline:
            self.assert_alive()
            if check():
                return
            time.sleep(0.2)
        raise AssertionError(f"not within {RELOAD_WITHIN:g} s: {condition}\n"
                             f"{self.log('milter')[-3000:]}")

    def vault(self) -> Vault:
        return Vault.open(config.load(self.home, self.env))

    def assert_alive(self) -> None:
        assert self.milter is not None and self.milter.poll() is None, self.log("milter")

    def assert_clear(self, subject: str, body: str) -> None:
        self.sink.clear()
        self.send(compose(subject, body=body), ["partner@gmail.test"])
        (delivered,) = self.sink.wait_for(1)
        assert body.encode() in delivered.data
        assert parsed(delivered)["Subject"] == subject
        assert parsed(delivered)["X-Sealgate-Message-Id"] is None

    def assert_protected(self, subject: str, body: str, shown_subject: str) -> None:
        self.sink.clear()
        self.send(compose(subject, body=body), ["partner@gmail.test"])
        (delivered,) = self.sink.wait_for(1)
        assert body.encode() not in delivered.data
        assert parsed(delivered)["Subject"] == shown_subject
        assert parsed(delivered)["X-Sealgate-Message-Id"]


@pytest.fixture(scope="module")
def gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ReloadingGateway]:
    (metrics_port,) = free_ports(1)
    started = ReloadingGateway(tmp_path_factory.mktemp("milter-reload"), env={
        "SEALGATE_MILTER__RELOAD_SECONDS": "1",
        "SEALGATE_MILTER__METRICS_LISTEN": f"127.0.0.1:{metrics_port}"})
    started.metrics_port = metrics_port
    yield started
    started.close()


@pytest.fixture
def lab(gateway: ReloadingGateway) -> Iterator[ReloadingGateway]:
    gateway.sink.clear()
    yield gateway
    gateway.assert_alive()


def test_a_saved_change_reaches_the_running_milter_and_a_broken_one_is_refused(
        lab: ReloadingGateway) -> None:
    lab.assert_clear("Orchid figures", ORCHID)
    vault = lab.vault()
    try:
        live = LiveConfig(config.load(lab.home, lab.env), vault, checks=CHECKS)
        change = live.change("admin@example.org", {"dlp": ORCHID_POLICY})
        assert change.revision > lab.running_revision()
        lab.wait_until(f"the milter runs revision {change.revision}",
                       lambda: lab.running_revision() == change.revision)
        lab.assert_protected("Orchid figures", ORCHID, "Orchid figures")
        lab.assert_clear("Tea", PLAIN)

        # What the console would refuse, stored anyway: a detector whose pattern is not a
        # regular expression. The milter must not take it, and must not stop.
        errors = lab.reload_errors()
        with vault.database.writing() as session:
            session.add(SettingsRevision(actor="test", parent=change.revision, overlay={
                "dlp": {**ORCHID_POLICY, "detectors": [
                    *ORCHID_POLICY["detectors"], {"name": "BROKEN", "pattern": "(unclosed"}]},
                "milter": {"subject_keywords": ["encrypt/", "private/"]}}))
        broken = stored.latest_revision(vault)
        assert broken > change.revision
    finally:
        vault.close()
    lab.wait_until("the milter counts the refused revision",
                   lambda: lab.reload_errors() > errors)
    assert f"still running revision {change.revision}" in lab.log("milter")
    assert "not a valid regular expression" in lab.log("milter")
    assert lab.running_revision() == change.revision
    lab.assert_protected("Orchid figures", ORCHID, "Orchid figures")
    lab.assert_clear("private/ Tea", PLAIN)  # the broken revision's keyword did not arrive
    lab.assert_clear("Tea", PLAIN)

    # The next good revision is taken again.
    vault = lab.vault()
    try:
        fixed = stored.save(vault, "admin@example.org", {
            "dlp": ORCHID_POLICY, "milter": {"subject_keywords": ["encrypt/", "private/"]}},
            broken, {})
    finally:
        vault.close()
    lab.wait_until(f"the milter runs revision {fixed}", lambda: lab.running_revision() == fixed)
    lab.assert_protected("private/ Tea", PLAIN, "Tea")
    lab.assert_protected("Orchid figures", ORCHID, "Orchid figures")


def _edit_file(path: Path, old: str, new: str) -> None:
    text = path.read_text()
    assert old in text
    path.write_text(text.replace(old, new))


def test_sighup_reads_the_file_again_and_a_broken_file_changes_nothing(
        lab: ReloadingGateway) -> None:
    toml = lab.home / "sealgate.toml"
    original = toml.read_text()
    assert lab.milter is not None
    try:
        lab.assert_clear("sealed/ Tea", PLAIN)
        # (Not a key an earlier test changed in the console: its revision would win.)
        _edit_file(toml, 'portal_keywords = ["secure/"]',
                   'portal_keywords = ["secure/", "sealed/"]')
        reloads = lab.log("milter").count("with sealgate.toml read again")
        lab.milter.send_signal(signal.SIGHUP)
        lab.wait_until("the milter reads the file again", lambda: lab.log("milter").count(
            "with sealgate.toml read again") > reloads)
        lab.assert_protected("sealed/ Tea", PLAIN, "Tea")

        errors = lab.reload_errors()
        toml.write_text(original.replace("[milter]", "[milter"))  # not TOML any more
        lab.milter.send_signal(signal.SIGHUP)
        lab.wait_until("the milter counts the unreadable file",
                       lambda: lab.reload_errors() > errors)
        assert "is not valid TOML" in lab.log("milter")
        lab.assert_protected("sealed/ Tea", PLAIN, "Tea")
        lab.assert_clear("Tea", PLAIN)
        lab.assert_alive()
    finally:
        toml.write_text(original)


def _admin_api(lab: ReloadingGateway, token: str, section: str,
               values: dict[str, object]) -> tuple[int, dict[str, object]]:
    request = urllib.request.Request(
        f"http://127.0.0.1:{lab.web_port}/api/v1/admin/settings/{section}",
        data=json.dumps(values).encode(), method="PATCH",
        headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


def test_a_change_through_the_admin_api_reaches_the_milter_and_a_bad_one_changes_nothing(
        lab: ReloadingGateway) -> None:
    """The whole path an administrator's automation takes: an API key, the server under
    gunicorn, the vault, and the milter's next poll."""
    vault = lab.vault()
    try:
        with vault.database.writing() as session:
            _, token = admins.create_key(session, "change automation", ["settings:write"],
                                         "it@example.org", datetime.now(UTC))
    finally:
        vault.close()
    lab.assert_clear("hush/ Tea", PLAIN)
    status, answer = _admin_api(lab, token, "milter",
                                {"subject_keywords": ["encrypt/", "private/", "hush/"]})
    assert status == 200, answer
    revision = answer["revision"]
    assert isinstance(revision, int)
    lab.wait_until(f"the milter runs revision {revision}",
                   lambda: lab.running_revision() == revision)
    lab.assert_protected("hush/ Tea", PLAIN, "Tea")

    status, answer = _admin_api(lab, token, "dlp", {"detectors": [
        {"name": "TICKET", "pattern": "TCK-([0-9]{4}"}]})
    assert status == 400, answer
    assert "'TCK-([0-9]{4}'" in str(answer["message"])
    assert "position 4" in str(answer["message"])
    time.sleep(2)  # more than a poll: nothing new to take
    assert lab.running_revision() == revision
    lab.assert_protected("hush/ Tea", PLAIN, "Tea")
