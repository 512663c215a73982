"""Verified TLS on the server: which recipient domains qualify (probe verdicts kept in memory
and in the vault, probed in the background, never on a message's path), and what becomes of
each copy sent that way (the MTA's delivery reports, the retries, the fallback to the
portal). One `TlsService` per server process."""

from __future__ import annotations

import hashlib
import logging
import secrets
import ssl
import threading
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sealgate import dns_lookup
from sealgate.config import Config
from sealgate.mail import dsn
from sealgate.routing import mta
from sealgate.routing.evidence import TlsVerdict
from sealgate.routing.probe import ProbeCache, Prober
from sealgate.vault import tls as store
from sealgate.vault.models import TlsDelivery, TlsDeliveryState
from sealgate.vault.vault import Vault

log = logging.getLogger(__name__)

_OUTCOMES = {dsn.Outcome.DELIVERED: TlsDeliveryState.DELIVERED,
             dsn.Outcome.RETRY: TlsDeliveryState.RETRY,
             dsn.Outcome.FAILED: TlsDeliveryState.FAILED}


@dataclass(frozen=True)
class TlsCopy:
    """What the milter re-injects for verified-TLS recipients of one level."""

    level: str
    recipients: tuple[str, ...]
    envelope_id: str  # secret: only its digest is kept


def new_envelope_id() -> tuple[str, str]:
    """An envelope id for one attempt and the digest the vault keeps of it."""
    token = secrets.token_hex(16)
    return token, envelope_digest(token)


def envelope_digest(token: str) -> str:
    return hashlib.sha256(token.encode("ascii", "replace")).hexdigest()


def level_of(verdict: TlsVerdict) -> str:
    return mta.LEVEL_DANE if verdict.source == "dane" else mta.LEVEL_VERIFY


class TlsService:
    def __init__(self, vault: Vault, config: Config,
                 probe: Callable[[str], TlsVerdict] | None = None,
                 now: Callable[[], datetime] = lambda: datetime.now(UTC)) -> None:
        self.vault = vault
        self.config = config
        self._now = now
        self._probe = probe or (lambda domain: _prober(config).probe(domain))
        self.cache = ProbeCache(self._probe_and_keep, workers=2)
        self._sweeper: threading.Thread | None = None
        self._stop = threading.Event()
        self._lock = threading.Lock()

    # --- verdicts ---

    def verdicts(self, domains: Iterable[str]) -> dict[str, TlsVerdict]:
        """The known, fresh verdicts for these domains; the others are probed in the
        background (the message at hand goes another way)."""
        found: dict[str, TlsVerdict] = {}
        missing = []
        for domain in {d.lower() for d in domains}:
            verdict = self.cache.cached(domain)
            if verdict is None:
                missing.append(domain)
            else:
                found[domain] = verdict
        if missing:  # another process may have probed them already
            now = self._now()
            for domain, stored in store.fresh_verdicts(self.vault, missing, now).items():
                found[domain] = _verdict(stored, now)
        return found

    def _probe_and_keep(self, domain: str) -> TlsVerdict:
        now = self._now()
        stored = store.fresh_verdicts(self.vault, [domain], now).get(domain)
        if stored is not None:
            return _verdict(stored, now)
        verdict = self._probe(domain)
        store.save_verdict(self.vault, store.StoredVerdict(
            domain, verdict.qualifies, verdict.source, verdict.evidence_lines,
            now + timedelta(seconds=verdict.ttl_seconds)), now)
        log.info("probed %s for verified TLS: %s", domain,
                 verdict.evidence_lines[-1] if verdict.evidence_lines else "")
        return verdict

    # --- deliveries ---

    def first_attempts(self, levels: dict[str, str],
                       ) -> tuple[list[TlsCopy], Callable[[uuid.UUID], list[TlsDelivery]]]:
        """One copy per level to hand over, and the rows that record them for a message
        (written with its deposit: one durable write)."""
        now = self._now()
        deadline = now + timedelta(minutes=self.config.routing.tls_fallback_minutes)
        copies, digests = [], {}
        for level in sorted(set(levels.values())):
            token, digests[level] = new_envelope_id()
            copies.append(TlsCopy(level, tuple(a for a, lvl in levels.items() if lvl == level),
                                  token))

        def rows(message_id: uuid.UUID) -> list[TlsDelivery]:
            return [row for level, digest in digests.items()
                    for row in store.first_attempts(
                        message_id, {a: lvl for a, lvl in levels.items() if lvl == level},
                        digest, deadline, now)]

        self.start()
        return copies, rows

    def report(self, raw: bytes) -> list[store.Settled]:
        """A delivery status notification the milter took for the return address."""
        parsed = dsn.parse(raw)
        if parsed is None:
            log.info("mail to the return address that is not a delivery report: ignored")
            return []
        outcomes = [(status.address, _OUTCOMES[status.outcome], _detail(status))
                    for status in parsed.recipients if status.outcome in _OUTCOMES]
        settled = store.apply_report(self.vault, envelope_digest(parsed.envelope_id),
                                     outcomes, self._now(), self._retry_every())
        for change in settled:
            log.info("verified TLS to %s (message %s): %s - %s", change.recipient,
                     change.message_id, change.state, change.detail)
        if settled:
            self.start()
        return settled

    def _retry_every(self) -> timedelta:
        return timedelta(minutes=self.config.routing.tls_retry_minutes)

    # --- the sweeper ---

    def start(self) -> None:
        """The background sweeper: retries, and the portal for what is past its deadline.
        Started by the first delivery or report (and by the server at start-up)."""
        with self._lock:
            if self._sweeper is not None:
                return
            self._sweeper = threading.Thread(target=self._sweep_forever, daemon=True,
                                             name="sealgate-tls-sweeper")
            self._sweeper.start()

    def close(self) -> None:
        self._stop.set()
        self.cache.close()

    def _sweep_forever(self) -> None:
        period = min(30.0, max(1.0, self._retry_every().total_seconds() / 3))
        while not self._stop.wait(period):
            try:
                self.sweep()
            except Exception:  # the next sweep tries again; the rows are claimed only briefly
                log.exception("verified-TLS sweep failed")

    def sweep(self) -> None:
        from sealgate.server import tls_actions  # the mail it sends needs the server's parts

        now = self._now()
        for due in store.claim_due(self.vault, now, lease=timedelta(minutes=5)):
            try:
                if due.fall_back:
                    tls_actions.fall_back(self, due)
                else:
                    tls_actions.retry(self, due)
            except Exception:
                log.exception("verified TLS for message %s: will try again", due.message_id)
                store.release(self.vault, due.ids)


def _verdict(stored: store.StoredVerdict, now: datetime) -> TlsVerdict:
    remaining = max(1, int((stored.expires_at - now).total_seconds()))
    return TlsVerdict(stored.domain, stored.qualifies, stored.source, stored.evidence,  # type: ignore[arg-type]
                      remaining)


def _detail(status: dsn.RecipientStatus) -> str:
    text = status.diagnostic.replace(f"{mta.RETRY_MARK}: ", "")
    where = f" at {status.remote_mta}" if status.remote_mta else ""
    return f"{status.status}{where}: {text}" if text else f"{status.status}{where}"


def _prober(config: Config) -> Prober:
    routing = config.routing
    resolver = dns_lookup.resolver(routing.dns_servers)
    cafile = str(config.path(routing.tls_ca_file)) if routing.tls_ca_file else None

    def context() -> ssl.SSLContext:
        return ssl.create_default_context(cafile=cafile)

    return Prober(resolver, context, port=routing.probe_port, timeout=10.0,
                  allow_loopback=routing.probe_loopback)
