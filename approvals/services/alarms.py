"""Security alarms: opened once per cause, told to everyone who must know, and closed only by a
person's signed acknowledgement."""

import logging
from typing import Any

from django.contrib.auth.models import User
from django.db import IntegrityError, transaction
from django.utils import timezone

from approvals import rules, selectors
from approvals.errors import NotAllowed, NotFound
from approvals.models import AccessProfile, AccessRequest, AlarmStatus, SecurityAlarm
from approvals.services.notifications import notify_alarm
from approvals.services.signing import refusal_raise, signature_check, text_clean
from approvals.services.webhooks import webhooks_enqueue
from approvals.timeline import SYSTEM_SOURCE, EventSource, timeline_append

logger = logging.getLogger(__name__)

ALARM_NOTE_MAX_LENGTH = 1000


def alarm_open(
    *,
    kind: str,
    title: str,
    dedup_key: str,
    detail: dict[str, Any] | None = None,
    raw_event: dict[str, Any] | None = None,
    profile: AccessProfile | None = None,
    access_request: AccessRequest | None = None,
) -> tuple[SecurityAlarm, bool]:
    """Open a security alarm once per `dedup_key` → (alarm, created).

    It goes on the timeline (the request's chain, else the system chain) and, once committed, to
    every notification channel and webhook. Nothing ever closes it but a person's acknowledgement.
    """
    detail = detail or {}
    with transaction.atomic():
        existing = SecurityAlarm.objects.filter(dedup_key=dedup_key).first()
        if existing is not None:
            return existing, False
        try:
            with transaction.atomic():
                alarm = SecurityAlarm.objects.create(
                    kind=kind,
                    title=title[:300],
                    detail=detail,
                    raw_event=raw_event,
                    profile=profile,
                    request=access_request,
                    dedup_key=dedup_key[:200],
                    opened_at=timezone.now(),
                )
        except IntegrityError:
            # Another poller stored the same alarm a moment ago.
            return SecurityAlarm.objects.get(dedup_key=dedup_key[:200]), False
        timeline_append(
            access_request=access_request,
            code="approvals.alarm.opened",
            outcome="alarm",
            detail={"alarm": alarm.pk, "kind": kind, "title": alarm.title, **detail},
        )
        notify_alarm(alarm=alarm)
        webhooks_enqueue(
            event="approvals.alarm.opened",
            payload={
                "alarm": {
                    "id": alarm.pk,
                    "kind": kind,
                    "title": alarm.title,
                    "status": alarm.status,
                    "profile": profile.slug if profile else None,
                    "request": str(access_request.pk) if access_request else None,
                    "opened_at": alarm.opened_at.isoformat(),
                    "detail": detail,
                }
            },
        )
    logger.error("SECURITY ALARM %s: %s", kind, alarm.title)
    return alarm, True


def alarm_acknowledge(
    *,
    alarm_id: int | str,
    user: User,
    otp_code: str,
    note: str,
    source: EventSource = SYSTEM_SOURCE,
) -> SecurityAlarm:
    """A person takes an alarm in hand, signed with TOTP. Alarms never close by themselves."""
    note = text_clean(
        note,
        field="note",
        max_length=ALARM_NOTE_MAX_LENGTH,
        required=True,
        message="An acknowledgement needs a note.",
    )
    may_handle = selectors.user_may_handle_alarms(user=user)
    if not may_handle:
        raise NotAllowed("only approvers and auditors can acknowledge alarms")
    with transaction.atomic():
        scope = selectors.viewer_scope(user=user)
        visible = selectors.alarms_visible(scope=scope).filter(pk=alarm_id)
        alarm = SecurityAlarm.objects.select_for_update().filter(pk__in=visible).first()
        if alarm is None:
            raise NotFound(f"no alarm {alarm_id}")
        not_allowed = rules.alarm_acknowledge_refusal(
            alarm=alarm,
            may_handle_alarms=may_handle,
            involved=selectors.alarm_involves(alarm=alarm, user_id=scope.user_id),
        )
        if not_allowed is not None:
            raise NotAllowed(not_allowed.message)
        detail = {"alarm": alarm.pk, "kind": alarm.kind, "title": alarm.title}
        refusal = signature_check(
            user=user,
            otp_code=otp_code,
            refused_code="approvals.alarm.acknowledge_refused",
            detail=detail,
            source=source,
        )
        if refusal is None:
            _acknowledgement_record(alarm, user, note, detail, source)
    refusal_raise(refusal)
    return alarm


def _acknowledgement_record(
    alarm: SecurityAlarm,
    user: User,
    note: str,
    detail: dict[str, Any],
    source: EventSource,
) -> None:
    now = timezone.now()
    SecurityAlarm.objects.filter(pk=alarm.pk).update(
        status=AlarmStatus.ACKNOWLEDGED,
        acknowledged_by=user,
        acknowledged_by_name=user.get_username(),
        acknowledged_at=now,
        note=note,
    )
    alarm.refresh_from_db()
    timeline_append(
        access_request=None,
        code="approvals.alarm.acknowledged",
        actor=user,
        detail={**detail, "note": note},
        source=source,
    )
    webhooks_enqueue(
        event="approvals.alarm.acknowledged",
        payload={
            "alarm": {
                "id": alarm.pk,
                "kind": alarm.kind,
                "title": alarm.title,
                "status": alarm.status,
                "acknowledged_by": alarm.acknowledged_by_name,
                "acknowledged_at": now.isoformat(),
                "note": note,
            }
        },
    )
