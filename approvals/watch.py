"""Use detection: every AssumeRole of a break-glass role, read from the profile's watch queue
(CloudTrail → EventBridge → SQS), tied to the request that explains it or raised as an alarm.

A message is deleted only once what it says is stored (an observed use, an alarm, or the message
itself set aside as poison), so a crash anywhere means redelivery, never loss; the CloudTrail
eventID makes redelivery harmless.
"""

import ipaddress
import json
import logging
import math
import queue
import re
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from django.conf import settings
from django.core.cache import cache

from approvals import services
from approvals.models import AccessProfile, AccessRequest, Status
from awsaccess import runtime, watch_queue
from awsaccess.errors import AwsError

logger = logging.getLogger(__name__)

# CloudTrail's eventTime has whole seconds, so a use right after the approval can read as a
# moment before it.
APPROVAL_CLOCK_SKEW = timedelta(seconds=2)
_UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}", re.I)
_EXPLAINING_STATUSES = frozenset(
    {Status.ACTIVATING, Status.ACTIVE, Status.REVOKING, Status.REVOKED, Status.FAILED}
)
SCRUBBED = "[scrubbed]"


class PoisonEvent(ValueError):
    """A message that is not a CloudTrail AssumeRole event we can read."""


@dataclass(frozen=True)
class RoleUse:
    """One AssumeRole call as CloudTrail recorded it (secrets already removed from `raw`)."""

    event_id: str
    event_time: datetime
    role_arn: str
    session_name: str
    source_identity: str
    principal_arn: str
    principal_type: str
    source_ip: str
    user_agent: str
    region: str
    access_key_id: str
    credentials_expiration: str
    error_code: str
    raw: dict

    @property
    def ip(self) -> str | None:
        """The source address if it is an IP (CloudTrail also writes service names there)."""
        try:
            return str(ipaddress.ip_address(self.source_ip))
        except ValueError:
            return None

    @property
    def summary(self) -> str:
        verb = "role assumed" if not self.error_code else f"AssumeRole refused ({self.error_code})"
        return f"{verb} from IP {self.source_ip or 'unknown'} by {self.principal_arn or 'unknown'}"


def _text(value, limit: int) -> str:
    return value[:limit] if isinstance(value, str) else ""


def _parse_time(value) -> datetime:
    if not isinstance(value, str):
        raise PoisonEvent("eventTime is missing")
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise PoisonEvent(f"eventTime {value[:40]!r} is not an ISO 8601 time") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment


def _principal(identity: dict) -> tuple[str, str]:
    """(principal ARN as IAM names it, identity type): for an assumed-role caller, the role."""
    kind = _text(identity.get("type"), 40)
    if kind == "AssumedRole":
        issuer = (identity.get("sessionContext") or {}).get("sessionIssuer") or {}
        return _text(issuer.get("arn"), 600) or _text(identity.get("arn"), 600), kind
    return _text(identity.get("arn"), 600), kind


def _scrub(message: dict) -> dict:
    """CloudTrail logs the issued session token; it must not be stored with the event."""
    clean = json.loads(json.dumps(message))
    record = clean.get("detail") if isinstance(clean.get("detail"), dict) else clean
    credentials = (record.get("responseElements") or {}).get("credentials")
    if isinstance(credentials, dict) and "sessionToken" in credentials:
        credentials["sessionToken"] = SCRUBBED
    return clean


def role_use_parse(body: str) -> RoleUse:
    """An EventBridge envelope (or a bare CloudTrail record) → RoleUse; PoisonEvent otherwise."""
    try:
        message = json.loads(body)
    except (TypeError, ValueError):
        raise PoisonEvent("the message is not JSON") from None
    if not isinstance(message, dict):
        raise PoisonEvent("the message is not a JSON object")
    record = message.get("detail") if "detail" in message else message
    if not isinstance(record, dict):
        raise PoisonEvent("the event has no CloudTrail detail")
    if record.get("eventName") != "AssumeRole":
        raise PoisonEvent(f"eventName is {str(record.get('eventName'))[:40]!r}, not AssumeRole")
    event_id = record.get("eventID")
    if not isinstance(event_id, str) or not 1 <= len(event_id) <= 100:
        raise PoisonEvent("eventID is missing")
    parameters = record.get("requestParameters")
    if not isinstance(parameters, dict) or not isinstance(parameters.get("roleArn"), str):
        raise PoisonEvent("requestParameters.roleArn is missing")
    identity = record.get("userIdentity") if isinstance(record.get("userIdentity"), dict) else {}
    principal_arn, principal_type = _principal(identity)
    response = record.get("responseElements")
    credentials = (response or {}).get("credentials") if isinstance(response, dict) else None
    credentials = credentials if isinstance(credentials, dict) else {}
    return RoleUse(
        event_id=event_id,
        event_time=_parse_time(record.get("eventTime")),
        role_arn=parameters["roleArn"][:600],
        session_name=_text(parameters.get("roleSessionName"), 64),
        source_identity=_text(parameters.get("sourceIdentity"), 64),
        principal_arn=principal_arn,
        principal_type=principal_type,
        source_ip=_text(record.get("sourceIPAddress"), 64),
        user_agent=_text(record.get("userAgent"), 300),
        region=_text(record.get("awsRegion"), 32),
        access_key_id=_text(credentials.get("accessKeyId"), 128),
        credentials_expiration=_text(credentials.get("expiration"), 64),
        error_code=_text(record.get("errorCode"), 100),
        raw=_scrub(message),
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
    if ends and use.event_time > min(ends):
        return Explanation(
            access_request, f"assumed after the grant ended at {min(ends):%Y-%m-%d %H:%M:%S} UTC"
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


_DONE = object()
_POLL_LOCK = "breakglass:watch-poll"


def _receive(profile: AccessProfile, window: float, inbox: queue.Queue) -> None:
    """Long-poll one queue until `window` seconds have passed, handing each batch over as it
    arrives; puts (profile, queue_url, messages) batches, an AwsError, and finally _DONE."""
    try:
        connection = runtime.broker_connection()
        queue_url = watch_queue.watch_queue_url(connection, profile.aws_target())
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
            if messages:
                inbox.put((profile, queue_url, messages))
            if time.monotonic() >= ends - 0.2:
                break
    except AwsError as exc:
        inbox.put(exc)
    finally:
        inbox.put(_DONE)


def watch_poll(*, wait_seconds: int | None = None) -> PollReport:
    """Long-poll every profile's watch queue at once for `wait_seconds`; each message is stored
    (and then deleted) as soon as it arrives.

    The watcher's heartbeat is written only when every queue was read: a queue we cannot read
    is a blind spot, and a stale heartbeat is what raises the watcher alarm.
    """
    window = settings.WATCH_WAIT_SECONDS if wait_seconds is None else wait_seconds
    lock_seconds = window + settings.AWS_READ_TIMEOUT_SECONDS * 3 + 30
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
        services.heartbeat(component=services.WATCHER_COMPONENT)
        return report
    inbox: queue.Queue = queue.Queue()
    # Threads only talk to SQS; every database write stays on this thread.
    # Every queue at once, so one poll lasts one window whatever the number of profiles.
    with ThreadPoolExecutor(max_workers=min(len(profiles), 64)) as pool:
        for profile in profiles.values():
            pool.submit(_receive, profile, window, inbox)
        running = len(profiles)
        while running:
            item = inbox.get(timeout=window + settings.AWS_READ_TIMEOUT_SECONDS * 3 + 30)
            if item is _DONE:
                running -= 1
            elif isinstance(item, AwsError):
                report.queue_errors += 1
                logger.warning("watch queue unreadable: %s", item)
            else:
                profile, queue_url, messages = item
                for message in messages:
                    report.received += 1
                    _message_handle(profile, queue_url, message, report)
    if not report.queue_errors:
        services.heartbeat(component=services.WATCHER_COMPONENT)
    return report


def _message_handle(
    profile: AccessProfile, queue_url: str, message: dict, report: PollReport
) -> None:
    try:
        use = role_use_parse(message["body"])
    except PoisonEvent as exc:
        services.poison_message_record(
            queue_url=queue_url,
            message_id=message["message_id"],
            body=message["body"],
            error=str(exc),
            profile=profile,
        )
        report.poison += 1
    else:
        explanation = role_use_explain(use=use, profile=profile)
        observed = services.observed_use_record(
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
    try:
        watch_queue.message_delete(
            runtime.broker_connection(),
            region=profile.region,
            queue_url=queue_url,
            receipt_handle=message["receipt_handle"],
        )
    except AwsError as exc:
        # Stored already: the redelivery will be recognised by its eventID / message id.
        logger.warning("watch message %s not deleted yet: %s", message["message_id"], exc)
