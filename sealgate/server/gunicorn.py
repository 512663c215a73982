"""Running the app under gunicorn, with settings taken from the Sealgate configuration."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from gunicorn.app.base import BaseApplication

from sealgate import logs, metrics
from sealgate.config import Config


def metrics_dir(config: Config) -> Path:
    """Where the workers keep their metric values (emptied at every start)."""
    return config.home / "metrics"


def settings(config: Config) -> dict[str, Any]:
    """Gunicorn settings for this configuration (also used by deploy/gunicorn.conf.py)."""
    return {
        "bind": [config.server.listen],
        "workers": config.server.workers,
        "worker_class": "gthread",
        "threads": 4,
        "timeout": 60,
        "graceful_timeout": 20,
        "accesslog": "-",
        "errorlog": "-",
        "logconfig_dict": logs.gunicorn_config(config.logging.format),
        "proc_name": "sealgate-server",
        # gunicornc's socket lives with the rest of Sealgate's state, not in $HOME.
        "control_socket": str(config.home / "gunicorn.ctl"),
        # Behind a reverse proxy on the same host; see deploy/reverse-proxy.
        "forwarded_allow_ips": "127.0.0.1,::1",
        # In the master, before any worker exists: every worker counts into the same place.
        "on_starting": lambda server: metrics.prepare_multiprocess(metrics_dir(config)),
        "child_exit": lambda server, worker: metrics.worker_exited(worker.pid),
    }


class SealgateServer(BaseApplication):  # type: ignore[misc]
    def __init__(self, config: Config) -> None:
        self._config = config
        super().__init__()

    def load_config(self) -> None:
        for key, value in settings(self._config).items():
            self.cfg.set(key, value)

    def load(self) -> Any:
        # Each worker builds its own app: database connections are not shared across fork.
        from sealgate.server.app import create_app

        app = create_app(self._config)
        # Verified-TLS retries and fallbacks left by an earlier run are due now, not when the
        # next message comes.
        app.extensions["sealgate"].tls.start()
        return app


def serve(config: Config) -> None:
    SealgateServer(config).run()
