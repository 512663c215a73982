"""Organisation & branding: the organisation's name, domains, colour, footer, disclaimer and
support contact; its logo; and a preview of the notification mail and of the portal page
built from the values being edited, before they are saved.

The previews are documents of their own, shown in sandboxed frames: the notification is the
real notification builder's HTML (inline styles, as mail needs), so it is served with a
policy of its own that allows those styles and nothing else, and no script runs in either.
The edited values reach a preview as a CSRF-protected POST of the branding form into its
frame (a button's formtarget; admin.js does the same as fields change)."""

from __future__ import annotations

import hashlib
import os
import re
import secrets
from email import message_from_bytes, policy

from flask import Response, abort, flash, redirect, render_template, request, url_for
from flask.typing import ResponseReturnValue
from flask_wtf.file import FileField, FileRequired
from wtforms import StringField, TextAreaField

from sealgate import settings
from sealgate.config import Config
from sealgate.mail import notification
from sealgate.mail.notification import Branding
from sealgate.server.admin import admin, admin_api
from sealgate.server.admin.api import key_holder, needs, problem
from sealgate.server.admin.identity import actor
from sealgate.server.admin.settings_api import apply_change
from sealgate.server.admin.settings_pages import (
    STALE,
    SettingsForm,
    checked,
    initial,
    joined,
    page,
    refusal,
    save,
    simple_fields,
    split_words,
)
from sealgate.server.app import services
from sealgate.server.branding import branding
from sealgate.settings import SettingsError
from sealgate.vault.settings import StaleRevision

LOGO_LIMIT = 256 * 1024
LOGO_FOLDER = "branding"
# Judged by the content, never by the name: the first bytes of each accepted format.
LOGO_SIGNATURES = ((b"\x89PNG\r\n\x1a\n", "png"), (b"\xff\xd8\xff", "jpg"),
                   (b"GIF87a", "gif"), (b"GIF89a", "gif"))
_SVG = re.compile(rb"^\s*(?:<\?xml[^>]*>\s*)?(?:<!--.*?-->\s*)*(?:<!DOCTYPE svg|<svg)",
                  re.IGNORECASE | re.DOTALL)
_COLOUR = re.compile(r"^#[0-9a-fA-F]{6}$")
# The portal's base template loads portal.js. No script may run in the preview's sandbox, and
# the browser reports each one it blocks as an error: the preview is sent without them (the
# template's own tags only; every value in the page is escaped).
_SCRIPT = re.compile(r"<script\b[^>]*>\s*</script>\s*")
SAMPLE_SENDER = "Alex Morgan"
SAMPLE_SUBJECT = "Your test results"


class OrganisationForm(SettingsForm):
    name = StringField("Organisation name")
    domains = TextAreaField("The organisation's mail domains",
                            description="commas or one per line; mail to these domains is "
                                        "internal and is delivered as it is")
    colour = StringField("Colour (headers and buttons)", render_kw={"type": "color"})
    support = StringField("Support contact",
                          description="who recipients ask for help: an address, a telephone "
                                      "number or a web address")
    footer = TextAreaField("Footer", description="e.g. the postal address; at the foot of "
                                                  "every notification and portal page")
    disclaimer = TextAreaField("Disclaimer")


class LogoForm(SettingsForm):
    logo = FileField("Logo file (PNG, JPEG or GIF, at most 256 KB)",
                     validators=[FileRequired("Choose an image file to upload.")])


TEXT_KEYS = ("name", "colour", "support", "footer", "disclaimer")


def _edited(form: OrganisationForm) -> dict[str, object]:
    return {**{key: (form[key].data or "").strip() for key in TEXT_KEYS},
            "domains": [domain.lower() for domain in split_words(form.domains.data)]}


@admin.route("/organisation", methods=["GET", "POST"])
def organisation() -> ResponseReturnValue:
    if request.method == "POST":
        form = OrganisationForm()
    else:
        values = initial("organisation")
        form = OrganisationForm(data={**values, "domains": joined(values["domains"], "\n")})
    status = 200
    if form.is_submitted():
        status = 400
        if checked(form):
            outcome = save(form, {"organisation": _edited(form)},
                           simple_fields(form, "organisation"))
            if outcome is None:
                return redirect(url_for("admin.organisation"))
            status = outcome
    return _page(form, LogoForm(formdata=None, revision=services().live.revision), status)


def _page(form: OrganisationForm, logo: LogoForm, status: int) -> ResponseReturnValue:
    config = services().config
    return page("admin/organisation.html", form, status, ("organisation",), logo_form=logo,
                has_logo=bool(config.organisation.logo), logo_limit_kb=LOGO_LIMIT // 1024)


# -- the logo ----------------------------------------------------------------------------------

class LogoRefused(ValueError):
    """The upload is not a logo we take; the message says why, for the administrator."""


def logo_format(data: bytes) -> str:
    """The file extension for an accepted logo, or LogoRefused."""
    if len(data) > LOGO_LIMIT:
        raise LogoRefused(f"The file is larger than {LOGO_LIMIT // 1024} KB, the largest logo "
                          "accepted. A logo is shown at most 40 pixels high: save it smaller.")
    if not data:
        raise LogoRefused("The file is empty.")
    for signature, extension in LOGO_SIGNATURES:
        # A PNG's first chunk is its header: a signature alone is not an image.
        if data.startswith(signature) and (extension != "png" or data[12:16] == b"IHDR"):
            return extension
    if _SVG.match(data[:4096]):
        raise LogoRefused("SVG logos are not accepted: an SVG file can carry scripts and "
                          "links to other sites. Upload the logo as a PNG, JPEG or GIF image.")
    raise LogoRefused("The file is not a PNG, JPEG or GIF image (judged by its content, not "
                      "its name). Upload the logo in one of those formats.")


def store_logo(config: Config, data: bytes, extension: str) -> tuple[str, bool]:
    """Write the logo under the home, named by its digest; its path relative to the home, and
    whether the file is new. Written to a temporary name and renamed: a reader never sees
    half a file."""
    folder = config.home / LOGO_FOLDER
    folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    name = f"{hashlib.sha256(data).hexdigest()}.{extension}"
    target = folder / name
    if target.is_file():
        return f"{LOGO_FOLDER}/{name}", False
    temporary = folder / f".{name}.{secrets.token_hex(8)}.tmp"
    descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(descriptor, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, target)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise
    return f"{LOGO_FOLDER}/{name}", True


@admin.post("/organisation/logo")
def upload_logo() -> ResponseReturnValue:
    form = LogoForm()
    values = initial("organisation")
    text_form = OrganisationForm(formdata=None, data={
        **values, "domains": joined(values["domains"], "\n")})
    if not form.validate_on_submit():
        flash("The logo was not changed: " + " ".join(
            error for errors in form.errors.values() for error in errors), "error")
        return _page(text_form, form, 400)
    data = form.logo.data.stream.read(LOGO_LIMIT + 1)
    try:
        extension = logo_format(data)
    except LogoRefused as error:
        form.logo.errors = [str(error)]
        flash(f"The logo was not changed. {error}", "error")
        return _page(text_form, form, 400)
    live = services().live
    relative, new = store_logo(live.current(), data, extension)
    try:
        change = live.change(actor(), {"organisation": {"logo": relative}},
                             based_on=form.based_on())
    except (StaleRevision, SettingsError) as error:
        if new:  # nothing refers to it
            (live.current().home / relative).unlink(missing_ok=True)
        flash(STALE if isinstance(error, StaleRevision)
              else f"The logo was not changed: {refusal(error).summary}", "error")
        return _page(text_form, form, 409 if isinstance(error, StaleRevision) else 400)
    flash(f"The new logo is saved (revision {change.revision}).", "info")
    return redirect(url_for("admin.organisation"))


@admin.post("/organisation/logo/remove")
def remove_logo() -> ResponseReturnValue:
    """No logo: the organisation's name heads the portal instead. (Back to the file's logo,
    if it names one, is the reset of organisation.logo.)"""
    form = SettingsForm()
    live = services().live
    if not form.validate_on_submit():
        flash("The logo was not removed: reload the page and try again.", "error")
    elif not live.current().organisation.logo:
        flash("There is no logo to remove.", "info")
    else:
        try:
            change = live.change(actor(), {"organisation": {"logo": ""}},
                                 based_on=form.based_on())
        except StaleRevision:
            flash(STALE, "error")
        except SettingsError as error:
            flash(f"The logo was not removed: {refusal(error).summary}", "error")
        else:
            flash(f"The logo is removed (revision {change.revision}).", "info")
    return redirect(url_for("admin.organisation"))


# -- previews ----------------------------------------------------------------------------------

PREVIEWS = ("notification", "portal")


def _frame(response: Response, policy: str) -> Response:
    response.headers["Content-Security-Policy"] = policy
    response.headers["X-Frame-Options"] = "SAMEORIGIN"
    response.headers["Cache-Control"] = "no-store"
    return response


def notification_html(brand: Branding, config: Config) -> str:
    """The HTML part of the notification the real builder makes for this branding."""
    built = notification.build(brand, SAMPLE_SENDER, SAMPLE_SUBJECT,
                               f"{config.server.base_url}/m/00000000-0000-4000-8000-000000000000")
    message = message_from_bytes(
        f"Content-Type: {built.content_type}\r\n\r\n".encode("ascii") + built.body,
        policy=policy.default)
    html = message.get_body(("html",))
    assert html is not None  # the builder always writes one
    return str(html.get_content())


@admin.route("/organisation/preview/<kind>", methods=["GET", "POST"])
def organisation_preview(kind: str) -> ResponseReturnValue:
    """GET: the running branding; POST (the branding form): the values being edited, not
    saved. A value that would be refused says so instead of a preview."""
    if kind not in PREVIEWS:
        abort(404, description=f"no preview {kind!r} (previews: {', '.join(PREVIEWS)})")
    live = services().live
    config = live.current()
    if request.method == "POST":
        form = OrganisationForm()
        if not form.validate():
            return _frame(Response(render_template(
                "admin/preview_refused.html", message="The form has expired: reload the page."),
                status=400), _REFUSED_POLICY)
        try:
            config = settings.effective(live.base, settings.merged(
                live.overlay()[1], {"organisation": _edited(form)}))
        except SettingsError as error:
            return _frame(Response(render_template(
                "admin/preview_refused.html", message=refusal(error).summary), status=400),
                _REFUSED_POLICY)
    brand = branding(config)
    if kind == "notification":
        return _frame(Response(notification_html(brand, config), mimetype="text/html"),
                      _NOTIFICATION_POLICY)
    page = render_template("admin/preview_portal.html", brand=brand, sender=SAMPLE_SENDER,
                           colours=url_for("admin.preview_colours", colour=brand.colour))
    return _frame(Response(_SCRIPT.sub("", page)), _PORTAL_POLICY)


@admin.get("/organisation/preview.css")
def preview_colours() -> ResponseReturnValue:
    """The brand colour being previewed, as portal pages get theirs from /brand.css."""
    colour = request.args.get("colour", "")
    if not _COLOUR.match(colour):
        colour = services().config.organisation.colour
    return Response(f":root{{--brand:{colour};}}\n", mimetype="text/css",
                    headers={"Cache-Control": "no-store"})


# Mail needs inline styles: allowed in the notification's own frame, with nothing else.
_NOTIFICATION_POLICY = ("default-src 'none'; img-src 'self' data:; style-src 'unsafe-inline'; "
                        "base-uri 'none'; form-action 'none'; frame-ancestors 'self'; sandbox")
_PORTAL_POLICY = ("default-src 'self'; img-src 'self' data:; style-src 'self'; "
                  "script-src 'none'; object-src 'none'; base-uri 'none'; form-action 'none'; "
                  "frame-ancestors 'self'; sandbox allow-same-origin")
_REFUSED_POLICY = ("default-src 'none'; style-src 'self'; base-uri 'none'; "
                   "form-action 'none'; frame-ancestors 'self'; sandbox allow-same-origin")


# -- the logo over the API ---------------------------------------------------------------------

@admin_api.put("/branding/logo")
@needs("settings:write")
def put_logo() -> ResponseReturnValue:
    """The logo as the request body (a PNG, JPEG or GIF image, judged by its content)."""
    data = request.get_data(cache=False)
    try:
        extension = logo_format(data)
    except LogoRefused as error:
        return problem(400, "invalid_logo", str(error))
    live = services().live
    relative, new = store_logo(live.current(), data, extension)
    answer = apply_change(key_holder().actor, {"organisation": {"logo": relative}}, None,
                          lambda: {"revision": live.revision, "logo": relative})
    if new and live.current().organisation.logo != relative:  # refused: nothing refers to it
        (live.current().home / relative).unlink(missing_ok=True)
    return answer


@admin_api.delete("/branding/logo")
@needs("settings:write")
def delete_logo() -> ResponseReturnValue:
    """No logo: the organisation's name heads the portal and the notifications."""
    live = services().live
    return apply_change(key_holder().actor, {"organisation": {"logo": ""}}, None,
                        lambda: {"revision": live.revision, "logo": ""})
