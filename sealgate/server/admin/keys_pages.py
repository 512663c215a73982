"""Recipients' S/MIME certificates and OpenPGP keys: list them (with whether each can be used
today), import one (uploaded or pasted, in the console; base64 in JSON or the raw bytes, in
the API), remove one. The rules for taking a key are vault/recipient_keys.py's, shared with
`sealgate recipient-keys`; every change is audited there."""

from __future__ import annotations

import base64
import binascii
from datetime import datetime
from typing import Any

from flask import flash, jsonify, redirect, render_template, request, url_for
from flask.typing import ResponseReturnValue
from flask_wtf.file import FileField
from wtforms import HiddenField, StringField, TextAreaField
from wtforms.validators import InputRequired, Length, Optional

from sealgate.server.admin import admin, admin_api
from sealgate.server.admin.api import json_body, key_holder, needs, problem
from sealgate.server.admin.identity import actor, now
from sealgate.server.app import services
from sealgate.server.portal.forms import Form
from sealgate.vault import recipient_keys as on_file
from sealgate.vault.recipient_keys import KeyFacts, KeyRefused, StoredKey

LARGEST = 1024 * 1024  # far more than any certificate or public key with its signatures


class ImportKeyForm(Form):
    upload = FileField("A file: certificate (.pem, .cer, .crt, .der) or OpenPGP key "
                       "(.asc, .gpg, .pgp)")
    pasted = TextAreaField("Or paste it (-----BEGIN CERTIFICATE----- or -----BEGIN PGP "
                           "PUBLIC KEY BLOCK-----)", validators=[Length(max=LARGEST)])
    address = StringField("Only for this address (empty: every address it names)",
                          validators=[Optional(), Length(max=320)])


class RemoveKeyForm(Form):
    fingerprint = HiddenField(validators=[InputRequired(), Length(max=128)])
    address = HiddenField(validators=[Optional(), Length(max=320)])


def key_json(key: StoredKey, moment: datetime) -> dict[str, Any]:
    """A key on file, judged now: expiry and revocation change, the bytes do not."""
    facts = on_file.key_facts(key.material, moment)
    problems = list(facts.problems)
    if facts.kind is not None and key.address not in (a.lower() for a in facts.addresses):
        problems.append(f"it does not name {key.address}")
    return {"address": key.address, "kind": str(key.kind), "fingerprint": key.fingerprint,
            "not_after": key.not_after.isoformat() if key.not_after else None,
            "source": key.source, "usable": facts.usable and not problems,
            "problems": problems}


def _imported(facts: KeyFacts, added: dict[str, bool]) -> dict[str, Any]:
    return {"kind": str(facts.kind), "fingerprint": facts.fingerprint,
            "addresses": list(facts.addresses),
            "not_after": facts.not_after.isoformat() if facts.not_after else None,
            "added": [a for a, new in added.items() if new],
            "already_on_file": [a for a, new in added.items() if not new]}


def _listed(address: str | None) -> list[dict[str, Any]]:
    moment = now()
    return [key_json(key, moment)
            for key in on_file.listed(services().vault, address or None)]


# -- the console ----------------------------------------------------------------------------

@admin.route("/recipient-keys", methods=["GET", "POST"])
def recipient_keys() -> ResponseReturnValue:
    form = ImportKeyForm()
    status = 200
    if form.validate_on_submit():
        upload = form.upload.data
        data = upload.read(LARGEST + 1) if upload else b""
        pasted = (form.pasted.data or "").strip()
        if data and pasted:
            form.pasted.errors = ["Upload a file or paste the key, not both."]
        elif not data and not pasted:
            form.pasted.errors = ["Choose a file or paste a certificate or key."]
        elif len(data) > LARGEST:
            form.pasted.errors = ["That file is too large to be a certificate or key."]
        else:
            try:
                facts, added = on_file.import_key(
                    services().vault, actor(), data or pasted.encode(), now(),
                    (form.address.data or "").strip() or None)
            except KeyRefused as refusal:
                form.pasted.errors = [f"The key data {refusal}."]
            else:
                for address, new in added.items():
                    flash(f"{'Added' if new else 'Already on file'}: {facts.kind} "
                          f"{facts.fingerprint} for {address}.", "info")
                return redirect(url_for("admin.recipient_keys"))
        status = 400
    elif form.is_submitted():
        status = 400
    shown = (request.args.get("address") or "").strip().lower()
    return render_template("admin/recipient_keys.html", form=form, keys=_listed(shown),
                           address=shown), status


@admin.post("/recipient-keys/remove")
def remove_recipient_key() -> ResponseReturnValue:
    form = RemoveKeyForm()
    if not form.validate_on_submit():
        flash("The form expired; try again.", "error")
    else:
        address = (form.address.data or "").strip() or None
        removed = on_file.remove(services().vault, actor(), form.fingerprint.data or "",
                                        address)
        if removed:
            flash(f"Removed {form.fingerprint.data}"
                  f"{' for ' + address if address else ''}.", "info")
        else:
            flash(f"No key {form.fingerprint.data} was on file (any more).", "error")
    return redirect(url_for("admin.recipient_keys"))


# -- the API --------------------------------------------------------------------------------

@admin_api.get("/keys")
@needs("keys:read")
def list_keys() -> ResponseReturnValue:
    address = (request.args.get("address") or "").strip()
    if len(address) > 320:
        return problem(400, "bad_request", "address: at most 320 characters")
    return jsonify(keys=_listed(address))


@admin_api.post("/keys")
@needs("keys:write")
def import_key() -> ResponseReturnValue:
    """JSON `{"data": base64, "address": optional}`, or the key's bytes as the body (any
    other content type) with `?address=`."""
    if request.mimetype == "application/json":
        payload = json_body()
        encoded, address = payload.get("data"), payload.get("address")
        if not isinstance(encoded, str) or not encoded.strip():
            return problem(400, "bad_request", "'data' must be the certificate or key, "
                                               "base64-encoded")
        if address is not None and not isinstance(address, str):
            return problem(400, "bad_request", "'address' must be a string")
        try:
            data = base64.b64decode("".join(encoded.split()), validate=True)
        except (binascii.Error, ValueError):
            return problem(400, "bad_request", "'data' is not valid base64")
    else:
        data, address = request.get_data(cache=False), request.args.get("address")
    if not data:
        return problem(400, "bad_request", "no certificate or key was sent")
    if len(data) > LARGEST:
        return problem(400, "bad_request", f"at most {LARGEST} bytes: this is too large to "
                                           "be a certificate or key")
    if address is not None and len(address) > 320:
        return problem(400, "bad_request", "address: at most 320 characters")
    owner = (address or "").strip() or None
    try:
        facts, added = on_file.import_key(services().vault, key_holder().actor, data, now(),
                                          owner)
    except KeyRefused as refusal:
        return problem(400, "bad_key", f"The key data {refusal}.")
    return jsonify(_imported(facts, added)), 201 if any(added.values()) else 200


@admin_api.delete("/keys/<fingerprint>")
@needs("keys:write")
def remove_key(fingerprint: str) -> ResponseReturnValue:
    address = (request.args.get("address") or "").strip() or None
    if len(fingerprint) > 128 or (address is not None and len(address) > 320):
        return problem(400, "bad_request", "fingerprint or address too long")
    removed = on_file.remove(services().vault, key_holder().actor, fingerprint,
                                    address)
    if not removed:
        return problem(404, "not_found", f"no key with fingerprint {fingerprint} on file"
                                         f"{' for ' + address if address else ''}")
    return jsonify(removed=removed, fingerprint=fingerprint, address=address)
