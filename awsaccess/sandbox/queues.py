"""SQS at the speed the benchmarks need. moto computes every queue attribute (three of which walk
the whole queue, reading the clock twice per message) once per message received and once per
message sent, so a receive of ten from a queue of 2,000 cost ~100 ms and capped any consumer at
~40 messages a second. Here the retention check reads the one attribute it needs and each walk
reads the clock once; what they decide is unchanged."""

from __future__ import annotations

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


def _delayed_count(self: Queue) -> int:
    now = unix_time_millis()
    return sum(1 for m in self._messages if now < m.delayed_until)


def _not_visible_count(self: Queue) -> int:
    now = unix_time_millis()
    return sum(1 for m in self._messages if now <= m.visible_at)


def install() -> None:
    SQSBackend.is_message_valid_based_on_retention_period = (  # type: ignore[method-assign]  # patching moto in place
        _is_message_valid_based_on_retention_period
    )
    Queue.messages = property(_messages)  # type: ignore[method-assign,assignment]  # patching moto in place
    Queue.approximate_number_of_messages_delayed = property(_delayed_count)  # type: ignore[method-assign,assignment]  # patching moto in place
    Queue.approximate_number_of_messages_not_visible = property(_not_visible_count)  # type: ignore[method-assign,assignment]  # patching moto in place
