"""Event sources as AWS reserves them (moto 5.2.5 patched in place).

On AWS a source beginning "aws." is an AWS service's: PutEvents refuses it for custom events,
entry by entry (`NotAuthorizedForSourceException`, "Not authorized for the source."), so a rule
that requires that prefix can trust the event came from AWS. moto accepts any source, which let
anyone allowed events:PutEvents forge the CloudTrail events the watch reads.

Tests and demos still need to put AWS-shaped events on a bus, as a service would (a CloudTrail
record of a call the sandbox never served): `service_events_put`, reached only through the
sandbox's `/_sandbox/events` control path, never through the EventBridge API.
"""

from __future__ import annotations

from typing import Any

from moto.events.models import EventsBackend, events_backends

AWS_SOURCE_PREFIX = "aws."
_original_put_events = EventsBackend.put_events


def _refused() -> dict[str, str]:
    return {
        "ErrorCode": "NotAuthorizedForSourceException",
        "ErrorMessage": "Not authorized for the source.",
    }


def _aws_source(entry: dict[str, Any]) -> bool:
    return str(entry.get("Source", "")).startswith(AWS_SOURCE_PREFIX)


def _put_events(self: EventsBackend, events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """PutEvents through the API: entries with an AWS source fail, the others go on, each
    result at its entry's index (as AWS answers a partly failed batch)."""
    if len(events) > 10:
        return _original_put_events(self, events)  # moto's validation error for the batch
    allowed = [entry for entry in events if not _aws_source(entry)]
    accepted = iter(_original_put_events(self, allowed) if allowed else [])
    return [_refused() if _aws_source(entry) else next(accepted) for entry in events]


def service_events_put(
    account_id: str, region: str, entries: list[dict[str, Any]]
) -> list[dict[str, Any]]:
    """Put events on a bus as an AWS service emits them (any source): the sandbox's own door."""
    return _original_put_events(events_backends[account_id][region], entries)


def install() -> None:
    EventsBackend.put_events = _put_events  # type: ignore[method-assign]  # patching moto in place
