"""The sandbox's CloudTrail event history, bounded in memory, and `cloudtrail:LookupEvents`.

As on AWS, LookupEvents answers management events only, of the account and region it is called
in (IAM's events live in us-east-1), newest first, with one lookup attribute at most.
"""

from __future__ import annotations

import base64
import json
import threading
from collections import deque
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from moto.cloudtrail.responses import CloudTrailResponse
from moto.core.exceptions import JsonRESTError

MAX_EVENTS = 50_000
MAX_RESULTS = 50
_ATTRIBUTES = {
    "EventId", "EventName", "ReadOnly", "Username", "ResourceType", "ResourceName",
    "EventSource", "AccessKeyId",
}  # fmt: skip


@dataclass(frozen=True)
class StoredEvent:
    sequence: int
    time: datetime
    record: dict[str, Any]
    text: str  # the CloudTrailEvent string, serialised once


_lock = threading.Lock()
_events: deque[StoredEvent] = deque(maxlen=MAX_EVENTS)
_sequence = 0


def append(record: dict[str, Any], time: datetime) -> None:
    global _sequence
    with _lock:
        _sequence += 1
        _events.append(StoredEvent(_sequence, time, record, json.dumps(record)))


def recent(limit: int) -> list[dict[str, Any]]:
    """The newest records, oldest first (for the control API)."""
    with _lock:
        return [event.record for event in list(_events)[-limit:]]


def clear() -> None:
    with _lock:
        _events.clear()


def _username(record: dict[str, Any]) -> str:
    user = record["userIdentity"]
    if user["type"] == "AssumedRole":
        return str(user["arn"].rsplit("/", 1)[-1])  # the role session name, as AWS shows it
    return str(user.get("userName", ""))


def _resources(record: dict[str, Any]) -> list[dict[str, str]]:
    found = [
        {"ResourceType": item["type"], "ResourceName": item["ARN"]}
        for item in record.get("resources", [])
    ]
    parameters = record.get("requestParameters") or {}
    for key, kind in (
        ("userName", "AWS::IAM::User"),
        ("roleName", "AWS::IAM::Role"),
        ("policyArn", "AWS::IAM::Policy"),
        ("queueUrl", "AWS::SQS::Queue"),
    ):
        if isinstance(parameters.get(key), str):
            found.append({"ResourceType": kind, "ResourceName": parameters[key]})
    if record["eventSource"] == "events.amazonaws.com":
        rule = parameters.get("name") or parameters.get("rule")
        if isinstance(rule, str):
            found.append({"ResourceType": "AWS::Events::Rule", "ResourceName": rule})
    return found


def _matches(event: StoredEvent, key: str, value: str) -> bool:
    record = event.record
    if key == "EventId":
        return bool(record["eventID"] == value)
    if key == "EventName":
        return bool(record["eventName"] == value)
    if key == "ReadOnly":
        return str(record["readOnly"]).lower() == value.lower()
    if key == "Username":
        return _username(record) == value
    if key == "EventSource":
        return bool(record["eventSource"] == value)
    if key == "AccessKeyId":
        return bool(record["userIdentity"].get("accessKeyId") == value)
    field = "ResourceType" if key == "ResourceType" else "ResourceName"
    return any(item[field] == value for item in _resources(record))


def _summary(event: StoredEvent) -> dict[str, Any]:
    record = event.record
    summary: dict[str, Any] = {
        "EventId": record["eventID"],
        "EventName": record["eventName"],
        "ReadOnly": str(record["readOnly"]).lower(),
        "EventTime": event.time.timestamp(),
        "EventSource": record["eventSource"],
        "Username": _username(record),
        "Resources": _resources(record),
        "CloudTrailEvent": event.text,
    }
    access_key_id = record["userIdentity"].get("accessKeyId")
    if access_key_id:
        summary["AccessKeyId"] = access_key_id
    return summary


def _time(value: Any) -> datetime | None:
    if value is None:
        return None
    if isinstance(value, int | float):
        return datetime.fromtimestamp(value, UTC)
    return datetime.fromisoformat(str(value).replace("Z", "+00:00"))


def _invalid(code: str, message: str) -> JsonRESTError:
    return JsonRESTError(code, message)


def _filter_from(body: dict[str, Any]) -> tuple[str, str] | None:
    attributes = body.get("LookupAttributes") or []
    if len(attributes) > 1:
        raise _invalid(
            "InvalidLookupAttributesException", "You cannot specify more than one lookup attribute."
        )
    if not attributes:
        return None
    key, value = attributes[0].get("AttributeKey"), attributes[0].get("AttributeValue")
    if key not in _ATTRIBUTES or not isinstance(value, str):
        raise _invalid("InvalidLookupAttributesException", f"Invalid lookup attribute: {key}")
    return key, value


def lookup(account_id: str, region: str, body: dict[str, Any]) -> dict[str, Any]:
    attribute = _filter_from(body)
    start, end = _time(body.get("StartTime")), _time(body.get("EndTime"))
    if start and end and start > end:
        raise _invalid("InvalidTimeRangeException", "StartTime must be before EndTime.")
    limit = int(body.get("MaxResults") or MAX_RESULTS)
    if not 1 <= limit <= MAX_RESULTS:
        raise _invalid("InvalidMaxResultsException", "MaxResults must be from 1 to 50.")
    token = body.get("NextToken")
    try:
        before = int(base64.urlsafe_b64decode(token.encode()).decode()) if token else None
    except ValueError:
        raise _invalid("InvalidNextTokenException", "Invalid NextToken.") from None
    with _lock:
        candidates = list(_events)
    page: list[StoredEvent] = []
    more = False
    for event in reversed(candidates):
        record = event.record
        if before is not None and event.sequence >= before:
            continue
        if record["recipientAccountId"] != account_id or record["awsRegion"] != region:
            continue
        if not record["managementEvent"]:
            continue
        if (start and event.time < start) or (end and event.time > end):
            continue
        if attribute and not _matches(event, *attribute):
            continue
        if len(page) == limit:
            more = True
            break
        page.append(event)
    answer: dict[str, Any] = {"Events": [_summary(event) for event in page]}
    if more:
        answer["NextToken"] = base64.urlsafe_b64encode(str(page[-1].sequence).encode()).decode()
    return answer


def _lookup_events(self: CloudTrailResponse) -> str:
    """moto 5.2.5 has no LookupEvents; answered from the sandbox's history."""
    body = json.loads(self.body or "{}")
    return json.dumps(lookup(self.current_account, self.region, body))


def install() -> None:
    # moto dispatches by method name after authorizing `cloudtrail:LookupEvents` itself.
    CloudTrailResponse.lookup_events = _lookup_events  # type: ignore[attr-defined]  # a method moto lacks
