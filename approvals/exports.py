"""The incident record of one request, rendered for export (JSON for machines, CSV for sheets)."""

import csv
import io
import json

from approvals.models import AccessRequest
from approvals.selectors import request_timeline
from approvals.timeline import chain_for, timeline_verify


def _iso(value) -> str | None:
    return value.isoformat() if value else None


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


def record_as_csv(access_request: AccessRequest) -> str:
    """One row per timeline event; the request's own fields are in the first event's detail.

    Every text cell goes through csv_cell: user agents, actor names and details come from people
    and from CloudTrail, and auditors open this file in a spreadsheet."""
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=CSV_COLUMNS)
    writer.writeheader()
    for event in record_as_dict(access_request)["timeline"]:
        row = {**event, "detail": json.dumps(event["detail"], sort_keys=True)}
        writer.writerow({column: csv_cell(row[column]) for column in CSV_COLUMNS})
    return out.getvalue()
