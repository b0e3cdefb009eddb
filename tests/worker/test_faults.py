"""The deadline holds when the worker, the broker or AWS fails (DESIGN.md §5).

Grant durations are whole minutes, so these tests move a deadline closer with a direct UPDATE
(test set-up) instead of waiting a minute each; the worker, beat, Redis and the sandbox are real.
"""

import json
from datetime import timedelta

import pytest
import redis
from botocore.exceptions import ClientError
from django.conf import settings
from django.db import connection, connections
from django.utils import timezone

from approvals.models import AccessRequest, IssuedCredential, Status, TimelineEvent
from approvals.services.requests import credentials_reveal
from tests.conftest import fresh_code
from tests.processes import wait_until
from tests.worker.conftest import SWEEP_SECONDS
from tests.worker.test_activation import codes, grant_attached

pytestmark = pytest.mark.django_db(transaction=True)


def deadline_in(access_request, seconds: float) -> None:
    AccessRequest.objects.filter(pk=access_request.pk).update(
        expires_at=timezone.now() + timedelta(seconds=seconds)
    )
    access_request.refresh_from_db()


def credentials_of(live, access_request):
    return credentials_reveal(
        access_request_id=access_request.pk,
        user=live.cast.requester,
        otp_code=fresh_code(live.cast.requester),
    )


def assert_refused(live, credentials) -> None:
    with pytest.raises(ClientError) as denied:
        live.aws.s3_with(credentials).list_buckets()
    assert denied.value.response["Error"]["Code"] == "AccessDenied"


def trust_only(live, principal_arn: str) -> None:
    """Change the role's trust in AWS, so AssumeRole is refused (a fault outside the portal)."""
    iam = live.aws.sandbox.client("iam")
    role_name = live.aws.profile.role_arn.rsplit("/", 1)[-1]
    document = json.loads(
        json.dumps(iam.get_role(RoleName=role_name)["Role"]["AssumeRolePolicyDocument"])
    )
    for statement in document["Statement"]:
        statement["Principal"] = {"AWS": principal_arn}
    iam.update_assume_role_policy(RoleName=role_name, PolicyDocument=json.dumps(document))


def worker_stuck_after_attach(live):
    """A worker that has attached the grant and keeps retrying AssumeRole, which AWS refuses
    until the role trusts the principal again (`trust_only(live, principal)`)."""
    live.env["BREAKGLASS_AWS_PROPAGATION_TIMEOUT_SECONDS"] = "60"
    trust_only(live, f"arn:aws:iam::{live.aws.profile.account_id}:user/someone-else")
    worker = live.start_worker()
    access_request = live.open_approved()
    wait_until(
        lambda: "approvals.activation.grant_attached" in codes(access_request),
        timeout=20,
        what="grant attached",
    )
    return worker, access_request


def test_worker_killed_between_attach_and_issue_ends_failed_with_nothing_attached(live):
    worker, access_request = worker_stuck_after_attach(live)

    worker.kill9()  # AssumeRole is being retried: attached, not issued
    trust_only(live, live.aws.profile.principal_arn)
    live.start_worker()
    live.start_beat()
    live.wait_for_status(access_request, Status.FAILED, timeout=30)

    assert "interrupted" in access_request.failure_reason
    assert not grant_attached(live, access_request)
    assert not IssuedCredential.objects.filter(request=access_request).exists()


@pytest.mark.skipif(connection.vendor != "postgresql", reason="observes the worker via pg_locks")
def test_worker_killed_between_issue_and_active_never_leaves_two_sets_of_credentials(live):
    worker, access_request = worker_stuck_after_attach(live)
    # Hold the request row from another connection: the worker will issue credentials and then
    # block on the row before it can mark the request ACTIVE.
    holder = connections.create_connection("default")
    holder.set_autocommit(False)
    with holder.cursor() as cursor:
        cursor.execute(
            "SELECT id FROM approvals_accessrequest WHERE id = %s FOR UPDATE", [access_request.pk]
        )
    trust_only(live, live.aws.profile.principal_arn)

    def worker_blocked_on_the_row() -> bool:
        with connection.cursor() as cursor:
            cursor.execute("SELECT count(*) FROM pg_locks WHERE NOT granted")
            return cursor.fetchone()[0] > 0

    wait_until(worker_blocked_on_the_row, timeout=30, what="worker waiting to mark ACTIVE")
    worker.kill9()
    holder.rollback()
    holder.close()

    live.start_worker()
    live.start_beat()
    live.wait_for_status(access_request, Status.FAILED, timeout=30)

    assert not IssuedCredential.objects.filter(request=access_request).exists()
    assert not grant_attached(live, access_request)
    assert codes(access_request).count("approvals.request.active") == 0


def test_worker_killed_while_active_and_down_past_the_deadline_revokes_within_a_sweep(live):
    worker = live.start_worker()
    access_request = live.open_approved()
    live.wait_for_status(access_request, Status.ACTIVE)
    credentials = credentials_of(live, access_request)
    beat = live.start_beat()

    worker.kill9()
    deadline_in(access_request, 2)
    wait_until(
        lambda: timezone.now() > access_request.expires_at + timedelta(seconds=3), timeout=10
    )
    assert (
        AccessRequest.objects.get(pk=access_request.pk).status == Status.ACTIVE
    )  # nobody to revoke
    restarted_at = timezone.now()
    live.start_worker()

    live.wait_for_status(access_request, Status.REVOKED, timeout=SWEEP_SECONDS + 15)
    assert access_request.revoked_at - restarted_at < timedelta(seconds=SWEEP_SECONDS + 10)
    assert_refused(live, credentials)
    assert beat.running


@pytest.mark.skipif(not settings.CELERY_BROKER_URL.startswith("redis"), reason="flushes Redis")
def test_flushing_redis_loses_every_eta_but_the_sweeper_revokes_all_on_time(live):
    live.start_worker()
    live.start_beat()
    grants = [live.open_approved(ticket=f"INC-{n}") for n in range(3)]
    for access_request in grants:
        live.wait_for_status(access_request, Status.ACTIVE)
    credentials = [credentials_of(live, r) for r in grants]

    redis.Redis.from_url(settings.CELERY_BROKER_URL).flushdb()
    for access_request in grants:
        deadline_in(access_request, 3)

    for access_request, creds in zip(grants, credentials, strict=True):
        live.wait_for_status(access_request, Status.REVOKED, timeout=3 + SWEEP_SECONDS + 15)
        assert access_request.revoked_at - access_request.expires_at < timedelta(
            seconds=SWEEP_SECONDS + 10
        )
        assert_refused(live, creds)


def test_aws_down_at_the_deadline_raises_the_overdue_alarm_then_revokes_when_back(live):
    live.start_worker()
    live.start_beat()
    access_request = live.open_approved()
    live.wait_for_status(access_request, Status.ACTIVE)
    credentials = credentials_of(live, access_request)
    deadline_in(access_request, 2)

    live.aws.sandbox.pause()
    try:
        wait_until(
            lambda: "approvals.revocation.overdue" in codes(access_request),
            timeout=30,
            what="overdue alarm",
        )
        wait_until(
            lambda: timezone.now() > access_request.expires_at + timedelta(seconds=30), timeout=40
        )
    finally:
        live.aws.sandbox.resume()

    live.wait_for_status(access_request, Status.REVOKED, timeout=40)
    alarm = TimelineEvent.objects.get(request=access_request, code="approvals.revocation.overdue")
    assert alarm.outcome == "alarm"
    assert alarm.detail["overdue_seconds"] >= 8
    assert_refused(live, credentials)
