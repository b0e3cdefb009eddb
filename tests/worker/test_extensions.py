"""Acceptance, against the sandbox with the credentials the portal issued: an extension signed
by two approvers moves the deadline (fresh credentials work past the old one, and are cut off at
the new one by the rescheduled revocation); an extension nobody finishes signing times out and
the grant ends at its original deadline.

Grants last whole minutes, so these tests wait about a minute each; every wait is bounded and
asserts on the real condition (the sandbox's answer, the request's recorded times)."""

import json
from datetime import datetime, timedelta

import boto3
import pytest
from botocore.exceptions import ClientError
from django.test import Client
from django.utils import timezone

from approvals.errors import RequestInvalid, SignatureRefused
from approvals.models import (
    AccessProfile,
    Decision,
    ExtensionStatus,
    GrantExtension,
    NotificationDelivery,
    Status,
    TimelineEvent,
)
from approvals.services.api_access import personal_token_create
from approvals.services.extensions import extension_ask, extension_sign
from approvals.services.grants import _aws_grant
from awsaccess import policies
from awsaccess.runtime import access_engine
from tests.conftest import fresh_code
from tests.processes import wait_until
from tests.web.conftest import verified_client
from tests.worker.test_faults import credentials_of, deadline_in

pytestmark = pytest.mark.django_db(transaction=True)

REVOCATION_SLACK = timedelta(seconds=2)


def sign(live, extension, approver):
    return extension_sign(
        access_request_id=extension.request_id,
        extension_id=extension.pk,
        approver=approver,
        otp_code=fresh_code(approver),
        decision=Decision.APPROVE,
    )


def works(live, credentials) -> bool:
    try:
        live.aws.s3_with(credentials).list_buckets()
    except ClientError as error:
        assert error.response["Error"]["Code"] in ("AccessDenied", "ExpiredToken")
        return False
    return True


def revoked_in_aws(live, access_request) -> bool:
    """The sandbox holds the request's deny on the role, and no grant on the principal."""
    access_request.refresh_from_db()
    role = live.aws.profile.role_arn.rsplit("/", 1)[-1]
    names = live.aws.sandbox.client("iam").list_role_policies(RoleName=role)["PolicyNames"]
    denied = any(policies.revocation_request_id(n) == str(access_request.pk) for n in names)
    attached = access_engine().grant_is_attached(
        access_request.profile.aws_target(), _aws_grant(access_request)
    )
    return denied and not attached


def principal_assumes_the_role(live, access_request) -> bool:
    """What the principal's grant policy in the sandbox allows now: AssumeRole with the
    request's SourceIdentity, as the principal itself (its keys, no portal code)."""
    keys = json.loads((live.log_dir / "principals.json").read_text())[
        live.aws.profile.principal_arn
    ]
    sts = boto3.client(
        "sts",
        endpoint_url=live.aws.sandbox.endpoint_url,
        region_name=live.aws.profile.region,
        aws_access_key_id=keys["access_key_id"],
        aws_secret_access_key=keys["secret_access_key"],
    )
    try:
        sts.assume_role(
            RoleArn=live.aws.profile.role_arn,
            RoleSessionName="proof",
            SourceIdentity=str(access_request.pk),
            DurationSeconds=900,
        )
    except ClientError as error:
        assert error.response["Error"]["Code"] == "AccessDenied"
        return False
    return True


def grant_deadline_in_aws(live, access_request) -> datetime:
    """The aws:CurrentTime limit of the grant policy the sandbox holds on the principal."""
    user = live.aws.profile.principal_arn.rsplit("/", 1)[-1]
    document = live.aws.sandbox.client("iam").get_user_policy(
        UserName=user, PolicyName=policies.grant_policy_name(_aws_grant(access_request))
    )["PolicyDocument"]
    (statement,) = document["Statement"]
    return datetime.fromisoformat(statement["Condition"]["DateLessThan"]["aws:CurrentTime"])


def expires_at_over_the_api(live, access_request) -> datetime:
    token = personal_token_create(user=live.cast.requester, name="extension test")
    response = Client().get(
        f"/api/v1/requests/{access_request.pk}/", HTTP_AUTHORIZATION=f"Bearer {token}"
    )
    assert response.status_code == 200, response.content
    return datetime.fromisoformat(response.json()["expires_at"])


def active_one_minute_grant(live):
    AccessProfile.objects.filter(pk=live.aws.profile.pk).update(notify_emails="oncall@example.com")
    access_request = live.open_approved(duration_minutes=1)
    live.wait_for_status(access_request, Status.ACTIVE)
    return access_request


def one_more_minute_signed(live, access_request, reason: str) -> GrantExtension:
    """The requester asks for one more minute, two approvers sign, the worker applies it."""
    extension = extension_ask(
        access_request_id=access_request.pk,
        requester=live.cast.requester,
        minutes=1,
        reason=reason,
    )
    sign(live, extension, live.cast.alice)
    sign(live, extension, live.cast.bob)
    wait_until(
        lambda: GrantExtension.objects.get(pk=extension.pk).status == ExtensionStatus.APPLIED,
        timeout=30,
        what="extension applied",
    )
    return extension


def test_a_signed_extension_moves_the_deadline_and_the_revocation_with_it(live):
    live.start_worker()
    access_request = active_one_minute_grant(live)
    deadline_in(access_request, 20)  # set-up: the first minute ends sooner
    old_deadline = access_request.expires_at

    extension = one_more_minute_signed(live, access_request, "the failover is still replicating")
    access_request.refresh_from_db()
    new_deadline = old_deadline + timedelta(minutes=1)
    assert access_request.expires_at == new_deadline
    fresh = credentials_of(live, access_request)
    assert GrantExtension.objects.get(pk=extension.pk).replaced_access_key_id not in (
        "",
        fresh.access_key_id,
    )

    applied = TimelineEvent.objects.get(request=access_request, code="approvals.extension.applied")
    assert applied.detail["expires_at"] == new_deadline.isoformat()
    assert applied.detail["new_session_issued"] is True
    assert grant_deadline_in_aws(live, access_request) == new_deadline.replace(microsecond=0)
    assert expires_at_over_the_api(live, access_request) == new_deadline

    # The profile allows 60 minutes in all: the grant's 1 and the applied 1 count.
    with pytest.raises(RequestInvalid, match=r"would last 61 minutes in all; .* at most 60"):
        extension_ask(
            access_request_id=access_request.pk,
            requester=live.cast.requester,
            minutes=59,
            reason="and a lot more",
        )
    assert GrantExtension.objects.filter(request=access_request).count() == 1

    wait_until(lambda: timezone.now() > old_deadline + timedelta(seconds=2), timeout=40)
    assert works(live, fresh), "the session must keep working past the old deadline"
    assert principal_assumes_the_role(live, access_request), "the grant's expiry moved in AWS"
    access_request.refresh_from_db()
    assert access_request.status == Status.ACTIVE

    live.wait_for_status(access_request, Status.REVOKED, timeout=75)
    assert access_request.revoked_at - new_deadline < REVOCATION_SLACK
    assert not works(live, fresh)
    assert revoked_in_aws(live, access_request)
    report_url = f"/requests/{access_request.pk}/report"
    report = verified_client(live.cast.alice).get(f"{report_url}.json").json()
    assert report["deadlines"] == {
        "original": old_deadline.isoformat(),
        "final": new_deadline.isoformat(),
    }
    assert [(e["status"], e["minutes"]) for e in report["extensions"]] == [("applied", 1)]
    markdown = verified_client(live.cast.alice).get(f"{report_url}.md").content.decode()
    assert f"- Original deadline: {old_deadline.isoformat()}" in markdown
    assert f"- Final deadline: {new_deadline.isoformat()}" in markdown
    assert "signed by alice, bob" in markdown
    events = set(
        NotificationDelivery.objects.filter(request=access_request).values_list("event", flat=True)
    )
    assert {"extension.requested", "extension.applied"} <= events


def test_an_unsigned_extension_times_out_and_the_grant_ends_at_its_original_deadline(live):
    live.start_worker()
    access_request = active_one_minute_grant(live)
    original = access_request.expires_at
    credentials = credentials_of(live, access_request)
    extension = extension_ask(
        access_request_id=access_request.pk,
        requester=live.cast.requester,
        minutes=5,
        reason="need more time",
    )
    assert extension.approval_deadline == original  # never waits past the grant's end
    sign(live, extension, live.cast.alice)  # one signature is not two

    live.wait_for_status(access_request, Status.REVOKED, timeout=90)
    assert access_request.expires_at == original
    assert access_request.revoked_at - original < REVOCATION_SLACK
    wait_until(
        lambda: GrantExtension.objects.get(pk=extension.pk).status == ExtensionStatus.TIMED_OUT,
        timeout=30,
        what="extension timed out",
    )
    assert not works(live, credentials)
    assert revoked_in_aws(live, access_request)
    timed_out = TimelineEvent.objects.get(
        request=access_request, code="approvals.extension.timed_out"
    )
    assert timed_out.detail["expires_at"] == original.isoformat()
    assert "not signed in time" in timed_out.detail["reason"]
    with pytest.raises(SignatureRefused):
        sign(live, GrantExtension.objects.get(pk=extension.pk), live.cast.bob)
    assert GrantExtension.objects.get(pk=extension.pk).status == ExtensionStatus.TIMED_OUT


def test_an_extension_the_current_session_outlasts_keeps_its_credentials(live):
    """Set-up: the recorded deadline is moved two minutes before the end of the 18-minute
    session issued for it (the one way a session outlives its deadline); one more minute then
    ends before the session does, so the grant is rewritten and the credentials stay."""
    live.start_worker()
    access_request = live.open_approved(duration_minutes=18)
    live.wait_for_status(access_request, Status.ACTIVE)
    credentials = credentials_of(live, access_request)
    deadline_in(access_request, (access_request.expires_at - timezone.now()).total_seconds() - 120)
    new_deadline = access_request.expires_at + timedelta(minutes=1)

    extension = one_more_minute_signed(live, access_request, "the last checks")
    access_request.refresh_from_db()
    assert access_request.expires_at == new_deadline
    assert GrantExtension.objects.get(pk=extension.pk).replaced_access_key_id == ""
    applied = TimelineEvent.objects.get(request=access_request, code="approvals.extension.applied")
    assert applied.detail["new_session_issued"] is False
    assert credentials_of(live, access_request).access_key_id == credentials.access_key_id
    assert works(live, credentials)
    assert grant_deadline_in_aws(live, access_request) == new_deadline.replace(microsecond=0)
