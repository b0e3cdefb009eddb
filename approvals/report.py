"""The incident report of a finished request: the whole record in one document (JSON for the
ticket system, Markdown for people), built on the export's record so both always agree."""

import json
from typing import Any

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


def incident_report_dict(access_request: AccessRequest) -> dict:
    if access_request.status not in TERMINAL_STATUSES:
        raise NotAllowed(
            f"an incident report is for a finished request; this one is {access_request.status}"
        )
    record = record_as_dict(access_request)
    timeline = record["timeline"]
    uses = access_request.uses.order_by("event_time")
    alarms = access_request.alarms.order_by("opened_at")
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
    return record


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


def incident_report_markdown(access_request: AccessRequest) -> str:
    report = incident_report_dict(access_request)
    req = report["request"]
    lines = _summary_lines(req)
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
