"""Every call of a break-glass session on the record: the sandbox's own CloudTrail delivers each
call through the profile's activity rule to its watch queue; no event is injected here."""

import json

import boto3
from botocore.config import Config
from botocore.exceptions import ClientError

from approvals.models import SecurityAlarm, SessionActivity, Status
from approvals.services.activity import SEAL_CODE, activity_digest, activity_seal_verify
from approvals.services.grants import request_revocation_drive
from approvals.services.requests import credentials_reveal, request_revoke
from approvals.timeline import timeline_verify
from tests.conftest import fresh_code
from tests.watch.helpers import active_request

EXTRA_ROLE_PERMISSIONS = {
    "Version": "2012-10-17",
    "Statement": [{"Effect": "Allow", "Action": ["s3:CreateBucket"], "Resource": "*"}],
}


def client(watched, service: str, keys: dict):
    return boto3.client(
        service,
        endpoint_url=watched.aws.sandbox.endpoint_url,
        region_name=watched.profile.region,
        config=Config(retries={"max_attempts": 1}, connect_timeout=3, read_timeout=5),
        **keys,
    )


def issued_keys(watched, access_request) -> dict:
    credentials = credentials_reveal(
        access_request_id=access_request.pk,
        user=watched.cast.requester,
        otp_code=fresh_code(watched.cast.requester),
    )
    return {
        "aws_access_key_id": credentials.access_key_id,
        "aws_secret_access_key": credentials.secret_access_key,
        "aws_session_token": credentials.session_token,
    }


def principal_keys(settings) -> dict:
    with open(settings.AWS_PRINCIPAL_CREDENTIALS_FILE) as handle:
        [keys] = json.load(handle).values()
    return {
        "aws_access_key_id": keys["access_key_id"],
        "aws_secret_access_key": keys["secret_access_key"],
    }


def denied(call) -> None:
    try:
        call()
    except ClientError as error:
        assert error.response["Error"]["Code"] in ("AccessDenied", "AccessDeniedException")
    else:
        raise AssertionError("the call was allowed")


def activity_of(access_request) -> list[SessionActivity]:
    return list(SessionActivity.objects.filter(request=access_request))


def test_every_call_of_an_issued_session_is_recorded_in_order_with_its_outcome(watched):
    iam = watched.aws.sandbox.client("iam")
    role_name = watched.profile.role_arn.rsplit("/", 1)[-1]
    iam.put_role_policy(
        RoleName=role_name,
        PolicyName="incident-extra",
        PolicyDocument=json.dumps(EXTRA_ROLE_PERMISSIONS),
    )
    access_request = active_request(watched.cast, watched.profile)
    keys = issued_keys(watched, access_request)

    client(watched, "s3", keys).list_buckets()
    client(watched, "ec2", keys).describe_regions()
    client(watched, "s3", keys).create_bucket(
        Bucket=f"incident-{str(access_request.pk)[:8]}",
        CreateBucketConfiguration={"LocationConstraint": watched.profile.region},
    )
    denied(lambda: client(watched, "sqs", keys).create_queue(QueueName="backdoor"))
    watched.poll_until(lambda: len(activity_of(access_request)) == 4)

    rows = activity_of(access_request)
    assert [(row.service, row.action, bool(row.error_code)) for row in rows] == [
        ("s3", "ListBuckets", False),
        ("ec2", "DescribeRegions", False),
        ("s3", "CreateBucket", False),
        ("sqs", "CreateQueue", True),
    ]
    assert rows[3].error_code.startswith("AccessDenied")
    assert [row.mutating for row in rows] == [False, False, True, True]
    assert all(row.source_identity == str(access_request.pk) for row in rows)
    assert rows[3].request_parameters["queueName"] == "backdoor"
    # The extra inline policy on the role is a change to the machinery (issue 12): that alarm only.
    assert not SecurityAlarm.objects.exclude(kind="watch_tampering").exists()
    # Sealed into the request's chain: count, span and the hash of the batch.
    seals = list(access_request.events.filter(code=SEAL_CODE))
    assert sum(seal.detail["count"] for seal in seals) == 4
    assert {row.seal_id for row in rows} == {seal.pk for seal in seals}
    for seal in seals:
        assert seal.detail["sha256"] == activity_digest(
            [row for row in rows if row.seal_id == seal.pk]
        )
    assert activity_seal_verify(access_request) == []
    assert timeline_verify().ok

    # After revocation the same session is refused: recorded as evidence, not an alarm.
    request_revoke(
        access_request_id=access_request.pk,
        actor=watched.cast.requester,
        otp_code=fresh_code(watched.cast.requester),
        reason="Incident resolved.",
    )
    assert request_revocation_drive(access_request_id=access_request.pk)
    access_request.refresh_from_db()
    assert access_request.status == Status.REVOKED
    denied(lambda: client(watched, "s3", keys).list_buckets())
    watched.poll_until(lambda: len(activity_of(access_request)) == 5)

    last = activity_of(access_request)[-1]
    assert (last.action, last.error_code, last.unexplained) == ("ListBuckets", "AccessDenied", "")
    assert not SecurityAlarm.objects.exclude(kind="watch_tampering").exists()


def test_a_changed_activity_row_breaks_its_seal(watched):
    access_request = active_request(watched.cast, watched.profile)
    client(watched, "s3", issued_keys(watched, access_request)).list_buckets()
    watched.poll_until(lambda: activity_of(access_request) and activity_of(access_request)[0].seal)

    SessionActivity.objects.filter(request=access_request).update(source_ip="203.0.113.9")

    assert activity_seal_verify(access_request) == [
        f"the activity sealed by event {activity_of(access_request)[0].seal.sequence} was changed"
    ]


def test_a_session_assumed_by_hand_with_a_made_up_identity_alarms_from_both_ends(watched, settings):
    # An attacker with the principal's keys and IAM write access lifts the grant's conditions.
    principal_name = watched.profile.principal_arn.rsplit("/", 1)[-1]
    watched.aws.sandbox.client("iam").put_user_policy(
        UserName=principal_name,
        PolicyName="attacker",
        PolicyDocument=json.dumps(
            {
                "Version": "2012-10-17",
                "Statement": [
                    {
                        "Effect": "Allow",
                        "Action": ["sts:AssumeRole", "sts:SetSourceIdentity", "sts:TagSession"],
                        "Resource": watched.profile.role_arn,
                    }
                ],
            }
        ),
    )
    sts = client(watched, "sts", principal_keys(settings))
    session = sts.assume_role(
        RoleArn=watched.profile.role_arn, RoleSessionName="by-hand", SourceIdentity="made-up"
    )["Credentials"]
    keys = {
        "aws_access_key_id": session["AccessKeyId"],
        "aws_secret_access_key": session["SecretAccessKey"],
        "aws_session_token": session["SessionToken"],
    }
    client(watched, "s3", keys).list_buckets()
    # The attacker's policy on the principal is also tampering (issue 12), a third alarm.
    watched.poll_until(lambda: SecurityAlarm.objects.count() == 3)
    assert SecurityAlarm.objects.get(kind="watch_tampering").detail["action"] == "iam:PutUserPolicy"

    kinds = sorted(
        SecurityAlarm.objects.exclude(kind="watch_tampering").values_list("kind", flat=True)
    )
    assert kinds == ["unexplained_activity", "unexplained_use"]
    call_alarm = SecurityAlarm.objects.get(kind="unexplained_activity")
    assert "s3:ListBuckets allowed" in call_alarm.title
    assert "source identity 'made-up' names no request" in call_alarm.title
    row = SessionActivity.objects.get()
    assert (row.request, row.access_key_id) == (None, session["AccessKeyId"])


def test_a_second_session_for_a_live_request_alarms_from_its_assume_role_and_its_calls(
    watched, settings
):
    access_request = active_request(watched.cast, watched.profile)
    # The principal's keys, used by hand, copying the live request's identity: the grant allows
    # it, but these are not the credentials the worker was issued.
    sts = client(watched, "sts", principal_keys(settings))
    session = sts.assume_role(
        RoleArn=watched.profile.role_arn,
        RoleSessionName="copy",
        SourceIdentity=str(access_request.pk),
    )["Credentials"]
    keys = {
        "aws_access_key_id": session["AccessKeyId"],
        "aws_secret_access_key": session["SecretAccessKey"],
        "aws_session_token": session["SessionToken"],
    }
    client(watched, "s3", keys).list_buckets()
    watched.poll_until(lambda: SecurityAlarm.objects.count() == 2)

    use_alarm = SecurityAlarm.objects.get(kind="unexplained_use")
    assert "a second session the portal did not open" in use_alarm.title
    call_alarm = SecurityAlarm.objects.get(kind="unexplained_activity")
    assert call_alarm.request == access_request
    assert "made with a session the portal did not issue" in call_alarm.title
