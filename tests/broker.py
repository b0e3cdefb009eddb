"""Read what the portal really sent to the Celery broker (Redis in CI)."""

import time

from django.conf import settings

from portal.celery import app

POLL_SECONDS = 0.02


def drain_task_messages(*, max_messages: int = 100, wait: float = 0.5) -> list[tuple[str, list]]:
    """Take every message off the portal's queues (grants first): (task name, args). Bounded in
    count (per queue) and time: a queue is done once it stays empty for `wait` seconds.

    Reads poll without blocking: a blocking read leaves a BRPOP pending on the Redis channel
    (kombu waits for its reply before issuing another), so the next queue's read on the same
    connection would only ever see the first queue's empty reply.
    """
    messages: list[tuple[str, list]] = []
    with app.connection_for_read() as connection:
        for name in (settings.CELERY_GRANTS_QUEUE, settings.CELERY_TASK_DEFAULT_QUEUE):
            queue = connection.SimpleQueue(name)
            taken = 0
            try:
                quiet_until = time.monotonic() + wait
                while taken < max_messages and time.monotonic() < quiet_until:
                    try:
                        message = queue.get_nowait()
                    except queue.Empty:
                        time.sleep(POLL_SECONDS)
                        continue
                    messages.append((message.headers["task"], message.payload[0]))
                    message.ack()
                    taken += 1
                    quiet_until = time.monotonic() + wait
            finally:
                queue.close()
    return messages
