"""A request's status change and what follows from it.

`approvals.transitions.request_transition` changes the status and appends the event. This module
is what services call: the transition, then the outbox rows of the capabilities that tell the
outside world (webhooks, notices), written in the same transaction and sent only once it
commits. Nothing here renders a report or verifies a chain: an ended request's report is built
when its webhook is delivered, outside the status transaction.
"""

from typing import Any

from django.contrib.auth.models import User

from approvals.models import ALLOWED_TRANSITIONS, AccessRequest, Status, TimelineEvent
from approvals.services.notifications import notify_request_changed
from approvals.services.queue import Job, enqueue_after_commit
from approvals.services.webhooks import webhooks_request_changed
from approvals.timeline import SYSTEM_SOURCE, EventSource
from approvals.transitions import request_transition


def request_move(
    *,
    access_request: AccessRequest,
    to_status: Status,
    code: str,
    actor: User | None = None,
    outcome: str = "success",
    detail: dict[str, Any] | None = None,
    source: EventSource = SYSTEM_SOURCE,
    fields: dict[str, Any] | None = None,
) -> AccessRequest:
    """Transition the request and announce it (StaleTransition if someone moved it first)."""
    from_status = Status(access_request.status)
    event = request_transition(
        access_request=access_request,
        to_status=to_status,
        code=code,
        actor=actor,
        outcome=outcome,
        detail=detail,
        source=source,
        fields=fields,
    )
    changes = {"status": to_status, "status_changed_at": access_request.status_changed_at}
    changes.update({name: getattr(access_request, name) for name in fields or {}})
    request_changed_announce(
        access_request=access_request, from_status=from_status, changes=changes, event=event
    )
    return access_request


def request_changed_announce(
    *,
    access_request: AccessRequest,
    from_status: Status | None,
    changes: dict[str, Any],
    event: TimelineEvent,
) -> None:
    """Queue the webhooks and notices of a new or changed request (in the caller's transaction)."""
    to_status = Status(changes["status"])
    webhooks_request_changed(
        access_request=access_request,
        from_status=from_status,
        changes=changes,
        timeline_event=event,
        finished=not ALLOWED_TRANSITIONS[to_status],
    )
    notify_request_changed(
        access_request_id=access_request.pk,
        event="opened" if from_status is None else to_status.value,
    )
    if not ALLOWED_TRANSITIONS[to_status]:
        # Sealed and checkpointed once ended (issue 14); the periodic checkpoint covers it too
        # if the broker is down now.
        enqueue_after_commit(Job.REQUEST_SEAL, access_request.pk, best_effort=True)
