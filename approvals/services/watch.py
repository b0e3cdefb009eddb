"""Use detection: every AssumeRole of a break-glass role, read from the profile's watch queue
(CloudTrail → EventBridge → SQS), tied to the request that explains it or raised as an alarm.

A message is deleted only once what it says is stored (an observed use, an alarm, or the message
itself set aside as poison), so a crash anywhere means redelivery, never loss; the CloudTrail
eventID makes redelivery harmless.
"""

import logging
import math
import queue
import re
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.core.cache import cache
from django.db import DataError, IntegrityError

from approvals.models import (
    AccessProfile,
    AccessRequest,
    Component,
    IssuedCredential,
    Status,
)
from approvals.services import offline_kit
from approvals.services.activity import (
    activity_seal,
    session_call_record,
    session_calls_record,
)
from approvals.services.liveness import heartbeat
from approvals.services.tampering import (
    BrokerRoutine,
    Tampering,
    tampering_from,
    tampering_record,
)
from approvals.services.watch_records import observed_use_record, poison_message_record
from approvals.watch_events import (
    PoisonEvent,
    RoleUse,
    SessionCall,
    aws_service_event_check,
    record_load,
    role_use_from,
    session_call_from,
    session_issuer_arn,
)
from awsaccess import runtime, watch_queue
from awsaccess.errors import AwsError
from awsaccess.types import AwsTarget

logger = logging.getLogger(__name__)

# CloudTrail's eventTime has whole seconds, so a use right after the approval can read as a
# moment before it.
APPROVAL_CLOCK_SKEW = timedelta(seconds=2)
_UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}", re.I)
_EXPLAINING_STATUSES = frozenset(
    {Status.ACTIVATING, Status.ACTIVE, Status.REVOKING, Status.REVOKED, Status.FAILED}
)


@dataclass(frozen=True)
class Explanation:
    access_request: AccessRequest | None  # the request the use names, if any
    unexplained: str  # why no approved, active request explains it ("" when one does)


def _named_request_id(use: RoleUse) -> str | None:
    for text in (use.source_identity, use.session_name):
        match = _UUID.search(text or "")
        if match:
            return match.group(0).lower()
    return None


def _grant_ended_at(access_request: AccessRequest) -> datetime | None:
    """When the grant ended (None: it has not): the earliest of its deadline, the revocation asked
    for, the revocation done and, for a failed request, the failure."""
    ends = [
        moment
        for moment in (
            access_request.expires_at,
            access_request.revoke_requested_at,
            access_request.revoked_at,
            access_request.status_changed_at if access_request.status == Status.FAILED else None,
        )
        if moment is not None
    ]
    return min(ends) if ends else None


def _is_second_session(use: RoleUse, access_request: AccessRequest) -> bool:
    """Whether someone holding the principal's keys copied a live request's identity: the session's
    credentials are not the ones the worker was issued."""
    issued = IssuedCredential.objects.filter(request=access_request).first()
    return bool(
        issued is not None
        and use.access_key_id
        and use.access_key_id != issued.access_key_id
        # A session an applied extension replaced with fresh credentials is still the portal's.
        and not access_request.extensions.filter(replaced_access_key_id=use.access_key_id).exists()
    )


def role_use_explain(*, use: RoleUse, profile: AccessProfile) -> Explanation:
    """Explained only by a request of this profile, named by the session's source identity,
    assumed by the profile's principal, while the request was activating or active."""
    request_id = _named_request_id(use)
    access_request = (
        AccessRequest.objects.filter(pk=uuid.UUID(request_id), profile=profile).first()
        if request_id
        else None
    )
    if use.role_arn != profile.role_arn:
        return Explanation(access_request, f"the role is not {profile.slug}'s role")
    if access_request is None:
        if not use.source_identity and not request_id:
            return Explanation(None, "no source identity: assumed outside the portal")
        return Explanation(None, f"the session names no request of profile {profile.slug}")
    if use.source_identity != access_request.source_identity:
        return Explanation(
            access_request,
            f"source identity {use.source_identity or '(none)'!r} is not the request's",
        )
    if use.principal_arn != profile.principal_arn:
        return Explanation(
            access_request,
            f"assumed by {use.principal_arn or 'an unknown principal'}, not the profile's "
            f"break-glass principal",
        )
    if use.region and use.region != profile.region:
        return Explanation(access_request, f"assumed in {use.region}, not in {profile.region}")
    if access_request.status not in _EXPLAINING_STATUSES or access_request.approved_at is None:
        return Explanation(
            access_request, f"the request was never activated (it is {access_request.status})"
        )
    if use.event_time < access_request.approved_at - APPROVAL_CLOCK_SKEW:
        return Explanation(access_request, "assumed before the request was approved")
    ended_at = _grant_ended_at(access_request)
    if ended_at is not None and use.event_time > ended_at:
        return Explanation(
            access_request, f"assumed after the grant ended at {ended_at:%Y-%m-%d %H:%M:%S} UTC"
        )
    if _is_second_session(use, access_request):
        return Explanation(
            access_request,
            "a second session the portal did not open (its credentials are not the ones the "
            "worker was issued)",
        )
    return Explanation(access_request, "")


# --- The poll ---------------------------------------------------------------------------------


@dataclass
class PollReport:
    queues: int = 0
    queue_errors: int = 0
    skipped: bool = False  # another poll was running
    received: int = 0
    recorded: int = 0
    duplicates: int = 0
    alarms: int = 0
    poison: int = 0
    activity: int = 0  # calls of the role's sessions recorded
    routine: int = 0  # the broker's own writes to the machinery, let go on purpose


_DONE = object()
_POLL_LOCK = "breakglass:watch-poll"
# Receivers per queue: each waits on SQS while the others' batches are stored, so a backlog
# drains at the rate we store, not at one receive after another.
RECEIVERS_PER_QUEUE = 2
# A batch is what waited in the inbox when the watcher took it up (one receive when the queue
# is quiet, several under a backlog), bounded so a seal never covers more than this many calls.
MAX_BATCH_MESSAGES = 100
# Batches received but not yet stored; receivers wait beyond it, so nothing outlives its
# visibility timeout waiting here.
_INBOX_BATCHES = 4 * RECEIVERS_PER_QUEUE


@dataclass(frozen=True)
class _Unreadable:
    queue: tuple[str, str]  # (region, role ARN): the queue that could not be read
    error: AwsError


def _receive(profile: AccessProfile, target: AwsTarget, window: float, inbox: queue.Queue) -> None:
    """Long-poll one queue until `window` seconds have passed, handing each batch over as it
    arrives; puts (profile, queue_url, messages) batches, an _Unreadable, and finally _DONE.

    Runs on a pool thread, so it never touches the database: a query here would open a
    connection per thread that nothing closes."""
    try:
        connection = runtime.broker_connection()
        queue_url = watch_queue.watch_queue_url(connection, target)
        ends = time.monotonic() + window
        while True:
            remaining = ends - time.monotonic()
            messages = watch_queue.messages_receive(
                connection,
                region=profile.region,
                queue_url=queue_url,
                # SQS waits in whole seconds; 0 is a plain (short) receive.
                wait_seconds=max(0, math.ceil(remaining)) if remaining > 0 else 0,
                visibility_timeout=settings.WATCH_VISIBILITY_TIMEOUT_SECONDS,
            )
            if messages and not _hand_over(inbox, (profile, queue_url, messages)):
                return
            if time.monotonic() >= ends - 0.2:
                break
    except AwsError as exc:
        _hand_over(inbox, _Unreadable((profile.region, profile.role_arn), exc))
    finally:
        _hand_over(inbox, _DONE)


def _hand_over(inbox: queue.Queue, item: object) -> bool:
    """Put `item` in the bounded inbox → False if nobody took anything for as long as a message
    stays invisible (the poll failed): the batch is dropped and SQS hands it out again."""
    try:
        inbox.put(item, timeout=settings.WATCH_VISIBILITY_TIMEOUT_SECONDS)
    except queue.Full:
        return False
    return True


def watch_poll(*, wait_seconds: int | None = None) -> PollReport:
    """Long-poll every profile's watch queue at once for `wait_seconds`; each batch is stored
    (and then deleted) as soon as it arrives.

    The watcher's heartbeat is written only when every queue was read: a queue we cannot read
    is a blind spot, and a stale heartbeat is what raises the watcher alarm.
    """
    window = settings.WATCH_WAIT_SECONDS if wait_seconds is None else wait_seconds
    lock_seconds = _lock_seconds(window)
    # One poll at a time across all workers: overlapping polls would fill every worker slot and
    # make activations and revocations queue behind them. The shared cache makes it cross-process.
    if not cache.add(_POLL_LOCK, "held", timeout=lock_seconds):
        return PollReport(skipped=True)
    try:
        return _watch_poll_locked(window)
    finally:
        cache.delete(_POLL_LOCK)


def _watch_poll_locked(window: int) -> PollReport:
    report = PollReport()
    # One queue per role: profiles sharing a role share its watch.
    profiles = {(p.region, p.role_arn): p for p in AccessProfile.objects.order_by("pk")}
    report.queues = len(profiles)
    if not profiles:
        heartbeat(component=Component.WATCHER)
        return report
    receivers = len(profiles) * RECEIVERS_PER_QUEUE
    inbox: queue.Queue = queue.Queue(maxsize=_INBOX_BATCHES * len(profiles))
    unreadable: set[tuple[str, str]] = set()
    # Threads only talk to SQS (receives, and deletes of what is stored); every database write
    # stays on this thread. Every queue at once, so one poll lasts one window whatever the
    # number of profiles.
    with (
        ThreadPoolExecutor(max_workers=min(receivers, 64)) as pool,
        ThreadPoolExecutor(max_workers=2) as deleter,
    ):
        for profile in profiles.values():
            for _ in range(RECEIVERS_PER_QUEUE):
                pool.submit(_receive, profile, profile.aws_target(), window, inbox)
        while receivers:
            for item in _inbox_take(inbox, timeout=_lock_seconds(window)):
                if item is _DONE:
                    receivers -= 1
                elif isinstance(item, _Unreadable):
                    unreadable.add(item.queue)
                    logger.warning("watch queue unreadable: %s", item.error)
                else:
                    profile, queue_url, messages = item
                    _batch_handle(profile, queue_url, messages, report)
                    deleter.submit(_batch_delete, profile, queue_url, messages)
    report.queue_errors = len(unreadable)
    if not report.queue_errors:
        heartbeat(component=Component.WATCHER)
    return report


def _lock_seconds(window: int) -> int:
    """The longest one poll may hold the lock (and wait for any one receive)."""
    return window + settings.AWS_READ_TIMEOUT_SECONDS * 3 + 30


def _inbox_take(inbox: queue.Queue, timeout: float) -> list:
    """The next item (waiting for it), with what else already waits: batches of one queue
    merged up to MAX_BATCH_MESSAGES, so a backlog is stored in fewer, larger batches."""
    items = [inbox.get(timeout=timeout)]
    while True:
        try:
            items.append(inbox.get_nowait())
        except queue.Empty:
            break
    merged: list = []
    open_batch: dict[str, tuple] = {}  # queue URL → its last batch in `merged`
    for item in items:
        if not isinstance(item, tuple):
            merged.append(item)
            continue
        profile, queue_url, messages = item
        last = open_batch.get(queue_url)
        if last is not None and len(last[2]) + len(messages) <= MAX_BATCH_MESSAGES:
            last[2].extend(messages)
            continue
        batch = (profile, queue_url, list(messages))
        open_batch[queue_url] = batch
        merged.append(batch)
    return merged


def _batch_delete(profile: AccessProfile, queue_url: str, messages: list) -> None:
    """Delete a stored batch (on a pool thread: SQS only). A message left behind comes back after
    its visibility timeout and is recognised by its eventID / message id."""
    try:
        refused = watch_queue.messages_delete(
            runtime.broker_connection(),
            region=profile.region,
            queue_url=queue_url,
            receipt_handles=[message["receipt_handle"] for message in messages],
        )
    except AwsError as exc:
        logger.warning("%d watch messages not deleted yet: %s", len(messages), exc)
        return
    for index, why in refused.items():
        logger.warning("watch message %s not deleted yet: %s", messages[index]["message_id"], why)


def _batch_handle(
    profile: AccessProfile, queue_url: str, messages: list, report: PollReport
) -> None:
    """Store one batch: the session calls together, anything else one by one, then one seal per
    request whose activity grew (not one timeline event per call)."""
    touched: set[uuid.UUID] = set()
    calls: list[tuple[dict, SessionCall]] = []
    for message in messages:
        report.received += 1
        try:
            record = watch_record_read(message["body"], profile, from_queue=True)
        except PoisonEvent as exc:
            _poison(profile, queue_url, message, str(exc), report)
            continue
        if isinstance(record, SessionCall):
            calls.append((message, record))
            continue
        request_id = _message_store(profile, queue_url, message, record, report)
        if request_id is not None:
            touched.add(request_id)
    touched |= _session_calls_store(profile, queue_url, calls, report)
    for access_request_id in touched:
        activity_seal(access_request_id=access_request_id)


def watch_record_read(
    body: str, profile: AccessProfile, *, from_queue: bool = False
) -> RoleUse | SessionCall | Tampering | BrokerRoutine:
    """Decide what a watch message is — the one dispatch point for every kind of record the
    profile's queue carries: a write to the watch's machinery (tampering, issue 12, or the
    broker's routine write the changes rule routes too), a call by a session of the role
    (activity), else an AssumeRole of the role. Anything unreadable, of any shape, is a
    PoisonEvent (never another exception); so is a queue message no AWS service emitted."""
    try:
        message, record = record_load(body)
        if from_queue:
            aws_service_event_check(message)
        machinery_write = tampering_from(message, record, profile)
        if machinery_write is not None:
            return machinery_write
        if session_issuer_arn(record) == profile.role_arn:
            return session_call_from(message, record)
        return role_use_from(message, record)
    except PoisonEvent:
        raise
    except Exception as exc:  # a malformed record must never stop the poll (issue 15)
        raise PoisonEvent(f"unreadable record ({type(exc).__name__})") from None


def _session_calls_store(
    profile: AccessProfile,
    queue_url: str,
    calls: list[tuple[dict, SessionCall]],
    report: PollReport,
) -> set[uuid.UUID]:
    """Store a batch's session calls together → the requests whose activity they added to."""
    if not calls:
        return set()
    try:
        rows = session_calls_record(calls=[call for _, call in calls], profile=profile)
    except (ValueError, TypeError, OverflowError, DataError, IntegrityError):
        # One of them cannot be stored as it is (or was stored meanwhile by the backstop):
        # each on its own, so only a bad one is set aside and a duplicate is told apart.
        touched = set()
        for message, call in calls:
            request_id = _message_store(profile, queue_url, message, call, report)
            if request_id is not None:
                touched.add(request_id)
        return touched
    touched = set()
    for row in rows:
        if row is None:
            report.duplicates += 1
            continue
        report.recorded += 1
        report.activity += 1
        report.alarms += bool(row.unexplained)
        if row.request_id is not None:
            touched.add(row.request_id)
    return touched


def _message_store(
    profile: AccessProfile,
    queue_url: str,
    message: dict,
    record: RoleUse | SessionCall | Tampering | BrokerRoutine,
    report: PollReport,
) -> uuid.UUID | None:
    """Store what one message says → the request whose activity it added to, if any. Deleting
    it is the caller's, once this returned."""
    try:
        if isinstance(record, Tampering):
            outcome = tampering_record(tampering=record, profile=profile)
            report.alarms += outcome.alarmed
            return outcome.request_id
        if isinstance(record, BrokerRoutine):
            report.routine += 1
        elif isinstance(record, SessionCall):
            return _session_call_handle(record, profile, report)
        else:
            _role_use_handle(record, profile, report)
    except (ValueError, TypeError, OverflowError, DataError) as exc:
        # A record that parses but cannot be stored (a value out of any column's range) is as
        # unreadable as one that does not parse: set aside, and the poll goes on.
        _poison(profile, queue_url, message, f"not storable: {exc}"[:500], report)
    return None


def _poison(
    profile: AccessProfile, queue_url: str, message: dict, error: str, report: PollReport
) -> None:
    poison_message_record(
        queue_url=queue_url,
        message_id=message["message_id"],
        body=message["body"],
        error=error,
        profile=profile,
    )
    report.poison += 1


def _role_use_handle(use: RoleUse, profile: AccessProfile, report: PollReport) -> None:
    if offline_kit.is_offline_identity(use.source_identity):
        # An offline kit's opening: an incident record of its own, alarmed once (issue 18).
        explanation = Explanation(*offline_kit.offline_use_explain(use=use, profile=profile))
    else:
        explanation = role_use_explain(use=use, profile=profile)
    observed = observed_use_record(
        use=use,
        profile=profile,
        access_request=explanation.access_request,
        unexplained=explanation.unexplained,
    )
    if observed is None:
        report.duplicates += 1
    else:
        report.recorded += 1
        report.alarms += bool(explanation.unexplained)


def _session_call_handle(
    call: SessionCall, profile: AccessProfile, report: PollReport
) -> uuid.UUID | None:
    row = session_call_record(call=call, profile=profile)
    if row is None:
        report.duplicates += 1
        return None
    report.recorded += 1
    report.activity += 1
    report.alarms += bool(row.unexplained)
    return row.request_id
