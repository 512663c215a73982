"""The audit trail in the console and the API: search with filters and paging, CSV export
that a spreadsheet cannot turn into formulas, JSON export, and verification that notices a
row changed in the database."""

from __future__ import annotations

import csv
import io
import json
import re
from datetime import timedelta

from flask.testing import FlaskClient
from sqlalchemy import select, update

from sealgate.server.portal.identity import now
from sealgate.vault.models import AuditEvent
from sealgate.vault.vault import Vault
from tests.admin.conftest import ADMIN, bearer, make_key
from tests.portal.conftest import csrf

API = "/api/v1/admin/audit"
HOSTILE = ("=HYPERLINK(\"http://evil.test\")", "+1+2", "-2+3", "@SUM(A1)")


def trail(vault: Vault, backdated: bool = True) -> None:
    """Events to search: two actors, a few actions and objects, one of them long ago (which
    the chain notices: verify would report it)."""
    vault.record("ann@example.org", "message.retracted", "message", "m-1", {"reason": "oops"})
    vault.record("bob@example.org", "message.viewed", "message", "m-1")
    vault.record("bob@example.org", "hold.discarded", "hold", "h-1")
    vault.record("ann@example.org", "hold.sent_as_is", "hold", "h-2")
    vault.record("ann@example.org", "recipient_key.added", "recipient_key", "pgp:AB12")
    if not backdated:
        return
    with vault.database.writing() as db:  # dated long ago, as if written then
        first = db.scalar(select(AuditEvent.seq).where(AuditEvent.object_id == "m-1")
                          .order_by(AuditEvent.seq))
        db.execute(update(AuditEvent).where(AuditEvent.seq == first)
                   .values(at=now() - timedelta(days=30)))


def seqs_of(answer: dict[str, list[dict[str, object]]]) -> list[object]:
    return [e["action"] for e in answer["events"]]


def test_the_trail_is_searched_by_actor_action_object_and_date(
        api: FlaskClient, vault: Vault) -> None:
    trail(vault)
    token = make_key(vault, ["audit:read"])

    def actions(query: str) -> list[object]:
        answer = api.get(f"{API}?{query}", headers=bearer(token))
        assert answer.status_code == 200, answer.json
        return seqs_of(answer.json)

    assert actions("actor=bob@example.org") == ["message.viewed", "hold.discarded"]
    assert actions("action=hold.*") == ["hold.discarded", "hold.sent_as_is"]
    assert actions("action=hold.discarded") == ["hold.discarded"]
    assert actions("action=hold") == []  # exact unless it ends with *
    assert actions("object=message:m-1") == ["message.retracted", "message.viewed"]
    assert actions("object=hold") == ["hold.discarded", "hold.sent_as_is"]
    assert actions("object=recipient_key:pgp:AB12") == ["recipient_key.added"]
    assert actions("object=h-2") == ["hold.sent_as_is"]
    assert actions("actor=ann@example.org&action=hold.*") == ["hold.sent_as_is"]
    yesterday = (now() - timedelta(days=1)).date().isoformat()
    assert actions(f"object=message:m-1&since={yesterday}") == ["message.viewed"]
    assert actions(f"object=message:m-1&until={yesterday}") == ["message.retracted"]
    assert actions("actor=bob@example.org&order=newest") == ["hold.discarded",
                                                            "message.viewed"]


def test_paging_walks_the_whole_trail_once(api: FlaskClient, vault: Vault) -> None:
    trail(vault)
    token = make_key(vault, ["audit:read"])
    everything = api.get(f"{API}?limit=1000", headers=bearer(token)).json
    assert everything["more"] is False and everything["next"] is None
    every_seq = [e["seq"] for e in everything["events"]]
    assert every_seq == sorted(every_seq) and len(every_seq) >= 5

    seen: list[int] = []
    query = "limit=2"
    while True:
        page = api.get(f"{API}?{query}", headers=bearer(token)).json
        seen += [e["seq"] for e in page["events"]]
        if not page["more"]:
            break
        assert set(page["next"]) == {"after_seq"} and len(page["events"]) == 2
        query = f"limit=2&after_seq={page['next']['after_seq']}"
    assert seen == every_seq

    backwards: list[int] = []
    query = "limit=3&order=newest"
    while True:
        page = api.get(f"{API}?{query}", headers=bearer(token)).json
        backwards += [e["seq"] for e in page["events"]]
        if not page["more"]:
            break
        query = f"limit=3&before_seq={page['next']['before_seq']}"
    assert backwards == every_seq[::-1]


def test_bad_search_values_get_a_clear_400(api: FlaskClient, console: FlaskClient,
                                           vault: Vault) -> None:
    token = make_key(vault, ["audit:read"])
    for query, says in (("since=31.05.2024", "since: '31.05.2024' is not an ISO date"),
                        ("limit=0", "limit: a whole number from 1 to 1000"),
                        ("limit=5000", "limit: a whole number from 1 to 1000"),
                        ("after_seq=-1", "after_seq: a whole number"),
                        ("after_seq=3&before_seq=9", "give one"),
                        ("order=random", "order: oldest or newest")):
        answer = api.get(f"{API}?{query}", headers=bearer(token))
        assert answer.status_code == 400, query
        assert says in answer.json["message"], (query, answer.json)
    export = api.get(f"{API}/export?format=xml", headers=bearer(token))
    assert export.status_code == 400 and "format: csv or json" in export.json["message"]
    page = console.get("/admin/audit?until=soon")
    assert page.status_code == 400 and b"is not an ISO date" in page.data


def test_csv_export_cannot_smuggle_formulas_and_json_export_parses(
        api: FlaskClient, vault: Vault) -> None:
    trail(vault)
    for value in HOSTILE:
        vault.record(value, "admin.signin_failed", "administrator", value, {"why": value})
    token = make_key(vault, ["audit:read"])
    exported = api.get(f"{API}/export?format=csv&action=admin.signin_failed",
                       headers=bearer(token))
    assert exported.status_code == 200 and exported.mimetype == "text/csv"
    assert "attachment" in exported.headers["Content-Disposition"]
    assert exported.is_streamed
    rows = list(csv.reader(io.StringIO(exported.get_data(as_text=True))))
    assert rows[0] == ["seq", "at", "actor", "action", "object_type", "object_id", "details"]
    assert [(row[2], row[5]) for row in rows[1:]] == [("'" + v, "'" + v) for v in HOSTILE]
    for row in rows[1:]:
        for cell in row:
            assert not cell.startswith(("=", "+", "-", "@")), cell
        assert json.loads(row[6])["why"] in HOSTILE  # details: JSON, starting with {

    as_json = api.get(f"{API}/export?format=json", headers=bearer(token))
    assert as_json.status_code == 200 and as_json.mimetype == "application/json"
    events = json.loads(as_json.get_data(as_text=True))
    searched = api.get(f"{API}?limit=1000", headers=bearer(token)).json["events"]
    assert events[:len(searched)] == searched  # the same events, the same form
    assert {e["actor"] for e in events} >= set(HOSTILE)  # raw in JSON: nothing runs it
    filtered = json.loads(api.get(f"{API}/export?format=json&actor=bob@example.org",
                                  headers=bearer(token)).get_data(as_text=True))
    assert [e["action"] for e in filtered] == ["message.viewed", "hold.discarded"]
    exports = api.get(f"{API}?action=audit.exported", headers=bearer(token)).json["events"]
    assert len(exports) == 3 and exports[0]["details"]["format"] == "csv"
    assert exports[2]["details"]["filters"] == {"actor": "bob@example.org"}


def test_verify_reports_intact_and_then_the_tampered_row(
        api: FlaskClient, console: FlaskClient, vault: Vault) -> None:
    trail(vault, backdated=False)
    token = make_key(vault, ["audit:read"])
    intact = api.get(f"{API}/verify", headers=bearer(token))
    assert intact.status_code == 200
    assert intact.json["intact"] is True and intact.json["problems"] == []
    assert intact.json["events"] >= 5
    page = console.get("/admin/audit")
    verified = console.post("/admin/audit/verify", data={"csrf_token": csrf(page.data)})
    assert verified.status_code == 200 and b'data-intact="true"' in verified.data
    assert b"Intact: all" in verified.data

    with vault.database.writing() as db:  # someone edits a row behind Sealgate's back
        seq = db.scalar(select(AuditEvent.seq).where(AuditEvent.action == "hold.discarded"))
        db.execute(update(AuditEvent).where(AuditEvent.seq == seq)
                   .values(actor="someone-else@example.org"))
    broken = api.get(f"{API}/verify", headers=bearer(token)).json
    assert broken["intact"] is False
    assert f"event {seq}: content changed since it was written" in broken["problems"]
    shown = console.post("/admin/audit/verify", data={"csrf_token": csrf(page.data)})
    assert b'data-intact="false"' in shown.data
    assert f"event {seq}: content changed since it was written".encode() in shown.data
    assert console.post("/admin/audit/verify").status_code == 400  # no form token


def test_the_console_page_searches_pages_and_links_the_exports(
        console: FlaskClient, vault: Vault) -> None:
    trail(vault)
    page = console.get("/admin/audit?actor=bob@example.org")
    assert page.status_code == 200
    assert b"hold.discarded" in page.data and b"message.viewed" in page.data
    assert b"hold.sent_as_is" not in page.data
    assert b"/admin/audit/export?format=csv&amp;actor=bob@example.org" in page.data
    newest = console.get("/admin/audit?limit=1").data  # newest first
    assert b"recipient_key.added" in newest and b"hold.sent_as_is" not in newest
    older = re.search(rb'href="(/admin/audit\?[^"]+)">Older events', newest)
    assert older is not None
    following = console.get(older.group(1).decode().replace("&amp;", "&")).data
    assert b"hold.sent_as_is" in following and b"recipient_key.added" not in following
    csv_export = console.get("/admin/audit/export?format=csv&actor=bob@example.org")
    assert csv_export.status_code == 200
    lines = csv_export.get_data(as_text=True).splitlines()
    assert len(lines) == 3 and all("bob@example.org" in line for line in lines[1:])
    with vault.database.session() as db:
        exporter = db.scalar(select(AuditEvent.actor).where(
            AuditEvent.action == "audit.exported"))
    assert exporter == ADMIN


def test_the_trail_needs_the_audit_scope(api: FlaskClient, vault: Vault) -> None:
    token = make_key(vault, ["messages:read", "quarantine:read", "keys:read"])
    for path in (API, f"{API}/export", f"{API}/verify"):
        refused = api.get(path, headers=bearer(token))
        assert refused.status_code == 403 and refused.json["needed"] == "audit:read", path
        assert api.get(path).status_code == 401
    with vault.database.session() as db:
        assert db.scalar(select(AuditEvent.seq).where(
            AuditEvent.action == "audit.exported")) is None
