"""The secure message portal (recipients). The pages arrive with the portal issue."""

from __future__ import annotations

from flask import Blueprint, render_template

from sealgate.server.app import services

portal = Blueprint("portal", __name__)


@portal.get("/")
def home() -> str:
    return render_template("portal/home.html",
                           organisation=services().config.organisation.name)
