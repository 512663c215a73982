"""Changing settings at run time through the API: validated as a whole, audited with before
and after, refused without a trace when wrong, and seen by every server process."""

from __future__ import annotations

import time

from flask import Flask
from flask.testing import FlaskClient

from sealgate.config import Config
from sealgate.server.app import create_app
from sealgate.vault.models import AuditEvent, SettingsRevision
from sealgate.vault.vault import Vault
from tests.admin.conftest import bearer, make_key


def _audited(vault: Vault, action: str) -> list[AuditEvent]:
    with vault.database.session() as db:
        return list(db.query(AuditEvent).filter_by(action=action).order_by(AuditEvent.seq))


def test_a_change_runs_at_once_and_is_audited_with_before_and_after(
        api: FlaskClient, app: Flask, vault: Vault) -> None:
    token = make_key(vault, ["settings:read", "settings:write"])
    before = api.get("/api/v1/admin/settings/portal", headers=bearer(token)).get_json()
    assert before["revision"] == 0 and before["values"]["expiry_days"] == 0
    changed = api.patch("/api/v1/admin/settings/portal", headers=bearer(token),
                        json={"expiry_days": 30, "require_mfa": True})
    assert changed.status_code == 200, changed.get_json()
    body = changed.get_json()
    assert body["changed"] == ["portal.expiry_days", "portal.require_mfa"]
    assert body["values"]["expiry_days"] == 30 and body["revision"] == 1
    with app.app_context():
        from sealgate.server.app import services
        assert services().config.portal.expiry_days == 30
    event, = _audited(vault, "settings.changed")
    assert event.actor.startswith("api-key:")
    assert event.details["changes"]["portal.expiry_days"] == {"before": 0, "after": 30}
    # null: back to the file's value
    back = api.patch("/api/v1/admin/settings/portal", headers=bearer(token),
                     json={"expiry_days": None})
    assert back.get_json()["values"]["expiry_days"] == 0


def test_a_wrong_value_is_refused_and_nothing_changes(api: FlaskClient, vault: Vault) -> None:
    token = make_key(vault, ["settings:read", "settings:write"])
    for values, says in (
            ({"expiry_days": -1}, "portal.expiry_days = -1 (from the admin console)"),
            ({"colour": "red"}, "organisation.colour"),
            ({"secret_key": "x"}, "not a key the console can change")):
        section = "organisation" if "colour" in values else "portal"
        refused = api.patch(f"/api/v1/admin/settings/{section}", headers=bearer(token),
                            json=values)
        assert refused.status_code == 400, refused.get_json()
        assert says in refused.get_json()["message"]
    bad_regex = api.patch("/api/v1/admin/settings/dlp", headers=bearer(token), json={
        "detectors": [{"name": "PROJECT_CODE", "pattern": "PRJ-([0-9]{6}"}]})
    assert bad_regex.status_code == 400
    assert "at position 4" in bad_regex.get_json()["message"]
    unknown = api.patch("/api/v1/admin/settings/dlp", headers=bearer(token), json={
        "policies": [{"name": "Codes", "detectors": ["NO_SUCH_DETECTOR"]}]})
    assert unknown.status_code == 400
    message = unknown.get_json()["message"]
    # A whole section's check names the section, not its every value.
    assert message.startswith("dlp (from the admin console): policy 'Codes' names unknown "
                              "detector NO_SUCH_DETECTOR"), message
    with vault.database.session() as db:
        assert db.query(SettingsRevision).count() == 0
    assert not _audited(vault, "settings.changed")
    assert api.get("/api/v1/admin/settings/nothing", headers=bearer(token)).status_code == 404


def test_a_change_made_on_an_old_revision_is_refused(api: FlaskClient, vault: Vault) -> None:
    token = make_key(vault, ["settings:read", "settings:write"])
    first = api.patch("/api/v1/admin/settings/portal", headers=bearer(token),
                      json={"revision": 0, "code_minutes": 15})
    assert first.status_code == 200
    late = api.patch("/api/v1/admin/settings/portal", headers=bearer(token),
                     json={"revision": 0, "code_minutes": 20})
    assert late.status_code == 409 and late.get_json()["error"] == "conflict"
    now = api.get("/api/v1/admin/settings/portal", headers=bearer(token)).get_json()
    assert now["values"]["code_minutes"] == 15


def test_another_server_process_runs_the_change_within_seconds(
        api: FlaskClient, config: Config, vault: Vault) -> None:
    other = create_app(config, vault)  # another worker: its own LiveConfig, the same vault
    with other.app_context():
        from sealgate.server.app import services
        other_live = services().live
        assert other_live.current().organisation.name == "Example Organisation"
    token = make_key(vault, ["settings:write"])
    api.patch("/api/v1/admin/settings/organisation", headers=bearer(token),
              json={"name": "St Elsewhere Hospital"})
    deadline = time.monotonic() + other_live.check_every + 3
    while other_live.current().organisation.name != "St Elsewhere Hospital":
        assert time.monotonic() < deadline, "the other process never saw the change"
        time.sleep(0.2)
    page = other.test_client().get("/signin")
    assert b"St Elsewhere Hospital" in page.data


def test_a_stored_revision_that_no_longer_validates_leaves_the_last_good_one_running(
        app: Flask, vault: Vault) -> None:
    """The file may change under a saved revision (or a row be written by hand): the process
    keeps what it ran and says so in the log and the error counter."""
    with app.app_context():
        from sealgate.server.app import services
        live = services().live
    live.change("it@example.org", {"organisation": {"name": "Good Name"}})
    with vault.database.writing() as db:
        db.add(SettingsRevision(actor="hand", parent=1,
                                overlay={"organisation": {"colour": "not a colour"}}))
    live._next_check = 0  # as if check_every had passed
    config = live.current()
    assert config.organisation.name == "Good Name"
    assert config.organisation.colour == "#1f4e79"
    assert live.revision == 1  # the revision that runs; 2 was looked at and refused


def test_a_bad_stored_revision_can_be_repaired_from_the_console(
        app: Flask, vault: Vault) -> None:
    with app.app_context():
        from sealgate.server.app import services
        live = services().live
    with vault.database.writing() as db:
        db.add(SettingsRevision(actor="hand", parent=0,
                                overlay={"organisation": {"colour": "not a colour"}}))
    live._next_check = 0
    assert live.current().organisation.colour == "#1f4e79"
    from sealgate.settings import SettingsError
    try:
        live.change("it@example.org", {"portal": {"expiry_days": 7}})
    except SettingsError as error:  # the stored wrong key is named, to be fixed
        assert "organisation.colour" in str(error)
    else:
        raise AssertionError("a change on top of a wrong stored value was accepted")
    repaired = live.change("it@example.org", {"organisation": {"colour": None},
                                              "portal": {"expiry_days": 7}})
    assert repaired.revision == 2 and live.current().portal.expiry_days == 7
