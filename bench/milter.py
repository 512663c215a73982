"""Milter throughput on a real Postfix: smtp-source into the private lab Postfix, relaying to
smtp-sink, with configurations alternated in one sitting:

    none       Postfix without a milter
    noop       a pymilter that changes nothing (sealgate.lab.noop_milter)
    clean      Sealgate's milter, no message triggered
    triggered  Sealgate's milter, every message triggered (deposit, seal, notification)
    triggered_tls  the same, to a domain that qualifies for verified TLS (a verdict on
               file): sealed for the fallback, tracked, re-injected for the verify transport

for the unix and the inet milter socket. Rates are messages per second from the first
connection until the last message is accepted (the milter works while Postfix accepts);
each run's queue is then drained to smtp-sink before the next.

    .venv/bin/python bench/milter.py [--quick] [--messages N] [--rounds R]

Must run as root (Postfix). Last line: JSON with the rates and the ratios
`clean_vs_noop`, `triggered_vs_noop` and `triggered_tls_vs_noop` (unix socket), plus
`*_inet` variants.
"""

from __future__ import annotations

import sys
from pathlib import Path

# Run as `python bench/milter.py`, this file's folder comes first on sys.path, and this
# file would shadow pymilter's C extension, which is also imported as `milter`.
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).parent.resolve()]

import argparse
import json
import os
import statistics
import subprocess
import tempfile
import time
import urllib.request
from contextlib import ExitStack

from sealgate.lab import noop_milter
from sealgate.lab.host import free_ports, logged_process
from sealgate.lab.postfix import PrivatePostfix

CONFIGURATIONS = ("none", "noop", "clean", "triggered", "triggered_tls")
TLS_DOMAIN = "tls.test"
SESSIONS = 8
MESSAGE_BYTES = 4000


def wait_for_http(url: str, seconds: float = 60) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            urllib.request.urlopen(url, timeout=2)
            return
        except OSError:
            time.sleep(0.2)
    raise RuntimeError(f"{url} did not answer")


class Bench:
    def __init__(self, root: Path, kind: str, stack: ExitStack) -> None:
        self.root = root / kind
        self.root.mkdir()
        sink_port, web_port, milter_port, noop_port = free_ports(4)
        stack.enter_context(logged_process(
            ["smtp-sink", "-u", "postfix", f"127.0.0.1:{sink_port}", "256"],
            self.root / "sink.log", grace=15))
        noop_milter.wait_until_listening(f"inet:127.0.0.1:{sink_port}")  # any TCP answer
        self.postfix = PrivatePostfix(self.root / "postfix", sink_port)
        sockets = self.postfix.socket_dir
        if kind == "unix":
            self.milters = {"noop": f"unix:{sockets / 'noop.sock'}",
                            "sealgate": f"unix:{sockets / 'sealgate.sock'}"}
        else:
            self.milters = {"noop": f"inet:127.0.0.1:{noop_port}",
                            "sealgate": f"inet:127.0.0.1:{milter_port}"}
        home = self.root / "home"
        # Portal settings may be given from outside, e.g. SEALGATE_PORTAL__NOTIFY_SENDER=false
        # to see what the sender's notice costs; nothing else of the caller's.
        env = {key: value for key, value in os.environ.items()
               if not key.startswith("SEALGATE_") or key.startswith("SEALGATE_PORTAL__")}
        env.update({
            "SEALGATE_SERVER__LISTEN": f"127.0.0.1:{web_port}",
            "SEALGATE_SERVER__WORKERS": "2",
            "SEALGATE_MILTER__LISTEN": noop_milter.libmilter_address(self.milters["sealgate"]),
            "SEALGATE_MILTER__REINJECT": f"127.0.0.1:{self.postfix.reinject_port}",
            # The lab Postfix has the verified-TLS transports (triggered_tls).
            "SEALGATE_ROUTING__MTA_ENFORCES_TLS": "true",
        })
        sealgate = [sys.executable, "-m", "sealgate", "--home", str(home)]
        subprocess.run([*sealgate, "init"], env=env, check=True, capture_output=True)
        self._verdict_on_file(home, env)
        self.postfix.start()
        stack.callback(self.postfix.stop)
        for command, log in (("serve", "server.log"), ("milter", "milter.log")):
            stack.enter_context(logged_process([*sealgate, command], self.root / log, env,
                                               grace=15))
        stack.enter_context(logged_process(
            [sys.executable, "-m", "sealgate.lab.noop_milter", self.milters["noop"]],
            self.root / "noop.log", grace=15))
        wait_for_http(f"http://127.0.0.1:{web_port}/healthz")
        for address in self.milters.values():
            noop_milter.wait_until_listening(address)

    @staticmethod
    def _verdict_on_file(home: Path, env: dict[str, str]) -> None:
        """TLS_DOMAIN qualifies, as if probed: routing picks verified TLS for it at once."""
        from datetime import UTC, datetime, timedelta

        from sealgate import config
        from sealgate.vault import tls
        from sealgate.vault.vault import Vault

        vault = Vault.open(config.load(home, env))
        try:
            now = datetime.now(UTC)
            tls.save_verdict(vault, tls.StoredVerdict(
                TLS_DOMAIN, True, "starttls-probe", ("benchmark verdict",),
                now + timedelta(days=1)), now)
        finally:
            vault.close()

    def use(self, configuration: str) -> None:
        """Point Postfix's smtpd at the milter of this configuration (postconf + reload)."""
        milter = {"none": "", "noop": self.milters["noop"]}.get(configuration,
                                                                 self.milters["sealgate"])
        self.postfix.use_milter(milter or None)
        time.sleep(1.0)  # let the old smtpd processes go

    def rate(self, configuration: str, messages: int) -> float:
        self.use(configuration)
        subject = "encrypt/ benchmark" if configuration.startswith("triggered") \
            else "benchmark"
        domain = TLS_DOMAIN if configuration == "triggered_tls" else "external.test"
        started = time.perf_counter()
        subprocess.run(["smtp-source", "-s", str(SESSIONS), "-m", str(messages),
                        "-l", str(MESSAGE_BYTES), "-f", "sender@example.org",
                        "-t", f"recipient@{domain}", "-S", subject,
                        f"127.0.0.1:{self.postfix.smtp_port}"], check=True, timeout=600)
        accepted = time.perf_counter() - started
        # Delivery to smtp-sink is the same work in every configuration; it is let finish
        # (untimed) so that one run's queue does not slow the next.
        self.postfix.wait_until_queue_empty(timeout=300)
        return messages / accepted


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a short run (under a minute)")
    parser.add_argument("--messages", type=int, default=None)
    parser.add_argument("--rounds", type=int, default=None)
    parser.add_argument("--sockets", default=None,
                        help="unix,inet (default; --quick: unix only, to stay under a minute)")
    args = parser.parse_args()
    messages = args.messages or (300 if args.quick else 1500)
    rounds = args.rounds or (2 if args.quick else 3)
    sockets = args.sockets or ("unix" if args.quick else "unix,inet")
    if os.geteuid() != 0:
        sys.exit("bench/milter.py needs root: Postfix runs as a private instance")
    rates: dict[str, dict[str, list[float]]] = {}
    with tempfile.TemporaryDirectory(prefix="sealgate-bench-") as scratch:
        for kind in sockets.split(","):
            with ExitStack() as stack:
                bench = Bench(Path(scratch), kind, stack)
                rates[kind] = {name: [] for name in CONFIGURATIONS}
                bench.rate("none", max(20, messages // 10))  # warm up
                for _ in range(rounds):
                    for name in CONFIGURATIONS:
                        rates[kind][name].append(bench.rate(name, messages))
    result: dict[str, float | int] = {"messages": messages, "rounds": rounds,
                                      "sessions": SESSIONS, "message_bytes": MESSAGE_BYTES}
    print(f"{messages} messages x {rounds} round(s), {SESSIONS} SMTP sessions, "
          f"{MESSAGE_BYTES} bytes each; messages/second (median of rounds)")
    for kind, by_name in rates.items():
        medians = {name: statistics.median(values) for name, values in by_name.items()}
        suffix = "" if kind == "unix" else f"_{kind}"
        for name, value in medians.items():
            result[f"{name}{suffix}"] = round(value, 1)
        result[f"noop_vs_none{suffix}"] = round(medians["noop"] / medians["none"], 3)
        result[f"clean_vs_noop{suffix}"] = round(medians["clean"] / medians["noop"], 3)
        result[f"triggered_vs_noop{suffix}"] = round(medians["triggered"] / medians["noop"], 3)
        result[f"triggered_tls_vs_noop{suffix}"] = round(
            medians["triggered_tls"] / medians["noop"], 3)
        print(f"{kind:5} none {medians['none']:7.1f}  noop {medians['noop']:7.1f}  "
              f"clean {medians['clean']:7.1f}  triggered {medians['triggered']:7.1f}  "
              f"triggered_tls {medians['triggered_tls']:7.1f}   "
              f"noop/none {medians['noop'] / medians['none']:.3f}  "
              f"clean/noop {medians['clean'] / medians['noop']:.3f}  "
              f"triggered/noop {medians['triggered'] / medians['noop']:.3f}  "
              f"triggered_tls/noop {medians['triggered_tls'] / medians['noop']:.3f}")
    print(json.dumps(result))


if __name__ == "__main__":
    main()
