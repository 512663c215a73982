"""The logo over the API: uploaded as an image (judged by its content), served to recipients,
removable; never a path to some file the server can read."""

from __future__ import annotations

import pytest
from flask import Flask
from flask.testing import FlaskClient

from sealgate.vault.models import SettingsRevision
from sealgate.vault.vault import Vault
from tests.admin.conftest import bearer, make_key
from tests.admin.test_settings_pages import png
from tests.conftest import SQLITE_ONLY

pytestmark = SQLITE_ONLY


@pytest.fixture
def writer(vault: Vault) -> str:
    return make_key(vault, ["settings:read", "settings:write"])


def test_a_logo_is_uploaded_served_and_removed(api: FlaskClient, app: Flask, vault: Vault,
                                               writer: str) -> None:
    image = png()
    stored = api.put("/api/v1/admin/branding/logo", headers=bearer(writer), data=image,
                     content_type="image/png")
    assert stored.status_code == 200, stored.get_json()
    body = stored.get_json()
    assert body["logo"].startswith("branding/") and body["logo"].endswith(".png")
    assert body["changed"] == ["organisation.logo"]
    served = app.test_client().get("/brand/logo")
    assert served.status_code == 200 and served.data == image
    removed = api.delete("/api/v1/admin/branding/logo", headers=bearer(writer))
    assert removed.status_code == 200 and removed.get_json()["logo"] == ""
    assert app.test_client().get("/brand/logo").status_code == 404


def test_what_is_not_a_logo_is_refused_and_nothing_changes(api: FlaskClient, vault: Vault,
                                                           writer: str) -> None:
    for data, says in ((b"Just a text file, not an image.", "not a PNG, JPEG or GIF"),
                       (png(padding=300 * 1024), "larger than 256 KB"),
                       (b'<svg xmlns="http://www.w3.org/2000/svg"><script/></svg>',
                        "SVG logos are not accepted")):
        refused = api.put("/api/v1/admin/branding/logo", headers=bearer(writer), data=data,
                          content_type="application/octet-stream")
        assert refused.status_code == 400
        assert says in refused.get_json()["message"]
    # Naming a file by path is not uploading it: no way to have any readable file served.
    by_path = api.patch("/api/v1/admin/settings/organisation", headers=bearer(writer),
                        json={"logo": "/etc/hosts.png"})
    assert by_path.status_code == 400
    assert "PUT /api/v1/admin/branding/logo" in by_path.get_json()["message"]
    with vault.database.session() as db:
        assert db.query(SettingsRevision).count() == 0


def test_uploading_needs_settings_write(api: FlaskClient, vault: Vault) -> None:
    reader = make_key(vault, ["settings:read"])
    refused = api.put("/api/v1/admin/branding/logo", headers=bearer(reader), data=png())
    assert refused.status_code == 403 and refused.get_json()["needed"] == "settings:write"
