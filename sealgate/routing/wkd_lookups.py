"""Recipients' OpenPGP keys found by Web Key Directory, looked up off the per-message path.

Routing a message only reads the keys on file. For recipients without one it calls
`WkdLookups.request(...)`, which returns at once: the lookups run on a small thread pool,
and a key found is handed to `store` (for the server: `store_in_vault(vault)`, which puts it
on file with source "wkd"), so later messages to that recipient go out PGP-encrypted.
Found or not, an address is not looked up again for `retry_after` seconds: a domain without
a Web Key Directory costs one lookup per address per period, not one per message.

What is remembered (which addresses were looked up, and when) is in memory, per process;
the keys themselves are in the vault."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable
from datetime import UTC, datetime

from sealgate.crypto import pgp
from sealgate.routing.background import BackgroundCache
from sealgate.vault import recipient_keys
from sealgate.vault.models import KeyKind
from sealgate.vault.vault import Vault

__all__ = ["ACTOR", "SOURCE", "WkdLookups", "store_in_vault", "store_wkd_key"]

log = logging.getLogger(__name__)

ACTOR = "wkd"  # who the audit trail says added a key found in the background
SOURCE = "wkd"  # the recipient_keys.source of a key found by Web Key Directory
RETRY_AFTER = 6 * 3600.0

Store = Callable[[str, bytes], None]
Fetch = Callable[[str], bytes | None]


class WkdLookups:
    """Background WKD lookups, one per address per `retry_after` seconds.

    `fetch(address)` returns a usable binary public key or None (`pgp.fetch_wkd`, which
    never raises; another fetcher that raises counts as "not found"). `store(address, key)`
    runs in a worker thread; what it raises is logged and changes nothing else. At most
    `max_pending` lookups wait for one of the `workers`: past that, `request` starts
    nothing for the others (they are looked up when they are asked for again). At most
    `max_entries` addresses are remembered, the least recently looked up forgotten first."""

    def __init__(self, store: Store, fetch: Fetch = pgp.fetch_wkd, *,
                 clock: Callable[[], float] = time.monotonic,
                 retry_after: float = RETRY_AFTER, workers: int = 2, max_pending: int = 1_000,
                 max_entries: int = 10_000) -> None:
        if retry_after <= 0:
            raise ValueError("retry_after must be more than 0 seconds")
        self._store = store
        self._fetch = fetch
        self._looked_up: BackgroundCache[bool] = BackgroundCache(
            self._look_up, lambda _found: retry_after, clock=clock, max_entries=max_entries,
            workers=workers, max_pending=max_pending, name="sealgate-wkd")

    def request(self, addresses: Iterable[str]) -> None:
        """Start a background lookup for each address not looked up in the last
        `retry_after` seconds and not already in flight; never waits for the network."""
        for address in addresses:
            key = _key(address)
            if key:
                self._looked_up.get(key)

    def pending(self) -> frozenset[str]:
        """Addresses (lower-case) whose lookup has not finished yet."""
        return self._looked_up.pending()

    def close(self) -> None:
        """Start no more lookups; one already running finishes on its own."""
        self._looked_up.close()

    def _look_up(self, address: str) -> bool:
        """Whether a key was found (and handed to `store`)."""
        try:
            material = self._fetch(address)
        except Exception:
            log.exception("WKD lookup for %s failed", address)
            return False
        if material is None:
            return False
        try:
            self._store(address, material)
        except Exception:  # the next lookup must still run: log, and remember it as done
            log.exception("storing the WKD key for %s failed", address)
        return True


def store_wkd_key(vault: Vault, address: str, material: bytes, now: datetime,
                  actor: str = ACTOR) -> tuple[pgp.KeyInfo, bool]:
    """Put a key found by WKD on file for `address` (source "wkd"): its facts, and whether
    it was added (False: that key was already on file). Raises PgpError when the key is not
    usable for the address at `now`; database errors go to the caller."""
    info = pgp.key_info(material, now)
    if not info.usable_for(address):
        reasons = "; ".join(info.problems) or \
            f"it is for {', '.join(info.addresses) or 'no address'}"
        raise pgp.PgpError(f"the key found for {address} cannot be used: {reasons}")
    added = recipient_keys.put(vault, actor, address, KeyKind.PGP, info.fingerprint,
                               material, info.expires, source=SOURCE)
    return info, added


def store_in_vault(vault: Vault,
                   now: Callable[[], datetime] = lambda: datetime.now(UTC)) -> Store:
    """A `store` for `WkdLookups` that puts each key found on file in `vault`. It never
    raises: a key that cannot be used or a database that fails is logged, and the key is
    not stored (the address is looked up again after `retry_after`)."""

    def store(address: str, material: bytes) -> None:
        try:
            info, added = store_wkd_key(vault, address, material, now())
        except pgp.PgpError as error:
            log.warning("WKD key not stored: %s", error)
            return
        except Exception:
            log.exception("WKD key for %s could not be stored", address)
            return
        if added:
            log.info("WKD key %s for %s put on file", info.fingerprint, address)

    return store


def _key(address: str) -> str:
    return address.strip().lower()
