"""The Flask application factory."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from urllib.parse import urlsplit

from flask import Flask, Response, current_app, jsonify, render_template, request
from flask_babel import Babel
from flask_wtf.csrf import CSRFError, CSRFProtect
from werkzeug.exceptions import HTTPException
from werkzeug.middleware.proxy_fix import ProxyFix

from sealgate import logs
from sealgate.config import Config
from sealgate.errors import ConfigError
from sealgate.metrics import count_error
from sealgate.routing.wkd_lookups import WkdLookups, store_in_vault
from sealgate.server.live import LiveConfig
from sealgate.server.tls import TlsService
from sealgate.vault.vault import Vault

log = logging.getLogger(__name__)

CONTENT_SECURITY_POLICY = (
    "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; "
    "object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
)


@dataclass(frozen=True)
class Services:
    """What request handlers need, created once per worker process."""

    live: LiveConfig
    vault: Vault
    tls: TlsService
    wkd: WkdLookups | None  # None: routing.wkd is off

    @property
    def config(self) -> Config:
        """The running configuration: the file's with the administrators' saved changes."""
        return self.live.current()

    @property
    def verified_tls(self) -> TlsService | None:
        """Verified TLS may be chosen only when the MTA enforces it (routing.mta_enforces_tls):
        otherwise None, and routing never picks it."""
        return self.tls if self.config.routing.mta_enforces_tls else None


def services() -> Services:
    found: Services = current_app.extensions["sealgate"]
    return found


def create_app(config: Config, vault: Vault | None = None) -> Flask:
    if len(config.server.secret_key) < 32:
        raise ConfigError(
            "server.secret_key must be at least 32 characters (`sealgate init` makes one; "
            "or set SEALGATE_SERVER__SECRET_KEY)")
    app = Flask(__name__)
    base = urlsplit(config.server.base_url)
    https = base.scheme == "https"
    app.config.update(
        SECRET_KEY=config.server.secret_key,
        # The cookie holds only a random session secret (see portal/identity.py).
        SESSION_COOKIE_NAME="__Host-sealgate" if https else "sealgate",
        SESSION_COOKIE_SECURE=https,
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Lax",
        PREFERRED_URL_SCHEME=base.scheme,
        SERVER_NAME=None,
        JSON_SORT_KEYS=False,
        # A deposit carries the whole message, base64-encoded, in JSON.
        MAX_CONTENT_LENGTH=64 * 1024 * 1024,
        MAX_FORM_MEMORY_SIZE=(config.portal.reply_limit_mb + 1) * 1024 * 1024,
        WTF_CSRF_TIME_LIMIT=None,  # the token lives as long as the session that holds it
        RATELIMIT_STORAGE_URI=config.portal.rate_limit_storage or "memory://",
        RATELIMIT_HEADERS_ENABLED=True,
        BABEL_DEFAULT_LOCALE="en",
    )
    if config.server.trusted_proxies:
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=config.server.trusted_proxies,  # type: ignore[method-assign]
                                x_proto=config.server.trusted_proxies)
    vault = vault or Vault.open(config)
    from sealgate.server.admin.checks import CHECKS

    app.extensions["sealgate"] = Services(
        live=LiveConfig(config, vault, checks=CHECKS), vault=vault, tls=TlsService(vault, config),
        wkd=WkdLookups(store_in_vault(vault)) if config.routing.wkd else None)

    from sealgate.server.addin_pages import addin_pages
    from sealgate.server.admin import admin, admin_api
    from sealgate.server.api import api
    from sealgate.server.api.addin import addin
    from sealgate.server.api.internal import internal
    from sealgate.server.branding import brand, page_context
    from sealgate.server.health import health
    from sealgate.server.holds import held
    from sealgate.server.limits import limiter
    from sealgate.server.portal import portal

    app.register_blueprint(health)
    app.register_blueprint(api, url_prefix="/api/v1")
    app.register_blueprint(addin, url_prefix="/api/v1")
    app.register_blueprint(internal, url_prefix="/api/v1/internal")
    app.register_blueprint(brand)
    app.register_blueprint(portal)
    app.register_blueprint(held)
    app.register_blueprint(addin_pages)
    app.register_blueprint(admin)
    app.register_blueprint(admin_api)
    csrf = CSRFProtect(app)
    csrf.exempt(api)
    csrf.exempt(addin)  # bearer tokens, not cookies: nothing a foreign page could ride on
    csrf.exempt(internal)
    csrf.exempt(admin_api)  # API keys in a header, not cookies
    limiter.init_app(app)
    babel = Babel()
    offered: list[str] = []
    babel.init_app(app, locale_selector=lambda: _best_language(offered))
    with app.app_context():  # the catalogues present do not change while the server runs
        offered += [str(locale) for locale in babel.list_translations()]
    app.context_processor(page_context)

    @app.before_request
    def _message_of_request() -> None:
        # The message a page is about (/m/<message_id>/...) labels its log lines; and a
        # worker's threads serve one request after another, so the last one's id is cleared.
        about = (request.view_args or {}).get("message_id")
        logs.set_message_id(str(about) if about is not None else None)

    @app.after_request
    def _security_headers(response: Response) -> Response:
        response.headers.setdefault("Content-Security-Policy", CONTENT_SECURITY_POLICY)
        response.headers["X-Content-Type-Options"] = "nosniff"
        response.headers["Referrer-Policy"] = "no-referrer"
        # X-Frame-Options can only say "nobody": sent where the policy says so too (pages
        # meant to be framed, the add-in's and a message body's, set their own policy).
        if "frame-ancestors 'none'" in response.headers["Content-Security-Policy"]:
            response.headers.setdefault("X-Frame-Options", "DENY")
        if https:
            response.headers["Strict-Transport-Security"] = "max-age=31536000"
        return response

    @app.errorhandler(CSRFError)
    def _csrf_error(error: CSRFError) -> tuple[Response | str, int]:
        log.info("refused a form without a valid CSRF token: %s %s", request.method,
                 request.path)
        return render_template("error.html", code=400, title="This form has expired",
                               message="Go back, reload the page and try again."), 400

    @app.errorhandler(HTTPException)
    def _http_error(error: HTTPException) -> tuple[Response | str, int]:
        code = error.code or 500
        if code >= 500:
            count_error("server", f"http_{code}")
        if _wants_json():
            return jsonify(error=(error.name or "error").lower().replace(" ", "_"),
                           message=error.description), code
        return render_template("error.html", code=code, title=error.name,
                               message=error.description), code

    @app.errorhandler(Exception)
    def _unexpected(error: Exception) -> tuple[Response | str, int]:
        log.exception("unhandled error on %s %s", request.method, request.path)
        count_error("server", type(error).__name__)
        message = "Something went wrong on our side; it has been logged."
        if _wants_json():
            return jsonify(error="internal_error", message=message), 500
        try:
            return render_template("error.html", code=500, title="Server error",
                                   message=message), 500
        except Exception:  # the page itself is broken: say it plainly rather than crash
            log.exception("the error page could not be rendered")
            return Response(message, mimetype="text/plain"), 500

    return app


def _best_language(offered: list[str]) -> str:
    """The visitor's preferred language among those the portal has translations for."""
    return request.accept_languages.best_match(offered) or "en"


def _wants_json() -> bool:
    return request.path.startswith("/api/") or request.path in ("/healthz", "/readyz")
