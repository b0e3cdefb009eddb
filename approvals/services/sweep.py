"""The backstop (DESIGN.md §5): whatever the fast path missed, the sweeper finishes."""

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.db.models import Q
from django.utils import timezone

from approvals.models import AccessRequest, Component, Status
from approvals.services.extension_grants import extensions_time_out
from approvals.services.grants import activation_fail, request_activate, request_revocation_drive
from approvals.services.liveness import heartbeat, watcher_staleness_check
from approvals.services.notifications import notify_revocation_overdue
from approvals.services.requests import requests_time_out
from approvals.timeline import timeline_append
from awsaccess.errors import AwsError

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class SweepReport:
    timed_out: int = 0
    revoked: int = 0
    redriven: int = 0
    failed_orphans: int = 0
    overdue_alarms: int = 0
    errors: int = 0


def grants_sweep(*, limit: int = 500) -> SweepReport:
    """Time out, revoke, re-drive and clean up; runs every few seconds from celery beat.

    Safe if two ever run at once: rows are taken with skip_locked and every step is a
    conditional transition.
    """
    heartbeat(component=Component.SWEEPER)
    now = timezone.now()
    timed_out = requests_time_out(now=now, limit=limit)
    extensions_time_out(now=now, limit=limit)
    revoked, errors = _revocations_drive(now, limit)

    stuck_approved = AccessRequest.objects.filter(
        status=Status.APPROVED, status_changed_at__lte=now - timedelta(seconds=10)
    )
    redriven = 0
    for request_id in stuck_approved.values_list("pk", flat=True)[:limit]:
        request_activate(access_request_id=request_id)
        redriven += 1

    orphaned = AccessRequest.objects.filter(
        status=Status.ACTIVATING,
        status_changed_at__lte=now - timedelta(seconds=settings.ACTIVATION_ORPHAN_SECONDS),
    ).select_related("profile")
    failed_orphans = 0
    for access_request in orphaned[:limit]:
        activation_fail(
            access_request=access_request,
            reason="activation was interrupted (worker lost); nothing left attached",
        )
        failed_orphans += 1

    watcher_staleness_check(now=now)
    return SweepReport(
        timed_out=timed_out,
        revoked=revoked,
        redriven=redriven,
        failed_orphans=failed_orphans,
        overdue_alarms=_overdue_alarms_raise(now=now),
        errors=errors,
    )


def _revocations_drive(now: datetime, limit: int) -> tuple[int, int]:
    """Revoke every grant past its deadline and finish stuck revocations → (revoked, errors)."""
    due = AccessRequest.objects.filter(
        Q(status=Status.ACTIVE, expires_at__lte=now)
        | Q(status=Status.REVOKING, status_changed_at__lte=now - timedelta(seconds=5))
    ).order_by("expires_at")
    revoked = errors = 0
    for request_id in due.values_list("pk", flat=True)[:limit]:
        try:
            revoked += request_revocation_drive(access_request_id=request_id, skip_locked=True)
        except AwsError as exc:
            errors += 1
            logger.warning("revocation of %s not confirmed yet: %s", request_id, exc)
    return revoked, errors


def _overdue_alarms_raise(*, now: datetime) -> int:
    """One alarm per grant whose revocation is late by more than the configured bound."""
    overdue = AccessRequest.objects.filter(
        status__in=[Status.ACTIVE, Status.REVOKING],
        expires_at__lte=now - timedelta(seconds=settings.REVOCATION_OVERDUE_SECONDS),
    ).exclude(events__code="approvals.revocation.overdue")
    raised = 0
    for access_request in overdue.select_related("profile"):
        assert access_request.expires_at is not None
        overdue_seconds = round((now - access_request.expires_at).total_seconds())
        timeline_append(
            access_request=access_request,
            code="approvals.revocation.overdue",
            outcome="alarm",
            detail={"overdue_seconds": overdue_seconds, "status": access_request.status},
        )
        notify_revocation_overdue(access_request=access_request, overdue_seconds=overdue_seconds)
        raised += 1
    return raised
