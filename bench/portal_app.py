"""The product's app plus a hello-world route, for bench/portal.py: both are served by the
same gunicorn, with the settings `sealgate serve` uses (sealgate.server.gunicorn.settings).

    SEALGATE_HOME=DIR python bench/portal_app.py [--worker-class sync]
    SEALGATE_HOME=DIR gunicorn --chdir bench 'portal_app:make()'      # any other gunicorn

`/hello` is a plain Flask route on the same app (the app's after_request headers apply, the
portal's session lookup does not): the floor a request costs on this server.
"""

from __future__ import annotations

import sys
from pathlib import Path

# This file's folder on sys.path (as `python bench/portal_app.py` puts it) would let
# bench/milter.py shadow pymilter's C extension `milter`; portal_app itself needs no path.
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).parent.resolve()]

import argparse
from typing import Any

from flask import Flask

from sealgate import config as sealgate_config
from sealgate.config import Config
from sealgate.server.app import create_app
from sealgate.server.gunicorn import SealgateServer

HELLO = "hello"


def make(config: Config | None = None) -> Flask:
    """A worker's app: Sealgate's own, for the home in SEALGATE_HOME, with `/hello` added."""
    app = create_app(config or sealgate_config.load())

    @app.get("/hello")
    def hello() -> str:
        return HELLO

    return app


class BenchServer(SealgateServer):
    def __init__(self, config: Config, overrides: dict[str, Any]) -> None:
        self._overrides = overrides
        super().__init__(config)

    def load_config(self) -> None:
        super().load_config()
        for key, value in self._overrides.items():
            self.cfg.set(key, value)

    def load(self) -> Any:
        return make(self._config)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--worker-class", default=None,
                        help="instead of the product's (gthread, 4 threads)")
    parser.add_argument("--threads", type=int, default=None)
    args = parser.parse_args()
    overrides: dict[str, Any] = {}
    if args.worker_class:
        overrides["worker_class"] = args.worker_class
    if args.threads:
        overrides["threads"] = args.threads
    BenchServer(sealgate_config.load(), overrides).run()


if __name__ == "__main__":
    main()
