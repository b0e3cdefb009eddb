"""Tampering seen in seconds (issue 12): a CloudTrail record on the watch queue that writes to the
profile's break-glass machinery (its role, principal, boundary, watch rules, queue, any trail),
or a persistence move or role chaining by a session of its role, is a security alarm at once,
naming who did what.

Provisioning routes these records to the watch queue (awsaccess.watch_routes); the broker's own
routine writes (revocation denies, grants, deleting keys the portal does not hold) are its job
and raise nothing. Refused attempts are alarms too: someone tried. The periodic guard remains
the backstop for whatever the routing misses.
"""

import json
import uuid
from dataclasses import dataclass
from typing import Any

from django.db import transaction

from approvals.models import AccessProfile, AccessRequest
from approvals.scrubbing import scrub_text
from approvals.services.activity import session_call_record
from approvals.services.alarms import alarm_open
from approvals.watch_events import SessionCall, session_call_from, session_issuer_arn
from awsaccess import policies, revocation_denies, runtime, watch_routes
from awsaccess.errors import AwsError

# The broker's routine writes: (action, the request parameter naming what, its name prefix).
_BROKER_ROUTINE = {
    "iam:PutRolePolicy": ("policyName", policies.REVOCATION_POLICY_PREFIX),
    "iam:DeleteRolePolicy": ("policyName", policies.REVOCATION_POLICY_PREFIX),
    "iam:PutUserPolicy": ("policyName", policies.GRANT_POLICY_PREFIX),
    "iam:DeleteUserPolicy": ("policyName", ""),  # revocation strips any policy from the principal
    "iam:DeleteAccessKey": ("userName", ""),
}
_PERSISTENCE = frozenset(policies.PERSISTENCE_ACTIONS)
_ROLE_CHAINING = frozenset(policies.ROLE_CHAINING_ACTIONS)
MAX_PARAMETERS_CHARS = 2000


@dataclass(frozen=True)
class Tampering:
    """One write to the machinery (or persistence move), as CloudTrail recorded it."""

    event_id: str
    event_time: str
    action: str  # e.g. "events:DisableRule"
    what: str  # e.g. "watch rule breakglass-watch-x"
    actor: str  # the caller's ARN
    source_identity: str  # the session's, when a session of a role did it
    error_code: str  # AccessDenied …: refused by AWS
    region: str
    source_ip: str
    parameters: str  # scrubbed, bounded
    record: dict[str, Any]
    session_call: SessionCall | None  # when a session of the profile's role did it

    @property
    def summary(self) -> str:
        did = (
            f"tried {self.action} (refused: {self.error_code})"
            if self.error_code
            else (f"did {self.action}")
        )
        who = self.actor.rsplit(":", 1)[-1] or "an unknown caller"
        if self.source_identity:
            who += f" (source identity {self.source_identity})"
        return f"{who} {did} on {self.what}"


@dataclass(frozen=True)
class BrokerRoutine:
    """The broker's own write to the machinery (a grant, a revocation deny, a key it deletes):
    the changes rule routes it with every machinery write, and the watcher lets it go on
    purpose: never an alarm, never poison."""

    event_id: str
    action: str
    what: str


def _object(value: Any) -> dict[str, Any]:
    """A JSON object, or empty: a field of the wrong type (an AssumeRole whose userIdentity is a
    list) is read as far as it is typed, as the watch's parsers do, never an AttributeError."""
    return value if isinstance(value, dict) else {}


def _action(record: dict[str, Any]) -> str:
    service = str(record.get("eventSource", "")).removesuffix(".amazonaws.com")
    return f"{service}:{record.get('eventName', '')}"


def _broker_routine(record: dict[str, Any], action: str, actor: str) -> bool:
    if action not in _BROKER_ROUTINE:
        return False
    try:
        broker = watch_routes.caller_arn(runtime.broker_connection())
    except AwsError:
        return False  # unknown broker: better an alarm too many
    key, prefix = _BROKER_ROUTINE[action]
    parameters = _object(record.get("requestParameters"))
    name = str(parameters.get(key, ""))
    if actor != broker or not name.startswith(prefix):
        return False
    if action == "iam:PutRolePolicy":  # a deny's name proves nothing: its content must be one
        document = _policy_document(parameters)
        # The fallback first writes its older-sessions deny over one request's deny, in place.
        return revocation_denies.is_revocation_deny(
            name, document
        ) or revocation_denies.is_older_sessions_deny(document)
    return True


def _policy_document(parameters: dict[str, Any]) -> object:
    """The policy a Put*Policy record wrote (CloudTrail gives it as JSON text), or None."""
    document = parameters.get("policyDocument")
    if isinstance(document, str):
        try:
            return json.loads(document)
        except ValueError:
            return None
    return document


def tampering_from(
    message: dict[str, Any], record: dict[str, Any], profile: AccessProfile
) -> Tampering | BrokerRoutine | None:
    """The record as tampering with the profile's machinery, the broker's routine write to it,
    or None when it touches no machinery."""
    action = _action(record)
    by_session = session_issuer_arn(record) == profile.role_arn
    # The target reads the profile's offline kits: only a write needs it (most calls only read).
    what = (
        watch_routes.machinery_change(record, profile.aws_target())
        if watch_routes.is_write(record)
        else ""
    )
    if not what and by_session and action in _PERSISTENCE:
        what = "the account (a way to keep access after the session ends)"
    if not what and by_session and action in _ROLE_CHAINING:
        chained = _object(record.get("requestParameters")).get("roleArn")
        what = f"role {chained or '(unnamed)'} (a chained session outlives revocation)"
    identity = _object(record.get("userIdentity"))
    actor = str(identity.get("arn", ""))
    if not what:
        return None
    if _broker_routine(record, action, actor):
        return BrokerRoutine(event_id=str(record["eventID"]), action=action, what=what)
    context = _object(identity.get("sessionContext"))
    parameters = json.dumps(record.get("requestParameters"), sort_keys=True, default=str)
    return Tampering(
        event_id=str(record["eventID"]),
        event_time=str(record.get("eventTime", "")),
        action=action,
        what=what,
        actor=actor,
        source_identity=str(context.get("sourceIdentity", "")),
        error_code=str(record.get("errorCode", "")),
        region=str(record.get("awsRegion", "")),
        source_ip=str(record.get("sourceIPAddress", "")),
        parameters=scrub_text(parameters)[:MAX_PARAMETERS_CHARS],
        record=record,
        session_call=session_call_from(message, record) if by_session else None,
    )


@dataclass(frozen=True)
class TamperingOutcome:
    alarmed: bool  # a new alarm (False: this eventID was seen already)
    request_id: uuid.UUID | None  # the request whose activity the call joined, if any


def _named_request(tampering: Tampering, profile: AccessProfile) -> AccessRequest | None:
    try:
        request_id = uuid.UUID(tampering.source_identity)
    except ValueError:
        return None
    return AccessRequest.objects.filter(pk=request_id, profile=profile).first()


def tampering_record(*, tampering: Tampering, profile: AccessProfile) -> TamperingOutcome:
    """Raise the alarm (once per eventID), and put a session's call on its activity record."""
    touched = None
    with transaction.atomic():
        if tampering.session_call is not None:
            row = session_call_record(call=tampering.session_call, profile=profile)
            touched = row.request_id if row is not None else None
        _, created = alarm_open(
            kind="watch_tampering",
            title=f"Tampering with the watch of {profile.slug}: {tampering.summary}"[:300],
            dedup_key=f"tampering:{tampering.event_id}"[:200],
            detail={
                "action": tampering.action,
                "what": tampering.what,
                "actor": tampering.actor,
                "source_identity": tampering.source_identity,
                "refused": tampering.error_code,
                "event_id": tampering.event_id,
                "event_time": tampering.event_time,
                "region": tampering.region,
                "source_ip": tampering.source_ip,
                "request_parameters": tampering.parameters,
            },
            raw_event=tampering.record,
            profile=profile,
            access_request=_named_request(tampering, profile),
        )
    return TamperingOutcome(alarmed=created, request_id=touched)
