"""The only place a request's status changes (DESIGN.md §3)."""

from django.db import transaction
from django.utils import timezone

from approvals.errors import IllegalTransition, StaleTransition
from approvals.models import AccessRequest, Status
from approvals.notifications import notify_request_changed
from approvals.timeline import SYSTEM_SOURCE, EventSource, timeline_append
from approvals.webhooks import webhooks_request_changed

ALLOWED_TRANSITIONS: dict[Status, frozenset[Status]] = {
    Status.PENDING: frozenset(
        {Status.APPROVED, Status.REJECTED, Status.CANCELLED, Status.TIMED_OUT}
    ),
    Status.APPROVED: frozenset({Status.ACTIVATING}),
    Status.ACTIVATING: frozenset({Status.ACTIVE, Status.FAILED}),
    Status.ACTIVE: frozenset({Status.REVOKING}),
    Status.REVOKING: frozenset({Status.REVOKED}),
    Status.REVOKED: frozenset(),
    Status.REJECTED: frozenset(),
    Status.CANCELLED: frozenset(),
    Status.TIMED_OUT: frozenset(),
    Status.FAILED: frozenset(),
}

TERMINAL_STATUSES = frozenset(s for s, targets in ALLOWED_TRANSITIONS.items() if not targets)

# Timestamp fields a transition may set alongside the status.
_TRANSITION_FIELDS = frozenset(
    {
        "approved_at",
        "activated_at",
        "expires_at",
        "revoke_requested_at",
        "revoked_at",
        "failure_reason",
    }
)


def transition_check(from_status: str, to_status: str) -> None:
    if Status(to_status) not in ALLOWED_TRANSITIONS[Status(from_status)]:
        raise IllegalTransition(f"A request cannot go from {from_status} to {to_status}.")


def request_transition(
    *,
    access_request: AccessRequest,
    to_status: Status,
    code: str,
    actor=None,
    outcome: str = "success",
    detail: dict | None = None,
    source: EventSource = SYSTEM_SOURCE,
    fields: dict | None = None,
) -> AccessRequest:
    """Move the request from its current status to `to_status` and record it, atomically.

    The UPDATE is conditional on the status we believe it has; if another process moved it first
    nothing is written and StaleTransition tells the caller so.
    """
    from_status = Status(access_request.status)
    transition_check(from_status, to_status)
    extra = dict(fields or {})
    if unknown := set(extra) - _TRANSITION_FIELDS:
        raise ValueError(f"transitions cannot set {sorted(unknown)}")
    now = timezone.now()
    # No savepoint: a failure here must abort the caller's change too.
    with transaction.atomic(savepoint=False):
        updated = AccessRequest.objects.filter(pk=access_request.pk, status=from_status).update(
            status=to_status, status_changed_at=now, **extra
        )
        if updated == 1:
            event = timeline_append(
                access_request=access_request,
                code=code,
                actor=actor,
                outcome=outcome,
                detail={"from": from_status.value, "to": to_status.value, **(detail or {})},
                source=source,
            )
            webhooks_request_changed(
                access_request=access_request,
                from_status=from_status,
                changes={"status": to_status, "status_changed_at": now, **extra},
                timeline_event=event,
                finished=not ALLOWED_TRANSITIONS[to_status],
            )
            notify_request_changed(access_request_id=access_request.pk, event=to_status.value)
    if updated != 1:
        # Raised outside the block: nothing was written, so the caller's transaction stays usable.
        raise StaleTransition(
            f"Request {access_request.pk} is no longer {from_status}; someone else acted first."
        )
    for name, value in {"status": to_status, "status_changed_at": now, **extra}.items():
        setattr(access_request, name, value)
    return access_request
