"""The milter daemon. Until the milter issue lands this holds the place in `sealgate run`
without listening: Postfix configured with `milter_default_action = tempfail` then defers
mail rather than letting anything pass unchecked."""

from __future__ import annotations

import signal
import sys
import threading

from sealgate.config import Config


def run_milter(config: Config) -> None:
    print(f"sealgate milter: not yet implemented; {config.milter_socket} is not served "
          "(mail through a tempfail milter is deferred, not passed)", file=sys.stderr, flush=True)
    stopped = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stopped.set())
    signal.signal(signal.SIGINT, lambda *_: stopped.set())
    stopped.wait()
