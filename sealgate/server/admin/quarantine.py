"""The quarantine: messages a DLP policy held, listed with their masked findings (never a
found value, never the content), and an administrator's decision on one: send it securely,
send it as is, or discard it. A decision goes through the same machinery as the sender's
own (server/holds.py `carry_out_decision`): made once, the content deleted only once the
MTA took the mail, a failed hand-over leaving it held. An administrator may send a message
as is where the policy does not let its sender; the audit event says it was an override."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from flask import abort, jsonify, make_response, render_template, request
from flask.typing import ResponseReturnValue

from sealgate.server.admin import admin, admin_api
from sealgate.server.admin.api import json_body, key_holder, needs, problem
from sealgate.server.admin.filters import BadQuery, number, text
from sealgate.server.admin.identity import actor, now
from sealgate.server.app import services
from sealgate.server.holds import (
    DISCARD,
    SEND_AS_IS,
    SEND_SECURELY,
    DecisionForm,
    Outcome,
    Result,
    carry_out_decision,
)
from sealgate.vault import holds
from sealgate.vault.models import Hold, HoldDecision

CHOICES = (SEND_SECURELY, SEND_AS_IS, DISCARD)
STATES = {"held": True, "decided": False, "all": None}  # ?state= → holds.listed(undecided=)

# For each result: the HTTP status, the API's error code, and what happened, in words.
ANSWERS: dict[Result, tuple[int, str, str]] = {
    Result.DONE: (200, "", ""),
    Result.NOT_FOUND: (404, "not_found", "There is no such held message."),
    Result.ALREADY_DECIDED: (409, "conflict", "A decision was made on it already: {decision}."),
    Result.EXPIRED: (409, "conflict", "It expired before anyone decided, so it was "
                                      "discarded."),
    Result.BUSY: (409, "conflict", "A decision on it is being carried out right now. "
                                   "Look again in a minute."),
    Result.NOT_TAKEN: (503, "not_taken", "The mail server did not take it, so nothing was "
                                         "sent and it is still held; try again."),
    Result.UNSENDABLE: (422, "unsendable", "It cannot be sent securely: its structure cannot "
                                           "be read faithfully ({reason}). It is still held."),
    Result.NO_METHOD: (422, "no_secure_method", "Not sent: {reason}. It is still held."),
    Result.NOT_ALLOWED: (403, "forbidden", "The policy does not allow sending it as is."),
}
DONE = {HoldDecision.SENT_SECURELY: "Sent securely: each outside recipient gets it the most "
                                    "secure way available to them; colleagues as it is.",
        HoldDecision.SENT_AS_IS: "Sent as is, to every recipient.",
        HoldDecision.DISCARDED: "Discarded: nobody got it, and its content is deleted.",
        HoldDecision.EXPIRED: "It expired and was discarded."}


def state_of(hold: Hold, moment: datetime) -> str:
    if hold.decision is not None:
        return str(hold.decision)
    if holds.is_expired(hold, moment):
        return "expiring"  # past its expiry: the next sweep (or any decision) discards it
    if hold.claimed_until is not None and hold.claimed_until > moment:
        return "deciding"
    return "held"


def hold_json(hold: Hold, moment: datetime) -> dict[str, Any]:
    """What the console shows of a hold: the masked report as the DLP engine made it."""
    report = hold.findings or {}
    findings = [{key: str(finding.get(key, "")) for key in
                 ("type", "label", "value", "part", "confidence")}
                for finding in report.get("findings", []) if isinstance(finding, dict)]
    unreadable = [{key: str(item.get(key, "")) for key in ("part", "problem", "detail")}
                  for item in report.get("unreadable", []) if isinstance(item, dict)]
    return {"id": str(hold.id), "sender": hold.sender, "recipients": list(hold.recipients),
            "subject": hold.subject, "policies": list(hold.policies), "findings": findings,
            "findings_total": report.get("findings_total", len(findings)),
            "unreadable": unreadable, "reason": str(report.get("reason", "")),
            "allow_send_as_is": hold.allow_send_as_is,
            "created_at": hold.created_at.isoformat(),
            "expires_at": hold.expires_at.isoformat(), "state": state_of(hold, moment),
            "decision": str(hold.decision) if hold.decision is not None else None,
            "decided_at": hold.decided_at.isoformat() if hold.decided_at else None}


def _search(args: Any) -> tuple[list[Hold], bool, str]:
    state = text(args, "state", 10) or "held"
    if state not in STATES:
        raise BadQuery(f"state: one of {', '.join(STATES)}, not {state!r}")
    limit = number(args, "limit", 100, most=500) or 100
    found = holds.listed(services().vault, undecided=STATES[state],
                         sender=text(args, "sender"), limit=limit + 1)
    return found[:limit], len(found) > limit, state


def _hold_id(value: str) -> uuid.UUID | None:
    try:
        return uuid.UUID(value)
    except ValueError:
        return None


def _said(outcome: Outcome) -> str:
    """What happened, for a person."""
    hold = outcome.hold
    if outcome.result is Result.DONE and hold is not None and hold.decision is not None:
        return DONE[hold.decision]
    if hold is not None and hold.decision is HoldDecision.EXPIRED:
        return ANSWERS[Result.EXPIRED][2]
    decision = str(hold.decision).replace("_", " ") if hold and hold.decision else "?"
    if hold is not None and hold.decided_at is not None:
        decision += f" on {hold.decided_at:%Y-%m-%d %H:%M} UTC"
    return ANSWERS[outcome.result][2].format(decision=decision, reason=outcome.reason)


def _decide(hold_id: uuid.UUID, choice: str, who: str) -> Outcome:
    return carry_out_decision(services(), hold_id, choice, who, by_admin=True,
                              ip=request.remote_addr or "")


# -- the console ----------------------------------------------------------------------------

@admin.get("/quarantine")
def quarantine() -> ResponseReturnValue:
    moment = now()
    try:
        found, more, state = _search(request.args)
    except BadQuery as error:
        return render_template("admin/quarantine.html", holds=[], more=False, state="held",
                               sender="", error=str(error)), 400
    return render_template("admin/quarantine.html", holds=[hold_json(h, moment) for h in found],
                           more=more, state=state, sender=request.args.get("sender", ""),
                           error="")


@admin.post("/quarantine/<hold_id>")
def decide_held(hold_id: str) -> ResponseReturnValue:
    form = DecisionForm()
    if not form.validate_on_submit():
        abort(400, description="Choose send securely, send as is or discard.")
    parsed = _hold_id(hold_id)
    outcome = _decide(parsed, str(form.choice.data), actor()) if parsed is not None \
        else Outcome(Result.NOT_FOUND, None)
    status = ANSWERS[outcome.result][0]
    response = make_response(render_template(
        "admin/quarantine_outcome.html", outcome=outcome.result.value, said=_said(outcome),
        hold=hold_json(outcome.hold, now()) if outcome.hold is not None else None), status)
    if outcome.after is not None:
        response.call_on_close(outcome.after)
    return response


# -- the API --------------------------------------------------------------------------------

@admin_api.get("/quarantine")
@needs("quarantine:read")
def list_held() -> ResponseReturnValue:
    try:
        found, more, _state = _search(request.args)
    except BadQuery as error:
        return problem(400, "bad_request", str(error))
    moment = now()
    return jsonify(holds=[hold_json(h, moment) for h in found], more=more)


@admin_api.get("/quarantine/<hold_id>")
@needs("quarantine:read")
def show_held(hold_id: str) -> ResponseReturnValue:
    parsed = _hold_id(hold_id)
    found = holds.find(services().vault, parsed) if parsed is not None else None
    if found is None:
        return problem(404, "not_found", f"no held message {hold_id}")
    return jsonify(hold_json(found, now()))


@admin_api.post("/quarantine/<hold_id>")
@needs("quarantine:write")
def decide_held_api(hold_id: str) -> ResponseReturnValue:
    choice = json_body().get("decision")
    if choice not in CHOICES:
        return problem(400, "bad_request",
                       f"'decision' must be one of {', '.join(CHOICES)}")
    parsed = _hold_id(hold_id)
    if parsed is None:
        return problem(404, "not_found", f"no held message {hold_id}")
    outcome = _decide(parsed, choice, key_holder().actor)
    status, error, _ = ANSWERS[outcome.result]
    hold = hold_json(outcome.hold, now()) if outcome.hold is not None else None
    if outcome.result is Result.DONE:
        response = jsonify(outcome=hold["decision"] if hold else "done",
                           message=_said(outcome), hold=hold)
    else:
        response = jsonify(error=error, outcome=outcome.result.value, message=_said(outcome),
                           hold=hold)
    response.status_code = status
    if outcome.after is not None:
        response.call_on_close(outcome.after)
    return response
