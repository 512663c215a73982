"""The console's first page: where things stand, and the way to each area."""

from __future__ import annotations

from flask import render_template
from flask.typing import ResponseReturnValue

from sealgate.server.admin import admin
from sealgate.server.app import services
from sealgate.vault import settings as stored


@admin.get("/")
def dashboard() -> ResponseReturnValue:
    service = services()
    return render_template("admin/dashboard.html", revision=service.live.revision,
                           history=stored.history(service.vault, limit=10))
