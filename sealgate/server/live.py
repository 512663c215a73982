"""The running configuration of a server process: the file's, with the newest settings
revision the administrators saved (sealgate/settings.py) on top. Each process looks for a
newer revision at most every `check_every` seconds, so a change made on one worker or host
reaches the others within that time, without a restart."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from sealgate import settings
from sealgate.config import Config
from sealgate.metrics import count_error, metrics
from sealgate.vault import settings as stored
from sealgate.vault.vault import Vault

log = logging.getLogger(__name__)

# A check a change must pass beyond the configuration's own validation (the DLP policies
# compile; the DKIM key matches its DNS record): raises SettingsError.
Check = Callable[[Config, Config], None]


@dataclass(frozen=True)
class Change:
    revision: int
    config: Config
    differences: dict[str, dict[str, Any]]


class LiveConfig:
    def __init__(self, base: Config, vault: Vault, check_every: float = 2.0,
                 checks: Sequence[Check] = ()) -> None:
        self.base = base
        self.vault = vault
        self.check_every = check_every
        self.checks = tuple(checks)
        self._lock = threading.Lock()
        self._config = base
        self._revision = 0  # the revision whose settings run
        self._seen = 0      # the newest revision looked at (it may have been refused)
        self._next_check = 0.0

    @property
    def revision(self) -> int:
        """The revision whose settings run in this process."""
        self.current()
        return self._revision

    def current(self) -> Config:
        if time.monotonic() < self._next_check:
            return self._config
        with self._lock:
            if time.monotonic() >= self._next_check:
                self._refresh()
                self._next_check = time.monotonic() + self.check_every
        return self._config

    def _refresh(self) -> None:
        if stored.latest_revision(self.vault) == self._seen:
            return
        revision, overlay = stored.latest(self.vault)
        self._seen = revision
        try:
            self._config = settings.effective(self.base, overlay)
        except settings.SettingsError as error:
            # Saved changes were validated; this one no longer fits the file (edited
            # since). The last good configuration keeps running.
            count_error("server", "settings_reload")
            log.error("settings revision %d cannot be used, keeping revision %d: %s",
                      revision, self._revision, error)
        else:
            self._revision = revision
            metrics().settings_revision.set(revision)
            log.info("running settings revision %d", revision)

    def overlay(self) -> tuple[int, dict[str, Any]]:
        return stored.latest(self.vault)

    def change(self, actor: str, changes: Mapping[str, Any], based_on: int | None = None
               ) -> Change:
        """Validate and store a change ({section: {key: value}}; None takes a key back to the
        file's value) and run it in this process at once. Raises SettingsError (nothing
        stored) or StaleRevision (someone saved since `based_on`)."""
        revision, overlay = stored.latest(self.vault)
        if based_on is not None and based_on != revision:
            raise stored.StaleRevision("the settings were changed by someone else "
                                       "meanwhile: reload and make the change again")
        new_overlay = settings.merged(overlay, changes)
        try:
            before = settings.effective(self.base, overlay)
        except settings.SettingsError:
            # A stored revision that no longer validates must still be repairable: compare
            # with what runs; its wrong key is named when `after` is checked.
            before = self.current()
        after = settings.effective(self.base, new_overlay)
        for check in self.checks:
            check(before, after)
        differences = settings.differences(before, after)
        if not differences and new_overlay == overlay:
            return Change(revision, after, {})
        saved = stored.save(self.vault, actor, new_overlay, revision, differences)
        with self._lock:
            self._config, self._revision, self._seen = after, saved, saved
            self._next_check = time.monotonic() + self.check_every
        metrics().settings_revision.set(saved)
        return Change(saved, after, differences)
