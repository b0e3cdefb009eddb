"""The embedded (filesystem) Celery broker, serving queues by priority.

kombu's virtual transports take turns between the queues a worker consumes. Our workers consume
the grants queue first (settings.CELERY_TASK_QUEUES, or `-Q` in that order) and must take any
waiting activation or revocation before other work. Redis does the same with
`queue_order_strategy = "priority"` (BRPOP looks at its keys in order).
"""

from collections.abc import Callable
from queue import Empty
from typing import Any

from kombu.transport import filesystem


class PriorityFilesystemChannel(filesystem.Channel):
    def _poll(
        self, cycle: Any, callback: Callable[[Any, str], None], timeout: float | None = None
    ) -> None:
        """Deliver the next message of the first queue, in consuming order, that has one."""
        for queue in list(self._active_queues):
            try:
                message = self._get(queue)
            except Empty:
                continue
            callback(message, queue)
            return
        raise Empty()


class PriorityFilesystemTransport(filesystem.Transport):
    Channel = PriorityFilesystemChannel
