"""Celery entry points: each loads by id and calls one service (ids only, never secrets).

Every task is idempotent, acknowledged late and re-queued if its worker dies, so a message is
never lost with a worker and a duplicate delivery does no harm.
"""

from celery import shared_task

from approvals import services
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
