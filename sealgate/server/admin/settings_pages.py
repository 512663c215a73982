"""The console pages of the settings areas, over the same `live.change` the JSON API uses:
each page shows the running values with the revision they belong to, and saves only the keys
the administrator changed. A refusal is shown next to the field it names with what was typed
kept; a change made on an older revision is refused rather than silently overwriting
someone else's. Here: what every settings page shares, the Portal and Delivery pages, and
"back to the file's value" for any key the console set."""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from flask import flash, redirect, render_template, request, url_for
from flask.typing import ResponseReturnValue
from wtforms import (
    BooleanField,
    Field,
    FieldList,
    FormField,
    HiddenField,
    IntegerField,
    SelectField,
    StringField,
    TextAreaField,
)
from wtforms import Form as RowForm
from wtforms.fields.choices import SelectChoice
from wtforms.validators import InputRequired, Length, Optional, Regexp

from sealgate import settings
from sealgate.server.admin import admin
from sealgate.server.admin.identity import actor
from sealgate.server.app import services
from sealgate.server.portal.forms import Form
from sealgate.settings import SettingsError
from sealgate.vault.settings import StaleRevision

# The page that shows each section's keys (where a reset goes back to).
PAGES = {"organisation": "admin.organisation", "dlp": "admin.dlp", "routing": "admin.routing",
         "milter": "admin.routing", "portal": "admin.portal_settings",
         "dkim": "admin.dashboard"}

STALE = ("Someone else changed the settings while you were editing, so nothing was saved. "
         "Reload the page to see their change, then make yours again.")


class SettingsForm(Form):
    # The revision the page showed: saving on top of a newer one is refused (StaleRevision).
    revision = HiddenField(validators=[InputRequired("reload the page"),
                                       Regexp(r"^\d{1,12}$", message="reload the page")])

    def based_on(self) -> int:
        return int(self.revision.data)


# -- values between forms and settings -------------------------------------------------------

def split_list(text: str | None) -> list[str]:
    """A list typed as text: items separated by commas or line ends."""
    return [item.strip() for item in re.split(r"[,\n]", text or "") if item.strip()]


def split_words(text: str | None) -> list[str]:
    """Items that cannot hold spaces (domains, method names): commas, spaces or line ends."""
    return [item for item in re.split(r"[,\s]+", text or "") if item]


def joined(values: Iterable[str], separator: str = ", ") -> str:
    return separator.join(values)


# -- refusals, next to their field -------------------------------------------------------------

@dataclass(frozen=True)
class Refusal:
    key: str  # the dotted key the message names ("dlp.detectors.0.pattern"), or ""
    beside: str  # for next to the field
    summary: str  # for the top of the page


def refusal(error: SettingsError) -> Refusal:
    """SettingsError's one line ("key = value (from the admin console): what is allowed")
    split for the page. A long value is left out of the summary."""
    text, wrong = str(error), error.wrong
    if wrong is None:
        return Refusal("", text, text)
    beside = f"{wrong.value} {wrong.reason}" \
        if wrong.value and wrong.reason.startswith(("is ", "matches ")) else wrong.reason
    summary = text if wrong.value is None or len(wrong.value) <= 120 \
        else f"{wrong.key}: {wrong.reason}"
    return Refusal(wrong.key, beside, summary)


def mark(field: Field | None, message: str) -> None:
    """The message beside a field (a list of rows has no place of its own: the page's
    summary says it)."""
    if field is not None and not isinstance(field, FieldList):
        field.errors = [*field.errors, message]


# -- saving -----------------------------------------------------------------------------------

FieldFor = Callable[[str], "Field | None"]


def simple_fields(form: Form, section: str) -> FieldFor:
    """Keys named like the form's fields ("portal.expiry_days" → form.expiry_days)."""
    def field_for(key: str) -> Field | None:
        parts = key.split(".")
        if len(parts) >= 2 and parts[0] == section and parts[1] in form:
            found: Field = form[parts[1]]
            return found
        return None

    return field_for


def save(form: SettingsForm, changes: Mapping[str, Mapping[str, Any]],
         field_for: FieldFor) -> int | None:
    """Store the keys whose value differs from the running one. None when saved (or there was
    nothing to save): the caller redirects to its page. Else the status to show the form
    again with, the reason flashed and marked beside its field."""
    live = services().live
    running = live.current()
    wanted = {}
    for section, keys in changes.items():
        current = settings.section_values(running, section)
        differing = {key: value for key, value in keys.items() if current[key] != value}
        if differing:
            wanted[section] = differing
    if not wanted:
        flash("Nothing to save: these are the values already running.", "info")
        return None
    try:
        change = live.change(actor(), wanted, based_on=form.based_on())
    except StaleRevision:
        flash(STALE, "error")
        return 409
    except SettingsError as error:
        refused = refusal(error)
        mark(field_for(refused.key), refused.beside)
        flash(f"Not saved: {refused.summary}", "error")
        return 400
    flash(f"Saved (revision {change.revision}).", "info")
    return None


def checked(form: Form) -> bool:
    """The form's own checks (numbers, required fields); when they fail, say so on top too."""
    if form.validate():
        return True
    flash("Nothing was saved: correct the fields marked below.", "error")
    return False


def initial(section: str, **extra: Any) -> dict[str, Any]:
    """A GET form's data: the running values of a section and the revision they are from."""
    live = services().live
    return {**settings.section_values(live.current(), section), "revision": live.revision,
            **extra}


# -- what the console changed, and going back to the file ---------------------------------------

@dataclass(frozen=True)
class Override:
    key: str
    running: str
    file: str


def _shown(value: Any) -> str:
    text = value if isinstance(value, str) else json.dumps(value)
    return text if len(text) <= 80 else text[:77] + "…"


def overrides(*sections: str) -> list[Override]:
    """The keys of these sections the console set over the configuration file."""
    live = services().live
    _, overlay = live.overlay()
    running = live.current()
    found = []
    for section in sections:
        current = settings.section_values(running, section)
        file = settings.section_values(live.base, section)
        found += [Override(f"{section}.{key}", _shown(current[key]), _shown(file[key]))
                  for key in overlay.get(section, {}) if key in current]
    return found


class ResetForm(SettingsForm):
    key = HiddenField(validators=[InputRequired()])


@admin.post("/settings/reset")
def reset_setting() -> ResponseReturnValue:
    """One key back to the configuration file's value (the key leaves the overlay)."""
    form = ResetForm()
    section, _, key = (form.key.data or "").partition(".")
    page = PAGES.get(section, "admin.dashboard")
    if not form.validate_on_submit() or key not in settings.EDITABLE.get(section, ()):
        flash("That setting cannot be reset: reload the page and try again.", "error")
        return redirect(url_for(page))
    try:
        change = services().live.change(actor(), {section: {key: None}},
                                        based_on=form.based_on())
    except StaleRevision:
        flash(STALE, "error")
    except SettingsError as error:
        flash(f"{section}.{key} cannot go back to the file's value: {refusal(error).summary}",
              "error")
    else:
        flash(f"{section}.{key} is back to the configuration file's value "
              f"(revision {change.revision}).", "info")
    return redirect(url_for(page))


def page(template: str, form: Form, status: int, sections: tuple[str, ...],
         **context: Any) -> ResponseReturnValue:
    live = services().live
    return render_template(template, form=form, overrides=overrides(*sections),
                           revision=live.revision, **context), status


# -- Portal ------------------------------------------------------------------------------------

class PortalForm(SettingsForm):
    require_mfa = BooleanField("Every recipient needs an authenticator app (MFA)")
    code_minutes = IntegerField("One-time code lifetime (minutes, 1–60)",
                                validators=[InputRequired()])
    code_attempts = IntegerField("Guesses allowed per one-time code (1–20)",
                                 validators=[InputRequired()])
    lockout_failures = IntegerField("Failed sign-ins before a lockout (1–100)",
                                    validators=[InputRequired()])
    lockout_minutes = IntegerField("Lockout length (minutes, 1–1440)",
                                   validators=[InputRequired()])
    session_minutes = IntegerField("Sign out after this many idle minutes (5–1440)",
                                   validators=[InputRequired()])
    expiry_days = IntegerField("Messages expire after (days; 0: never)",
                               validators=[InputRequired()])
    reply_limit_mb = IntegerField("Largest secure reply, attachments included (MB, 1–60)",
                                  validators=[InputRequired()])
    notify_sender = BooleanField("Tell the sender when a recipient replies")
    read_receipts = BooleanField("Send the sender a receipt when a message is first read")


PORTAL_KEYS = settings.EDITABLE["portal"]


@admin.route("/portal", methods=["GET", "POST"])
def portal_settings() -> ResponseReturnValue:
    form = PortalForm() if request.method == "POST" else PortalForm(data=initial("portal"))
    status = 200
    if form.is_submitted():
        status = 400
        if checked(form):
            outcome = save(form, {"portal": {key: form[key].data for key in PORTAL_KEYS}},
                           simple_fields(form, "portal"))
            if outcome is None:
                return redirect(url_for("admin.portal_settings"))
            status = outcome
    return page("admin/portal_settings.html", form, status, ("portal",))


# -- Delivery ----------------------------------------------------------------------------------

METHODS = ("tls", "smime", "pgp", "portal")
METHOD_HINT = "methods in order, separated by commas: tls, smime, pgp, portal"


class OverrideRow(RowForm):  # type: ignore[misc]  # WTForms ships no type information
    target = StringField("For", validators=[Optional(), Length(max=320)])
    order = StringField("Methods, in order", validators=[Optional(), Length(max=100)])
    remove = BooleanField("Remove")


class RoutingForm(SettingsForm):
    order = StringField("Delivery methods, in order", validators=[InputRequired()],
                        description=METHOD_HINT)
    domains = FieldList(FormField(OverrideRow))
    recipients = FieldList(FormField(OverrideRow))
    portal_enabled = BooleanField("The secure message portal is on (the fallback when no "
                                  "other method fits)")
    no_method = SelectField("When no method fits (the portal is off)", choices=[
        SelectChoice("bounce", "Return it to the sender, saying why"),
        SelectChoice("hold", "Hold it for an administrator")])
    portal_keywords = TextAreaField("Subject keywords that send a message by the portal",
                                    description="commas or one per line, e.g. secure/")
    subject_keywords = TextAreaField("Subject keywords that ask for encryption",
                                     description="commas or one per line, e.g. encrypt/ — "
                                                 "the keyword is removed from the subject")
    protect_subject = BooleanField("S/MIME and PGP: replace the visible subject with a "
                                   "neutral one")
    placeholder_subject = StringField("The neutral subject", validators=[Length(max=200)])


def _rows(overrides: Mapping[str, list[str]]) -> list[dict[str, str]]:
    return [{"target": target, "order": joined(order)} for target, order in overrides.items()]


Kept = list[tuple[str, Any]]  # (domain or address, the row it was typed in)


def _kept(rows: FieldList, lower: bool) -> Kept | None:
    """The rows not blank and not removed; None when one names a target twice (marked)."""
    kept: Kept = []
    for row in rows:
        target = (row.form.target.data or "").strip()
        target = target.lower() if lower else target
        if row.form.remove.data or not (target or (row.form.order.data or "").strip()):
            continue
        if any(target == seen for seen, _ in kept):
            mark(row.form.target, f"{target} has a row already: keep one.")
            return None
        kept.append((target, row))
    return kept


def _routing_field(form: RoutingForm, rows: Mapping[str, Kept], key: str) -> Field | None:
    """The field a refusal names. An override's key holds its domain or address, dots and
    all: "routing.domains.gmail.com" (its methods) or "routing.domains.bad_domain.[key]"."""
    if key.startswith("milter."):
        return form.subject_keywords
    for name, kept in rows.items():
        rest = key.removeprefix(f"routing.{name}.")
        if rest != key:
            target = rest.removesuffix(".[key]")
            for typed, row in kept:
                if typed == target:
                    return row.form.target if rest.endswith(".[key]") else row.form.order
            return None
    return simple_fields(form, "routing")(key)


def _blank_row(rows: FieldList) -> None:
    if all(row.form.target.data or row.form.order.data for row in rows):
        rows.append_entry()


@admin.route("/delivery", methods=["GET", "POST"])
def routing() -> ResponseReturnValue:
    if request.method == "POST":
        form = RoutingForm()
    else:
        values = initial("routing",
                         subject_keywords=services().config.milter.subject_keywords)
        form = RoutingForm(data={
            **values, "order": joined(values["order"]),
            "domains": _rows(values["domains"]), "recipients": _rows(values["recipients"]),
            "portal_keywords": joined(values["portal_keywords"], "\n"),
            "subject_keywords": joined(values["subject_keywords"], "\n")})
    status = 200
    doing = request.form.get("do", "save")
    if form.is_submitted() and doing in ("add_domain", "add_recipient"):
        # Another blank row, what was typed kept; nothing is saved yet.
        (form.domains if doing == "add_domain" else form.recipients).append_entry()
    elif form.is_submitted():
        status = 400
        valid = checked(form)
        rows = {"domains": _kept(form.domains, lower=True),
                "recipients": _kept(form.recipients, lower=False)}
        if valid and all(kept is not None for kept in rows.values()):
            typed = {name: {target: split_words(row.form.order.data)
                            for target, row in kept or ()} for name, kept in rows.items()}
            changes = {
                "routing": {
                    "order": split_words(form.order.data), **typed,
                    "portal_enabled": form.portal_enabled.data,
                    "no_method": form.no_method.data,
                    "portal_keywords": split_list(form.portal_keywords.data),
                    "protect_subject": form.protect_subject.data,
                    "placeholder_subject": (form.placeholder_subject.data or "").strip()},
                "milter": {"subject_keywords": split_list(form.subject_keywords.data)}}
            found = {name: kept or [] for name, kept in rows.items()}
            outcome = save(form, changes, lambda key: _routing_field(form, found, key))
            if outcome is None:
                return redirect(url_for("admin.routing"))
            status = outcome
        elif valid:
            flash("Not saved: a domain or address has two rows.", "error")
    _blank_row(form.domains)
    _blank_row(form.recipients)
    return page("admin/routing.html", form, status, ("routing", "milter"),
                methods=METHODS)
