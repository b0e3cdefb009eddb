"""The trail worker: every captured call becomes a CloudTrail record (kept in the history) and an
EventBridge event "AWS API Call via CloudTrail" on the default bus of the call's region, matched
against that bus's rules and sent to their targets as AWS does.

One background thread, so events arrive in call order and never on the caller's time. A test
switch drops a fraction of EventBridge deliveries (seeded, so reproducible) to exercise the
portal's LookupEvents backstop; dropped events stay in the history, as on AWS.
"""

from __future__ import annotations

import collections
import logging
import random
import threading
import time
import uuid
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from moto.events.models import EventsBackend, events_backends

from awsaccess.sandbox import cloudtrail, history, protocol, targets, trails
from awsaccess.sandbox.calls import CapturedCall

logger = logging.getLogger(__name__)

DETAIL_TYPE = "AWS API Call via CloudTrail"
QUEUE_LIMIT = 100_000  # calls waiting for the worker; callers wait (not drop) beyond it


@dataclass
class DeliveryStats:
    drop_fraction: float = 0.0
    seed: int | None = None
    recorded: int = 0
    delivered: int = 0
    dropped: int = 0
    dropped_event_ids: list[str] = field(default_factory=list)
    _random: random.Random = field(default_factory=random.Random)

    def as_dict(self) -> dict[str, Any]:
        return {
            "drop_fraction": self.drop_fraction,
            "seed": self.seed,
            "recorded": self.recorded,
            "delivered": self.delivered,
            "dropped": self.dropped,
            "dropped_event_ids": self.dropped_event_ids[-1000:],
        }


_lock = threading.Lock()
_stats = DeliveryStats()
# Calls waiting for the worker. Not a queue.Queue: waking the worker on every call (its
# condition's notify) made each request thread hand the GIL over mid-request; the worker is woken
# only when it went idle, and under a burst it drains what waits without being signalled.
_calls: collections.deque[CapturedCall] = collections.deque()
_in_hand = 0  # 1 while the worker holds a call taken off _calls (set before taking it)
_idle = False
_wake = threading.Event()
_worker: threading.Thread | None = None


def configure(drop_fraction: float, seed: int | None) -> dict[str, Any]:
    """Drop this fraction of EventBridge deliveries from now on (counters restart)."""
    if not 0.0 <= drop_fraction <= 1.0:
        raise ValueError("drop_fraction must be within 0..1")
    global _stats
    with _lock:
        _stats = DeliveryStats(drop_fraction=drop_fraction, seed=seed)
        _stats._random.seed(seed)
        return _stats.as_dict()


def stats() -> dict[str, Any]:
    with _lock:
        # Calls served but not yet recorded and delivered (queued or in the worker's hands).
        return {**_stats.as_dict(), "pending": len(_calls) + _in_hand}


def _should_drop(event_id: str) -> bool:
    with _lock:
        _stats.recorded += 1
        if _stats.drop_fraction and _stats._random.random() < _stats.drop_fraction:
            _stats.dropped += 1
            _stats.dropped_event_ids.append(event_id)
            return True
        _stats.delivered += 1
        return False


def _event_message(entry: dict[str, Any], service: str) -> dict[str, Any]:
    # moto's target code expects "time" as epoch seconds and turns it into ISO text itself.
    moment = datetime.fromisoformat(entry["eventTime"].replace("Z", "+00:00")).timestamp()
    return {
        "version": "0",
        "id": str(uuid.uuid4()),
        "detail-type": DETAIL_TYPE,
        "source": f"aws.{service}",
        "account": entry["recipientAccountId"],
        "time": moment,
        "region": entry["awsRegion"],
        "resources": [],
        "detail": entry,
        "ingestion-time": moment,
    }


def deliver(entry: dict[str, Any], service: str) -> None:
    """Send the event through the rules of the default bus in the record's account and region."""
    account_id, region = entry["recipientAccountId"], entry["awsRegion"]
    backend: EventsBackend = events_backends[account_id][region]
    bus = backend.event_buses.get("default")
    if bus is not None:
        targets.bus_deliver(bus, _event_message(entry, service))


def _handle(call: CapturedCall) -> None:
    api = protocol.parse(call)
    if api is None:
        return
    user_identity = cloudtrail.identity(api.access_key_id)
    if user_identity is None:
        return  # unknown keys: AWS refuses them before CloudTrail sees an identity
    entry = cloudtrail.record(call, api, user_identity)
    history.append(entry, call.time)  # the event history records whatever the trails do
    if trails.recorded_by_a_trail(entry, call.time) and not _should_drop(entry["eventID"]):
        deliver(entry, api.service)


def _next_call() -> CapturedCall:
    """The oldest call waiting, sleeping while there is none."""
    global _in_hand, _idle
    while True:
        _in_hand = 1
        try:
            return _calls.popleft()
        except IndexError:
            _in_hand = 0
        _idle = True
        _wake.clear()
        if not _calls:  # checked after saying so: a call submitted meanwhile wakes us
            _wake.wait()
        _idle = False


def _run() -> None:
    global _in_hand
    while True:
        call = _next_call()
        try:
            _handle(call)
        except Exception:  # the trail must outlive any one odd request
            logger.exception("could not record %s %s", call.method, call.path)
        finally:
            _in_hand = 0


def submit(call: CapturedCall) -> None:
    while len(_calls) >= QUEUE_LIMIT:
        time.sleep(0.01)
    _calls.append(call)
    if _idle:
        _wake.set()


def start() -> None:
    global _worker
    if _worker is not None:
        return
    _worker = threading.Thread(target=_run, name="sandbox-cloudtrail", daemon=True)
    _worker.start()


def install() -> None:
    targets.install()
    history.install()
    start()
