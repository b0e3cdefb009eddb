"""The Celery app, and how its workers take work from the broker."""

import os
from typing import Any

import click
from celery import Celery, bootsteps
from celery.worker import state
from django.conf import settings

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


class GrantsOnly(bootsteps.Step):
    """`celery -A portal worker --grants-only`: a worker that consumes the grants queue and
    nothing else, so an activation or revocation always finds a process free. The other workers
    still consume both queues, grants first, and serve grants should this one be down."""

    def __init__(self, parent: Any, grants_only: bool = False, **options: Any) -> None:
        if grants_only:
            parent.setup_queues([settings.CELERY_GRANTS_QUEUE])
        super().__init__(parent, **options)


app.user_options["worker"].add(
    click.Option(
        ["--grants-only"],
        is_flag=True,
        default=False,
        help="Consume only the grants queue (activations, revocations, extensions).",
    )
)
app.steps["worker"].add(GrantsOnly)
