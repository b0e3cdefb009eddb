"""CloudTrail events as the watch reads them: an AssumeRole record → RoleUse, a call made by a
session of a break-glass role → SessionCall, or PoisonEvent.

Pure parsing, no database: every field is type-checked, so a malformed record is set aside as
poison instead of stopping the watch.
"""

import ipaddress
import json
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from approvals.scrubbing import scrub
from awsaccess.policies import AWS_SOURCE_PREFIX


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
    raw: dict[str, Any]

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


MAX_PARAMETERS_CHARS = 4096  # what one activity row keeps of requestParameters / resources


@dataclass(frozen=True)
class SessionCall:
    """One call made by a session of a break-glass role, as CloudTrail recorded it."""

    event_id: str
    event_time: datetime
    role_arn: str  # the session's issuer
    session_arn: str
    access_key_id: str
    source_identity: str
    service: str
    action: str
    region: str
    source_ip: str
    user_agent: str
    request_parameters: Any  # scrubbed and bounded; None when CloudTrail logged none
    resources: Any
    error_code: str
    error_message: str
    read_only: bool | None
    management_event: bool | None

    @property
    def ip(self) -> str | None:
        try:
            return str(ipaddress.ip_address(self.source_ip))
        except ValueError:
            return None

    @property
    def summary(self) -> str:
        outcome = f"refused ({self.error_code})" if self.error_code else "allowed"
        return f"{self.service}:{self.action} {outcome} from IP {self.source_ip or 'unknown'}"


def _text(value: Any, limit: int) -> str:
    return value[:limit] if isinstance(value, str) else ""


def _object(value: Any) -> dict[str, Any]:
    """A JSON object, or empty: a field of the wrong type is as good as absent."""
    return value if isinstance(value, dict) else {}


def _flag(value: Any) -> bool | None:
    """CloudTrail writes readOnly/managementEvent as booleans (older records: "true"/"false")."""
    if isinstance(value, bool):
        return value
    if value in ("true", "false"):
        return value == "true"
    return None


def _bounded(value: Any) -> Any:
    """Scrubbed of secrets, and no bigger than MAX_PARAMETERS_CHARS once stored."""
    cleaned = scrub(value)
    size = len(json.dumps(cleaned))
    if size > MAX_PARAMETERS_CHARS:
        return {"omitted": True, "reason": "too large to keep", "size": size}
    return cleaned


def _parse_time(value: Any) -> datetime:
    if not isinstance(value, str):
        raise PoisonEvent("eventTime is missing")
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise PoisonEvent(f"eventTime {value[:40]!r} is not an ISO 8601 time") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment


def _principal(identity: dict[str, Any]) -> tuple[str, str]:
    """(principal ARN as IAM names it, identity type): for an assumed-role caller, the role."""
    kind = _text(identity.get("type"), 40)
    if kind == "AssumedRole":
        issuer = _object(_object(identity.get("sessionContext")).get("sessionIssuer"))
        return _text(issuer.get("arn"), 600) or _text(identity.get("arn"), 600), kind
    return _text(identity.get("arn"), 600), kind


def record_load(body: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """An EventBridge envelope (or a bare CloudTrail record) → (message, CloudTrail record)."""
    try:
        message = json.loads(body)
    except (TypeError, ValueError, RecursionError):
        raise PoisonEvent("the message is not JSON") from None
    if not isinstance(message, dict):
        raise PoisonEvent("the message is not a JSON object")
    record = message.get("detail") if "detail" in message else message
    if not isinstance(record, dict):
        raise PoisonEvent("the event has no CloudTrail detail")
    return message, record


def aws_service_event_check(message: dict[str, Any]) -> None:
    """A watch-queue message must be an event an AWS service emitted, as EventBridge delivers it:
    an envelope whose source begins "aws." (EventBridge refuses those sources to PutEvents).
    Anything else was sent by someone (a forged CloudTrail record): PoisonEvent, set aside and
    alarmed, never read as what it claims."""
    source = message.get("source")
    if not isinstance(source, str) or not source.startswith(AWS_SOURCE_PREFIX):
        shown = source[:60] if isinstance(source, str) else "(none)"
        raise PoisonEvent(f"event source {shown!r} is not an AWS service's: not from CloudTrail")


def _event_id(record: dict[str, Any]) -> str:
    event_id = record.get("eventID")
    if not isinstance(event_id, str) or not 1 <= len(event_id) <= 100:
        raise PoisonEvent("eventID is missing")
    return event_id


def session_issuer_arn(record: dict[str, Any]) -> str:
    """The role whose session made the call ("" when the caller is not a role session)."""
    identity = _object(record.get("userIdentity"))
    issuer = _object(_object(identity.get("sessionContext")).get("sessionIssuer"))
    return _text(issuer.get("arn"), 600)


def role_use_parse(body: str) -> RoleUse:
    """An EventBridge envelope (or a bare CloudTrail record) → RoleUse; PoisonEvent otherwise."""
    return role_use_from(*record_load(body))


def role_use_from(message: dict[str, Any], record: dict[str, Any]) -> RoleUse:
    if record.get("eventName") != "AssumeRole":
        raise PoisonEvent(f"eventName is {str(record.get('eventName'))[:40]!r}, not AssumeRole")
    event_id = _event_id(record)
    parameters = record.get("requestParameters")
    if not isinstance(parameters, dict) or not isinstance(parameters.get("roleArn"), str):
        raise PoisonEvent("requestParameters.roleArn is missing")
    principal_arn, principal_type = _principal(_object(record.get("userIdentity")))
    credentials = _object(_object(record.get("responseElements")).get("credentials"))
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
        raw=scrub(message),
    )


def session_call_parse(body: str) -> SessionCall:
    """A CloudTrail record of a call by a role session → SessionCall; PoisonEvent otherwise."""
    return session_call_from(*record_load(body))


def session_call_from(message: dict[str, Any], record: dict[str, Any]) -> SessionCall:
    event_id = _event_id(record)
    identity = _object(record.get("userIdentity"))
    context = _object(identity.get("sessionContext"))
    role_arn = session_issuer_arn(record)
    if not role_arn:
        raise PoisonEvent("userIdentity.sessionContext.sessionIssuer.arn is missing")
    action = _text(record.get("eventName"), 100)
    if not action:
        raise PoisonEvent("eventName is missing")
    source = _text(record.get("eventSource"), 100)
    resources = record.get("resources")
    return SessionCall(
        event_id=event_id,
        event_time=_parse_time(record.get("eventTime")),
        role_arn=role_arn,
        session_arn=_text(identity.get("arn"), 600),
        access_key_id=_text(identity.get("accessKeyId"), 128),
        source_identity=_text(context.get("sourceIdentity"), 64),
        service=source.removesuffix(".amazonaws.com"),
        action=action,
        region=_text(record.get("awsRegion"), 32),
        source_ip=_text(record.get("sourceIPAddress"), 64),
        user_agent=_text(record.get("userAgent"), 300),
        request_parameters=_bounded(record.get("requestParameters")),
        resources=_bounded(resources) if isinstance(resources, list) else [],
        error_code=_text(record.get("errorCode"), 100),
        error_message=_text(record.get("errorMessage"), 300),
        read_only=_flag(record.get("readOnly")),
        management_event=_flag(record.get("managementEvent")),
    )
