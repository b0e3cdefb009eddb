"""Celery entry points: each loads by id and calls one service (ids only, never secrets).

Every task is idempotent, acknowledged late and re-queued if its worker dies, so a message is
never lost with a worker and a duplicate delivery does no harm. Retrying is the services'
decision: they raise RetryLater with the delay, and every task turns that into a Celery retry.
"""

import logging
from collections.abc import Callable
from functools import wraps
from typing import Any

from celery import Task, shared_task, signals
from django.db import connections

from approvals.models import Component
from approvals.services import (
    activity_backstop,
    checkpoints,
    extension_grants,
    grants,
    guard,
    identity,
    liveness,
    notifications,
    sweep,
    watch,
    webhooks,
)
from approvals.services.queue import Job, RetryLater

logger = logging.getLogger(__name__)

RELIABLE = {"acks_late": True, "reject_on_worker_lost": True, "ignore_result": True}


@signals.worker_init.connect
def aws_clients_prepare(**_: Any) -> None:
    """Before the worker forks its processes, which inherit the AWS clients built here."""
    try:
        profiles = grants.aws_clients_prepare()
        logger.info("AWS clients prepared for %d access profiles", profiles)
    except Exception:
        # Only time is lost: each client is built on its first use instead.
        logger.warning("AWS clients not prepared before the worker started", exc_info=True)
    finally:
        connections.close_all()  # the processes must not share this process's connection


def job(name: Job, **options: Any) -> Callable[[Callable[..., None]], Task]:
    """Register `run` as the task for `name`; a RetryLater from it re-queues the message."""

    def register(run: Callable[..., None]) -> Task:
        @wraps(run)
        def task(self: Task, *args: Any) -> None:
            try:
                run(*args)
            except RetryLater as exc:
                raise self.retry(countdown=exc.seconds, max_retries=None) from None

        return shared_task(bind=True, name=name.value, **{**RELIABLE, **options})(task)

    return register


@job(Job.ACTIVATE)
def activate_request(request_id: str) -> None:
    grants.request_activate(access_request_id=request_id)


@job(Job.REVOKE)
def revoke_request(request_id: str) -> None:
    grants.request_revocation_run(access_request_id=request_id)


@job(Job.SWEEP)
def sweep_grants() -> None:
    sweep.grants_sweep()


@job(Job.DELIVER_WEBHOOK)
def deliver_webhook(delivery_id: str) -> None:
    webhooks.webhook_deliver(delivery_id=delivery_id)


@job(Job.SEND_NOTIFICATION)
def notification_send(delivery_id: int) -> None:
    notifications.notification_deliver(delivery_id=delivery_id)


@job(Job.WORKER_HEARTBEAT)
def worker_heartbeat() -> None:
    liveness.heartbeat(component=Component.WORKER)


# Not acks_late: a lost poll is simply the next one; the SQS messages are never lost.
@job(Job.WATCH_POLL, acks_late=False, reject_on_worker_lost=False)
def watch_poll() -> None:
    watch.watch_poll()


@job(Job.GUARD_CHECK, acks_late=False, reject_on_worker_lost=False)
def guard_check() -> None:
    guard.guard_check()


# Not acks_late: a lost run is simply the next one (beat sends one every period).
@job(Job.TIMELINE_CHECKPOINT, acks_late=False, reject_on_worker_lost=False)
def timeline_checkpoint() -> None:
    checkpoints.timeline_checkpoint()


@job(Job.SIGNIN_THROTTLES_PURGE, acks_late=False, reject_on_worker_lost=False)
def signin_throttles_purge() -> None:
    identity.signin_throttles_purge()


@job(Job.REQUEST_SEAL)
def request_seal(request_id: str) -> None:
    checkpoints.request_ended_record(access_request_id=request_id)


@job(Job.EXTEND)
def extension_apply(extension_id: str) -> None:
    extension_grants.extension_run(extension_id=extension_id)


@job(Job.EXTENSIONS_TIME_OUT)
def extension_time_out(extension_id: str) -> None:
    extension_grants.extension_time_out(extension_id=extension_id)


# Not acks_late: a lost run is simply the next one; the cursor says where to resume.
@job(Job.ACTIVITY_BACKSTOP, acks_late=False, reject_on_worker_lost=False)
def activity_backstop_run() -> None:
    activity_backstop.activity_backstop()
