"""API keys, managed in the console only (no API key can make or revoke keys): a new key is
shown once; the vault keeps its digest. Making and revoking keys is audited."""

from __future__ import annotations

from flask import flash, redirect, render_template, request, url_for
from flask.typing import ResponseReturnValue
from wtforms import IntegerField, SelectMultipleField, StringField, widgets
from wtforms.fields.choices import SelectChoice
from wtforms.validators import InputRequired, Length, NumberRange, Optional

from sealgate.server.admin import admin
from sealgate.server.admin.forms import ConfirmForm
from sealgate.server.admin.identity import actor, now
from sealgate.server.app import services
from sealgate.server.portal.forms import Form
from sealgate.vault import admins


class NewKeyForm(Form):
    name = StringField("Name (what uses it)", validators=[InputRequired(), Length(max=100)])
    scopes = SelectMultipleField("Scopes", choices=[SelectChoice(scope) for scope in admins.SCOPES],
                                 option_widget=widgets.CheckboxInput(),
                                 widget=widgets.ListWidget(prefix_label=False))
    days = IntegerField("Expires after (days; empty: never)",
                        validators=[Optional(), NumberRange(min=1, max=3650)])


@admin.route("/api-keys", methods=["GET", "POST"])
def api_keys() -> ResponseReturnValue:
    form = NewKeyForm()
    service = services()
    if form.validate_on_submit():
        who = actor()
        try:
            with service.vault.database.writing() as db:
                key, token = admins.create_key(db, form.name.data or "", form.scopes.data or [],
                                               who, now(), form.days.data)
                service.vault.record_in(db, who, "api_key.created", "api_key", key.prefix,
                                        {"name": key.name, "scopes": key.scopes})
        except admins.AdminError as error:
            flash(str(error), "error")
        else:
            return render_template("admin/key_created.html", token=token, name=key.name,
                                   scopes=key.scopes)
    with service.vault.database.session() as db:
        listed = admins.keys(db)
    return render_template("admin/keys.html", form=form, keys=listed, revoke=ConfirmForm(),
                           scopes=admins.SCOPES)


@admin.post("/api-keys/<int:key_id>/revoke")
def revoke_api_key(key_id: int) -> ResponseReturnValue:
    if ConfirmForm().validate_on_submit():
        service = services()
        who = actor()
        try:
            with service.vault.database.writing() as db:
                key = admins.revoke_key(db, key_id, now())
                service.vault.record_in(db, who, "api_key.revoked", "api_key", key.prefix,
                                        {"name": key.name})
        except admins.AdminError as error:
            flash(str(error), "error")
        else:
            flash(f"Key {key.name} ({key.prefix}) is revoked.", "info")
    return redirect(url_for("admin.api_keys", _anchor=request.args.get("anchor", "")))
