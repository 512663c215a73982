"""The audit trail: search it (actor, action, object, dates; paged by sequence number),
export what a search finds as CSV or JSON (streamed, so a large trail never sits in
memory), and check that it is intact (vault/audit.py `verify`: the chain of digests and the
head). Exports are themselves audited."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterator, Mapping
from typing import Any

from flask import Response, abort, jsonify, render_template, request
from flask.typing import ResponseReturnValue

from sealgate.server.admin import admin, admin_api
from sealgate.server.admin.api import key_holder, needs, problem
from sealgate.server.admin.filters import BadQuery, number, period, text
from sealgate.server.admin.forms import ConfirmForm
from sealgate.server.admin.identity import actor, now
from sealgate.server.app import services
from sealgate.vault import audit as trail
from sealgate.vault.models import AuditEvent

FIELDS = ("seq", "at", "actor", "action", "object_type", "object_id", "details")
FORMATS = {"csv": "text/csv", "json": "application/json"}
FILTERS = ("actor", "action", "object", "since", "until")
# A spreadsheet runs a cell that starts with one of these as a formula (CSV injection).
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def wanted(args: Mapping[str, str], *, newest_first: bool = False) -> trail.Search:
    """The search the request's parameters ask for. Raises BadQuery."""
    since, until = period(args)
    after, before = (number(args, name, None, least=0, most=2**62)
                     for name in ("after_seq", "before_seq"))
    if after is not None and before is not None:
        raise BadQuery("after_seq and before_seq page in opposite directions: give one")
    return trail.Search(actor=text(args, "actor"), action=text(args, "action", 64),
                        object=text(args, "object", 100), since=since, until=until,
                        after_seq=after, before_seq=before,
                        newest_first=before is not None or (newest_first and after is None))


def event_json(event: AuditEvent) -> dict[str, Any]:
    return {"seq": event.seq, "at": event.at.isoformat(), "actor": event.actor,
            "action": event.action, "object_type": event.object_type,
            "object_id": event.object_id, "details": event.details}


def found(search: trail.Search, limit: int) -> tuple[list[dict[str, Any]], dict[str, int] | None]:
    """The events, and the parameter that fetches the next page (None: no more)."""
    with services().vault.database.session() as db:
        events, more = trail.search(db, search, limit)
        shown = [event_json(e) for e in events]
    if not more or not shown:
        return shown, None
    return shown, {"before_seq" if search.newest_first else "after_seq": shown[-1]["seq"]}


def safe_cell(value: str) -> str:
    """A cell a spreadsheet shows as text, never runs."""
    return "'" + value if value.startswith(FORMULA_STARTS) else value


def _csv_rows(events: Iterator[AuditEvent]) -> Iterator[str]:
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(FIELDS)
    for count, event in enumerate(events, 1):
        row = event_json(event)
        row["details"] = json.dumps(row["details"], ensure_ascii=False, sort_keys=True)
        writer.writerow([row["seq"], *(safe_cell(str(row[f])) for f in FIELDS[1:])])
        if count % 500 == 0:
            yield buffer.getvalue()
            buffer.seek(0)
            buffer.truncate()
    yield buffer.getvalue()


def _json_rows(events: Iterator[AuditEvent]) -> Iterator[str]:
    yield "["
    for count, event in enumerate(events):
        yield ("," if count else "") + "\n" + json.dumps(event_json(event), ensure_ascii=False)
    yield "\n]\n"


def export(args: Mapping[str, str], who: str) -> Response:
    """The events a search finds, oldest first, as a streamed download. Raises BadQuery."""
    kind = text(args, "format", 10) or "csv"
    if kind not in FORMATS:
        raise BadQuery(f"format: csv or json, not {kind!r}")
    search = wanted(args)
    vault = services().vault
    vault.record(who, "audit.exported", "audit", "", {
        "format": kind, "filters": {k: args[k] for k in (*FILTERS, "after_seq", "before_seq")
                                    if args.get(k)}})

    def stream() -> Iterator[str]:
        # Its own session: the response is written after this request's handler returned.
        with vault.database.session() as db:
            rows = _csv_rows if kind == "csv" else _json_rows
            yield from rows(trail.every(db, search))

    stamp = now().strftime("%Y%m%dT%H%M%SZ")
    return Response(stream(), mimetype=FORMATS[kind], headers={
        "Content-Disposition": f'attachment; filename="sealgate-audit-{stamp}.{kind}"'})


def verified() -> dict[str, Any]:
    report = services().vault.verify_audit()
    return {"intact": report.intact, "events": report.events, "problems": report.problems}


# -- the console ----------------------------------------------------------------------------

def _page(report: dict[str, Any] | None = None) -> ResponseReturnValue:
    filters = _filters()
    try:
        search = wanted(request.args, newest_first=True)
        limit = number(request.args, "limit", 100, most=1000) or 100
    except BadQuery as error:
        return render_template("admin/audit.html", events=[], next=None, filters=filters,
                               error=str(error), report=report, verify=ConfirmForm()), 400
    events, following = found(search, limit)
    if following is not None and limit != 100:
        following["limit"] = limit
    return render_template("admin/audit.html", events=events, next=following, filters=filters,
                           error="", report=report, verify=ConfirmForm())


def _filters() -> dict[str, str]:
    """The search as asked, for the form and the links (export, next page)."""
    return {k: request.args[k] for k in FILTERS if request.args.get(k)}


@admin.get("/audit")
def audit() -> ResponseReturnValue:
    return _page()


@admin.post("/audit/verify")
def audit_verify() -> ResponseReturnValue:
    if not ConfirmForm().validate_on_submit():
        abort(400, description="The form expired; reload the page and try again.")
    return _page(verified())


@admin.get("/audit/export")
def audit_export() -> ResponseReturnValue:
    try:
        return export(request.args, actor())
    except BadQuery as error:
        return render_template("admin/audit.html", events=[], next=None, report=None,
                               filters=_filters(),
                               error=str(error), verify=ConfirmForm()), 400


# -- the API --------------------------------------------------------------------------------

@admin_api.get("/audit")
@needs("audit:read")
def search_audit() -> ResponseReturnValue:
    try:
        order = text(request.args, "order", 10) or "oldest"
        if order not in ("oldest", "newest"):
            raise BadQuery(f"order: oldest or newest, not {order!r}")
        search = wanted(request.args, newest_first=order == "newest")
        limit = number(request.args, "limit", 100, most=1000) or 100
    except BadQuery as error:
        return problem(400, "bad_request", str(error))
    events, following = found(search, limit)
    return jsonify(events=events, more=following is not None, next=following)


@admin_api.get("/audit/export")
@needs("audit:read")
def export_audit() -> ResponseReturnValue:
    try:
        return export(request.args, key_holder().actor)
    except BadQuery as error:
        return problem(400, "bad_request", str(error))


@admin_api.get("/audit/verify")
@needs("audit:read")
def verify_audit() -> ResponseReturnValue:
    return jsonify(verified())
