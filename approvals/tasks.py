"""Celery entry points: each loads by id and calls one service (ids only, never secrets).

Every task is idempotent, acknowledged late and re-queued if its worker dies, so a message is
never lost with a worker and a duplicate delivery does no harm.
"""

from celery import shared_task
from django.conf import settings

from approvals import guard, notifications, services, watch, webhooks
from awsaccess.errors import TransientAwsError

RELIABLE = {"acks_late": True, "reject_on_worker_lost": True, "ignore_result": True}


@shared_task(name="approvals.activate_request", **RELIABLE)
def activate_request(request_id: str) -> None:
    services.request_activate(access_request_id=request_id)


@shared_task(bind=True, name="approvals.revoke_request", max_retries=6, **RELIABLE)
def revoke_request(self, request_id: str) -> None:
    try:
        services.request_revocation_drive(access_request_id=request_id)
    except TransientAwsError as exc:
        # After the last retry the sweeper keeps driving it; the overdue alarm tells people.
        raise self.retry(exc=exc, countdown=min(2**self.request.retries, 30)) from None


@shared_task(name="approvals.sweep", **RELIABLE)
def sweep() -> None:
    services.grants_sweep()


@shared_task(bind=True, name="approvals.deliver_webhook", max_retries=None, **RELIABLE)
def deliver_webhook(self, delivery_id: str) -> None:
    # webhook_deliver bounds the retries in time (BREAKGLASS_WEBHOOK_RETRY_SECONDS).
    retry_in = webhooks.webhook_deliver(delivery_id=delivery_id)
    if retry_in is not None:
        raise self.retry(countdown=retry_in)


@shared_task(name="approvals.worker_heartbeat", **RELIABLE)
def worker_heartbeat() -> None:
    services.heartbeat(component="worker")


@shared_task(name="approvals.watch_poll", ignore_result=True)
def watch_poll() -> None:
    # Not acks_late: a lost poll is simply the next one; the SQS messages are never lost.
    watch.watch_poll()


@shared_task(name="approvals.guard_check", ignore_result=True)
def guard_check() -> None:
    guard.guard_check()


@shared_task(bind=True, name="approvals.notification_send", **RELIABLE)
def notification_send(self, delivery_id: int) -> None:
    last = self.request.retries + 1 >= settings.NOTIFY_MAX_ATTEMPTS
    try:
        notifications.notification_deliver(delivery_id=delivery_id, last_attempt=last)
    except notifications.DeliveryFailed as exc:
        if last:
            return  # recorded as failed on the delivery; nothing more to try
        countdown = min(settings.NOTIFY_RETRY_SECONDS * 2**self.request.retries, 600)
        raise self.retry(exc=exc, countdown=countdown, max_retries=None) from None
