"""Which CloudTrail records reach EventBridge: only those a logging trail records.

On AWS, "AWS API Call via CloudTrail" events reach EventBridge only while a trail with logging
on records them: a stopped, deleted or narrowed trail blinds every rule built on them, while the
90-day event history (LookupEvents) goes on recording management events regardless. A trail
records an event of its home region, or of any region when it is multi-region; IAM's events
(recorded in us-east-1) only with global service events included; and only what its event
selectors (basic or advanced) select.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

from moto.cloudtrail.models import Trail, cloudtrail_backends

from awsaccess.sandbox import clock

_DATA_TYPES = {"s3": "AWS::S3::Object", "sqs": "AWS::SQS::Queue"}
_DEFAULT_SELECTOR = {"ReadWriteType": "All", "IncludeManagementEvents": True}


def _trails(account_id: str) -> Iterator[Trail]:
    for backend in list(cloudtrail_backends[account_id].values()):
        yield from list(backend.trails.values())


def _covers_region(trail: Trail, entry: dict[str, Any]) -> bool:
    if entry["eventSource"] == "iam.amazonaws.com" and not trail.include_global_service_events:
        return False
    return bool(trail.is_multi_region) or trail.region_name == entry["awsRegion"]


def _resource_type(entry: dict[str, Any]) -> str:
    return _DATA_TYPES.get(entry["eventSource"].split(".")[0], "")


def _resource_arns(entry: dict[str, Any]) -> list[str]:
    arns = [str(item.get("ARN", "")) for item in entry.get("resources", [])]
    queue_url = (entry.get("requestParameters") or {}).get("queueUrl")
    if isinstance(queue_url, str):
        name = queue_url.rstrip("/").rsplit("/", 1)[-1]
        arns.append(f"arn:aws:sqs:{entry['awsRegion']}:{entry['recipientAccountId']}:{name}")
    return arns


def _basic_selects(selector: dict[str, Any], entry: dict[str, Any]) -> bool:
    read_write = selector.get("ReadWriteType", "All")
    if read_write != "All" and (read_write == "ReadOnly") != bool(entry["readOnly"]):
        return False
    if entry["managementEvent"]:
        excluded = selector.get("ExcludeManagementEventSources") or []
        return bool(selector.get("IncludeManagementEvents", True)) and (
            entry["eventSource"] not in excluded
        )
    arns = _resource_arns(entry)
    return any(
        resource.get("Type") == _resource_type(entry)
        and any(arn.startswith(value) for value in resource.get("Values", []) for arn in arns)
        for resource in selector.get("DataResources") or []
    )


def _field_values(field: str, entry: dict[str, Any]) -> list[str]:
    if field == "eventCategory":
        return [entry["eventCategory"]]
    if field == "readOnly":
        return [str(bool(entry["readOnly"])).lower()]
    if field in ("eventSource", "eventName"):
        return [str(entry[field])]
    if field == "resources.type":
        return [_resource_type(entry)]
    if field == "resources.ARN":
        return _resource_arns(entry)
    return []


_OPERATORS = {
    "Equals": lambda value, wanted: value == wanted,
    "StartsWith": lambda value, wanted: value.startswith(wanted),
    "EndsWith": lambda value, wanted: value.endswith(wanted),
}


def _field_holds(field_selector: dict[str, Any], entry: dict[str, Any]) -> bool:
    values = _field_values(str(field_selector.get("Field", "")), entry)
    for name, test in _OPERATORS.items():
        wanted = field_selector.get(name)
        if wanted and not any(test(v, w) for v in values for w in wanted):
            return False
        unwanted = field_selector.get(f"Not{name}")
        if unwanted and any(test(v, w) for v in values for w in unwanted):
            return False
    return True


def _advanced_selects(selector: dict[str, Any], entry: dict[str, Any]) -> bool:
    return all(_field_holds(field, entry) for field in selector.get("FieldSelectors") or [])


def _selects(trail: Trail, entry: dict[str, Any]) -> bool:
    basic, advanced = trail.event_selectors, trail.advanced_event_selectors
    if advanced and not basic:
        return any(_advanced_selects(selector, entry) for selector in advanced)
    return any(_basic_selects(selector, entry) for selector in basic or [_DEFAULT_SELECTOR])


def _logging_at(trail: Trail, at: datetime) -> bool:
    """Logging when the call was made: a trail records the calls made before it stopped,
    its own StopLogging included."""
    stopped = trail.status.stopped
    if trail.status.is_logging:
        return True
    return stopped is not None and at <= stopped.replace(tzinfo=UTC) + clock.offset()


def recorded_by_a_trail(entry: dict[str, Any], at: datetime) -> bool:
    """Whether a trail of the record's account that was logging at `at` (the call's time on the
    sandbox clock) records it, so that EventBridge gets it."""
    return any(
        _logging_at(trail, at) and _covers_region(trail, entry) and _selects(trail, entry)
        for trail in _trails(entry["recipientAccountId"])
    )
