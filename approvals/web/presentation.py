"""How timeline events and durations read on the pages."""

from dataclasses import dataclass
from datetime import datetime

from approvals.models import TimelineEvent

EVENT_LABELS = {
    "approvals.request.opened": "Request opened",
    "approvals.signature.approved": "Approved (signed with TOTP)",
    "approvals.signature.rejected": "Rejected (signed with TOTP)",
    "approvals.signature.refused": "Signature refused",
    "approvals.request.approved": "Required approvals reached",
    "approvals.request.rejected": "Request rejected",
    "approvals.request.cancelled": "Request cancelled",
    "approvals.request.timed_out": "Timed out waiting for approvals",
    "approvals.activation.started": "Activation started",
    "approvals.activation.grant_attached": "Grant attached in AWS",
    "approvals.activation.cleanup_failed": "Clean-up after failure did not finish",
    "approvals.request.active": "Access active, credentials issued",
    "approvals.request.failed": "Activation failed",
    "approvals.credentials.viewed": "Credentials viewed",
    "approvals.credentials.refused": "Credentials refused",
    "approvals.revocation.requested": "Early revocation requested",
    "approvals.revocation.refused": "Revocation refused",
    "approvals.revocation.deadline": "Deadline reached, revoking",
    "approvals.revocation.overdue": "Revocation overdue (alarm raised)",
    "approvals.request.revoked": "Access revoked",
}


@dataclass(frozen=True)
class EventRow:
    event: TimelineEvent
    label: str
    summary: str


def _summary(event: TimelineEvent) -> str:
    detail = event.detail or {}
    if detail.get("message"):
        return str(detail["message"])
    if detail.get("reason"):
        return f"Reason: {detail['reason']}"
    if event.code == "approvals.request.opened":
        return f"{detail.get('duration_minutes')} min on {detail.get('profile')}"
    if detail.get("time_to_access_ms") is not None:
        return f"{detail['time_to_access_ms'] / 1000:.1f} s after approval"
    if detail.get("time_to_revoke_ms") is not None:
        return f"confirmed {detail['time_to_revoke_ms'] / 1000:.1f} s after it was due"
    if detail.get("access_key_id"):
        return f"session key {detail['access_key_id']}"
    return ""


def event_rows(events) -> list[EventRow]:
    return [
        EventRow(event=e, label=EVENT_LABELS.get(e.code, e.code), summary=_summary(e))
        for e in events
    ]


def remaining_text(until: datetime | None, now: datetime) -> str:
    """'12 min left' for people; the pages' script keeps it ticking to the second."""
    if until is None:
        return ""
    seconds = int((until - now).total_seconds())
    if seconds <= 0:
        return "time is up"
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours} h {minutes:02d} min left"
    if minutes:
        return f"{minutes} min {secs:02d} s left"
    return f"{secs} s left"
