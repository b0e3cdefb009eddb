from typing import Any

import boto3
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError
from celery import signals

from approvals.errors import NotAllowed, SignatureRefused
from approvals.models import (
    IssuedCredential,
    SecurityAlarm,
    Status,
    TimelineEvent,
    WebhookEndpoint,
)
from approvals.sealing import seal
from approvals.services.queue import Job
from approvals.services.requests import credentials_reveal, request_approve, request_revoke
from awsaccess.runtime import access_engine
from portal.celery import app
from tests.conftest import fresh_code, totp_code
from tests.processes import wait_until

pytestmark = pytest.mark.django_db(transaction=True)


def codes(access_request) -> list[str]:
    return list(TimelineEvent.objects.filter(request=access_request).values_list("code", flat=True))


def grant_attached(live, access_request) -> bool:
    from approvals.services.grants import _aws_grant

    access_request.refresh_from_db()
    return access_engine().grant_is_attached(
        access_request.profile.aws_target(), _aws_grant(access_request)
    )


def test_the_second_approval_activates_and_only_the_requester_gets_working_credentials(live):
    live.start_worker()
    access_request = live.open_approved()

    live.wait_for_status(access_request, Status.ACTIVE)

    assert access_request.time_to_access_ms is not None
    assert access_request.expires_at is not None
    with pytest.raises(NotAllowed, match="only the requester"):
        credentials_reveal(
            access_request_id=access_request.pk,
            user=live.cast.alice,
            otp_code=fresh_code(live.cast.alice),
        )
    credentials = live.reveal(access_request)
    assert live.aws.s3_with(credentials).list_buckets()["Buckets"] is not None
    stored = IssuedCredential.objects.get(request=access_request)
    assert credentials.secret_access_key not in stored.sealed
    assert codes(access_request)[-4:] == [
        "approvals.activation.started",
        "approvals.activation.grant_attached",
        "approvals.request.active",
        "approvals.credentials.viewed",
    ]


def test_the_second_approval_sends_the_activation_before_its_notices_and_webhooks(live):
    WebhookEndpoint.objects.create(url="https://hooks.example.test/in", sealed_secret=seal(b"s"))
    access_request = live.cast.open_request(profile_slug=live.aws.profile.slug)
    request_approve(
        access_request_id=access_request.pk,
        approver=live.cast.alice,
        otp_code=fresh_code(live.cast.alice),
    )
    sent: list[str] = []

    def published(sender: str, **_: Any) -> None:
        sent.append(sender)

    # Celery's own signal, as each message goes to the (real) broker.
    signals.before_task_publish.connect(published, weak=False)
    try:
        request_approve(
            access_request_id=access_request.pk,
            approver=live.cast.bob,
            otp_code=fresh_code(live.cast.bob),
        )
    finally:
        signals.before_task_publish.disconnect(published)

    assert sent[0] == Job.ACTIVATE
    assert Job.DELIVER_WEBHOOK in sent[1:]


def test_an_approver_revokes_early_with_totp_and_the_credentials_stop_working(live):
    live.start_worker()
    access_request = live.open_approved()
    live.wait_for_status(access_request, Status.ACTIVE)
    credentials = live.reveal(access_request)

    with pytest.raises(SignatureRefused, match="not valid"):
        request_revoke(
            access_request_id=access_request.pk,
            actor=live.cast.carol,
            otp_code="000000" if totp_code(live.cast.carol) != "000000" else "111111",
            reason="incident over",
        )
    with pytest.raises(NotAllowed, match="only the requester or an approver"):
        request_revoke(
            access_request_id=access_request.pk,
            actor=live.cast.outsider,
            otp_code=fresh_code(live.cast.outsider),
            reason="incident over",
        )
    live.revoke(access_request, by=live.cast.alice, reason="Incident resolved, closing access.")

    with pytest.raises(ClientError) as denied:
        live.aws.s3_with(credentials).list_buckets()
    assert denied.value.response["Error"]["Code"] == "AccessDenied"
    assert access_request.time_to_revoke_ms is not None
    stored = IssuedCredential.objects.get(request=access_request)
    assert (stored.sealed, stored.wiped_at is not None) == ("", True)
    assert not grant_attached(live, access_request)
    assert "approvals.revocation.refused" in codes(access_request)


def test_duplicate_deliveries_of_activation_and_revocation_do_no_harm(live):
    live.start_worker()
    access_request = live.open_approved()
    live.wait_for_status(access_request, Status.ACTIVE)

    for _ in range(2):
        app.send_task("approvals.activate_request", args=[str(access_request.pk)])
    request_revoke(
        access_request_id=access_request.pk,
        actor=live.cast.requester,
        otp_code=fresh_code(live.cast.requester),
        reason="done",
    )
    for _ in range(2):
        app.send_task("approvals.revoke_request", args=[str(access_request.pk)])
    live.wait_for_status(access_request, Status.REVOKED)
    wait_until(lambda: "succeeded" in live.processes[0].log_text(), timeout=10)

    all_codes = codes(access_request)
    assert all_codes.count("approvals.request.active") == 1
    assert all_codes.count("approvals.request.revoked") == 1
    assert IssuedCredential.objects.filter(request=access_request).count() == 1
    assert "Traceback" not in live.processes[0].log_text()


def test_a_permanent_aws_error_fails_the_activation_with_nothing_left_attached(live, tmp_path):
    (tmp_path / "principals.json").write_text("{}")  # the principal's keys are gone
    live.start_worker()
    access_request = live.open_approved()

    live.wait_for_status(access_request, Status.FAILED)

    assert "no keys configured for break-glass principal" in access_request.failure_reason
    assert not grant_attached(live, access_request)
    assert not IssuedCredential.objects.filter(request=access_request).exists()
    event = (
        TimelineEvent.objects.filter(request=access_request)
        .exclude(code="approvals.timeline.sealed")
        .last()
    )
    assert (event.code, event.outcome) == ("approvals.request.failed", "failure")


BROKEN_KEYS_FILE = '{"arn:aws:iam::123456789012:user/x": {"secret_access_key": "wJalrXUtnFEMI'


def test_a_broken_keys_file_fails_the_activation_cleanly_without_quoting_it(live, tmp_path):
    # An operator's edit cut the secrets file short: the grant is attached before keys are read.
    (tmp_path / "principals.json").write_text(BROKEN_KEYS_FILE)
    live.start_worker()
    access_request = live.open_approved()

    live.wait_for_status(access_request, Status.FAILED, timeout=20)

    assert access_request.failure_reason == "the principals' keys file is not valid JSON"
    assert "approvals.activation.grant_attached" in codes(access_request)
    assert not grant_attached(live, access_request)
    assert not IssuedCredential.objects.filter(request=access_request).exists()
    assert "wJalrXUtnFEMI" not in live.processes[0].log_text()


def test_a_keys_file_broken_during_a_grant_does_not_stop_its_revocation(live, tmp_path):
    """From the attacker's side: someone with admin keys plants a key on the principal and
    breaks the keys file, hoping revocation cannot tell the keys apart. The session still ends,
    the planted key cannot reopen it, and the extra key is an alarm at once (the portal's own
    key is not deleted on a guess)."""
    live.start_worker()
    access_request = live.open_approved()
    live.wait_for_status(access_request, Status.ACTIVE)
    credentials = live.reveal(access_request)
    iam = live.aws.sandbox.client("iam", region_name="us-east-1")
    principal = access_request.profile.principal_arn.rsplit("/", 1)[1]
    planted = iam.create_access_key(UserName=principal)["AccessKey"]
    (tmp_path / "principals.json").write_text(BROKEN_KEYS_FILE)

    live.revoke(access_request)

    assert not grant_attached(live, access_request)
    with pytest.raises(ClientError, match="AccessDenied"):
        live.aws.s3_with(credentials).list_buckets()
    sts = boto3.client(
        "sts",
        endpoint_url=live.aws.sandbox.endpoint_url,
        region_name=access_request.profile.region,
        aws_access_key_id=planted["AccessKeyId"],
        aws_secret_access_key=planted["SecretAccessKey"],
        config=Config(retries={"max_attempts": 1}),
    )
    with pytest.raises(ClientError, match="AccessDenied"):  # its grant is gone with the request
        sts.assume_role(
            RoleArn=access_request.profile.role_arn,
            RoleSessionName="back-door",
            SourceIdentity=access_request.source_identity,
        )
    alarm = SecurityAlarm.objects.get(kind="principal_keys_unverified", request=access_request)
    assert planted["AccessKeyId"] in alarm.detail["keys"] and len(alarm.detail["keys"]) == 2
