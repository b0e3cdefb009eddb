"""CloudTrail `LookupEvents`: the event history of one region, read a bounded number of pages at
a time (plain values in and out).

LookupEvents answers management events only, newest first, at most 50 per page, and AWS allows
it about two calls per second per account and region: callers pace their pages.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import datetime
from functools import lru_cache

from awsaccess.clients import ClientFactory
from awsaccess.errors import PermanentAwsError, aws_call
from awsaccess.types import AwsConnection

MAX_RESULTS = 50  # LookupEvents' page limit
MAX_TOKEN_CHARS = 4096


@dataclass(frozen=True)
class HistoryEvent:
    event_id: str
    record_text: str  # the CloudTrailEvent: the full record as JSON text


@dataclass(frozen=True)
class HistoryPages:
    events: list[HistoryEvent]
    next_token: str | None  # None: the time range has been read to its end
    pages: int  # LookupEvents calls made


@lru_cache(maxsize=4)
def _clients(connection: AwsConnection) -> ClientFactory:
    return ClientFactory(connection)


def history_read(
    connection: AwsConnection,
    *,
    region: str,
    start: datetime,
    end: datetime,
    next_token: str | None = None,
    max_pages: int,
    pace_seconds: float = 0.0,
) -> HistoryPages:
    """Up to `max_pages` pages of the region's events between `start` and `end` (newest first),
    continuing from `next_token`; waits `pace_seconds` between calls. A token AWS no longer
    accepts raises PermanentAwsError with code InvalidNextTokenException."""
    cloudtrail = _clients(connection).client("cloudtrail", region)
    events: list[HistoryEvent] = []
    token = next_token
    pages = 0
    for page in range(max(1, max_pages)):
        pages += 1
        if page and pace_seconds:
            time.sleep(pace_seconds)
        with aws_call("cloudtrail:LookupEvents"):
            if token:
                response = cloudtrail.lookup_events(
                    StartTime=start, EndTime=end, MaxResults=MAX_RESULTS, NextToken=token
                )
            else:
                response = cloudtrail.lookup_events(
                    StartTime=start, EndTime=end, MaxResults=MAX_RESULTS
                )
        for event in response.get("Events", []):
            event_id, text = event.get("EventId"), event.get("CloudTrailEvent")
            if isinstance(event_id, str) and isinstance(text, str):
                events.append(HistoryEvent(event_id=event_id, record_text=text))
        token = response.get("NextToken") or None
        if token is None:
            break
        if len(token) > MAX_TOKEN_CHARS:
            raise PermanentAwsError(
                "cloudtrail:LookupEvents", "TokenTooLong", "the next-page token is too long to keep"
            )
    return HistoryPages(events=events, next_token=token, pages=pages)
