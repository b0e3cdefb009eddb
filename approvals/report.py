"""The incident report of a finished request: the whole record in one document (JSON for the
ticket system, Markdown for people), built on the export's record so both always agree."""

import json
from typing import Any

from approvals import selectors
from approvals.errors import NotAllowed
from approvals.exports import record_as_dict
from approvals.models import TERMINAL_STATUSES, AccessRequest

_ACTIVATION_CODES = (
    "approvals.activation.started",
    "approvals.activation.grant_attached",
    "approvals.request.active",
)
_REVOCATION_CODES = (
    "approvals.revocation.requested",
    "approvals.revocation.deadline",
    "approvals.revocation.overdue",
    "approvals.request.revoked",
)


def _iso(value) -> str | None:
    return value.isoformat() if value else None


def activity_complete_until(access_request: AccessRequest) -> str | None:
    """Up to when the list of calls is known to be complete (ISO time), or None while nothing
    vouches for it: EventBridge delivery is best effort, and only the LookupEvents backstop,
    once it has read CloudTrail's history past a time, can say no call before it is missing."""
    return _iso(selectors.activity_complete_until(access_request))


def _commands_executed(access_request: AccessRequest, calls: list[dict]) -> dict:
    """Every call of the request's sessions in event time order, with counts per service."""
    return {
        "complete_until": activity_complete_until(access_request),
        "count": len(calls),
        "by_service": [
            {
                "service": count.service,
                "calls": count.calls,
                "mutating": count.mutating,
                "errors": count.errors,
            }
            for count in selectors.request_activity_by_service(access_request=access_request)
        ],
        "calls": calls,
    }


def incident_report_dict(access_request: AccessRequest) -> dict:
    if access_request.status not in TERMINAL_STATUSES:
        raise NotAllowed(
            f"an incident report is for a finished request; this one is {access_request.status}"
        )
    record = record_as_dict(access_request)
    timeline = record["timeline"]
    uses = access_request.uses.order_by("event_time")
    alarms = access_request.alarms.order_by("opened_at")
    record["commands_executed"] = _commands_executed(access_request, record.pop("activity"))
    record["activation"] = [event for event in timeline if event["code"] in _ACTIVATION_CODES]
    record["revocation"] = [event for event in timeline if event["code"] in _REVOCATION_CODES]
    record["observed_uses"] = [
        {
            "event_id": use.event_id,
            "event_time": _iso(use.event_time),
            "principal": use.principal_arn,
            "source_ip": use.source_ip,
            "user_agent": use.user_agent,
            "region": use.region,
            "session_name": use.session_name,
            "source_identity": use.source_identity,
            "explained": use.explained,
            "received_at": _iso(use.received_at),
        }
        for use in uses
    ]
    record["alarms"] = [
        {
            "id": alarm.pk,
            "kind": alarm.kind,
            "title": alarm.title,
            "status": alarm.status,
            "opened_at": _iso(alarm.opened_at),
            "acknowledged_by": alarm.acknowledged_by_name,
            "acknowledged_at": _iso(alarm.acknowledged_at),
            "note": alarm.note,
        }
        for alarm in alarms
    ]
    record.update(_scope_and_deadlines(access_request))
    return record


def _scope_and_deadlines(access_request: AccessRequest) -> dict:
    """What the sessions could do and from where (as signed), and the deadline before and
    after every extension with who signed each."""
    extensions = access_request.extensions.prefetch_related("approvals").order_by("created_at")
    return {
        "scope": access_request.scope_content(),
        "deadlines": {
            "original": _iso(selectors.original_deadline(access_request)),
            "final": _iso(access_request.expires_at),
        },
        "extensions": [
            {
                "id": str(extension.pk),
                "status": extension.status,
                "minutes": extension.minutes,
                "reason": extension.reason,
                "requester": extension.requester_name,
                "asked_at": _iso(extension.created_at),
                "from_expires_at": _iso(extension.from_expires_at),
                "to_expires_at": _iso(extension.to_expires_at),
                "applied_at": _iso(extension.applied_at),
                "signatures": [
                    {
                        "approver": a.approver_name,
                        "decision": a.decision,
                        "signed_at": _iso(a.created_at),
                        "content_digest": a.content_digest,
                    }
                    for a in extension.approvals.all()
                ],
            }
            for extension in extensions
        ],
    }


def _networks_text(scope: dict) -> str:
    """Where the sessions worked from, as the request page says it: both lists apply."""
    profile, own = scope["profile_networks"], scope["scope_networks"]
    if not profile and not own:
        return "anywhere"
    parts = [
        *([f"{', '.join(profile)} (profile)"] if profile else []),
        *([f"{', '.join(own)} (scope)"] if own else []),
    ]
    return "only " + " and within ".join(parts)


def _scope_lines(report: dict) -> list[str]:
    scope, deadlines = report["scope"], report["deadlines"]
    lines = ["", "## Scope and deadlines", ""]
    if scope is None:
        lines.append("- Scope: the whole role, from anywhere")
    else:
        lines += [
            f"- Scope: {scope['name'] or 'the whole role'}",
            f"- Managed policies: {', '.join(scope['managed_policy_arns']) or 'none'}",
            f"- Works from: {_networks_text(scope)}",
        ]
        if scope["policy"]:
            lines += ["", "```json", json.dumps(scope["policy"], indent=2), "```", ""]
    lines.append(f"- Original deadline: {_cell(deadlines['original'])}")
    lines.append(f"- Final deadline: {_cell(deadlines['final'])}")
    lines += [
        f"- Extension +{e['minutes']} min ({e['status']}) asked by {_cell(e['requester'])}: "
        f"{_cell(e['reason'])}; {e['from_expires_at']} → {e['to_expires_at']}; signed by "
        f"{', '.join(s['approver'] for s in e['signatures'] if s['decision'] == 'approve') or '—'}"
        for e in report["extensions"]
    ]
    return lines


def incident_report_json(access_request: AccessRequest) -> str:
    return json.dumps(incident_report_dict(access_request), indent=2, ensure_ascii=False) + "\n"


def _ms(value: int | None) -> str:
    return "—" if value is None else f"{value / 1000:.1f} s"


def _cell(value) -> str:
    text = "—" if value in (None, "") else str(value)
    return text.replace("|", "\\|").replace("\n", " ")


def _summary_lines(req: dict[str, Any]) -> list[str]:
    """The request at a glance: who, what, and the times that matter."""
    lines = [
        f"# Incident report: {req['ticket']} — break-glass access to {req['profile']}",
        "",
        f"- Request: `{req['id']}` ({req['status']})",
        f"- Role: `{req['role_arn']}` in account {req['account_id']}",
        f"- Requester: {req['requester']}"
        + (f" (opened by {req['opened_by']})" if req["opened_by"] else ""),
        f"- Duration asked: {req['duration_minutes']} minutes",
        f"- Opened: {req['created_at']}",
        f"- Approved: {_cell(req['approved_at'])}",
        f"- Activated: {_cell(req['activated_at'])} (time to access: "
        f"{_ms(req['time_to_access_ms'])})",
        f"- Expires: {_cell(req['expires_at'])}",
        f"- Revoked: {_cell(req['revoked_at'])} (time to revoke: {_ms(req['time_to_revoke_ms'])})",
    ]
    if req["failure_reason"]:
        lines.append(f"- Failure: {req['failure_reason']}")
    return lines


def _call_outcome_cell(call: dict[str, Any]) -> str:
    outcome = call["outcome"] if call["outcome"] == "allowed" else f"**{call['outcome']}**"
    if call["error_code"]:
        outcome += f" ({_cell(call['error_code'])})"
    if call["unexplained"]:
        outcome += f"; ALARM: {_cell(call['unexplained'])}"
    return outcome


def _commands_lines(commands: dict[str, Any]) -> list[str]:
    """Every AWS call the sessions made, in order, then how many per service."""
    complete = (
        f"Activity complete up to {commands['complete_until']}: CloudTrail's event history was "
        "read to then, so no call before it is missing."
        if commands["complete_until"]
        else "Completeness not confirmed against CloudTrail LookupEvents: a call whose "
        "delivery was lost would be missing from this list."
    )
    lines = ["", "## Commands executed", "", complete, ""]
    if not commands["calls"]:
        return [*lines, "No calls recorded."]
    lines += [
        "| # | time | service | action | resources | source IP | outcome | changes |",
        "|---|---|---|---|---|---|---|---|",
    ]
    lines += [
        f"| {number} | {call['event_time']} | {_cell(call['service'])} | "
        f"{_cell(call['action'])} | {_cell(call['resource_summary'])} | "
        f"{_cell(call['source_ip'])} | {_call_outcome_cell(call)} | "
        f"{'yes' if call['mutating'] else 'no'} |"
        for number, call in enumerate(commands["calls"], start=1)
    ]
    lines += ["", "Calls by service:", ""]
    lines += ["| service | calls | mutating | refused or failed |", "|---|---|---|---|"]
    lines += [
        f"| {_cell(count['service'])} | {count['calls']} | {count['mutating']} | "
        f"{count['errors']} |"
        for count in commands["by_service"]
    ]
    return lines


def incident_report_markdown(access_request: AccessRequest) -> str:
    report = incident_report_dict(access_request)
    req = report["request"]
    lines = _summary_lines(req)
    lines += _scope_lines(report)
    lines += ["", "## Justification", "", req["justification"], "", "## Signatures", ""]
    lines += [
        "| approver | decision | signed at | from | content digest |",
        "|---|---|---|---|---|",
    ]
    lines += [
        f"| {_cell(s['approver'])} | {s['decision']} | {s['signed_at']} | "
        f"{_cell(s['source_ip'])} | `{s['content_digest'][:16]}…` |"
        for s in report["signatures"]
    ]
    for title, key in (("Activation", "activation"), ("Revocation", "revocation")):
        lines += ["", f"## {title}", ""]
        lines += [f"- {e['at']} {e['code']} by {e['actor']}" for e in report[key]] or ["- none"]
    lines += ["", "## Observed uses of the role (CloudTrail)", ""]
    if report["observed_uses"]:
        lines += [
            "| time | principal | source IP | user agent | explained |",
            "|---|---|---|---|---|",
        ]
        lines += [
            f"| {u['event_time']} | {_cell(u['principal'])} | {_cell(u['source_ip'])} | "
            f"{_cell(u['user_agent'])} | {'yes' if u['explained'] else '**NO**'} |"
            for u in report["observed_uses"]
        ]
    else:
        lines.append("None observed.")
    lines += _commands_lines(report["commands_executed"])
    lines += ["", "## Alarms", ""]
    lines += [
        f"- [{a['status']}] {a['opened_at']} {a['kind']}: {a['title']}"
        + (
            f" — acknowledged by {a['acknowledged_by']}: {a['note']}"
            if a["acknowledged_by"]
            else ""
        )
        for a in report["alarms"]
    ] or ["None."]
    verdict = (
        f"intact ({len(report['timeline'])} events, hash chain verified)"
        if report["chain_verified"]
        else f"BROKEN: {report['chain_problem']}"
    )
    lines += ["", "## Timeline", "", f"Integrity: {verdict}", ""]
    lines += ["| # | at | actor | event | outcome | from |", "|---|---|---|---|---|---|"]
    lines += [
        f"| {e['sequence']} | {e['at']} | {_cell(e['actor'])} | {e['code']} | {e['outcome']} | "
        f"{_cell(e['source_ip'])} |"
        for e in report["timeline"]
    ]
    return "\n".join(lines) + "\n"
