"""The activity backstop: EventBridge delivers CloudTrail events on a best-effort basis, so every
period the worker reads CloudTrail's own event history (LookupEvents) of each watched profile's
region and of us-east-1 (where IAM records its calls) from where the last look ended, and
records what the watch queue missed through the watcher's own record path. The CloudTrail
eventID keeps each call on the record once, whichever path saw it first.

One cursor per profile and region: `complete_until` is the time up to which the history has been
read in full. A window is read newest first, resuming from its page token on the next run; the
cursor moves only once the whole window was read. A run reads at most MAX_PAGES pages in all,
the least recently read cursors first, so it stays short: a long run would hold a worker slot.
"""

import logging
import uuid
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.core.cache import cache
from django.db import DataError
from django.utils import timezone

from approvals.models import (
    AccessProfile,
    ActivityLookupCursor,
    ActivitySource,
    ObservedUse,
    PoisonMessage,
    SessionActivity,
)
from approvals.models.activity import history_regions
from approvals.services.activity import activity_seal, session_call_record
from approvals.services.tampering import BrokerRoutine, Tampering, tampering_record
from approvals.services.watch import (
    observed_use_record,
    poison_message_record,
    role_use_explain,
    watch_record_read,
)
from approvals.watch_events import PoisonEvent, SessionCall, record_load, session_issuer_arn
from awsaccess import cloudtrail_lookup, runtime
from awsaccess.cloudtrail_lookup import HistoryEvent
from awsaccess.errors import AwsError

logger = logging.getLogger(__name__)

# The most one window spans: catching up after an outage moves the cursor in steps.
WINDOW = timedelta(minutes=10)
# CloudTrail's eventTime has whole seconds: each window starts a little before the last one ended.
OVERLAP = timedelta(seconds=2)
_LOCK = "breakglass:activity-backstop"


@dataclass
class BackstopReport:
    skipped: bool = False  # another run was going on
    regions: int = 0
    errors: int = 0
    looked_up: int = 0  # history events read
    recorded: int = 0  # calls and AssumeRoles of the role the watch queue had missed
    alarms: int = 0
    poison: int = 0


def activity_backstop() -> BackstopReport:
    """Read every watched profile's history regions once (one run at a time across workers)."""
    pages = settings.ACTIVITY_BACKSTOP_MAX_PAGES
    lock_seconds = pages * (settings.AWS_READ_TIMEOUT_SECONDS * 3 + 1) * 2 + 60
    if not cache.add(_LOCK, "held", timeout=lock_seconds):
        return BackstopReport(skipped=True)
    try:
        report = BackstopReport()
        budget = pages
        for cursor in _cursors_due():
            if budget <= 0:
                break
            report.regions += 1
            budget -= _region_read(cursor, report, max_pages=budget)
        return report
    finally:
        cache.delete(_LOCK)


def _cursors_due() -> list[ActivityLookupCursor]:
    """Every watched profile's cursor per history region, the least recently read first."""
    cursors = [
        _cursor(profile, region)
        for profile in _watched_profiles()
        for region in history_regions(profile)
    ]
    never = timezone.now() - timedelta(days=365)
    return sorted(cursors, key=lambda cursor: cursor.looked_at or never)


def _watched_profiles() -> list[AccessProfile]:
    """One profile per role and region, the same one the watcher reads the role's queue for."""
    return list({(p.region, p.role_arn): p for p in AccessProfile.objects.order_by("pk")}.values())


def _cursor(profile: AccessProfile, region: str) -> ActivityLookupCursor:
    start = timezone.now() - timedelta(
        seconds=settings.ACTIVITY_BACKSTOP_LOOKBACK_SECONDS
        + settings.ACTIVITY_BACKSTOP_SETTLE_SECONDS
    )
    cursor, _ = ActivityLookupCursor.objects.get_or_create(
        profile=profile, region=region, defaults={"covered_from": start, "complete_until": start}
    )
    return cursor


def _region_read(cursor: ActivityLookupCursor, report: BackstopReport, *, max_pages: int) -> int:
    """Read on in the cursor's window → the LookupEvents calls made."""
    profile, region = cursor.profile, cursor.region
    now = timezone.now()
    cursor.looked_at = now
    if cursor.window_end is None:
        horizon = now - timedelta(seconds=settings.ACTIVITY_BACKSTOP_SETTLE_SECONDS)
        if horizon <= cursor.complete_until:
            cursor.save(update_fields=["looked_at"])
            return 0
        cursor.window_end = min(horizon, cursor.complete_until + WINDOW)
        cursor.next_token = ""
    try:
        pages = cloudtrail_lookup.history_read(
            runtime.broker_connection(),
            region=region,
            start=cursor.complete_until - OVERLAP,
            end=cursor.window_end,
            next_token=cursor.next_token or None,
            max_pages=max_pages,
            pace_seconds=settings.ACTIVITY_BACKSTOP_PACE_MS / 1000,
        )
    except AwsError as exc:
        if exc.code == "InvalidNextTokenException":
            cursor.next_token = ""  # read the window again from its newest event
        cursor.last_error = str(exc)[:300]
        cursor.save()
        report.errors += 1
        logger.warning("activity backstop: %s history unreadable: %s", region, exc)
        return 1
    _events_record(profile, region, pages.events, report)
    if pages.next_token is None:
        cursor.complete_until, cursor.window_end, cursor.next_token = cursor.window_end, None, ""
    else:
        cursor.next_token = pages.next_token
    cursor.last_error = ""
    cursor.save()
    return pages.pages


def _known_event_ids(event_ids: list[str]) -> set[str]:
    """The events already on the record (received from the queue, or set aside as poison)."""
    return {
        *SessionActivity.objects.filter(event_id__in=event_ids).values_list("event_id", flat=True),
        *ObservedUse.objects.filter(event_id__in=event_ids).values_list("event_id", flat=True),
        *PoisonMessage.objects.filter(message_id__in=event_ids).values_list(
            "message_id", flat=True
        ),
    }


def _concerns_role(record: dict[str, Any], role_arn: str) -> bool:
    """A call by a session of the role, or an AssumeRole of it: what the watch queue carries."""
    if session_issuer_arn(record) == role_arn:
        return True
    parameters = record.get("requestParameters")
    return (
        record.get("eventName") == "AssumeRole"
        and isinstance(parameters, dict)
        and parameters.get("roleArn") == role_arn
    )


def _events_record(
    profile: AccessProfile, region: str, events: list[HistoryEvent], report: BackstopReport
) -> None:
    report.looked_up += len(events)
    known = _known_event_ids([event.event_id for event in events])
    touched: set[uuid.UUID] = set()
    for event in events:
        if event.event_id in known:
            continue
        try:
            if not _concerns_role(record_load(event.record_text)[1], profile.role_arn):
                continue
            request_id = _event_record(event, profile, report)
        except (PoisonEvent, ValueError, TypeError, OverflowError, DataError) as exc:
            poison_message_record(
                queue_url=f"cloudtrail:LookupEvents:{region}",
                message_id=event.event_id,
                body=event.record_text,
                error=str(exc) if isinstance(exc, PoisonEvent) else f"not storable: {exc}"[:500],
                profile=profile,
            )
            report.poison += 1
            continue
        if request_id is not None:
            touched.add(request_id)
    # One seal per request and run, as the watcher seals one per batch.
    for access_request_id in touched:
        activity_seal(access_request_id=access_request_id)


def _call_record(
    call: SessionCall, profile: AccessProfile, report: BackstopReport
) -> uuid.UUID | None:
    row = session_call_record(call=call, profile=profile, source=ActivitySource.LOOKUP)
    if row is None:
        return None
    report.recorded += 1
    report.alarms += bool(row.unexplained)
    return row.request_id


def _event_record(
    event: HistoryEvent, profile: AccessProfile, report: BackstopReport
) -> uuid.UUID | None:
    """Record one event the queue missed → the request whose activity it added to, if any."""
    item = watch_record_read(event.record_text, profile)
    if isinstance(item, BrokerRoutine):
        return None  # the broker's own write: nothing missed
    if isinstance(item, Tampering):
        # A session's persistence move: its call joins the activity record (as found here),
        # and the tampering alarm is raised once per eventID, as the watcher does.
        request_id = _call_record(item.session_call, profile, report) if item.session_call else None
        report.alarms += tampering_record(tampering=item, profile=profile).alarmed
        return request_id
    if isinstance(item, SessionCall):
        return _call_record(item, profile, report)
    explanation = role_use_explain(use=item, profile=profile)
    observed = observed_use_record(
        use=item,
        profile=profile,
        access_request=explanation.access_request,
        unexplained=explanation.unexplained,
    )
    if observed is not None:
        report.recorded += 1
        report.alarms += bool(explanation.unexplained)
    return None
