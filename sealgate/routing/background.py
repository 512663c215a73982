"""Answers kept in memory for a path that must never wait for the network.

`BackgroundCache` holds one value per key (a domain's TLS verdict, whether an address's
OpenPGP key was looked up). `get()` answers from memory at once; when the key is missing or
its entry is getting old it starts the computation on a small thread pool, and a later
`get()` sees the result. One computation per key is in flight at a time, at most
`max_pending` wait for a worker (past that a `get()` starts nothing: the key is computed
when it comes back), and at most `max_entries` values are kept (the least recently stored
go first).

The thread pool starts its threads on the first computation, not when the cache is made, so
a cache made before a server forks its workers holds no thread yet."""

from __future__ import annotations

import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Generic, TypeVar

__all__ = ["BackgroundCache"]

log = logging.getLogger(__name__)

V = TypeVar("V")


@dataclass(frozen=True)
class _Entry(Generic[V]):
    value: V
    refresh_at: float
    expires_at: float


class BackgroundCache(Generic[V]):
    """`compute(key)` makes the value for a key (it should not raise: a computation that does
    is logged and keeps nothing, so the key is computed again on its next `get()`);
    `lifetime(value)` is how many seconds the value is used. From `refresh_fraction` of its
    life on, the first `get()` starts a new computation while still answering with the old
    value (1.0: no early refresh, the key is computed again once its value has run out).
    `clock` is monotonic seconds; `name` prefixes the worker threads' names."""

    def __init__(self, compute: Callable[[str], V], lifetime: Callable[[V], float], *,
                 clock: Callable[[], float] = time.monotonic, max_entries: int = 10_000,
                 workers: int = 4, max_pending: int = 1_000, refresh_fraction: float = 1.0,
                 name: str = "sealgate-background") -> None:
        if not 0 < refresh_fraction <= 1:
            raise ValueError("refresh_fraction must be more than 0 and at most 1")
        self._compute = compute
        self._lifetime = lifetime
        self._clock = clock
        self._max_entries = max_entries
        self._max_pending = max_pending
        self._refresh_fraction = refresh_fraction
        self._entries: OrderedDict[str, _Entry[V]] = OrderedDict()
        self._pending: set[str] = set()
        self._lock = threading.Lock()
        self._executor = ThreadPoolExecutor(max_workers=workers, thread_name_prefix=name)

    def get(self, key: str) -> V | None:
        """The value while it is fresh, else None; never waits for a computation."""
        now = self._clock()
        with self._lock:
            entry = self._entries.get(key)
            if entry is not None and now >= entry.expires_at:
                del self._entries[key]
                entry = None
            start = ((entry is None or now >= entry.refresh_at) and key not in self._pending
                     and len(self._pending) < self._max_pending)
            if start:
                self._pending.add(key)
        if start:
            try:
                self._executor.submit(self._background, key)
            except RuntimeError:  # closed: no more background work
                with self._lock:
                    self._pending.discard(key)
        return entry.value if entry is not None else None

    def refresh(self, key: str) -> V:
        """Compute now (in the caller's thread), keep and return the value. What `compute`
        raises goes to the caller, and nothing is kept."""
        value = self._compute(key)
        now = self._clock()
        life = self._lifetime(value)
        entry = _Entry(value, now + life * self._refresh_fraction, now + life)
        with self._lock:
            self._entries[key] = entry
            self._entries.move_to_end(key)
            while len(self._entries) > self._max_entries:
                self._entries.popitem(last=False)
        return value

    def pending(self) -> frozenset[str]:
        """Keys whose background computation has not finished yet."""
        with self._lock:
            return frozenset(self._pending)

    def close(self) -> None:
        """Start no more computations and drop those waiting; running ones finish on their
        own (this does not wait for them)."""
        self._executor.shutdown(wait=False, cancel_futures=True)
        with self._lock:
            self._pending.clear()

    def _background(self, key: str) -> None:
        try:
            self.refresh(key)
        except Exception:  # a worker thread has no caller to tell: the log is the answer
            log.exception("background computation for %s failed", key)
        finally:
            with self._lock:
                self._pending.discard(key)
