"""SQS at the speed the benchmarks need. moto computes every queue attribute (three of which walk
the whole queue, reading the clock twice per message) once per message received and once per
message sent, so a receive of ten from a queue of 2,000 cost ~100 ms and capped any consumer at
~40 messages a second. Here the retention check reads the one attribute it needs and each walk
reads the clock once; what they decide is unchanged. And a send no longer counts the queue's
messages at all: moto's send_message reads the queue's attributes for ContentBasedDeduplication
only, and the three counts among them walked the whole queue on every send.

Beyond speed: SQS is safe to use from many consumers at once, moto is not. Each delete rebuilds
the queue's message list from the list it started with, so of two deletes at once the one that
finishes last drops a message sent meanwhile (most likely the 4 calls of 2,000 one activity
benchmark run never recorded) or brings back the one the other deleted; and a receive
iterates the in-flight set while others change it. Receives, deletes and visibility changes of
one queue now take turns under the queue's lock, the one sends append under (a long poll waits
without holding it)."""

from __future__ import annotations

import functools
import threading
from collections.abc import Callable
from typing import Any

from moto.core.utils import unix_time, unix_time_millis
from moto.sqs.models import Message, Queue, SQSBackend


def _is_message_valid_based_on_retention_period(
    self: SQSBackend, queue_name: str, message: Message
) -> bool:
    retention_seconds = int(self.get_queue(queue_name).message_retention_period)  # type: ignore[attr-defined]  # set from the queue's attributes
    return retention_seconds + message.sent_timestamp / 1000 > unix_time()  # type: ignore[operator]  # set when sent


def _messages(self: Queue) -> list[Message]:
    now = unix_time_millis()
    return [m for m in self._messages if now > m.visible_at and now >= m.delayed_until]


# Set while this thread runs moto's send_message (whose only use of the counts is none).
_sending = threading.local()
_original_send_message = SQSBackend.send_message


def _send_message(self: SQSBackend, *args: Any, **kwargs: Any) -> Message:
    _sending.active = True
    try:
        return _original_send_message(self, *args, **kwargs)
    finally:
        _sending.active = False


def _one_at_a_time(method: Callable[..., Any]) -> Callable[..., Any]:
    """Run a backend operation on one queue under the queue's own lock (a Condition over an
    RLock: the one moto's send appends under and its long poll waits on, releasing it)."""

    @functools.wraps(method)
    def run(self: SQSBackend, queue_name: str, *args: Any, **kwargs: Any) -> Any:
        with self.get_queue(queue_name)._messages_lock:
            return method(self, queue_name, *args, **kwargs)

    return run


def _counting() -> bool:
    return not getattr(_sending, "active", False)


def _visible_count(self: Queue) -> int:
    return len(self.messages) if _counting() else 0


def _delayed_count(self: Queue) -> int:
    if not _counting():
        return 0
    now = unix_time_millis()
    return sum(1 for m in self._messages if now < m.delayed_until)


def _not_visible_count(self: Queue) -> int:
    if not _counting():
        return 0
    now = unix_time_millis()
    return sum(1 for m in self._messages if now <= m.visible_at)


def install() -> None:
    SQSBackend.is_message_valid_based_on_retention_period = (  # type: ignore[method-assign]  # patching moto in place
        _is_message_valid_based_on_retention_period
    )
    for name in ("receive_message", "delete_message", "change_message_visibility"):
        setattr(SQSBackend, name, _one_at_a_time(getattr(SQSBackend, name)))
    SQSBackend.send_message = _send_message  # type: ignore[method-assign]  # patching moto in place
    Queue.approximate_number_of_messages = property(_visible_count)  # type: ignore[method-assign,assignment]  # patching moto in place
    Queue.messages = property(_messages)  # type: ignore[method-assign,assignment]  # patching moto in place
    Queue.approximate_number_of_messages_delayed = property(_delayed_count)  # type: ignore[method-assign,assignment]  # patching moto in place
    Queue.approximate_number_of_messages_not_visible = property(_not_visible_count)  # type: ignore[method-assign,assignment]  # patching moto in place
