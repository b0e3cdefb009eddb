"""The one way a service hands work to the worker: by job, after the transaction commits.

Jobs are named here (the tasks module registers each task under its job's name), so services
never import the tasks that call them, and a message carries ids only, never a secret.
"""

import logging
from datetime import datetime
from enum import StrEnum
from uuid import UUID

from celery import current_app
from django.db import transaction

logger = logging.getLogger(__name__)


class Job(StrEnum):
    ACTIVATE = "approvals.activate_request"
    REVOKE = "approvals.revoke_request"
    SWEEP = "approvals.sweep"
    DELIVER_WEBHOOK = "approvals.deliver_webhook"
    SEND_NOTIFICATION = "approvals.notification_send"
    WORKER_HEARTBEAT = "approvals.worker_heartbeat"
    WATCH_POLL = "approvals.watch_poll"
    GUARD_CHECK = "approvals.guard_check"
    TIMELINE_CHECKPOINT = "approvals.timeline_checkpoint"
    REQUEST_SEAL = "approvals.request_seal"
    EXTEND = "approvals.extension_apply"
    EXTENSIONS_TIME_OUT = "approvals.extensions_time_out"
    ACTIVITY_BACKSTOP = "approvals.activity_backstop"
    SIGNIN_THROTTLES_PURGE = "approvals.signin_throttles_purge"


def enqueue_after_commit(
    job: Job, *ids: str | int | UUID, eta: datetime | None = None, best_effort: bool = False
) -> None:
    """Send `job` once the transaction that justifies it has committed.

    `best_effort` jobs (notices, webhook deliveries) must never fail the workflow when the
    broker is down: their rows stay pending and visible instead.
    """
    args = [str(value) if not isinstance(value, int) else value for value in ids]

    def send() -> None:
        try:
            current_app.send_task(job.value, args=args, eta=eta)
        except Exception:
            if not best_effort:
                raise
            logger.exception("could not queue %s %s; it stays pending", job.value, args)

    transaction.on_commit(send, robust=best_effort)


class RetryLater(Exception):
    """A job's attempt failed in a way worth retrying; the task re-queues it after `seconds`."""

    def __init__(self, reason: str, *, seconds: float) -> None:
        super().__init__(reason)
        self.seconds = seconds
