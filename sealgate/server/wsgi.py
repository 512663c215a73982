"""WSGI entry point for running under an external gunicorn:
`gunicorn -c deploy/gunicorn.conf.py sealgate.server.wsgi:app` (SEALGATE_HOME selects the home)."""

from __future__ import annotations

from sealgate import config
from sealgate.server.app import create_app

app = create_app(config.load())
