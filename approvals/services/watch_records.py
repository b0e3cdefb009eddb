"""What a watch message becomes when stored: an observed AssumeRole (tied to its request's
timeline, alarmed when nothing explains it), or the message itself set aside as poison. Each is
stored once (by CloudTrail eventID, or SQS message id), so a redelivery is recognised.
"""

from typing import Any

from django.db import IntegrityError, transaction
from django.utils import timezone

from approvals.models import AccessProfile, AccessRequest, ObservedUse, PoisonMessage
from approvals.scrubbing import scrub_text
from approvals.services.alarms import alarm_open
from approvals.timeline import EventSource, timeline_append
from approvals.watch_events import RoleUse


def _use_detail(use: RoleUse, unexplained: str) -> dict[str, Any]:
    """What the timeline and the alarm say about one observed AssumeRole."""
    return {
        "message": use.summary,
        "event_id": use.event_id,
        "event_time": use.event_time.isoformat(),
        "principal": use.principal_arn,
        "source_ip": use.source_ip,
        "user_agent": use.user_agent,
        "region": use.region,
        "session_name": use.session_name,
        "source_identity": use.source_identity,
        "error_code": use.error_code,
        "explained": not unexplained,
        "unexplained": unexplained,
    }


def observed_use_record(
    *, use: RoleUse, profile: AccessProfile, access_request: AccessRequest | None, unexplained: str
) -> ObservedUse | None:
    """Store one AssumeRole seen in CloudTrail (an approvals.watch.RoleUse) → ObservedUse, or None
    when that eventID was already recorded. Tied to its request's timeline; an alarm if no
    approved, active request explains it (`unexplained` says why)."""
    with transaction.atomic():
        if ObservedUse.objects.filter(event_id=use.event_id).exists():
            return None
        try:
            with transaction.atomic():
                observed = ObservedUse.objects.create(
                    event_id=use.event_id,
                    profile=profile,
                    request=access_request,
                    event_time=use.event_time,
                    role_arn=use.role_arn,
                    principal_arn=use.principal_arn,
                    session_name=use.session_name,
                    source_identity=use.source_identity,
                    source_ip=use.source_ip,
                    user_agent=use.user_agent,
                    region=use.region,
                    explained=not unexplained,
                    raw_event=use.raw,
                    received_at=timezone.now(),
                )
        except IntegrityError:
            return None
        detail = _use_detail(use, unexplained)
        if access_request is not None:
            timeline_append(
                access_request=access_request,
                code="approvals.role.assume_failed" if use.error_code else "approvals.role.assumed",
                actor_name=(use.principal_arn or "unknown principal")[:150],
                outcome="alarm" if unexplained else "success",
                detail=detail,
                source=EventSource(ip=use.ip, user_agent=use.user_agent),
            )
        if unexplained:
            role = use.role_arn.rsplit("/", 1)[-1]
            alarm_open(
                kind="unexplained_use",
                title=f"Unexplained AssumeRole of {role}: {use.summary}; {unexplained}",
                dedup_key=f"use:{use.event_id}",
                detail=detail,
                raw_event=use.raw,
                profile=profile,
                access_request=access_request,
            )
    return observed


def poison_message_record(
    *, queue_url: str, message_id: str, body: str, error: str, profile: AccessProfile | None
):
    """Set aside a watch message we cannot read (kept, never lost) and report it → PoisonMessage,
    or None when it was already set aside."""
    clean_body = scrub_text(body)
    with transaction.atomic():
        try:
            with transaction.atomic():
                poison = PoisonMessage.objects.create(
                    queue_url=queue_url[:600],
                    message_id=message_id[:100],
                    body=clean_body,
                    error=error,
                    received_at=timezone.now(),
                )
        except IntegrityError:
            return None
        alarm_open(
            kind="poison_message",
            title=f"Unreadable message on the watch queue of {profile or 'a profile'}: {error}",
            dedup_key=f"poison:{message_id}",
            detail={"message_id": message_id, "queue_url": queue_url, "error": error},
            profile=profile,
        )
    return poison
