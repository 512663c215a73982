"""The console's settings pages, through a signed-in administrator's browser (Flask's test
client), on SQLite and PostgreSQL: each shows the running values, saves only what changed
(validated, audited with before and after, running at once), refuses a wrong value beside its
field with what was typed kept and nothing stored, and never overwrites a change someone else
saved meanwhile."""

from __future__ import annotations

import hashlib
import io
import re
import stat
import struct
import zlib
from typing import Any

from flask import Flask
from flask.testing import FlaskClient
from werkzeug.test import TestResponse

from sealgate.config import Config
from sealgate.server.app import services
from sealgate.server.live import LiveConfig
from sealgate.vault.models import AuditEvent, SettingsRevision
from sealgate.vault.vault import Vault
from tests.admin.conftest import ADMIN, bearer, make_key
from tests.admin.html_forms import Fields, form_fields, single
from tests.conftest import SQLITE_ONLY
from tests.portal.conftest import csrf

# The console's pages, not the database: SQLite is enough here (the database-sensitive
# admin tests, sessions, settings revisions, searches and holds, run on both).
pytestmark = SQLITE_ONLY


def live_of(app: Flask) -> LiveConfig:
    with app.app_context():
        return services().live


def running(app: Flask) -> Config:
    return live_of(app).current()


def revisions(vault: Vault) -> int:
    with vault.database.session() as db:
        return db.query(SettingsRevision).count()


def changes_audited(vault: Vault) -> list[dict[str, Any]]:
    with vault.database.session() as db:
        events = db.query(AuditEvent).filter_by(action="settings.changed") \
            .order_by(AuditEvent.seq).all()
        assert all(event.actor == ADMIN for event in events)
        return [event.details["changes"] for event in events]


def submit(console: FlaskClient, path: str, fields: Fields, do: str | None = None,
           action: str | None = None) -> TestResponse:
    data = dict(fields)
    if do is not None:
        data["do"] = [do]
    return console.post(action or path, data=data)


def text(response: TestResponse) -> str:
    return response.get_data(as_text=True)


# -- Portal ------------------------------------------------------------------------------------

def test_the_portal_page_saves_only_what_changed_audited_and_running_at_once(
        console: FlaskClient, app: Flask, vault: Vault) -> None:
    page = console.get("/admin/portal")
    assert page.status_code == 200
    fields = form_fields(page.data, form_id="portal-form")
    assert fields["expiry_days"] == ["0"] and fields["code_minutes"] == ["10"]
    assert "require_mfa" not in fields and fields["read_receipts"] == ["y"]
    saved = submit(console, "/admin/portal",
                   single(fields, expiry_days="30", require_mfa="y"))
    assert saved.status_code == 302, text(saved)
    shown = console.get("/admin/portal")
    assert "Saved (revision 1)." in text(shown)
    assert running(app).portal.expiry_days == 30 and running(app).portal.require_mfa
    assert changes_audited(vault) == [{
        "portal.expiry_days": {"before": 0, "after": 30},
        "portal.require_mfa": {"before": False, "after": True}}]
    # Only the changed keys are set over the file, each with a way back to the file's value.
    _, overlay = live_of(app).overlay()
    assert overlay == {"portal": {"expiry_days": 30, "require_mfa": True}}
    assert form_fields(shown.data, form_id="portal-form")["expiry_days"] == ["30"]
    reset = re.search(r'<form method="post" action="/admin/settings/reset".*?'
                      r'value="portal.expiry_days"', text(shown), re.DOTALL)
    assert reset is not None
    back = console.post("/admin/settings/reset", data={
        **form_fields(shown.data, form_id="portal-form"),
        "key": "portal.expiry_days"})
    assert back.status_code == 302
    assert "back to the configuration file" in text(console.get("/admin/portal"))
    assert running(app).portal.expiry_days == 0 and running(app).portal.require_mfa


def test_a_wrong_value_is_shown_beside_its_field_and_nothing_is_stored(
        console: FlaskClient, app: Flask, vault: Vault) -> None:
    fields = form_fields(console.get("/admin/portal").data, form_id="portal-form")
    refused = submit(console, "/admin/portal", single(fields, code_minutes="90",
                                                      lockout_minutes="many"))
    assert refused.status_code == 400
    page = text(refused)
    assert "Not a valid integer value." in page  # the form's own check comes first
    assert "Nothing was saved: correct the fields marked below." in page
    refused = submit(console, "/admin/portal", single(fields, code_minutes="90"))
    assert refused.status_code == 400
    page = text(refused)
    assert "portal.code_minutes = 90 (from the admin console)" in page
    assert re.search(r'id="code_minutes-error">Input should be less than or equal to 60',
                     page)
    assert form_fields(refused.data, form_id="portal-form")["code_minutes"] == ["90"]
    assert revisions(vault) == 0 and not changes_audited(vault)
    assert running(app).portal.code_minutes == 10


def test_a_change_made_on_an_old_page_is_refused_not_merged(
        console: FlaskClient, app: Flask, vault: Vault) -> None:
    fields = form_fields(console.get("/admin/portal").data, form_id="portal-form")
    live_of(app).change("colleague@example.org", {"portal": {"session_minutes": 60}})
    late = submit(console, "/admin/portal", single(fields, expiry_days="7"))
    assert late.status_code == 409
    assert "Someone else changed the settings" in text(late)
    assert running(app).portal.expiry_days == 0
    assert running(app).portal.session_minutes == 60
    assert revisions(vault) == 1


# -- Delivery ----------------------------------------------------------------------------------

def test_delivery_order_overrides_and_keywords_are_saved_and_rows_removed(
        console: FlaskClient, app: Flask, vault: Vault) -> None:
    page = console.get("/admin/delivery")
    fields = form_fields(page.data, form_id="routing-form")
    assert fields["order"] == ["tls, smime, pgp, portal"]
    assert fields["subject_keywords"] == ["encrypt/"]
    assert fields["domains-0-target"] == [""]  # a blank row to fill in
    saved = submit(console, "/admin/delivery", single(
        fields, order="smime, portal", domains__0__target="Partner.Example",
        domains__0__order="tls portal", recipients__0__target="ceo@partner.example",
        recipients__0__order="pgp", subject_keywords="encrypt/\n[secure]",
        protect_subject="y", no_method="hold"), do="save")
    assert saved.status_code == 302, text(saved)
    config = running(app)
    assert config.routing.order == ["smime", "portal"]
    assert config.routing.domains == {"partner.example": ["tls", "portal"]}
    assert config.routing.recipients == {"ceo@partner.example": ["pgp"]}
    assert config.milter.subject_keywords == ["encrypt/", "[secure]"]
    assert config.routing.protect_subject and config.routing.no_method == "hold"
    audited, = changes_audited(vault)
    assert audited["routing.domains"] == {"before": {},
                                          "after": {"partner.example": ["tls", "portal"]}}
    assert audited["milter.subject_keywords"]["after"] == ["encrypt/", "[secure]"]

    shown = console.get("/admin/delivery")
    fields = form_fields(shown.data, form_id="routing-form")
    assert fields["domains-0-target"] == ["partner.example"]
    assert fields["domains-0-order"] == ["tls, portal"]
    assert fields["domains-1-target"] == [""]
    # "Another row" adds a blank row and keeps what was typed, saving nothing.
    more = submit(console, "/admin/delivery", single(fields, domains__1__target="x.example"),
                  do="add_domain")
    assert more.status_code == 200
    grown = form_fields(more.data, form_id="routing-form")
    assert grown["domains-1-target"] == ["x.example"] and grown["domains-2-target"] == [""]
    assert revisions(vault) == 1
    removed = submit(console, "/admin/delivery", single(fields, domains__0__remove="y"),
                     do="save")
    assert removed.status_code == 302
    assert running(app).routing.domains == {}


def test_a_wrong_delivery_method_is_refused_beside_its_row(
        console: FlaskClient, app: Flask, vault: Vault) -> None:
    fields = form_fields(console.get("/admin/delivery").data, form_id="routing-form")
    refused = submit(console, "/admin/delivery", single(
        fields, domains__0__target="partner.example", domains__0__order="tls, pigeon"),
        do="save")
    assert refused.status_code == 400
    page = text(refused)
    assert re.search(r'id="domains-0-order-error">unknown method &#39;pigeon&#39; '
                     r'\(allowed: tls, smime, pgp, portal\)', page), page
    assert form_fields(refused.data, form_id="routing-form")["domains-0-order"] == \
        ["tls, pigeon"]
    bad_domain = submit(console, "/admin/delivery", single(
        fields, domains__0__target="not a domain", domains__0__order="tls"), do="save")
    assert bad_domain.status_code == 400
    assert re.search(r'id="domains-0-target-error">must be a domain name',
                     text(bad_domain))
    no_keyword = submit(console, "/admin/delivery", single(fields, subject_keywords=""),
                        do="save")
    assert no_keyword.status_code == 400
    assert 'id="subject_keywords-error"' in text(no_keyword)
    assert revisions(vault) == 0
    assert running(app).routing.domains == {}


# -- Organisation & branding ---------------------------------------------------------------------

def png(width: int = 2, height: int = 2, padding: int = 0) -> bytes:
    """A real PNG image (optionally with a large text chunk, to make it big)."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + \
            struct.pack(">I", zlib.crc32(kind + data))
    rows = b"".join(b"\x00" + b"\xc0\x10\x20" * width for _ in range(height))
    extra = chunk(b"tEXt", b"Comment\x00" + b"x" * padding) if padding else b""
    return (b"\x89PNG\r\n\x1a\n"
            + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0))
            + extra + chunk(b"IDAT", zlib.compress(rows)) + chunk(b"IEND", b""))


def upload(console: FlaskClient, data: bytes, name: str) -> TestResponse:
    page = console.get("/admin/organisation")
    fields = form_fields(page.data, action="/admin/organisation/logo")
    return console.post("/admin/organisation/logo", content_type="multipart/form-data",
                        data={**{k: v[0] for k, v in fields.items()},
                              "logo": (io.BytesIO(data), name)})


def test_organisation_and_branding_are_saved_audited_and_shown_on_the_portal(
        console: FlaskClient, app: Flask, vault: Vault) -> None:
    page = console.get("/admin/organisation")
    fields = form_fields(page.data, form_id="branding")
    assert fields["name"] == ["Example Organisation"] and fields["domains"] == ["example.org"]
    saved = submit(console, "/admin/organisation", single(
        fields, name="St Elsewhere Hospital", domains="stelsewhere.org, Clinic.Example\nx.org",
        colour="#aa0000", footer="1 Hospital Road", support="help@stelsewhere.org"))
    assert saved.status_code == 302, text(saved)
    organisation = running(app).organisation
    assert organisation.name == "St Elsewhere Hospital"
    assert organisation.domains == ["stelsewhere.org", "clinic.example", "x.org"]
    assert organisation.colour == "#aa0000"
    audited, = changes_audited(vault)
    assert audited["organisation.name"] == {"before": "Example Organisation",
                                            "after": "St Elsewhere Hospital"}
    assert "organisation.disclaimer" not in audited  # unchanged keys are not sent
    portal = console.get("/")
    assert b"St Elsewhere Hospital" in portal.data and b"1 Hospital Road" in portal.data
    assert b"#aa0000" in console.get("/brand.css").data
    refused = submit(console, "/admin/organisation",
                     single(form_fields(console.get("/admin/organisation").data,
                                        form_id="branding"), colour="red", name=""))
    assert refused.status_code == 400
    assert "organisation." in text(refused) and 'class="error" id="' in text(refused)
    assert revisions(vault) == 1


def test_the_preview_shows_unsaved_branding_and_saves_nothing(
        console: FlaskClient, app: Flask, vault: Vault) -> None:
    page = console.get("/admin/organisation")
    fields = single(form_fields(page.data, form_id="branding"), name="Preview & Co",
                    colour="#123abc", footer="Unsaved footer <b>", support="help@preview.example",
                    disclaimer="Confidential.")
    email = console.post("/admin/organisation/preview/notification", data=fields)
    assert email.status_code == 200
    html = text(email)
    # The real notification: the sample sender, the edited name, colour, footer, support.
    assert "Alex Morgan</strong> has sent you a secure message" in html
    assert "Preview &amp; Co" in html and "background:#123abc" in html
    assert "Unsaved footer &lt;b&gt;" in html and "mailto:help@preview.example" in html
    policy = email.headers["Content-Security-Policy"]
    assert "sandbox" in policy and "script-src" not in policy and "frame-ancestors 'self'" in policy
    assert email.headers["X-Frame-Options"] == "SAMEORIGIN"

    portal = console.post("/admin/organisation/preview/portal", data=fields)
    assert portal.status_code == 200
    assert "Preview &amp; Co" in text(portal) and "Confidential." in text(portal)
    assert "/admin/organisation/preview.css?colour=%23123abc" in text(portal)
    assert "sandbox allow-same-origin" in portal.headers["Content-Security-Policy"]
    colours = console.get("/admin/organisation/preview.css?colour=%23123abc")
    assert colours.data == b":root{--brand:#123abc;}\n"
    assert b"#1f4e79" in console.get("/admin/organisation/preview.css?colour=red;}x{").data

    # Nothing saved; and the page's frames show the running branding.
    assert revisions(vault) == 0
    assert running(app).organisation.name == "Example Organisation"
    assert "Example Organisation" in text(console.get("/admin/organisation/preview/notification"))
    wrong = console.post("/admin/organisation/preview/notification",
                         data=single(fields, colour="blue"))
    assert wrong.status_code == 400
    assert "No preview: organisation.colour = &#39;blue&#39;" in text(wrong)
    no_token = console.post("/admin/organisation/preview/portal",
                            data=single(fields, csrf_token=None))
    assert no_token.status_code == 400
    assert console.get("/admin/organisation/preview/other").status_code == 404


def test_a_logo_that_is_not_an_image_or_too_large_is_refused_and_nothing_changes(
        console: FlaskClient, app: Flask, vault: Vault) -> None:
    for data, name, says in (
            (b"MZ\x90\x00 not an image at all", "logo.png",
             "not a PNG, JPEG or GIF image (judged by its content, not its name)"),
            (png(padding=300 * 1024), "big.png", "larger than 256 KB"),
            (b'<?xml version="1.0"?>\n<svg xmlns="http://www.w3.org/2000/svg">'
             b"<script>alert(1)</script></svg>", "logo.svg", "SVG logos are not accepted"),
            (b"\x89PNG\r\n\x1a\n" + b"\x00" * 40, "fake.png", "not a PNG, JPEG or GIF"),
            (b"", "empty.gif", "")):
        refused = upload(console, data, name)
        assert refused.status_code == 400, (name, refused.status_code)
        assert says in text(refused), (name, text(refused))
        assert "The logo was not changed" in text(refused)
    assert running(app).organisation.logo == ""
    assert revisions(vault) == 0
    assert not (running(app).home / "branding").exists() or \
        not list((running(app).home / "branding").iterdir())
    assert console.get("/brand/logo").status_code == 404


def test_an_image_logo_is_stored_privately_served_and_removable(
        console: FlaskClient, app: Flask, vault: Vault) -> None:
    image = png()
    stored = upload(console, image, "logo.bin")  # the name does not matter, the content does
    assert stored.status_code == 302, text(stored)
    logo = running(app).organisation.logo
    digest = hashlib.sha256(image).hexdigest()
    assert logo == f"branding/{digest}.png"
    path = running(app).home / logo
    assert path.read_bytes() == image
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    served = console.get("/brand/logo")
    assert served.status_code == 200 and served.data == image
    assert served.mimetype == "image/png"
    audited, = changes_audited(vault)
    assert audited == {"organisation.logo": {"before": "", "after": logo}}
    page = text(console.get("/admin/organisation"))
    assert "The new logo is saved (revision 1)." in page and 'src="/brand/logo"' in page
    assert b'src="/brand/logo"' in console.get("/admin/organisation/preview/portal").data

    jpeg = b"\xff\xd8\xff\xe0\x00\x10JFIF\x00" + b"\x00" * 64 + b"\xff\xd9"
    assert upload(console, jpeg, "photo.jpeg").status_code == 302
    assert running(app).organisation.logo.endswith(".jpg")
    assert console.get("/brand/logo").mimetype == "image/jpeg"

    fields = form_fields(console.get("/admin/organisation").data,
                         action="/admin/organisation/logo/remove")
    removed = console.post("/admin/organisation/logo/remove",
                           data={k: v[0] for k, v in fields.items()})
    assert removed.status_code == 302
    assert "The logo is removed" in text(console.get("/admin/organisation"))
    assert running(app).organisation.logo == ""
    assert console.get("/brand/logo").status_code == 404


# -- Data-leak policies ------------------------------------------------------------------------

PROJECT = {"detectors__0__name": "PROJECT_CODE", "detectors__0__pattern": r"PRJ-\d{6}",
           "detectors__0__keywords": "", "policies__0__name": "Projects",
           "policies__0__detectors": "PROJECT_CODE", "policies__0__action": "quarantine",
           "policies__0__min_count": "1"}


def dlp_fields(console: FlaskClient) -> Fields:
    return form_fields(console.get("/admin/dlp").data, form_id="dlp-form")


def report_of(response: TestResponse) -> str:
    """The sample report section only (the sample itself is echoed in its box)."""
    page = text(response)
    assert 'id="sample-report"' in page, page
    return page[page.index('id="sample-report"'):page.index("</section>",
                                                             page.index('id="sample-report"'))]


def test_a_policy_regex_that_does_not_compile_is_shown_with_its_position_and_kept(
        console: FlaskClient, app: Flask, vault: Vault) -> None:
    fields = dlp_fields(console)
    for do in ("save", "test"):
        refused = submit(console, "/admin/dlp", single(
            fields, **{**PROJECT, "detectors__0__pattern": "PRJ-([0-9]{6}"},
            sample="PRJ-123456"), do=do)
        assert refused.status_code == 400
        page = text(refused)
        assert re.search(r'id="detectors-0-pattern-error">&#39;PRJ-\(\[0-9\]\{6\}&#39; is not '
                         r"a valid regular expression: missing \), unterminated subpattern "
                         r"at position 4</p>", page), page
        assert form_fields(refused.data, form_id="dlp-form")["detectors-0-pattern"] == \
            ["PRJ-([0-9]{6}"]
    assert revisions(vault) == 0 and not changes_audited(vault)
    assert running(app).dlp.detectors == []
    unknown = submit(console, "/admin/dlp", single(
        fields, **{**PROJECT, "policies__0__detectors": "PROJECT_COD"}), do="save")
    assert unknown.status_code == 400
    assert "policy &#39;Projects&#39; names unknown detector PROJECT_COD" in text(unknown)
    assert revisions(vault) == 0


def test_detectors_and_policies_are_added_edited_and_deleted(
        console: FlaskClient, app: Flask, vault: Vault) -> None:
    saved = submit(console, "/admin/dlp", single(dlp_fields(console), **PROJECT,
                                                 pack_action="quarantine",
                                                 packs=["privacy", "financial"]), do="save")
    assert saved.status_code == 302, text(saved)
    dlp = running(app).dlp
    assert [(d.name, d.pattern) for d in dlp.detectors] == [("PROJECT_CODE", r"PRJ-\d{6}")]
    assert [(p.name, p.detectors, p.action) for p in dlp.policies] == \
        [("Projects", ["PROJECT_CODE"], "quarantine")]
    assert dlp.packs == ["financial", "privacy"] and dlp.pack_action == "quarantine"
    audited, = changes_audited(vault)
    assert audited["dlp.detectors"]["before"] == []
    assert audited["dlp.detectors"]["after"][0]["pattern"] == r"PRJ-\d{6}"

    fields = dlp_fields(console)
    assert fields["detectors-0-name"] == ["PROJECT_CODE"]
    assert fields["detectors-1-name"] == [""]  # a blank row for the next one
    assert fields["policies-0-action"] == ["quarantine"]
    edited = submit(console, "/admin/dlp", single(fields, policies__0__min_count="3",
                                                  policies__0__allow_send_as_is="y"), do="save")
    assert edited.status_code == 302
    assert running(app).dlp.policies[0].min_count == 3
    assert running(app).dlp.policies[0].allow_send_as_is
    deleted = submit(console, "/admin/dlp", single(dlp_fields(console),
                                                   policies__0__remove="y",
                                                   detectors__0__remove="y"), do="save")
    assert deleted.status_code == 302
    assert running(app).dlp.policies == [] and running(app).dlp.detectors == []
    assert revisions(vault) == 3


def test_a_sample_is_checked_with_the_unsaved_settings_and_only_masked_values_shown(
        console: FlaskClient, app: Flask, vault: Vault) -> None:
    fields = dlp_fields(console)
    tested = submit(console, "/admin/dlp", single(
        fields, **PROJECT, sample="Budget for PRJ-123456 attached.",
        sample_recipients="someone@partner.example"), do="test")
    assert tested.status_code == 200, text(tested)
    report = report_of(tested)
    assert "Action: <strong>quarantine</strong>" in report
    assert "<td>Projects</td><td>quarantine</td><td>1</td><td>PROJECT_CODE</td>" in report
    assert "<code>PROJECT_CODE</code>" in report
    assert "PRJ-123456" not in report and "123456" not in report
    # What was typed stays on the page; nothing is saved.
    kept = form_fields(tested.data, form_id="dlp-form")
    assert kept["detectors-0-pattern"] == [r"PRJ-\d{6}"]
    assert kept["sample"] == ["Budget for PRJ-123456 attached."]
    assert revisions(vault) == 0 and running(app).dlp.detectors == []

    ssn = "Patient SSN 536-22-1234, please update the file."
    packs = submit(console, "/admin/dlp", single(fields, sample=ssn,
                                                 packs=["healthcare", "privacy"]), do="test")
    report = report_of(packs)
    assert "US PII: government identifiers" in report and "<code>US_SSN</code>" in report
    assert "***-**-1234" in report and "536-22" not in report
    assert "Action: <strong>encrypt</strong>" in report
    without = submit(console, "/admin/dlp", single(fields, sample=ssn, packs="healthcare"),
                     do="test")
    assert "No policy matches" in report_of(without)
    off = submit(console, "/admin/dlp", single(fields, sample=ssn, enabled=None), do="test")
    assert "DLP is off in these settings" in report_of(off)
    empty = submit(console, "/admin/dlp", single(fields, sample=""), do="test")
    assert empty.status_code == 400 and "Paste some text" in text(empty)
    assert revisions(vault) == 0


def test_the_dlp_sample_test_over_the_api_needs_settings_read(
        api: FlaskClient, vault: Vault) -> None:
    url = "/api/v1/admin/dlp/test"
    body = {"text": "SSN 536-22-1234 and PRJ-654321",
            "dlp": {"detectors": [{"name": "PROJECT_CODE", "pattern": r"PRJ-\d{6}"}],
                    "policies": [{"name": "Projects", "detectors": ["PROJECT_CODE"],
                                  "action": "block"}]}}
    assert api.post(url, json=body).status_code == 401
    refused = api.post(url, json=body, headers=bearer(make_key(vault, ["audit:read"])))
    assert refused.status_code == 403 and refused.get_json()["needed"] == "settings:read"
    token = make_key(vault, ["settings:read"], name="dlp tester")
    answer = api.post(url, json=body, headers=bearer(token))
    assert answer.status_code == 200, answer.get_json()
    result = answer.get_json()
    assert result["enabled"] and result["revision"] == 0
    report = result["report"]
    assert report["action"] == "block" and report["sensitive"]
    assert {p["name"] for p in report["policies"]} == {"Projects",
                                                      "US PII: government identifiers"}
    values = {f["type"]: f["value"] for f in report["findings"]}
    assert values["US_SSN"] == "***-**-1234" and "654321" not in values["PROJECT_CODE"]
    plain = api.post(url, json={"text": "nothing to see"}, headers=bearer(token)).get_json()
    assert plain["report"]["action"] is None and plain["report"]["findings"] == []
    off = api.post(url, json={"text": "x", "dlp": {"enabled": False}},
                   headers=bearer(token)).get_json()
    assert off == {"enabled": False, "report": None, "revision": 0}
    for wrong, says in (
            ({"dlp": {}}, "'text' must be the sample"),
            ({"text": "x", "dlp": []}, "'dlp' must be an object"),
            ({"text": "x", "recipients": "a@b.example"}, "'recipients' a list"),
            ({"text": "x", "dlp": {"detectors": [{"name": "P_X", "pattern": "a(b"}]}},
             "at position 1"),
            ({"text": "x", "dlp": {"secret": 1}}, "not a key the console can change")):
        bad = api.post(url, json=wrong, headers=bearer(token))
        assert bad.status_code == 400, wrong
        assert says in bad.get_json()["message"], bad.get_json()
    assert api.post(url, data="not json", headers=bearer(token)).status_code == 400
    assert revisions(vault) == 0


# -- Every page -----------------------------------------------------------------------------

def test_each_page_shows_the_running_values_and_is_closed_to_others(
        console: FlaskClient, client: FlaskClient, app: Flask) -> None:
    live_of(app).change("colleague@example.org", {
        "organisation": {"name": "Running Name"}, "portal": {"expiry_days": 45},
        "routing": {"domains": {"bank.example": ["smime", "portal"]}},
        "dlp": {"detectors": [{"name": "CASE_ID", "keywords": ["case file"]}]}})
    expected = {"/admin/organisation": ("name", "Running Name"),
                "/admin/portal": ("expiry_days", "45"),
                "/admin/delivery": ("domains-0-target", "bank.example"),
                "/admin/dlp": ("detectors-0-keywords", "case file")}
    for path, (name, value) in expected.items():
        page = console.get(path)
        assert page.status_code == 200, path
        assert 'name="revision" type="hidden" value="1"' in text(page)
        form = {"/admin/organisation": "branding", "/admin/portal": "portal-form",
                "/admin/delivery": "routing-form", "/admin/dlp": "dlp-form"}[path]
        assert form_fields(page.data, form_id=form)[name] == [value], path
        assert 'aria-current="page"' in text(page)
        # Each key the console set is listed with a way back to the file's value.
        assert "Reset to the file's value" in text(page), path
    console.post("/admin/signout", data={"csrf_token": csrf(console.get("/admin/").data)})
    for path in (*expected, "/admin/organisation/preview/portal"):
        assert client.get(path).status_code == 302
