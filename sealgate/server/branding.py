"""The organisation's branding, from one place in the configuration, for portal pages and
for every mail the server writes: name, logo, colour, footer, disclaimer, support contact."""

from __future__ import annotations

import mimetypes
from typing import Any

from flask import Blueprint, Response, abort, send_file
from flask_babel import get_locale

from sealgate.config import Config
from sealgate.mail.notification import Branding
from sealgate.server.app import services

brand = Blueprint("brand", __name__)
LOGO_TYPES = {"image/png", "image/jpeg", "image/gif", "image/svg+xml"}


def branding(config: Config) -> Branding:
    organisation = config.organisation
    return Branding(organisation=organisation.name, footer=organisation.footer,
                    disclaimer=organisation.disclaimer, colour=organisation.colour,
                    logo_url=f"{config.server.base_url}/brand/logo" if organisation.logo else "",
                    support=organisation.support)


def page_context() -> dict[str, Any]:
    """What every page template sees: `brand`, and the page's language as `locale`."""
    return {"brand": branding(services().config), "locale": str(get_locale() or "en")}


@brand.get("/brand/logo")
def logo() -> Response:
    path = services().config.logo_path
    kind = mimetypes.guess_type(path.name)[0] if path else None
    if path is None or kind not in LOGO_TYPES or not path.is_file():
        abort(404, description="No logo is configured.")
    response = send_file(path, mimetype=kind, max_age=3600)
    # An SVG logo is shown as an image only: no scripts even if opened directly.
    response.headers["Content-Security-Policy"] = "default-src 'none'; style-src 'unsafe-inline'"
    return response


@brand.get("/brand.css")
def colours() -> Response:
    colour = services().config.organisation.colour  # validated as #rrggbb
    css = (f":root{{--brand:{colour};}}\n")
    return Response(css, mimetype="text/css", headers={"Cache-Control": "max-age=300"})
