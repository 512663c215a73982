"""The Outlook add-in's static files (addin/src/ at the repository root), served under /addin/.

Outlook on the web and new Outlook on Windows show add-in pages in an iframe inside Outlook's
own page, so these responses replace the portal's `frame-ancestors 'none'` with the Outlook
hosts, and carry no X-Frame-Options (it cannot name several hosts, and browsers ignore it when
frame-ancestors is present anyway). Classic Outlook on Windows and Outlook on Mac load the pages
in a webview of their own, where no ancestor exists to check.

No CORS headers: Outlook loads these files by navigation (pages), <script> (commands.js) and
<img> (icons), never by a cross-origin fetch; office.js itself comes from Microsoft's CDN.

Also /.well-known/microsoft-officeaddins-allowed.json: classic Outlook on Windows runs the
on-send handler as a bare script (commands.js) and lets it use single sign-on or cross-origin
requests only if the script's origin lists it there.
"""

from __future__ import annotations

import logging
from pathlib import Path, PurePosixPath

from flask import Blueprint, Response, abort, jsonify, send_from_directory

from sealgate.server.app import services

log = logging.getLogger(__name__)

ADDIN_DIR = Path(__file__).resolve().parents[2] / "addin" / "src"
OFFICE_JS_ORIGIN = "https://appsforoffice.microsoft.com"
# The Outlook hosts that frame add-in pages: Outlook on the web for work and school accounts
# (outlook.office.com, outlook.office365.com, and outlook.cloud.microsoft, Microsoft 365's newer
# domain), which new Outlook on Windows also is, and for Outlook.com accounts (outlook.live.com).
# Not here: an on-premises Exchange Server's Outlook on the web, on the organisation's own host.
OUTLOOK_FRAME_ANCESTORS = (
    "https://outlook.office.com",
    "https://outlook.office365.com",
    "https://outlook.cloud.microsoft",
    "https://outlook.live.com",
)
ADDIN_CONTENT_SECURITY_POLICY = (
    # 'unsafe-inline' styles: the read pane shows the (server-sanitised, style-filtered)
    # message in a srcdoc frame, which inherits this policy; scripts stay 'self' only.
    "default-src 'self'; img-src 'self' data:; style-src 'self' 'unsafe-inline'; "
    f"script-src 'self' {OFFICE_JS_ORIGIN}; object-src 'none'; base-uri 'none'; "
    "form-action 'self'; "
    f"frame-ancestors {' '.join(OUTLOOK_FRAME_ANCESTORS)}"
)
# Short: Outlook and browsers should pick up a new add-in version within minutes.
CACHE_SECONDS = 300
# Only these kinds of file are served, each with its type stated rather than guessed.
CONTENT_TYPES = {
    ".html": "text/html",
    ".js": "text/javascript",
    ".css": "text/css",
    ".png": "image/png",
}

addin_pages = Blueprint("addin_pages", __name__)


@addin_pages.get("/addin/<path:filename>")
def addin_file(filename: str) -> Response:
    parts = PurePosixPath(filename).parts
    content_type = CONTENT_TYPES.get(PurePosixPath(filename).suffix.lower())
    if content_type is None or any(part.startswith(".") for part in parts):
        abort(404)
    if not ADDIN_DIR.is_dir():
        log.error("the Outlook add-in's files are missing: no folder %s", ADDIN_DIR)
        abort(404, description="The Outlook add-in's files are not installed on this server.")
    # send_from_directory refuses any path that leaves ADDIN_DIR (404).
    return send_from_directory(ADDIN_DIR, filename, mimetype=content_type,
                               max_age=CACHE_SECONDS)


@addin_pages.get("/.well-known/microsoft-officeaddins-allowed.json")
def allowed_scripts() -> Response:
    """The scripts of this origin that may get tokens in Outlook's JavaScript-only runtime."""
    response = jsonify(allowed=[f"{services().config.server.base_url}/addin/commands.js"])
    response.cache_control.max_age = CACHE_SECONDS
    return response


@addin_pages.after_request
def _addin_content_security_policy(response: Response) -> Response:
    """Runs before the application's own security headers, which keep a CSP already set."""
    response.headers["Content-Security-Policy"] = ADDIN_CONTENT_SECURITY_POLICY
    return response
