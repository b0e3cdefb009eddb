"""A database writer forges the two-person rule (issue 14): approval rows written straight into
the database, the request set to APPROVED. The real worker must refuse before anything reaches
AWS, fail the request and raise an alarm."""

import uuid

import pytest
from django.utils import timezone

from approvals.models import Approval, SecurityAlarm, Status, TimelineEvent
from portal.celery import app
from tests.conftest import fresh_code
from tests.tamper import raw_sql

pytestmark = pytest.mark.django_db(transaction=True)

INSERT_APPROVAL = (
    "INSERT INTO approvals_approval (request_id, approver_id, approver_name, decision, reason, "
    "device_id, content_digest, created_at, source_ip, time_step, signature_key_id, signature) "
    "VALUES (%s, %s, %s, 'approve', '', %s, %s, %s, NULL, %s, %s, %s)"
)


def forge_approval(access_request, approver, *, key_id="", signature="", time_step=None) -> None:
    raw_sql(
        INSERT_APPROVAL,
        [
            str(access_request.pk),
            approver.pk,
            approver.get_username(),
            f"otp_totp.sealedtotpdevice/{approver.pk}",
            access_request.content_digest(),
            timezone.now(),
            time_step,
            key_id,
            signature,
        ],
    )


def force_approved(access_request) -> None:
    raw_sql(
        "UPDATE approvals_accessrequest SET status = 'approved', approved_at = %s WHERE id = %s",
        [timezone.now(), str(access_request.pk)],
    )


def principal_policies(live) -> list[str]:
    iam = live.aws.sandbox.client("iam")
    principal = live.aws.profile.principal_arn.rsplit("/", 1)[1]
    return iam.list_user_policies(UserName=principal)["PolicyNames"]


def assert_refused_before_aws(live, access_request, reason: str) -> None:
    live.wait_for_status(access_request, Status.FAILED)
    assert reason in access_request.failure_reason
    alarm = SecurityAlarm.objects.get(request=access_request)
    assert alarm.kind == "approval_forged"
    assert principal_policies(live) == []
    codes = list(
        TimelineEvent.objects.filter(request=access_request)
        .exclude(code="approvals.timeline.sealed")
        .values_list("code", flat=True)
    )
    assert "approvals.activation.grant_attached" not in codes
    assert codes[-3:] == [
        "approvals.activation.started",
        "approvals.request.failed",
        "approvals.alarm.opened",
    ]


def test_forged_approval_rows_get_no_grant_fail_the_request_and_raise_an_alarm(live):
    live.start_worker()
    access_request = live.cast.open_request(profile_slug=live.aws.profile.slug)
    for approver in (live.cast.alice, live.cast.bob):
        forge_approval(access_request, approver)
    force_approved(access_request)

    app.send_task("approvals.activate_request", args=[str(access_request.pk)])

    assert_refused_before_aws(live, access_request, "carries no valid signature")


def test_genuine_signatures_copied_from_another_request_do_not_count(live):
    live.start_worker()
    genuine = live.open_approved()
    live.wait_for_status(genuine, Status.ACTIVE)
    target = live.cast.open_request(profile_slug=live.aws.profile.slug, ticket="INC-9999")
    for approval in Approval.objects.filter(request=genuine):
        forge_approval(
            target,
            approval.approver,
            key_id=approval.signature_key_id,
            signature=approval.signature,
            time_step=approval.time_step,
        )
    force_approved(target)
    policies_before = principal_policies(live)

    app.send_task("approvals.activate_request", args=[str(target.pk)])

    live.wait_for_status(target, Status.FAILED)
    assert "carries no valid signature" in target.failure_reason
    assert SecurityAlarm.objects.get(request=target).kind == "approval_forged"
    assert principal_policies(live) == policies_before  # only the genuine request's grant


def test_one_genuine_approval_and_one_forged_fail_the_activation(live):
    live.start_worker()
    access_request = live.cast.open_request(profile_slug=live.aws.profile.slug)
    from approvals.services.requests import request_approve

    request_approve(
        access_request_id=access_request.pk,
        approver=live.cast.alice,
        otp_code=fresh_code(live.cast.alice),
    )
    forge_approval(access_request, live.cast.bob, key_id=uuid.uuid4().hex[:16], signature="AA==")
    force_approved(access_request)

    app.send_task("approvals.activate_request", args=[str(access_request.pk)])

    assert_refused_before_aws(live, access_request, "approval by bob carries no valid signature")
