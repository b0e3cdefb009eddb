"""Issue 12, the live session's side: what its boundary refuses is still an alarm within 10 s
(someone tried), what its profile allows (persistence moves) is an alarm within 10 s naming the
session; and the revocation fallback never leaves another live grant ACTIVE with dead
credentials."""

import json
import time
import uuid
from datetime import UTC, datetime, timedelta

import pytest
from botocore.exceptions import ClientError

from approvals.models import IssuedCredential, SecurityAlarm, Status
from approvals.services.grants import request_revocation_drive
from approvals.services.requests import credentials_reveal
from approvals.services.watch import watch_poll
from awsaccess import policies
from awsaccess.provisioning import profile_provision
from tests.awsaccess.hostile import HostileSession, hostile_session
from tests.conftest import fresh_code
from tests.processes import wait_until
from tests.watch.helpers import active_request

ALARM_WITHIN_SECONDS = 10
HARMLESS = json.dumps(
    {
        "Version": "2012-10-17",
        "Statement": [{"Effect": "Allow", "Action": "s3:ListAllMyBuckets", "Resource": "*"}],
    }
)


@pytest.fixture
def hostile(cast, aws_sandbox, settings, tmp_path) -> HostileSession:
    session = hostile_session(
        cast=cast, aws_sandbox=aws_sandbox, settings=settings, tmp_path=tmp_path
    )
    aws_sandbox.watch_queue_clear(session.aws.profile.aws_target())  # the test's own set-up
    cast.profile.delete()  # only the hostile session's profile is watched
    return session


def alarm_about(action: str, *, timeout: float = 30) -> SecurityAlarm:
    """Poll the watch queues (1 s long polls) until a tampering alarm names `action`."""

    def raised() -> bool:
        watch_poll(wait_seconds=1)
        return SecurityAlarm.objects.filter(kind="watch_tampering", detail__action=action).exists()

    wait_until(raised, timeout=timeout, interval=0, what=f"a tampering alarm about {action}")
    return SecurityAlarm.objects.get(kind="watch_tampering", detail__action=action)


@pytest.mark.parametrize(
    ("attempt", "action"),
    [
        ("plant a deny name on the role", "iam:PutRolePolicy"),
        ("disable the watch rule", "events:DisableRule"),
        ("stop the trail", "cloudtrail:StopLogging"),
    ],
)
def test_a_refused_sabotage_is_still_alarmed_in_seconds_naming_the_session(
    hostile, attempt, action
):
    calls = {
        "plant a deny name on the role": lambda: hostile.client("iam").put_role_policy(
            RoleName=hostile.role_name,
            PolicyName=f"breakglass-revoked-{hostile.source_identity}-until-20991231T000000Z",
            PolicyDocument=HARMLESS,
        ),
        "disable the watch rule": lambda: hostile.client("events").disable_rule(
            Name=policies.watch_name(hostile.role_name)
        ),
        "stop the trail": lambda: hostile.client("cloudtrail").stop_logging(
            Name="breakglass-sandbox-trail"
        ),
    }
    started = time.time()
    with pytest.raises(ClientError) as excinfo:
        calls[attempt]()
    assert excinfo.value.response["Error"]["Code"] in ("AccessDenied", "AccessDeniedException")

    alarm = alarm_about(action)

    assert alarm.opened_at.timestamp() - started <= ALARM_WITHIN_SECONDS
    assert alarm.detail["source_identity"] == hostile.source_identity
    assert alarm.detail["refused"].startswith("AccessDenied")
    assert f"tried {action}" in alarm.title
    assert alarm.request_id == hostile.request.pk


def test_a_persistence_move_the_profile_allows_is_alarmed_in_seconds(hostile):
    profile = hostile.aws.profile
    profile.deny_persistence = False
    profile.save()
    sandbox = hostile.aws.sandbox
    profile_provision(sandbox.provisioner, profile.aws_target(), check_only=False, fix_drift=True)
    sandbox.watch_queue_clear(profile.aws_target())
    name = f"persist-{uuid.uuid4().hex[:8]}"
    started = time.time()

    hostile.client("iam").create_user(UserName=name)  # allowed: IAM, recorded in us-east-1

    try:
        alarm = alarm_about("iam:CreateUser")
    finally:
        hostile.provisioner("iam").delete_user(UserName=name)
    assert alarm.opened_at.timestamp() - started <= ALARM_WITHIN_SECONDS
    assert alarm.detail["source_identity"] == hostile.source_identity
    assert "did iam:CreateUser on the account" in alarm.title
    assert alarm.detail["region"] == "us-east-1"  # forwarded to the profile's region


def _fill_role(hostile: HostileSession, *, plausible: bool = True) -> None:
    """The role's inline space full of exact revocation denies whose names a revocation could
    have written by now (plausible), or whose not-after is decades away (planted)."""
    iam = hostile.provisioner("iam")
    until = datetime.now(UTC) + timedelta(minutes=30)
    if not plausible:
        until = datetime(2099, 1, 1, tzinfo=UTC)
    for _ in range(200):
        request_id = str(uuid.uuid4())
        try:
            iam.put_role_policy(
                RoleName=hostile.role_name,
                PolicyName=policies.revocation_policy_name(request_id, until),
                PolicyDocument=json.dumps(policies.revocation_policy(request_id)),
            )
        except ClientError as error:
            assert error.response["Error"]["Code"] == "LimitExceeded"
            return
    pytest.fail("the role's inline policy limit was never reached")


def _reveal(hostile: HostileSession, access_request):
    return credentials_reveal(
        access_request_id=access_request.pk,
        user=hostile.cast.requester,
        otp_code=fresh_code(hostile.cast.requester),
    )


def test_the_fallback_reissues_the_other_live_grants(hostile):
    other = active_request(hostile.cast, hostile.aws.profile, ticket="INC-2")
    old = hostile.aws.s3_with(_reveal(hostile, other))
    old.list_buckets()
    _fill_role(hostile)

    hostile.revoke()

    assert hostile.request.status == Status.REVOKED and not hostile.works()
    other.refresh_from_db()
    assert other.status == Status.ACTIVE
    with pytest.raises(ClientError):
        old.list_buckets()  # cut off by the fallback …
    hostile.aws.s3_with(_reveal(hostile, other)).list_buckets()  # … and re-issued
    alarm = SecurityAlarm.objects.get(kind="revocation_fallback")
    assert alarm.detail["reissued"] == [str(other.pk)] and alarm.detail["ended"] == []
    assert "1 grant(s) re-issued, 0 ended" in alarm.title
    assert other.events.filter(code="approvals.credentials.reissued").exists()
    # The fallback's own writes are the broker's routine: no tampering alarm blames it.
    hostile.aws.sandbox.trail_idle()
    for _ in range(3):
        watch_poll(wait_seconds=1)
    blamed = SecurityAlarm.objects.filter(kind="watch_tampering", title__contains="broker")
    assert not blamed.exists(), [a.title for a in blamed]
    assert SecurityAlarm.objects.filter(kind="watch_tampering").exists()  # the fill was seen


def test_denies_no_revocation_could_have_written_cannot_force_the_fallback(hostile):
    """From the attacker's side: exact denies that outlive any session fill the role, so that
    the next revocation would cut every live grant; they are pruned instead."""
    other = active_request(hostile.cast, hostile.aws.profile, ticket="INC-5")
    other_s3 = hostile.aws.s3_with(_reveal(hostile, other))
    _fill_role(hostile, plausible=False)

    hostile.revoke()

    assert hostile.request.status == Status.REVOKED and not hostile.works()
    other_s3.list_buckets()  # the other live grant was never cut off
    assert not SecurityAlarm.objects.filter(kind="revocation_fallback").exists()
    names = hostile.provisioner("iam").list_role_policies(RoleName=hostile.role_name)
    assert not any(n.startswith("breakglass-revoked-before-") for n in names["PolicyNames"])


def test_the_fallback_ends_a_grant_it_cannot_reissue(hostile, settings, tmp_path):
    other = active_request(hostile.cast, hostile.aws.profile, ticket="INC-3")
    issued_at = IssuedCredential.objects.get(request=other).issued_at
    _fill_role(hostile)
    nobody = tmp_path / "no-principal-keys.json"
    nobody.write_text("{}")
    settings.AWS_PRINCIPAL_CREDENTIALS_FILE = str(nobody)  # new credentials cannot be had

    hostile.revoke()

    other.refresh_from_db()
    assert other.status == Status.REVOKING  # never ACTIVE with dead credentials
    assert IssuedCredential.objects.get(request=other).issued_at == issued_at
    alarm = SecurityAlarm.objects.get(kind="revocation_fallback")
    assert alarm.detail["ended"] == [str(other.pk)]
    assert request_revocation_drive(access_request_id=other.pk)
    other.refresh_from_db()
    assert other.status == Status.REVOKED
