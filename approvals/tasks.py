"""Celery entry points: each loads by id and calls one service (ids only, never secrets)."""

import logging

from celery import shared_task

logger = logging.getLogger(__name__)


@shared_task(name="approvals.activate_request", acks_late=True, reject_on_worker_lost=True)
def activate_request(request_id: str) -> None:
    # Placeholder until the worker issue lands: the enqueue after the second approval is real.
    logger.info("activation requested for %s", request_id)
