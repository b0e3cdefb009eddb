"""Read what the portal really sent to the Celery broker (Redis in CI)."""

from django.conf import settings

from portal.celery import app


def drain_task_messages(*, max_messages: int = 100, wait: float = 0.5) -> list[tuple[str, list]]:
    """Take every message off the portal's queue: (task name, args). Bounded in count and time."""
    messages: list[tuple[str, list]] = []
    with app.connection_for_read() as connection:
        queue = connection.SimpleQueue(settings.CELERY_TASK_DEFAULT_QUEUE)
        try:
            for _ in range(max_messages):
                try:
                    message = queue.get(block=True, timeout=wait)
                except queue.Empty:
                    break
                messages.append((message.headers["task"], message.payload[0]))
                message.ack()
        finally:
            queue.close()
    return messages
