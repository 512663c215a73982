"""Background Web Key Directory lookups: against a real HTTPS directory on loopback (the one
tests/crypto/test_pgp.py serves, with its test CA and gpg-made keys), storing into a real
vault on SQLite; and `sealgate recipient-keys wkd`, which looks up at once."""

from __future__ import annotations

import functools
import logging
import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path

import pysequoia
import pytest
from sqlalchemy import select, text

from sealgate import config
from sealgate.crypto.pgp import fetch_wkd, wkd_urls
from sealgate.lab.pki import TestCa
from sealgate.routing.wkd_lookups import WkdLookups, store_in_vault
from sealgate.vault import recipient_keys
from sealgate.vault.models import AuditEvent, KeyKind
from sealgate.vault.vault import Vault
from tests.conftest import run_cli
from tests.crypto.test_pgp import Keys, WkdServer, _opener, _route
from tests.crypto.test_pgp import homes as homes  # the fixtures, for this module
from tests.crypto.test_pgp import keys as keys
from tests.crypto.test_pgp import site as site
from tests.crypto.test_pgp import wkd as wkd
from tests.crypto.test_pgp import wkd_ca as wkd_ca

ALICE = "alice@example.org"
RETRY = 3600.0


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def sqlite_vault(home: Path) -> Iterator[Vault]:
    opened = Vault.open(config.load(home))
    opened.database.check()
    yield opened
    opened.close()


@pytest.fixture
def fetch(site: WkdServer, wkd_ca: TestCa) -> Callable[[str], bytes | None]:
    """The real fetcher, trusting the test CA and connecting to the loopback directory."""
    return functools.partial(fetch_wkd, opener=_opener(wkd_ca, site.port), timeout=5.0)


@pytest.fixture
def make_lookups() -> Iterator[Callable[..., WkdLookups]]:
    made: list[WkdLookups] = []

    def make(store: Callable[[str, bytes], None], fetch: Callable[[str], bytes | None],
             **options: object) -> WkdLookups:
        lookups = WkdLookups(store, fetch, **options)  # type: ignore[arg-type]
        made.append(lookups)
        return lookups

    yield make
    for lookups in made:
        settle(lookups)  # nothing may still write to the vault or the directory's log
        lookups.close()


def settle(lookups: WkdLookups) -> None:
    """Wait until no lookup is in flight."""
    deadline = time.monotonic() + 20
    while lookups.pending():
        if time.monotonic() > deadline:
            raise AssertionError(f"lookups did not finish: {sorted(lookups.pending())}")
        time.sleep(0.01)


def publish(site: WkdServer, address: str, key: bytes, delay: float = 0.0) -> str:
    """Serve `key` at the address's advanced-method URL; the route, for site.requests."""
    route = _route(wkd_urls(address)[0])
    site.routes[route] = (200, bytes(pysequoia.Cert.from_bytes(key)))
    if delay:
        site.delays[route] = delay
    return route


class Recorder:
    """A store that keeps what it is given, and fails for the addresses in `failing`."""

    def __init__(self, *failing: str) -> None:
        self.stored: list[tuple[str, bytes]] = []
        self.failing = set(failing)

    def __call__(self, address: str, material: bytes) -> None:
        if address in self.failing:
            raise RuntimeError(f"the store is broken for {address}")
        self.stored.append((address, material))


def test_a_key_found_in_the_background_is_on_file_for_the_next_message(
        site: WkdServer, keys: Keys, fetch: Callable[[str], bytes | None],
        sqlite_vault: Vault, make_lookups: Callable[..., WkdLookups]) -> None:
    publish(site, ALICE, keys.alice)
    lookups = make_lookups(store_in_vault(sqlite_vault), fetch)
    now = datetime.now(UTC)
    assert recipient_keys.for_addresses(sqlite_vault, [ALICE], now) == []
    lookups.request(["Alice@Example.org"])
    settle(lookups)
    (found,) = recipient_keys.for_addresses(sqlite_vault, [ALICE], now)
    assert (found.address, found.kind, found.fingerprint, found.source) == (
        ALICE, KeyKind.PGP, keys.fingerprints["alice"], "wkd")
    assert found.not_after is None  # Alice's key does not expire
    with sqlite_vault.database.session() as session:
        event = session.scalars(select(AuditEvent).where(
            AuditEvent.action == "recipient_key.added")).one()
        assert (event.actor, event.object_id) == ("wkd", f"pgp:{keys.fingerprints['alice']}")


def test_a_miss_is_remembered_until_retry_after(
        site: WkdServer, fetch: Callable[[str], bytes | None],
        make_lookups: Callable[..., WkdLookups]) -> None:
    clock = Clock()
    store = Recorder()
    lookups = make_lookups(store, fetch, clock=clock, retry_after=RETRY)
    lookups.request(["nobody@example.org"])
    settle(lookups)
    assert len(site.requests) == 2  # the advanced method, then the direct one: 404 both
    for _ in range(3):
        lookups.request(["nobody@example.org", "NOBODY@example.org "])
        settle(lookups)
    clock.now += RETRY - 1
    lookups.request(["nobody@example.org"])
    settle(lookups)
    assert len(site.requests) == 2  # still remembered: not asked again
    clock.now += 1
    lookups.request(["nobody@example.org"])
    settle(lookups)
    assert len(site.requests) == 4  # retry_after has passed: looked up once more
    assert store.stored == []


def test_a_hit_is_remembered_too(site: WkdServer, keys: Keys,
                                 fetch: Callable[[str], bytes | None],
                                 make_lookups: Callable[..., WkdLookups]) -> None:
    clock = Clock()
    route = publish(site, ALICE, keys.alice)
    store = Recorder()
    lookups = make_lookups(store, fetch, clock=clock, retry_after=RETRY)
    lookups.request([ALICE])
    settle(lookups)
    lookups.request([ALICE])
    settle(lookups)
    assert site.requests == [route]
    assert [address for address, _ in store.stored] == [ALICE]
    clock.now += RETRY
    lookups.request([ALICE])  # a key may be replaced: after retry_after, looked up again
    settle(lookups)
    assert site.requests == [route, route]


def test_one_lookup_per_address_in_flight(site: WkdServer, keys: Keys,
                                          fetch: Callable[[str], bytes | None],
                                          make_lookups: Callable[..., WkdLookups]) -> None:
    route = publish(site, ALICE, keys.alice, delay=0.5)
    store = Recorder()
    lookups = make_lookups(store, fetch, workers=4)
    askers = [threading.Thread(target=lookups.request, args=([ALICE, ALICE.upper()],))
              for _ in range(20)]
    for asker in askers:
        asker.start()
    for asker in askers:
        asker.join()
    assert lookups.pending() == {ALICE}
    settle(lookups)
    assert site.requests == [route]
    assert len(store.stored) == 1


def test_request_returns_at_once_while_the_directory_is_slow(
        site: WkdServer, keys: Keys, fetch: Callable[[str], bytes | None],
        make_lookups: Callable[..., WkdLookups]) -> None:
    publish(site, ALICE, keys.alice, delay=2.0)
    store = Recorder()
    lookups = make_lookups(store, fetch)
    started = time.monotonic()
    lookups.request([ALICE])
    assert time.monotonic() - started < 0.05
    assert lookups.pending() == {ALICE}
    assert store.stored == []
    settle(lookups)
    assert [address for address, _ in store.stored] == [ALICE]


def test_waiting_lookups_are_bounded(site: WkdServer, keys: Keys,
                                     fetch: Callable[[str], bytes | None],
                                     make_lookups: Callable[..., WkdLookups]) -> None:
    publish(site, ALICE, keys.alice, delay=0.5)
    site.delays[_route(wkd_urls("c@example.org")[0])] = 0.5
    lookups = make_lookups(Recorder(), fetch, workers=1, max_pending=2)
    lookups.request([ALICE, "b@example.org", "c@example.org", "d@example.org"])
    assert lookups.pending() == {ALICE, "b@example.org"}
    settle(lookups)
    lookups.request(["c@example.org"])  # room again: a later request starts the lookup
    assert lookups.pending() == {"c@example.org"}


def test_the_memory_is_bounded(site: WkdServer, fetch: Callable[[str], bytes | None],
                               make_lookups: Callable[..., WkdLookups]) -> None:
    lookups = make_lookups(Recorder(), fetch, clock=Clock(), max_entries=2)
    for address in ("a@example.org", "b@example.org", "c@example.org"):
        lookups.request([address])
        settle(lookups)
    assert len(site.requests) == 6
    lookups.request(["c@example.org", "b@example.org"])
    settle(lookups)
    assert len(site.requests) == 6  # the two most recent are remembered
    lookups.request(["a@example.org"])  # the oldest was forgotten: looked up again
    settle(lookups)
    assert len(site.requests) == 8


def test_a_store_that_raises_does_not_stop_later_lookups(
        site: WkdServer, keys: Keys, fetch: Callable[[str], bytes | None],
        make_lookups: Callable[..., WkdLookups], caplog: pytest.LogCaptureFixture) -> None:
    publish(site, ALICE, keys.alice)
    publish(site, "p256@example.org", keys.p256)
    store = Recorder(ALICE)
    lookups = make_lookups(store, fetch, workers=1)
    with caplog.at_level(logging.ERROR, logger="sealgate.routing.wkd_lookups"):
        lookups.request([ALICE])
        settle(lookups)
        lookups.request(["p256@example.org"])
        settle(lookups)
    assert "storing the WKD key for alice@example.org failed" in caplog.text
    assert "the store is broken" in caplog.text
    assert [address for address, _ in store.stored] == ["p256@example.org"]


def test_the_vault_store_logs_what_it_cannot_store(
        keys: Keys, sqlite_vault: Vault, caplog: pytest.LogCaptureFixture) -> None:
    store = store_in_vault(sqlite_vault)
    with caplog.at_level(logging.WARNING, logger="sealgate.routing.wkd_lookups"):
        store(ALICE, keys.bob)  # a usable key, but for someone else
        store(ALICE, b"not a key at all")
        store("old@example.org", keys.expired)
    assert recipient_keys.listed(sqlite_vault) == []
    assert "cannot be used: it is for bob@partner.example" in caplog.text
    assert "not an OpenPGP key" in caplog.text
    assert "old@example.org cannot be used: expired on 2020-12-31" in caplog.text

    with sqlite_vault.database.engine.begin() as connection:  # the database fails under it
        connection.execute(text("DROP TABLE recipient_keys"))
    caplog.clear()
    with caplog.at_level(logging.ERROR, logger="sealgate.routing.wkd_lookups"):
        store(ALICE, keys.alice)
    assert f"WKD key for {ALICE} could not be stored" in caplog.text


# --- sealgate recipient-keys wkd ------------------------------------------------------------


@pytest.fixture
def ca_file(wkd_ca: TestCa, tmp_path: Path) -> Path:
    path = tmp_path / "wkd-ca.pem"
    path.write_bytes(wkd_ca.cert_pem)
    return path


def test_the_command_puts_a_published_key_on_file(
        home: Path, site: WkdServer, keys: Keys, ca_file: Path,
        capsys: pytest.CaptureFixture[str]) -> None:
    publish(site, ALICE, keys.alice)
    command = ("--home", str(home), "recipient-keys", "wkd", "Alice@example.org",
               "--ca-file", str(ca_file), "--connect-to", f"127.0.0.1:{site.port}")
    capsys.readouterr()
    run_cli(*command)
    fingerprint = keys.fingerprints["alice"]
    assert capsys.readouterr().out == f"added: pgp {fingerprint} for {ALICE}, until no expiry\n"
    run_cli(*command)
    assert capsys.readouterr().out.startswith(f"already on file: pgp {fingerprint} ")
    run_cli("--home", str(home), "recipient-keys", "list")
    assert f"{ALICE}  pgp  {fingerprint}  until no expiry  (wkd)" in capsys.readouterr().out


def test_the_command_says_when_nothing_is_published(
        home: Path, site: WkdServer, ca_file: Path,
        capsys: pytest.CaptureFixture[str]) -> None:
    capsys.readouterr()
    with pytest.raises(AssertionError, match="exited 1"):
        run_cli("--home", str(home), "recipient-keys", "wkd", "nobody@example.org",
                "--ca-file", str(ca_file), "--connect-to", f"127.0.0.1:{site.port}")
    assert capsys.readouterr().err == (
        "sealgate: error: no usable key published by Web Key Directory for "
        "nobody@example.org\n")
    assert len(site.requests) == 2
    run_cli("--home", str(home), "recipient-keys", "list")
    assert "no keys on file" in capsys.readouterr().out


def test_the_command_refuses_what_is_not_an_address_and_an_untrusted_directory(
        home: Path, site: WkdServer, keys: Keys, capsys: pytest.CaptureFixture[str]) -> None:
    publish(site, ALICE, keys.alice)
    capsys.readouterr()
    with pytest.raises(AssertionError, match="exited 1"):
        run_cli("--home", str(home), "recipient-keys", "wkd", "not an address")
    assert "not a mail address" in capsys.readouterr().err
    # Without --ca-file only the system's CAs are trusted, and they never signed the test CA.
    with pytest.raises(AssertionError, match="exited 1"):
        run_cli("--home", str(home), "recipient-keys", "wkd", ALICE,
                "--connect-to", f"127.0.0.1:{site.port}")
    assert "no usable key published" in capsys.readouterr().err
    assert site.requests == []  # nothing was asked over a channel that is not trusted


def test_routing_asks_for_missing_keys_and_the_next_message_goes_out_pgp(
        site: WkdServer, keys: Keys, fetch: Callable[[str], bytes | None], home: Path,
        sqlite_vault: Vault, make_lookups: Callable[..., WkdLookups]) -> None:
    from sealgate.routing.plan import Method
    from sealgate.server.routing import route
    from tests.integration.messages import compose

    publish(site, ALICE, keys.alice)
    settings = config.load(home)
    lookups = make_lookups(store_in_vault(sqlite_vault), fetch)
    raw = compose("Results", to=ALICE).as_bytes()
    first = route(sqlite_vault, settings, raw, "who@org.test", [ALICE], "Results", wkd=lookups)
    assert first.plan.method_of(ALICE) is Method.PORTAL  # never waits for the lookup
    settle(lookups)
    second = route(sqlite_vault, settings, raw, "who@org.test", [ALICE], "Results",
                   wkd=lookups)
    assert second.plan.method_of(ALICE) is Method.PGP
    assert [copy.method for copy in second.copies] == ["pgp"]
    requests = len(site.requests)
    route(sqlite_vault, settings, raw, "who@org.test", [ALICE], "Results", wkd=lookups)
    settle(lookups)
    assert len(site.requests) == requests  # a key on file is not looked up again
