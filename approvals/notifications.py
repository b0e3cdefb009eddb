"""Where the portal tells people things. The notifications issue adds email and chat channels;
until then every notice goes to the log (never with a secret in it)."""

import logging

from approvals.models import AccessRequest

logger = logging.getLogger("approvals.notifications")


def notify_revocation_overdue(*, access_request: AccessRequest, overdue_seconds: int) -> None:
    logger.error(
        "ALARM revocation overdue: request %s (%s) is %s s past its deadline and still %s",
        access_request.pk,
        access_request.ticket,
        overdue_seconds,
        access_request.status,
    )
