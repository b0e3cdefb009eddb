"""Activity: every call a session of a break-glass role made, tied to the request whose source
identity the session carries, recorded once per CloudTrail eventID, alarmed when nothing explains
it, and sealed into the request's timeline in batches (the hash of each batch is in the chain).
"""

import hashlib
import json
import re
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django.db import IntegrityError, transaction
from django.utils import timezone

from approvals.models import (
    AccessProfile,
    AccessRequest,
    ActivitySource,
    IssuedCredential,
    SessionActivity,
    Status,
)
from approvals.services import offline_kit
from approvals.services.alarms import alarm_open
from approvals.timeline import timeline_append
from approvals.watch_events import SessionCall

SEAL_CODE = "approvals.activity.sealed"
# Global services record their calls in us-east-1 whatever region the caller's session is in.
GLOBAL_SERVICES = frozenset({"iam", "organizations", "cloudfront", "route53", "support", "account"})
GLOBAL_REGION = "us-east-1"
_UUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$", re.I)
_NEVER_ACTIVE = frozenset(
    {Status.PENDING, Status.APPROVED, Status.REJECTED, Status.CANCELLED, Status.TIMED_OUT}
)


@dataclass(frozen=True)
class CallVerdict:
    access_request: AccessRequest | None
    unexplained: str  # why it is an alarm; "" when the call is explained (or only denied)
    alarm_key: str  # one alarm per session and reason, not one per call


class CallLookups:
    """What explaining a call reads from the database, read once per batch: a batch of a busy
    session is many calls naming the same request and the same issued credentials."""

    def __init__(self, profile: AccessProfile) -> None:
        self.profile = profile
        self._requests: dict[str, AccessRequest | None] = {}
        self._issued: dict[uuid.UUID, IssuedCredential | None] = {}

    def named_request(self, source_identity: str) -> AccessRequest | None:
        if not _UUID.match(source_identity):
            return None
        if source_identity not in self._requests:
            self._requests[source_identity] = AccessRequest.objects.filter(
                pk=uuid.UUID(source_identity), profile=self.profile
            ).first()
        return self._requests[source_identity]

    def issued(self, access_request: AccessRequest) -> IssuedCredential | None:
        if access_request.pk not in self._issued:
            self._issued[access_request.pk] = IssuedCredential.objects.filter(
                request=access_request
            ).first()
        return self._issued[access_request.pk]


def _grant_end(access_request: AccessRequest) -> datetime | None:
    """When AWS stopped honouring the grant: revoked, expired or failed (whichever came first)."""
    failed = access_request.status_changed_at if access_request.status == Status.FAILED else None
    ends = [
        moment
        for moment in (access_request.revoked_at, access_request.expires_at, failed)
        if moment is not None
    ]
    return min(ends) if ends else None


def _foreign_session(
    call: SessionCall, access_request: AccessRequest, lookups: CallLookups
) -> bool:
    """Made with credentials the worker was not issued for this request."""
    issued = lookups.issued(access_request)
    return bool(
        issued is not None
        and call.access_key_id
        and call.access_key_id != issued.access_key_id
        # A session an applied extension replaced with fresh credentials is still the portal's.
        and not access_request.extensions.filter(replaced_access_key_id=call.access_key_id).exists()
    )


def session_call_explain(
    *, call: SessionCall, profile: AccessProfile, lookups: CallLookups | None = None
) -> CallVerdict:
    """A call is explained by an activated request of this profile named by the session's source
    identity, made with the session the portal issued, in the profile's region, before the grant
    ended. A call AWS refused after the grant ended is evidence the revocation worked: no alarm.
    `lookups`: the batch's reads, shared between its calls."""
    lookups = lookups or CallLookups(profile)
    session = call.access_key_id or call.session_arn
    if offline_kit.is_offline_identity(call.source_identity) and call.role_arn == profile.role_arn:
        # A session of an offline kit's opening: its calls go on the opening's record (issue 18).
        # A session of another role carrying the same identity opens nothing: alarmed below.
        opening = offline_kit.offline_call_request(
            source_identity=call.source_identity, profile=profile, seen_at=call.event_time
        )
        if opening is not None:
            why = offline_kit.offline_call_unexplained(call=call, access_request=opening)
            return CallVerdict(opening, why, f"activity:offline:{session}" if why else "")
    access_request = lookups.named_request(call.source_identity)
    if call.role_arn != profile.role_arn:
        return CallVerdict(access_request, f"a session of another role ({call.role_arn})", "")
    if access_request is None:
        reason = (
            f"source identity {call.source_identity!r} names no request of {profile.slug}"
            if call.source_identity
            else "the session has no source identity: assumed outside the portal"
        )
        return CallVerdict(None, reason, f"activity:unknown:{session}")
    region_ok = call.region == profile.region or (
        call.service in GLOBAL_SERVICES and call.region == GLOBAL_REGION
    )
    if not region_ok:
        return CallVerdict(
            access_request,
            f"called in {call.region or 'an unknown region'}, not in {profile.region}",
            f"activity:region:{session}:{call.region}",
        )
    if access_request.status in _NEVER_ACTIVE or access_request.approved_at is None:
        return CallVerdict(
            access_request,
            f"the request was never activated (it is {access_request.status})",
            f"activity:inactive:{session}",
        )
    if _foreign_session(call, access_request, lookups):
        return CallVerdict(
            access_request,
            "made with a session the portal did not issue (another AssumeRole with this "
            "request's source identity)",
            f"activity:foreign-session:{session}",
        )
    end = _grant_end(access_request)
    if end is not None and call.event_time > end and not call.error_code:
        return CallVerdict(
            access_request,
            f"AWS allowed it after the grant ended at {end:%Y-%m-%d %H:%M:%S} UTC",
            f"activity:after-end:{session}",
        )
    return CallVerdict(access_request, "", "")


def session_call_record(
    *, call: SessionCall, profile: AccessProfile, source: str = ActivitySource.QUEUE
) -> SessionActivity | None:
    """Store one call → SessionActivity, or None when that eventID is already on the record.
    An unexplained call opens (or adds to) its session's alarm in the same transaction."""
    verdict = session_call_explain(call=call, profile=profile)
    with transaction.atomic():
        try:
            with transaction.atomic():
                row = _row(call, verdict, profile, source)
                row.save(force_insert=True)
        except IntegrityError:
            return None
        if verdict.unexplained:
            _alarm(call, profile, verdict)
    return row


def session_calls_record(
    *, calls: list[SessionCall], profile: AccessProfile, source: str = ActivitySource.QUEUE
) -> list[SessionActivity | None]:
    """Store a batch of calls in a few round trips (the requests they name read once, the known
    eventIDs in one query, the new rows in one INSERT) → for each call its row, or None when its
    eventID is already on the record or earlier in the batch. Alarms as session_call_record.

    All or nothing: if any row cannot be stored (a concurrent insert of the same eventID, a value
    out of a column's range), nothing is and the error is raised; the caller then stores the calls
    one by one with session_call_record, which tells the duplicate or the bad row apart."""
    lookups = CallLookups(profile)
    verdicts = [session_call_explain(call=call, profile=profile, lookups=lookups) for call in calls]
    rows: list[SessionActivity | None] = []
    with transaction.atomic():
        seen = set(
            SessionActivity.objects.filter(
                event_id__in=[call.event_id for call in calls]
            ).values_list("event_id", flat=True)
        )
        new: list[tuple[SessionCall, CallVerdict, SessionActivity]] = []
        for call, verdict in zip(calls, verdicts, strict=True):
            if call.event_id in seen:
                rows.append(None)
                continue
            seen.add(call.event_id)
            row = _row(call, verdict, profile, source)
            rows.append(row)
            new.append((call, verdict, row))
        SessionActivity.objects.bulk_create([row for _, _, row in new])
        for call, verdict, _ in new:
            if verdict.unexplained:
                _alarm(call, profile, verdict)
    return rows


def _row(
    call: SessionCall, verdict: CallVerdict, profile: AccessProfile, source: str
) -> SessionActivity:
    return SessionActivity(
        event_id=call.event_id,
        profile=profile,
        request=verdict.access_request,
        event_time=call.event_time,
        service=call.service,
        action=call.action,
        region=call.region,
        source_ip=call.source_ip,
        user_agent=call.user_agent,
        session_arn=call.session_arn,
        access_key_id=call.access_key_id,
        source_identity=call.source_identity,
        request_parameters=call.request_parameters,
        resources=call.resources,
        error_code=call.error_code,
        error_message=call.error_message,
        read_only=call.read_only,
        management_event=call.management_event,
        unexplained=verdict.unexplained,
        source=source,
        received_at=timezone.now(),
    )


def _alarm(call: SessionCall, profile: AccessProfile, verdict: CallVerdict) -> None:
    role = call.role_arn.rsplit("/", 1)[-1]
    alarm_open(
        kind="unexplained_activity",
        title=f"Unexplained call by a session of {role}: {call.summary}; {verdict.unexplained}",
        dedup_key=verdict.alarm_key or f"activity:{call.event_id}",
        detail={
            "message": call.summary,
            "event_id": call.event_id,
            "event_time": call.event_time.isoformat(),
            "action": f"{call.service}:{call.action}",
            "session": call.session_arn,
            "access_key_id": call.access_key_id,
            "source_identity": call.source_identity,
            "source_ip": call.source_ip,
            "user_agent": call.user_agent,
            "region": call.region,
            "error_code": call.error_code,
            "unexplained": verdict.unexplained,
        },
        profile=profile,
        access_request=verdict.access_request,
    )


# --- Seals ------------------------------------------------------------------------------------


def activity_canonical(row: SessionActivity) -> dict[str, Any]:
    """What a seal covers of one row: everything CloudTrail said and what we concluded."""
    return {
        "event_id": row.event_id,
        "event_time": row.event_time.isoformat(),
        "service": row.service,
        "action": row.action,
        "region": row.region,
        "source_ip": row.source_ip,
        "user_agent": row.user_agent,
        "session_arn": row.session_arn,
        "access_key_id": row.access_key_id,
        "source_identity": row.source_identity,
        "request_parameters": row.request_parameters,
        "resources": row.resources,
        "error_code": row.error_code,
        "error_message": row.error_message,
        "read_only": row.read_only,
        "management_event": row.management_event,
        "unexplained": row.unexplained,
    }


def activity_digest(rows: Iterable[SessionActivity]) -> str:
    """SHA-256 of the batch's canonical JSON (rows in event time, then eventID, order)."""
    ordered = sorted(rows, key=lambda row: (row.event_time, row.event_id))
    text = json.dumps(
        [activity_canonical(row) for row in ordered],
        sort_keys=True,
        separators=(",", ":"),
        ensure_ascii=False,
    )
    return hashlib.sha256(text.encode()).hexdigest()


def activity_seal(*, access_request_id: uuid.UUID) -> int:
    """Seal the request's unsealed activity rows with one timeline event → rows sealed."""
    with transaction.atomic():
        # One sealer per request at a time (the watch and the backstop may both be recording).
        access_request = AccessRequest.objects.select_for_update().get(pk=access_request_id)
        rows = list(
            SessionActivity.objects.select_for_update()
            .filter(request=access_request, seal__isnull=True)
            .order_by("event_time", "event_id")
        )
        if not rows:
            return 0
        event = timeline_append(
            access_request=access_request,
            code=SEAL_CODE,
            actor_name="watcher",
            outcome="alarm" if any(row.unexplained for row in rows) else "success",
            detail={
                "message": f"{len(rows)} call(s) of the session recorded",
                "count": len(rows),
                "first_event_time": rows[0].event_time.isoformat(),
                "last_event_time": rows[-1].event_time.isoformat(),
                "sha256": activity_digest(rows),
                "mutating": sum(row.mutating for row in rows),
                "errors": sum(bool(row.error_code) for row in rows),
            },
        )
        SessionActivity.objects.filter(pk__in=[row.pk for row in rows]).update(seal=event)
    return len(rows)


def activity_seal_verify(access_request: AccessRequest) -> list[str]:
    """Each seal of the request whose rows no longer hash to what it sealed → problems."""
    problems = []
    sealed: dict[int, list[SessionActivity]] = {}
    for row in SessionActivity.objects.filter(request=access_request, seal__isnull=False):
        if row.seal_id is not None:
            sealed.setdefault(row.seal_id, []).append(row)
    for seal in access_request.events.filter(code=SEAL_CODE).order_by("sequence"):
        rows = sealed.pop(seal.pk, [])
        if len(rows) != seal.detail.get("count") or activity_digest(rows) != seal.detail.get(
            "sha256"
        ):
            problems.append(f"the activity sealed by event {seal.sequence} was changed")
    return problems
