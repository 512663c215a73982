"""A DKIM key set in the admin console must be the one DNS publishes: a change is checked
against a loopback DNS server (routing.dns_servers) before it is stored, on SQLite and
PostgreSQL. A key that does not match is refused with the record to publish, and the
running configuration stays as it was."""

from __future__ import annotations

import pytest

from sealgate.config import Config
from sealgate.mail.dkim import DkimKey, generate_private_key
from sealgate.server.admin.checks import CHECKS, dkim_key_is_published
from sealgate.server.live import LiveConfig
from sealgate.settings import SettingsError
from sealgate.vault import settings as stored
from sealgate.vault.vault import Vault
from tests.routing.conftest import DnsServer, Zone

SELECTOR = "s2026"
RECORD_NAME = f"{SELECTOR}._domainkey.example.org"



@pytest.fixture
def key(settings: Config) -> DkimKey:
    """A new key in the home, as `sealgate dkim init` leaves it (not yet configured)."""
    folder = settings.home / "dkim"
    folder.mkdir(exist_ok=True)
    pem = generate_private_key()
    (folder / f"{SELECTOR}.pem").write_bytes(pem)
    return DkimKey.from_pem(SELECTOR, "example.org", pem)


@pytest.fixture
def live(settings: Config, vault: Vault, zone: tuple[Zone, DnsServer]) -> LiveConfig:
    _, server = zone
    base = settings.model_copy(update={"routing": settings.routing.model_copy(
        update={"dns_servers": [f"127.0.0.1:{server.port}"]})})
    return LiveConfig(base, vault, checks=CHECKS)


def _txt(record: str) -> str:
    """As a zone file writes a long TXT value: quoted strings of at most 255 bytes."""
    return " ".join(f'"{record[i:i + 255]}"' for i in range(0, len(record), 255))


NEW_KEY = {"dkim": {"selector": SELECTOR, "key": f"dkim/{SELECTOR}.pem"}}


def test_a_key_that_dns_publishes_is_accepted(
        live: LiveConfig, key: DkimKey, zone: tuple[Zone, DnsServer]) -> None:
    records, _ = zone
    records.add(RECORD_NAME, "TXT", _txt(key.record()))
    change = live.change("admin@example.org", NEW_KEY)
    assert change.revision == 1
    assert change.differences["dkim.key"] == {"before": "", "after": f"dkim/{SELECTOR}.pem"}
    assert live.current().dkim.selector == SELECTOR
    assert (RECORD_NAME, "TXT") in records.queries


def test_a_key_that_does_not_match_dns_is_refused_with_the_record_to_publish(
        live: LiveConfig, key: DkimKey, zone: tuple[Zone, DnsServer], vault: Vault) -> None:
    records, _ = zone
    other = DkimKey.from_pem(SELECTOR, "example.org", generate_private_key())
    records.add(RECORD_NAME, "TXT", _txt(other.record()))
    before = live.current()
    with pytest.raises(SettingsError) as refused:
        live.change("admin@example.org", NEW_KEY)
    message = str(refused.value)
    assert f"the key published at {RECORD_NAME} does not match the configured key" in message
    assert f'publish {RECORD_NAME}. TXT "{key.record()}"' in message
    assert "The running configuration is unchanged" in message
    assert "record above" not in message
    assert stored.latest(vault) == (0, {})
    assert live.current() == before and live.current().dkim.key == ""


def test_a_key_nobody_published_and_a_dns_failure_are_refused(
        live: LiveConfig, key: DkimKey, zone: tuple[Zone, DnsServer], vault: Vault) -> None:
    records, _ = zone
    with pytest.raises(SettingsError, match=f"DKIM: no key published at {RECORD_NAME}"):
        live.change("admin@example.org", NEW_KEY)
    records.servfail.add("example.org")
    with pytest.raises(SettingsError) as refused:
        live.change("admin@example.org", NEW_KEY)
    assert f"could not be checked against DNS (cannot look up TXT {RECORD_NAME}" \
        in str(refused.value)
    assert key.record() in str(refused.value)
    assert stored.latest_revision(vault) == 0


def test_a_new_signing_domain_needs_its_record_there_too(
        live: LiveConfig, key: DkimKey, zone: tuple[Zone, DnsServer]) -> None:
    records, _ = zone
    records.add(RECORD_NAME, "TXT", _txt(key.record()))
    live.change("admin@example.org", NEW_KEY)
    with pytest.raises(SettingsError, match=f"no key published at {SELECTOR}._domainkey"
                                            r"\.mail\.example\.org"):
        live.change("admin@example.org", {"dkim": {"domain": "mail.example.org"}})
    assert live.current().dkim_domain == "example.org"


def test_changes_that_leave_dkim_alone_ask_no_dns(
        live: LiveConfig, key: DkimKey, zone: tuple[Zone, DnsServer]) -> None:
    records, _ = zone
    records.add(RECORD_NAME, "TXT", _txt(key.record()))
    live.change("admin@example.org", NEW_KEY)
    records.queries.clear()
    records.records.clear()  # the record is gone now: not asked, so not noticed
    live.change("admin@example.org", {"organisation": {"name": "Example Clinic"}})
    live.change("admin@example.org", {"dkim": {"key": None, "selector": None}})  # signing off
    assert records.queries == []


def test_the_check_alone_on_configurations(settings: Config, key: DkimKey,
                                           zone: tuple[Zone, DnsServer]) -> None:
    records, server = zone
    before = settings.model_copy(update={"routing": settings.routing.model_copy(
        update={"dns_servers": [f"127.0.0.1:{server.port}"]})})
    after = before.model_copy(update={"dkim": before.dkim.model_copy(
        update={"selector": SELECTOR, "key": f"dkim/{SELECTOR}.pem"})})
    with pytest.raises(SettingsError, match="no key published"):
        dkim_key_is_published(before, after)
    records.add(RECORD_NAME, "TXT", _txt(key.record()))
    dkim_key_is_published(before, after)
    dkim_key_is_published(after, after)  # unchanged: not asked again
    assert records.queries.count((RECORD_NAME, "TXT")) == 2
