"""JSON API for the add-in, the milter and administrators (/api/v1). Errors are JSON."""

from __future__ import annotations

from flask import Blueprint, Response, jsonify

from sealgate import __version__

api = Blueprint("api", __name__)


@api.get("/")
def index() -> Response:
    return jsonify(service="sealgate", version=__version__)
