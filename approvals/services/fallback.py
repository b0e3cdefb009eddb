"""After the revocation fallback (issue 12): when a role's inline policies are genuinely full of
live revocation denies, the engine replaces them with one deny of every session issued before a
moment, which also kills the sessions of the role's other live grants. Those grants must not
stay ACTIVE with dead credentials: each gets new credentials (a session issued after the cut),
or, if that fails, its grant ends (ACTIVE → REVOKING, then the normal revocation). One alarm
says what happened: the fallback is a sign of a role revoked far more often than it should be.
"""

import time
from collections.abc import Callable
from datetime import datetime

from django.db import transaction
from django.utils import timezone

from approvals.models import AccessRequest, IssuedCredential, Status
from approvals.services.alarms import alarm_open
from approvals.services.lifecycle import request_move
from approvals.services.queue import Job, enqueue_after_commit
from approvals.services.requests import request_locked
from approvals.timeline import timeline_append
from awsaccess import runtime
from awsaccess.engine import GrantExpiredError
from awsaccess.errors import AwsError
from awsaccess.types import Grant, IssuedCredentials


def _cut_off(role_arn: str, cut_before: datetime, revoked: AccessRequest) -> list[AccessRequest]:
    """The live grants on the role whose credentials were issued before the cut."""
    return list(
        AccessRequest.objects.filter(
            profile__role_arn=role_arn,
            status=Status.ACTIVE,
            credential__issued_at__lt=cut_before,
        )
        .exclude(pk=revoked.pk)
        .select_related("profile")
    )


def _credentials_store(access_request: AccessRequest, credentials: IssuedCredentials) -> None:
    with transaction.atomic():
        locked = request_locked(access_request.pk)
        if locked.status != Status.ACTIVE:
            return
        IssuedCredential.objects.filter(request=locked).update(
            **IssuedCredential.stored_fields(credentials, timezone.now())
        )
        timeline_append(
            access_request=locked,
            code="approvals.credentials.reissued",
            detail={
                "reason": "the revocation fallback cut off every older session of the role",
                "access_key_id": credentials.access_key_id,
                "session_expiration": credentials.expiration.isoformat(),
            },
        )


def _grant_end(access_request: AccessRequest, reason: str) -> None:
    with transaction.atomic():
        locked = request_locked(access_request.pk)
        if locked.status != Status.ACTIVE:
            return
        request_move(
            access_request=locked,
            to_status=Status.REVOKING,
            code="approvals.revocation.fallback",
            outcome="failure",
            detail={"reason": reason},
        )
        enqueue_after_commit(Job.REVOKE, locked.pk)


def grants_reissue_after_cut(
    *,
    revoked: AccessRequest,
    cut_before: datetime,
    grant_of: Callable[[AccessRequest], Grant],
) -> None:
    """Re-issue (or end) every live grant the fallback cut off; one alarm naming them all.
    `grant_of` is the grant as activation built it (services.grants)."""
    # New sessions must be issued after the cut, or the wide deny kills them too.
    time.sleep(max(0.0, (cut_before - timezone.now()).total_seconds()) + 0.05)
    engine = runtime.access_engine()
    reissued, ended = [], []
    for access_request in _cut_off(revoked.profile.role_arn, cut_before, revoked):
        try:
            keys = runtime.principal_keys(access_request.profile.principal_arn)
            credentials = engine.credentials_issue(
                access_request.profile.aws_target(), grant_of(access_request), keys
            )
        except (AwsError, runtime.MissingAwsKeys, GrantExpiredError) as exc:
            _grant_end(access_request, f"no new credentials after the revocation fallback: {exc}")
            ended.append(str(access_request.pk))
            continue
        _credentials_store(access_request, credentials)
        reissued.append(str(access_request.pk))
    role = revoked.profile.role_arn.rsplit("/", 1)[-1]
    alarm_open(
        kind="revocation_fallback",
        title=(
            f"Revoking {revoked.pk} cut off every older session of {role} (its inline policies "
            f"were full of live denies): {len(reissued)} grant(s) re-issued, {len(ended)} ended"
        ),
        dedup_key=f"revocation_fallback:{role}:{cut_before.isoformat()}"[:200],
        detail={
            "issued_before": cut_before.isoformat(),
            "revoked_request": str(revoked.pk),
            "reissued": reissued,
            "ended": ended,
        },
        profile=revoked.profile,
        access_request=revoked,
    )
