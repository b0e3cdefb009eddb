"""The only place a request's status changes (DESIGN.md §3).

A transition changes the status and appends its event, in one transaction, and nothing else:
what follows from a change (notices, webhooks, the incident report) is queued by the services
that own it (`approvals.services.lifecycle`).
"""

from typing import Any

from django.contrib.auth.models import User
from django.db import transaction
from django.utils import timezone

from approvals.errors import IllegalTransition, StaleTransition
from approvals.models import ALLOWED_TRANSITIONS, AccessRequest, Status, TimelineEvent
from approvals.timeline import SYSTEM_SOURCE, EventSource, timeline_append

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
    actor: User | None = None,
    outcome: str = "success",
    detail: dict[str, Any] | None = None,
    source: EventSource = SYSTEM_SOURCE,
    fields: dict[str, Any] | None = None,
) -> TimelineEvent:
    """Move the request from its current status to `to_status` and record it, atomically.

    The UPDATE is conditional on the status we believe it has; if another process moved it first
    nothing is written and StaleTransition tells the caller so. Returns the appended event.
    """
    from_status = Status(access_request.status)
    transition_check(from_status, to_status)
    extra = dict(fields or {})
    if unknown := set(extra) - _TRANSITION_FIELDS:
        raise ValueError(f"transitions cannot set {sorted(unknown)}")
    now = timezone.now()
    event: TimelineEvent | None = None
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
    if event is None:
        # Raised outside the block: nothing was written, so the caller's transaction stays usable.
        raise StaleTransition(
            f"Request {access_request.pk} is no longer {from_status}; someone else acted first."
        )
    for name, value in {"status": to_status, "status_changed_at": now, **extra}.items():
        setattr(access_request, name, value)
    return event
