"""The Celery app, and how its workers take work from the broker."""

import os
from typing import Any

from celery import Celery, bootsteps
from celery.worker import state

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "portal.settings")

app = Celery("portal")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()


class TakeWorkOnlyWhenAProcessIsFree(bootsteps.StartStopStep):
    """The worker takes a message from the broker only when a pool process is free to run it.

    Every live grant's revocation waits in the worker as an ETA message, and Celery raises the
    prefetch limit by one for each: a worker holding twenty of them would reserve twenty notices
    and webhooks, which then run before a grant that arrives next. Held back in the broker
    instead, they wait behind it, since the grants queue is read first (portal/broker.py and
    CELERY_BROKER_TRANSPORT_OPTIONS). Celery's `worker_disable_prefetch` does this for Redis
    only; the embedded broker of `make run` needs it as much.
    """

    requires = ("celery.worker.consumer.tasks:Tasks",)

    def start(self, parent: Any) -> None:
        qos = parent.task_consumer.channel.qos
        prefetch_allows = qos.can_consume

        def can_consume() -> bool:
            processes = (
                getattr(parent.controller, "max_concurrency", None) or parent.pool.num_processes
            )
            return len(state.reserved_requests) < processes and prefetch_allows()

        qos.can_consume = can_consume


app.steps["consumer"].add(TakeWorkOnlyWhenAProcessIsFree)
