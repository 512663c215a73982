"""The secure message portal: recipients prove who they are, read, download and reply;
senders follow and control what they sent. Server-rendered pages, one module per concern."""

from __future__ import annotations

from flask import Blueprint, redirect, render_template
from werkzeug.wrappers import Response

portal = Blueprint("portal", __name__)


@portal.before_request
def _identify() -> None:
    from sealgate.server.portal.identity import load_visitor

    load_visitor()


@portal.get("/")
def home() -> str | Response:
    from sealgate.server.portal.identity import current_visitor

    if current_visitor() is not None:
        return redirect("/messages")
    return render_template("portal/home.html")


from sealgate.server.portal import reading, reply, signin, tracking  # noqa: E402

__all__ = ["portal", "reading", "reply", "signin", "tracking"]
