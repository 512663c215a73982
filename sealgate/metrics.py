"""Sealgate's Prometheus metrics, defined in one place: counts and timings, never personal data.

Under gunicorn the server runs several worker processes, each counting on its own; prometheus
client's multiprocess mode has each write its values to a file in a shared directory, and the
/metrics view adds them up. That mode is chosen by PROMETHEUS_MULTIPROC_DIR when
prometheus_client is first imported, so this module imports it only when a metric is first
used: `prepare_multiprocess` (run by the gunicorn master before any worker exists) sets the
variable, and every worker then starts in the right mode.
"""

from __future__ import annotations

import os
import shutil
import sys
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from sealgate.errors import SealgateError

if TYPE_CHECKING:
    from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
TRIGGER_CAUSES = ("keyword", "tag", "dlp")
DELIVERY_METHODS = ("portal", "tls", "smime", "pgp")
LOGIN_RESULTS = ("ok", "failed")
# DLP on a message, and the milter's whole verdict, take milliseconds to seconds.
_SECONDS_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)


@dataclass(frozen=True)
class Metrics:
    registry: CollectorRegistry
    messages_seen: Counter
    messages_triggered: Counter
    delivery_methods: Counter
    deposits: Counter
    portal_logins: Counter
    portal_opens: Counter
    errors: Counter
    dlp_seconds: Histogram
    milter_verdict_seconds: Histogram
    settings_revision: Gauge


_lock = threading.Lock()
_metrics: Metrics | None = None


def metrics() -> Metrics:
    """This process's metrics, made on first use (see the module's note on why)."""
    global _metrics
    with _lock:
        if _metrics is None:
            _metrics = _define()
        return _metrics


def _define() -> Metrics:
    from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

    registry = CollectorRegistry()
    found = Metrics(
        registry=registry,
        messages_seen=Counter(
            "sealgate_messages_seen", "Messages the milter examined.", registry=registry),
        messages_triggered=Counter(
            "sealgate_messages_triggered", "Messages that had to be protected, by trigger.",
            ["cause"], registry=registry),
        delivery_methods=Counter(
            "sealgate_delivery_methods",
            "Recipients of protected messages, by the delivery method chosen.",
            ["method"], registry=registry),
        deposits=Counter(
            "sealgate_deposits", "Messages deposited for the portal.", registry=registry),
        portal_logins=Counter(
            "sealgate_portal_logins", "Portal sign-in attempts, by result.", ["result"],
            registry=registry),
        portal_opens=Counter(
            "sealgate_portal_opens", "Openings of a secure message (portal or add-in).",
            registry=registry),
        errors=Counter(
            "sealgate_errors", "Errors, by component and kind.", ["component", "kind"],
            registry=registry),
        dlp_seconds=Histogram(
            "sealgate_dlp_seconds", "Time to scan one message for sensitive data.",
            buckets=_SECONDS_BUCKETS, registry=registry),
        milter_verdict_seconds=Histogram(
            "sealgate_milter_verdict_seconds", "Time from end of message to the milter's verdict.",
            buckets=_SECONDS_BUCKETS, registry=registry),
        # Over several server workers, the lowest revision a live one runs: a worker that
        # lags or refused a revision shows.
        settings_revision=Gauge(
            "sealgate_settings_revision",
            "The settings revision (administrators' changes) this process runs; 0: the file's.",
            registry=registry, multiprocess_mode="livemin"),
    )
    # Every known series from the start, at zero: a rate over a series that appears only at its
    # first event misses that event.
    for cause in TRIGGER_CAUSES:
        found.messages_triggered.labels(cause=cause)
    for method in DELIVERY_METHODS:
        found.delivery_methods.labels(method=method)
    for result in LOGIN_RESULTS:
        found.portal_logins.labels(result=result)
    return found


def count_error(component: str, kind: str) -> None:
    metrics().errors.labels(component=component, kind=kind).inc()


def exposition() -> tuple[bytes, str]:
    """The text exposition of every metric, and its content type. In multiprocess mode, the sum
    over every process that wrote to the shared directory, this one included."""
    from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

    if os.environ.get(MULTIPROC_ENV):
        from prometheus_client.multiprocess import MultiProcessCollector

        metrics()  # this process's series exist, at zero, even before its first event
        registry = CollectorRegistry()
        MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
        return generate_latest(registry), CONTENT_TYPE_LATEST
    return generate_latest(metrics().registry), CONTENT_TYPE_LATEST


def prepare_multiprocess(directory: Path) -> None:
    """Before the first worker starts: an empty directory for the workers' metric files, named
    in the environment the workers inherit. Values left by an earlier run would be added in."""
    if "prometheus_client.values" in sys.modules \
            and os.environ.get(MULTIPROC_ENV) != str(directory):
        raise SealgateError(
            "prometheus_client was imported before its multiprocess directory was set: "
            "metrics would count per worker; prepare_multiprocess must run first")
    try:
        if directory.exists():
            shutil.rmtree(directory)
        directory.mkdir(mode=0o700, parents=True)
    except OSError as error:
        raise SealgateError(f"metrics directory {directory}: {error.strerror}") from None
    os.environ[MULTIPROC_ENV] = str(directory)


def worker_exited(pid: int) -> None:
    """A worker is gone: its live values leave with it (its counts stay in the totals)."""
    if os.environ.get(MULTIPROC_ENV):
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(pid)  # type: ignore[no-untyped-call]
