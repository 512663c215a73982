"""The metric definitions, their exposition, multiprocess aggregation across real forked
processes (the way gunicorn's workers count), and who may read /metrics."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from sealgate import config
from sealgate.errors import ConfigError, SealgateError
from sealgate.metrics import exposition, metrics, prepare_multiprocess
from sealgate.server.health import metrics_allowed


def samples(text: bytes) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    found = {}
    for family in text_string_to_metric_families(text.decode()):
        for sample in family.samples:
            found[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return found


def test_every_metric_is_exposed_with_its_known_series_at_start() -> None:
    body, content_type = exposition()
    assert content_type.startswith("text/plain")
    seen = samples(body)
    for name in ("sealgate_messages_seen_total", "sealgate_deposits_total",
                 "sealgate_portal_opens_total", "sealgate_dlp_seconds_count",
                 "sealgate_milter_verdict_seconds_count"):
        assert (name, ()) in seen, name
    for cause in ("keyword", "tag", "dlp"):
        assert ("sealgate_messages_triggered_total", (("cause", cause),)) in seen
    for method in ("portal", "tls", "smime", "pgp"):
        assert ("sealgate_delivery_methods_total", (("method", method),)) in seen
    for result in ("ok", "failed"):
        assert ("sealgate_portal_logins_total", (("result", result),)) in seen
    assert b"# TYPE sealgate_errors_total counter" in body


def test_counts_and_timings_show_in_the_exposition() -> None:
    before = samples(exposition()[0])
    metrics().deposits.inc()
    metrics().delivery_methods.labels(method="smime").inc(2)
    metrics().errors.labels(component="server", kind="http_503").inc()
    metrics().dlp_seconds.observe(0.02)
    after = samples(exposition()[0])
    assert after[("sealgate_deposits_total", ())] == before[("sealgate_deposits_total", ())] + 1
    key = ("sealgate_delivery_methods_total", (("method", "smime"),))
    assert after[key] == before[key] + 2
    error = ("sealgate_errors_total", (("component", "server"), ("kind", "http_503")))
    assert after[error] == before.get(error, 0) + 1
    bucket = ("sealgate_dlp_seconds_bucket", (("le", "0.025"),))
    assert after[bucket] == before[bucket] + 1


WORKERS = """
import os, sys
from pathlib import Path
from sealgate.metrics import exposition, metrics, prepare_multiprocess, worker_exited

prepare_multiprocess(Path(sys.argv[1]))
children = []
for amount in (1, 2):
    pid = os.fork()
    if pid == 0:  # a worker, as gunicorn forks it: counts into the shared directory
        metrics().deposits.inc(amount)
        metrics().portal_logins.labels(result="failed").inc()
        os._exit(0)
    children.append(pid)
for pid in children:
    os.waitpid(pid, 0)
    worker_exited(pid)
sys.stdout.write(exposition()[0].decode())
"""


def test_forked_workers_are_summed_and_a_restart_starts_from_zero(tmp_path: Path) -> None:
    directory = tmp_path / "metrics"
    directory.mkdir()
    (directory / "counter_99999.db").write_bytes(b"left by an earlier run")
    env = {k: v for k, v in os.environ.items() if k != "PROMETHEUS_MULTIPROC_DIR"}
    run = subprocess.run([sys.executable, "-c", textwrap.dedent(WORKERS), str(directory)],
                         capture_output=True, env=env, timeout=60, check=False)
    assert run.returncode == 0, run.stderr.decode()
    seen = samples(run.stdout)
    assert seen[("sealgate_deposits_total", ())] == 3
    assert seen[("sealgate_portal_logins_total", (("result", "failed"),))] == 2
    assert not (directory / "counter_99999.db").exists()


def test_the_directory_cannot_be_set_once_prometheus_client_counts_per_process(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("PROMETHEUS_MULTIPROC_DIR", raising=False)
    metrics()  # prometheus_client is imported in this process, in single-process mode
    with pytest.raises(SealgateError, match="imported before"):
        prepare_multiprocess(tmp_path / "metrics")
    assert "PROMETHEUS_MULTIPROC_DIR" not in os.environ


@pytest.mark.parametrize(("remote", "forwarded", "allowed"), [
    ("127.0.0.1", False, True),
    ("::1", False, True),
    ("::ffff:127.0.0.1", False, True),
    ("10.0.0.7", False, False),
    ("2001:db8::1", False, False),
    ("127.0.0.1", True, False),  # a proxy the server does not trust relayed it
    (None, False, False),
    ("not-an-address", False, False),
])
def test_metrics_are_for_the_allowed_addresses_only(
        tmp_path: Path, remote: str | None, forwarded: bool, allowed: bool) -> None:
    settings = config.load(tmp_path, {})
    assert metrics_allowed(settings, remote, forwarded) is allowed


def test_an_allowed_network_lets_its_members_in(tmp_path: Path) -> None:
    settings = config.load(tmp_path, {"SEALGATE_SERVER__METRICS_ALLOW": "10.1.0.0/16, ::1"})
    assert metrics_allowed(settings, "10.1.200.3", False)
    assert not metrics_allowed(settings, "10.2.0.1", False)
    assert not metrics_allowed(settings, "127.0.0.1", False)


def test_a_wrong_allow_list_entry_is_refused_with_its_value(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"server.metrics_allow.*'prometheus.local' is not"):
        config.load(tmp_path, {"SEALGATE_SERVER__METRICS_ALLOW": "prometheus.local"})
