"""Data-leak policies: whether DLP runs, the curated packs and what they do, unreadable
attachments, the organisation's own detectors and policies; and "test this policy on a
sample": the settings as edited, not saved, run on pasted text by the same inspector the
milter and the add-in use. A test shows what each finding is and where, with the value masked
exactly as every other DLP report masks it (Report.as_dict), never the value itself."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from flask import flash, jsonify, redirect, request, url_for
from flask.typing import ResponseReturnValue
from wtforms import (
    BooleanField,
    Field,
    FieldList,
    FloatField,
    FormField,
    IntegerField,
    SelectField,
    SelectMultipleField,
    StringField,
    TextAreaField,
    widgets,
)
from wtforms import Form as RowForm
from wtforms.fields.choices import SelectChoice
from wtforms.validators import InputRequired, Length, Optional

from sealgate import settings
from sealgate.dlp.detectors import TYPES, label
from sealgate.dlp.inspect import Inspector, Report
from sealgate.dlp.policies import PACKS, UNREADABLE
from sealgate.server.admin import admin, admin_api
from sealgate.server.admin.api import json_body, needs, problem
from sealgate.server.admin.settings_pages import (
    FieldFor,
    SettingsForm,
    checked,
    initial,
    joined,
    mark,
    page,
    refusal,
    save,
    split_list,
    split_words,
)
from sealgate.server.app import services
from sealgate.settings import SettingsError

ACTIONS = [SelectChoice("encrypt", "encrypt"),
           SelectChoice("quarantine", "quarantine (hold until the sender decides)"),
           SelectChoice("block", "block (refuse, saying why)"),
           SelectChoice("notify", "notify (deliver, and report)")]
CONFIDENCES = [SelectChoice(level, level) for level in ("low", "medium", "high")]
# A sample is pasted text: a generous page or two, not a mailbox.
SAMPLE_LIMIT = 200_000


class DetectorRow(RowForm):  # type: ignore[misc]  # WTForms ships no type information
    name = StringField("Name", description="capitals, digits and _, e.g. PROJECT_CODE")
    pattern = StringField("Pattern (a regular expression)")
    keywords = StringField("Keywords (commas)")
    ignore_case = BooleanField("Ignore case", default=True)
    confidence = SelectField("Confidence", choices=CONFIDENCES, default="medium")
    remove = BooleanField("Remove")


class PolicyRow(RowForm):  # type: ignore[misc]  # WTForms ships no type information
    name = StringField("Name")
    detectors = StringField("Detectors (commas)")
    action = SelectField("Action", choices=ACTIONS, default="encrypt")
    min_count = IntegerField("At least this many", validators=[Optional()], default=1)
    min_confidence = SelectField("Least confidence", choices=CONFIDENCES, default="medium")
    senders = StringField("Only from (addresses or domains; empty: everyone)")
    recipient_domains = StringField("Only to (domains; empty: any outside recipient)")
    allow_send_as_is = BooleanField("Sender may send as is")
    remove = BooleanField("Remove")


class DlpForm(SettingsForm):
    enabled = BooleanField("Check outbound mail for sensitive data")
    packs = SelectMultipleField("Policy packs",
                                choices=[SelectChoice(pack, pack) for pack in PACKS],
                                option_widget=widgets.CheckboxInput(),
                                widget=widgets.ListWidget(prefix_label=False))
    pack_action = SelectField("What the packs' policies do", choices=ACTIONS)
    min_confidence = SelectField("The least confidence a pack's finding needs",
                                 choices=CONFIDENCES)
    unreadable = SelectField("An attachment that cannot be read (encrypted, corrupt, too "
                             "large)", choices=[SelectChoice("sensitive", "counts as sensitive"),
                                                SelectChoice("ignore", "is ignored")])
    unreadable_action = SelectField("What happens to a message with one", choices=ACTIONS)
    notify_address = StringField("Reports of notify policies go to",
                                 description="an address; empty: reports are logged and "
                                             "audited only")
    quarantine_days = IntegerField("A held message is discarded after (days, 1–365)",
                                   validators=[InputRequired()])
    max_scan_mb = IntegerField("Largest message scanned (MB)", validators=[InputRequired()])
    attachment_seconds = FloatField("Longest time reading one attachment (seconds)",
                                    validators=[InputRequired()])
    archive_members = IntegerField("Most files read from one archive",
                                   validators=[InputRequired()])
    archive_inflated_mb = IntegerField("Most MB unpacked from one archive",
                                       validators=[InputRequired()])
    detectors = FieldList(FormField(DetectorRow))
    policies = FieldList(FormField(PolicyRow))
    sample = TextAreaField("Sample text", validators=[Length(max=SAMPLE_LIMIT)])
    sample_sender = StringField("Sender (optional)", validators=[Length(max=320)])
    sample_recipients = StringField("Recipients (optional, commas)",
                                    validators=[Length(max=4000)])


SIMPLE_KEYS = ("enabled", "packs", "pack_action", "min_confidence", "unreadable",
               "unreadable_action", "notify_address", "quarantine_days", "max_scan_mb",
               "attachment_seconds", "archive_members", "archive_inflated_mb")


def _detector_row(detector: Mapping[str, Any]) -> dict[str, Any]:
    return {**detector, "keywords": joined(detector["keywords"])}


def _policy_row(policy: Mapping[str, Any]) -> dict[str, Any]:
    return {**policy, **{key: joined(policy[key])
                         for key in ("detectors", "senders", "recipient_domains")}}


def _text(field: Field) -> str:
    return (field.data or "").strip()


def edited(form: DlpForm) -> tuple[dict[str, Any], FieldFor]:
    """The DLP section as the form has it (blank and removed rows left out), and the field a
    refusal's key names ("dlp.detectors.1.pattern": the pattern of the second row kept)."""
    detectors, detector_rows = [], []
    for row in form.detectors:
        typed = row.form
        if typed.remove.data or not (_text(typed.name) or _text(typed.pattern)
                                     or _text(typed.keywords)):
            continue
        detectors.append({"name": _text(typed.name), "pattern": _text(typed.pattern),
                          "keywords": split_list(typed.keywords.data),
                          "ignore_case": bool(typed.ignore_case.data),
                          "confidence": typed.confidence.data})
        detector_rows.append(typed)
    policies, policy_rows = [], []
    for row in form.policies:
        typed = row.form
        if typed.remove.data or not (_text(typed.name) or _text(typed.detectors)):
            continue
        policies.append({
            "name": _text(typed.name), "detectors": split_words(typed.detectors.data),
            "action": typed.action.data,
            "min_count": 1 if typed.min_count.data is None else typed.min_count.data,
            "min_confidence": typed.min_confidence.data,
            "senders": split_words(typed.senders.data),
            "recipient_domains": [domain.lower()
                                  for domain in split_words(typed.recipient_domains.data)],
            "allow_send_as_is": bool(typed.allow_send_as_is.data)})
        policy_rows.append(typed)
    values = {key: form[key].data for key in SIMPLE_KEYS}
    values["notify_address"] = (values["notify_address"] or "").strip()
    # In the packs' own order, however they were sent: a new order is no change.
    values["packs"] = [pack for pack in PACKS if pack in (values["packs"] or ())]
    values |= {"detectors": detectors, "policies": policies}
    rows: dict[str, Sequence[Any]] = {"detectors": detector_rows, "policies": policy_rows}

    def field_for(key: str) -> Field | None:
        parts = key.split(".")
        if parts[0] != "dlp" or len(parts) < 2:
            return None
        if parts[1] in rows and len(parts) >= 3 and parts[2].isdigit() \
                and int(parts[2]) < len(rows[parts[1]]):
            row = rows[parts[1]][int(parts[2])]
            name = parts[3] if len(parts) > 3 and parts[3] in row else "name"
            found: Field = row[name]
            return found
        found_field: Field | None = form._fields.get(parts[1])
        return found_field

    return values, field_for


def inspector_for(changes: Mapping[str, Any]) -> Inspector | None:
    """The inspector the DLP settings with these changes would run (None: DLP off), made
    exactly as the milter makes it. Raises SettingsError; nothing is saved."""
    live = services().live
    config = settings.effective(live.base, settings.merged(live.overlay()[1],
                                                           {"dlp": changes}))
    try:
        return Inspector.from_config(config)
    except Exception as error:  # the engine's own complaint, as admin/checks.py reports it
        raise SettingsError(f"the DLP policies cannot be used: {error}") from None


def try_sample(inspector: Inspector, text: str, sender: str,
               recipients: Sequence[str]) -> Report:
    return inspector.draft("", text, "text", [], sender, list(recipients))


@admin.route("/dlp", methods=["GET", "POST"])
def dlp() -> ResponseReturnValue:
    if request.method == "POST":
        form = DlpForm()
    else:
        values = initial("dlp")
        form = DlpForm(data={**values,
                             "detectors": [_detector_row(d) for d in values["detectors"]],
                             "policies": [_policy_row(p) for p in values["policies"]]})
    status = 200
    report: dict[str, object] | None = None
    tested = False
    doing = request.form.get("do", "save")
    if form.is_submitted() and doing in ("add_detector", "add_policy"):
        # Another blank row, what was typed kept; nothing is saved yet.
        (form.detectors if doing == "add_detector" else form.policies).append_entry()
    elif form.is_submitted():
        status = 400
        if checked(form):
            values, field_for = edited(form)
            if doing == "test":
                status, tested, report = _test(form, values, field_for)
            else:
                outcome = save(form, {"dlp": values}, field_for)
                if outcome is None:
                    return redirect(url_for("admin.dlp"))
                status = outcome
    if all(_text(row.form.name) or _text(row.form.pattern) or _text(row.form.keywords)
           for row in form.detectors):
        form.detectors.append_entry()
    if all(_text(row.form.name) or _text(row.form.detectors) for row in form.policies):
        form.policies.append_entry()
    return page("admin/dlp.html", form, status, ("dlp",), tested=tested, report=report,
                packs=PACKS, detector_types=[(name, label(name)) for name in
                                             (*TYPES, UNREADABLE)])


def _test(form: DlpForm, values: dict[str, Any], field_for: FieldFor
          ) -> tuple[int, bool, dict[str, object] | None]:
    """(status, whether it ran, the report; None when DLP is off in the edited settings)."""
    if not _text(form.sample):
        mark(form.sample, "Paste some text to check.")
        flash("Paste some text into the sample box to check it.", "error")
        return 400, False, None
    try:
        inspector = inspector_for(values)
    except SettingsError as error:
        refused = refusal(error)
        mark(field_for(refused.key), refused.beside)
        flash(f"The sample was not checked: {refused.summary}", "error")
        return 400, False, None
    if inspector is None:
        return 200, True, None
    report = try_sample(inspector, form.sample.data, _text(form.sample_sender),
                        split_words(form.sample_recipients.data))
    return 200, True, report.as_dict()


@admin_api.post("/dlp/test")
@needs("settings:read")
def dlp_test() -> ResponseReturnValue:
    """The DLP settings, with optional unsaved changes to the dlp section, run on a sample
    text: the same report the add-in's scan gives (values masked). Nothing is saved."""
    payload = json_body()
    text = payload.get("text")
    changes = payload.get("dlp", {})
    sender = payload.get("sender", "")
    recipients = payload.get("recipients", [])
    if not isinstance(text, str) or not text.strip():
        return problem(400, "bad_request", "'text' must be the sample to check, as a string")
    if len(text) > SAMPLE_LIMIT:
        return problem(400, "bad_request",
                       f"'text' is {len(text)} characters; a sample may have {SAMPLE_LIMIT}")
    if not isinstance(changes, dict):
        return problem(400, "bad_request", "'dlp' must be an object of dlp settings to try "
                                           "(the keys of GET /settings/dlp)")
    if not isinstance(sender, str) or not (
            isinstance(recipients, list) and all(isinstance(r, str) for r in recipients)):
        return problem(400, "bad_request", "'sender' must be a string and 'recipients' a "
                                           "list of strings")
    try:
        inspector = inspector_for(changes)
    except SettingsError as error:
        return problem(400, "invalid_setting", str(error))
    report = try_sample(inspector, text, sender, recipients) if inspector else None
    return jsonify(revision=services().live.revision, enabled=inspector is not None,
                   report=report.as_dict() if report else None)
