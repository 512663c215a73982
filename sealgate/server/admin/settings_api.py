"""The settings administrators change, as JSON: read a section, change some of its keys.
A change is validated as a whole (and by the checks in admin/checks.py) before it is
stored; a refusal is a 400 naming the wrong value, and the running settings stay as they
were. `revision` (optional) guards against overwriting someone else's change."""

from __future__ import annotations

from typing import Any

from flask import abort, jsonify
from flask.typing import ResponseReturnValue

from sealgate import settings
from sealgate.server.admin import admin_api
from sealgate.server.admin.api import json_body, key_holder, needs, problem
from sealgate.server.app import services
from sealgate.vault.settings import StaleRevision


def _section(name: str) -> str:
    if name not in settings.EDITABLE:
        abort(404, description=f"no settings section {name!r} "
                               f"(sections: {', '.join(settings.EDITABLE)})")
    return name


def _values(name: str) -> dict[str, Any]:
    live = services().live
    return {"revision": live.revision, "section": name,
            "values": settings.section_values(live.current(), name)}


@admin_api.get("/settings")
@needs("settings:read")
def read_settings() -> ResponseReturnValue:
    live = services().live
    config = live.current()
    return jsonify(revision=live.revision,
                   sections={name: settings.section_values(config, name)
                             for name in settings.EDITABLE})


@admin_api.get("/settings/<name>")
@needs("settings:read")
def read_section(name: str) -> ResponseReturnValue:
    return jsonify(_values(_section(name)))


@admin_api.route("/settings/<name>", methods=["PUT", "PATCH"])
@needs("settings:write")
def change_section(name: str) -> ResponseReturnValue:
    """Change the keys given (a key set to null goes back to the file's value)."""
    section = _section(name)
    payload = json_body()
    revision = payload.pop("revision", None)
    if revision is not None and not isinstance(revision, int):
        return problem(400, "bad_request", "'revision' must be a number")
    values = payload.get("values", payload)
    if not isinstance(values, dict):
        return problem(400, "bad_request", "'values' must be an object of keys and values")
    if section == "organisation" and values.get("logo") not in (None, ""):
        # A path would let any image file the server can read be served to the world.
        return problem(400, "bad_request", "organisation.logo is set by uploading the image: "
                                           "PUT /api/v1/admin/branding/logo")
    return apply_change(key_holder().actor, {section: values}, revision,
                        lambda: _values(section))


def apply_change(actor: str, changes: dict[str, Any], revision: int | None,
                 answer: Any) -> ResponseReturnValue:
    """Store a change for an API request: 200 with the section, 400 or 409 with why not."""
    try:
        change = services().live.change(actor, changes, based_on=revision)
    except StaleRevision as error:
        return problem(409, "conflict", str(error))
    except settings.SettingsError as error:
        return problem(400, "invalid_setting", str(error))
    return jsonify({**answer(), "changed": sorted(change.differences)})
