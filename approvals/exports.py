"""The incident record of one request, rendered for export (JSON for machines, CSV for sheets)."""

import csv
import io
import json

from approvals.models import AccessRequest, SessionActivity
from approvals.selectors import call_outcome, call_resources, request_activity, request_timeline
from approvals.timeline import chain_for, timeline_verify


def _iso(value) -> str | None:
    return value.isoformat() if value else None


def call_as_dict(call: SessionActivity) -> dict:
    """One AWS call of the request's sessions, as CloudTrail recorded it and as we judged it."""
    return {
        "event_id": call.event_id,
        "event_time": _iso(call.event_time),
        "service": call.service,
        "action": call.action,
        "region": call.region,
        "resources": call.resources,
        "resource_summary": call_resources(call),
        "request_parameters": call.request_parameters,
        "source_ip": call.source_ip,
        "user_agent": call.user_agent,
        "outcome": call_outcome(call),
        "error_code": call.error_code,
        "error_message": call.error_message,
        "read_only": call.read_only,
        "mutating": call.mutating,
        "session_arn": call.session_arn,
        "access_key_id": call.access_key_id,
        "source_identity": call.source_identity,
        "unexplained": call.unexplained,
        "source": call.source,
        "received_at": _iso(call.received_at),
        "sealed_by": call.seal.sequence if call.seal else None,
    }


def record_as_dict(access_request: AccessRequest) -> dict:
    verification = timeline_verify(chain=chain_for(access_request))
    return {
        "request": {
            "id": str(access_request.id),
            "profile": access_request.profile.slug,
            "account_id": access_request.profile.account_id,
            "role_arn": access_request.profile.role_arn,
            "requester": access_request.requester_name,
            "opened_by": access_request.opened_by,
            "ticket": access_request.ticket,
            "justification": access_request.justification,
            "duration_minutes": access_request.duration_minutes,
            "status": access_request.status,
            "created_at": _iso(access_request.created_at),
            "approval_deadline": _iso(access_request.approval_deadline),
            "approved_at": _iso(access_request.approved_at),
            "activated_at": _iso(access_request.activated_at),
            "expires_at": _iso(access_request.expires_at),
            "revoke_requested_at": _iso(access_request.revoke_requested_at),
            "revoked_at": _iso(access_request.revoked_at),
            "time_to_access_ms": access_request.time_to_access_ms,
            "time_to_revoke_ms": access_request.time_to_revoke_ms,
            "failure_reason": access_request.failure_reason,
            "content_digest": access_request.content_digest(),
        },
        "signatures": [
            {
                "approver": approval.approver_name,
                "decision": approval.decision,
                "reason": approval.reason,
                "signed_at": _iso(approval.created_at),
                "content_digest": approval.content_digest,
                "source_ip": approval.source_ip,
            }
            for approval in access_request.approvals.all()
        ],
        "timeline": [
            {
                "sequence": event.sequence,
                "at": _iso(event.created_at),
                "actor": event.actor_name,
                "code": event.code,
                "outcome": event.outcome,
                "detail": event.detail,
                "source_ip": event.source_ip,
                "user_agent": event.user_agent,
                "prev_hash": event.prev_hash,
                "hash": event.hash,
            }
            for event in request_timeline(access_request=access_request)
        ],
        "activity": [
            call_as_dict(call) for call in request_activity(access_request=access_request)
        ],
        "chain_verified": verification.ok,
        "chain_problem": verification.reason,
    }


def record_as_json(access_request: AccessRequest) -> str:
    return json.dumps(record_as_dict(access_request), indent=2, ensure_ascii=False) + "\n"


CSV_COLUMNS = [
    "sequence",
    "at",
    "actor",
    "code",
    "outcome",
    "source_ip",
    "user_agent",
    "detail",
    "prev_hash",
    "hash",
    # The rows of AWS calls (kind "call") fill these too; timeline rows leave them empty.
    "kind",
    "service",
    "action",
    "resources",
    "error_code",
    "mutating",
    "event_id",
    "sealed_by",
]


# A spreadsheet reads a cell starting with one of these as a formula (OWASP, "CSV Injection").
_FORMULA_TRIGGERS = ("=", "+", "-", "@", "\t", "\r")


def csv_cell(value: object) -> object:
    """A value safe to put in a spreadsheet cell: text that would start a formula is prefixed
    with a single quote, so a User-Agent of =HYPERLINK(...) shows as text instead of running.
    Non-text values (numbers, None) are ours and pass unchanged."""
    if isinstance(value, str) and value.startswith(_FORMULA_TRIGGERS):
        return "'" + value
    return value


def _call_row(call: dict) -> dict:
    """A call in the timeline's columns: `code` is service:action, `outcome` allowed / denied /
    failed, `actor` the session; what only a call has goes in the columns after `hash`."""
    return {
        "kind": "call",
        "at": call["event_time"],
        "actor": call["session_arn"],
        "code": f"{call['service']}:{call['action']}",
        "outcome": call["outcome"],
        "source_ip": call["source_ip"],
        "user_agent": call["user_agent"],
        "detail": json.dumps(
            {
                "region": call["region"],
                "request_parameters": call["request_parameters"],
                "error_message": call["error_message"],
                "unexplained": call["unexplained"],
                "source": call["source"],
            },
            sort_keys=True,
        ),
        "service": call["service"],
        "action": call["action"],
        "resources": call["resource_summary"],
        "error_code": call["error_code"],
        "mutating": call["mutating"],
        "event_id": call["event_id"],
        "sealed_by": call["sealed_by"],
    }


def record_as_csv(access_request: AccessRequest) -> str:
    """One row per timeline event (kind "timeline", in chain order; the request's own fields are
    in the first event's detail), then one per AWS call of its sessions (kind "call", in event
    time order).

    Every text cell goes through csv_cell: user agents, actor names, details and everything a
    call carries come from people and from CloudTrail, and auditors open this file in a
    spreadsheet."""
    record = record_as_dict(access_request)
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=CSV_COLUMNS, restval="")
    writer.writeheader()
    for event in record["timeline"]:
        row = {**event, "kind": "timeline", "detail": json.dumps(event["detail"], sort_keys=True)}
        writer.writerow({column: csv_cell(row.get(column)) for column in CSV_COLUMNS})
    for call in record["activity"]:
        row = _call_row(call)
        writer.writerow({column: csv_cell(row.get(column)) for column in CSV_COLUMNS})
    return out.getvalue()
