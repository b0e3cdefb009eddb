"""Issue 12, the protective boundary: a live session of the break-glass role (allowed "*" by the
role's own policies) is refused by AWS every change to the break-glass machinery, and, unless
its profile allows them, the persistence moves."""

import html
import json
import uuid
from collections.abc import Callable
from datetime import UTC, datetime

import pytest
from botocore.exceptions import ClientError
from django.contrib.auth.models import User
from django.test import Client
from django.urls import reverse

from approvals.models import PoisonMessage, SecurityAlarm, SessionActivity, Status
from approvals.services.identity import totp_device_set
from approvals.services.watch import watch_poll
from awsaccess import policies
from awsaccess.provisioning import profile_provision
from tests.awsaccess.hostile import HostileSession, hostile_session, session_admin_policy_arn
from tests.conftest import fresh_code
from tests.processes import wait_until

HARMLESS = json.dumps(
    {
        "Version": "2012-10-17",
        "Statement": [{"Effect": "Allow", "Action": "s3:ListAllMyBuckets", "Resource": "*"}],
    }
)
TRAIL = "breakglass-test-trail"
# Query-protocol services (IAM, STS) say AccessDenied, JSON ones AccessDeniedException.
DENIED = {"AccessDenied", "AccessDeniedException"}


@pytest.fixture
def hostile(cast, aws_sandbox, settings, tmp_path) -> HostileSession:
    return hostile_session(cast=cast, aws_sandbox=aws_sandbox, settings=settings, tmp_path=tmp_path)


def refused(attempt: Callable[[], object]) -> str:
    """The AWS error code of an attempt that must fail."""
    with pytest.raises(ClientError) as excinfo:
        attempt()
    return str(excinfo.value.response["Error"]["Code"])


def machinery_changes(s: HostileSession) -> dict[str, Callable[[], object]]:
    iam, events, sqs = s.client("iam"), s.client("events"), s.client("sqs")
    role, principal = s.role_name, s.principal_name
    watch = policies.watch_name(role)
    boundary = policies.boundary_policy_arn(s.aws.profile.aws_target())
    queue_url = s.provisioner("sqs").get_queue_url(QueueName=watch)["QueueUrl"]
    return {
        "plant a deny name on the role": lambda: iam.put_role_policy(
            RoleName=role,
            PolicyName=f"breakglass-revoked-{s.source_identity}-until-20991231T000000Z",
            PolicyDocument=HARMLESS,
        ),
        "delete the role's boundary": lambda: iam.delete_role_permissions_boundary(RoleName=role),
        "replace the role's boundary": lambda: iam.put_role_permissions_boundary(
            RoleName=role, PermissionsBoundary="arn:aws:iam::aws:policy/AdministratorAccess"
        ),
        "rewrite the boundary policy": lambda: iam.create_policy_version(
            PolicyArn=boundary, PolicyDocument=HARMLESS, SetAsDefault=True
        ),
        "widen the trust policy": lambda: iam.update_assume_role_policy(
            RoleName=role, PolicyDocument=HARMLESS
        ),
        "tag the role": lambda: iam.tag_role(RoleName=role, Tags=[{"Key": "k", "Value": "v"}]),
        "detach the role's policies": lambda: iam.detach_role_policy(
            RoleName=role,
            PolicyArn=f"arn:aws:iam::{s.aws.profile.account_id}:policy/breakglass-test-hostile-admin",
        ),
        "grant the principal": lambda: iam.put_user_policy(
            UserName=principal, PolicyName="breakglass-grant-zzz", PolicyDocument=HARMLESS
        ),
        "key for the principal": lambda: iam.create_access_key(UserName=principal),
        "key for the broker": lambda: iam.create_access_key(UserName="breakglass-broker"),
        "policy on the provisioner": lambda: iam.put_user_policy(
            UserName="breakglass-provisioner", PolicyName="x", PolicyDocument=HARMLESS
        ),
        "disable the watch rule": lambda: events.disable_rule(Name=watch),
        "delete the watch rule": lambda: events.delete_rule(Name=watch),
        "retarget the watch": lambda: events.put_targets(
            Rule=watch,
            Targets=[{"Id": policies.WATCH_TARGET_ID, "Arn": "arn:aws:sqs:x", "Input": "{}"}],
        ),
        "remove the watch target": lambda: events.remove_targets(
            Rule=watch, Ids=[policies.WATCH_TARGET_ID]
        ),
        "open the queue policy": lambda: sqs.set_queue_attributes(
            QueueUrl=queue_url, Attributes={"Policy": HARMLESS}
        ),
        "eat the watch's messages": lambda: sqs.receive_message(QueueUrl=queue_url),
        "forge a watch message": lambda: sqs.send_message(QueueUrl=queue_url, MessageBody="{}"),
        "forge a batch of them": lambda: sqs.send_message_batch(
            QueueUrl=queue_url, Entries=[{"Id": "1", "MessageBody": "{}"}]
        ),
        "purge the watch queue": lambda: sqs.purge_queue(QueueUrl=queue_url),
        "delete the watch queue": lambda: sqs.delete_queue(QueueUrl=queue_url),
    }


def trail_changes(s: HostileSession) -> dict[str, Callable[[], object]]:
    cloudtrail = s.client("cloudtrail")
    return {
        "stop the trail": lambda: cloudtrail.stop_logging(Name=TRAIL),
        "delete the trail": lambda: cloudtrail.delete_trail(Name=TRAIL),
        "update the trail": lambda: cloudtrail.update_trail(
            Name=TRAIL, S3BucketName="breakglass-sandbox-evidence", S3KeyPrefix="elsewhere"
        ),
        "narrow the event selectors": lambda: cloudtrail.put_event_selectors(
            TrailName=TRAIL,
            EventSelectors=[{"ReadWriteType": "ReadOnly", "IncludeManagementEvents": False}],
        ),
    }


def persistence_moves(s: HostileSession) -> dict[str, Callable[[], object]]:
    iam = s.client("iam")
    name = f"persist-{s.source_identity[:8]}"
    return {
        "create a user": lambda: iam.create_user(UserName=name),
        "create a role": lambda: iam.create_role(RoleName=name, AssumeRolePolicyDocument=HARMLESS),
        "key for another user": lambda: iam.create_access_key(UserName="someone"),
        "console password": lambda: iam.create_login_profile(
            UserName="someone", Password="Correct-Horse-9"
        ),
        "reset a console password": lambda: iam.update_login_profile(
            UserName="someone", Password="Correct-Horse-9"
        ),
        "service credential": lambda: iam.create_service_specific_credential(
            UserName="someone", ServiceName="codecommit.amazonaws.com"
        ),
        "join a group": lambda: iam.add_user_to_group(GroupName="admins", UserName="someone"),
    }


def test_every_change_to_the_machinery_is_refused_by_aws(hostile):
    provisioner_trail = hostile.provisioner("cloudtrail")
    provisioner_trail.create_trail(Name=TRAIL, S3BucketName="breakglass-sandbox-evidence")
    try:
        attempts = {**machinery_changes(hostile), **trail_changes(hostile)}
        codes = {what: refused(attempt) for what, attempt in attempts.items()}
    finally:
        provisioner_trail.delete_trail(Name=TRAIL)
    assert {what: code for what, code in codes.items() if code not in DENIED} == {}
    assert hostile.works()  # the role's own power is untouched
    report = profile_provision(
        hostile.aws.sandbox.provisioner, hostile.aws.profile.aws_target(), check_only=True
    )
    assert not report.has_drift, report


def test_persistence_moves_are_refused_by_default(hostile):
    codes = {what: refused(attempt) for what, attempt in persistence_moves(hostile).items()}
    assert set(codes.values()) == {"AccessDenied"}, codes  # all IAM


def test_a_profile_may_allow_persistence_moves_but_never_machinery_changes(hostile):
    profile = hostile.aws.profile
    profile.deny_persistence = False
    profile.save()
    report = profile_provision(
        hostile.aws.sandbox.provisioner, profile.aws_target(), check_only=False, fix_drift=True
    )
    assert ("role boundary policy", "fixed") in [(f.resource, f.status) for f in report.findings]
    name = f"persist-{hostile.source_identity[:8]}"

    iam = hostile.client("iam")
    iam.create_user(UserName=name)
    # AWS authorises joining a group against the group: an ordinary one is the profile's to
    # allow, a break-glass one never (whoever joins it).
    hostile.provisioner("iam").create_group(GroupName=f"ops-{name}")
    hostile.provisioner("iam").create_group(GroupName=f"breakglass-{name}")
    iam.add_user_to_group(GroupName=f"ops-{name}", UserName=name)
    assert (
        refused(lambda: iam.add_user_to_group(GroupName=f"breakglass-{name}", UserName=name))
        in DENIED
    )

    hostile.provisioner("iam").remove_user_from_group(GroupName=f"ops-{name}", UserName=name)
    for group in (f"ops-{name}", f"breakglass-{name}"):
        hostile.provisioner("iam").delete_group(GroupName=group)
    hostile.provisioner("iam").delete_user(UserName=name)
    principal = hostile.principal_name
    assert refused(lambda: hostile.client("iam").create_access_key(UserName=principal)) in DENIED
    assert (
        refused(
            lambda: hostile.client("events").disable_rule(
                Name=policies.watch_name(hostile.role_name)
            )
        )
        in DENIED
    )


def watch_until(hostile: HostileSession, predicate: Callable[[], object], what: str) -> None:
    """Run the watcher's poll until `predicate()` holds (bounded)."""

    def done() -> object:
        watch_poll(wait_seconds=1)
        return predicate()

    wait_until(done, timeout=30, interval=0, what=what)


def forged_records(s: HostileSession) -> list[dict]:
    """Made-up CloudTrail records: the provisioner disabling the watch rule (a tampering alarm
    blaming someone else), and a call another session never made (a row on its record)."""
    now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    common = {"eventVersion": "1.09", "eventTime": now, "awsRegion": s.aws.profile.region}
    return [
        {
            **common,
            "eventID": str(uuid.uuid4()),
            "eventSource": "events.amazonaws.com",
            "eventName": "DisableRule",
            "readOnly": False,
            "requestParameters": {"name": policies.watch_name(s.role_name)},
            "userIdentity": {
                "type": "IAMUser",
                "arn": f"arn:aws:iam::{s.aws.profile.account_id}:user/breakglass-provisioner",
            },
        },
        {
            **common,
            "eventID": str(uuid.uuid4()),
            "eventSource": "s3.amazonaws.com",
            "eventName": "DeleteBucket",
            "readOnly": False,
            "requestParameters": {"bucketName": "evidence"},
            "userIdentity": {
                "type": "AssumedRole",
                "arn": f"{s.aws.profile.role_arn}/someone-else",
                "sessionContext": {
                    "sessionIssuer": {"type": "Role", "arn": s.aws.profile.role_arn},
                    "sourceIdentity": str(uuid.uuid4()),
                },
            },
        },
    ]


def test_a_session_cannot_forge_the_events_the_watch_reads(hostile):
    records = forged_records(hostile)
    forged_ids = [record["eventID"] for record in records]
    entries = [
        {
            "DetailType": "AWS API Call via CloudTrail",
            "Detail": json.dumps(record),
            "Source": source,
        }
        for record in records
        for source in ("forged.by.session", "aws.events")
    ]

    answer = hostile.client("events").put_events(Entries=entries)

    # "aws." sources are AWS's own; any other is anyone's, and no portal rule matches it.
    codes = [entry.get("ErrorCode") for entry in answer["Entries"]]
    assert codes == [None, "NotAuthorizedForSourceException"] * 2, answer
    hostile.client("sqs").list_queues(QueueNamePrefix="after-the-forgeries")
    watch_until(
        hostile,
        lambda: SessionActivity.objects.filter(
            request=hostile.request, action="ListQueues"
        ).exists(),
        "the session's next call on its record",
    )
    watch_poll(wait_seconds=1)
    # (The fixture's own set-up, the role's admin policy, is a real tampering alarm.)
    alarms = SecurityAlarm.objects.filter(kind="watch_tampering", profile=hostile.aws.profile)
    assert not alarms.filter(detail__action="events:DisableRule").exists()
    assert not alarms.filter(detail__event_id__in=forged_ids).exists()
    assert not SessionActivity.objects.filter(event_id__in=forged_ids).exists()
    assert not [p for p in PoisonMessage.objects.all() if any(i in p.body for i in forged_ids)]


def test_a_session_cannot_chain_into_another_role_even_where_persistence_is_allowed(hostile):
    provisioner, account = hostile.provisioner("iam"), hostile.aws.profile.account_id
    other = f"ops-admin-{hostile.source_identity[:8]}"
    trust = {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Effect": "Allow",
                "Principal": {"AWS": f"arn:aws:iam::{account}:root"},
                "Action": "sts:AssumeRole",
            }
        ],
    }
    other_arn = provisioner.create_role(RoleName=other, AssumeRolePolicyDocument=json.dumps(trust))[
        "Role"
    ]["Arn"]
    provisioner.attach_role_policy(
        RoleName=other, PolicyArn=session_admin_policy_arn(hostile.aws.sandbox)
    )
    sts = hostile.client("sts")

    def chain() -> object:
        return sts.assume_role(RoleArn=other_arn, RoleSessionName="outlive-revocation")

    try:
        assert refused(chain) in DENIED
        profile = hostile.aws.profile
        profile.deny_persistence = False
        profile.save()
        profile_provision(
            hostile.aws.sandbox.provisioner, profile.aws_target(), check_only=False, fix_drift=True
        )
        assert refused(chain) in DENIED
        watch_until(
            hostile,
            lambda: SecurityAlarm.objects.filter(
                kind="watch_tampering", profile=profile, detail__action="sts:AssumeRole"
            ).exists(),
            "the tampering alarm for the attempted chain",
        )
    finally:
        provisioner.detach_role_policy(
            RoleName=other, PolicyArn=session_admin_policy_arn(hostile.aws.sandbox)
        )
        provisioner.delete_role(RoleName=other)
    alarm = SecurityAlarm.objects.filter(kind="watch_tampering", profile=profile).first()
    assert f"tried sts:AssumeRole (refused: AccessDenied) on role {other_arn}" in alarm.title
    assert alarm.request == hostile.request


def test_after_revocation_the_session_is_refused_everything(hostile):
    hostile.revoke()
    assert hostile.request.status == Status.REVOKED
    assert not hostile.works()
    assert refused(lambda: hostile.client("iam").create_user(UserName="late")) in DENIED


def test_the_admin_profile_page_shows_what_the_boundary_protects(cast):
    password = "root-password-123"
    root = User.objects.create_superuser("root", password=password)
    totp_device_set(user=root)
    client = Client()
    client.post(reverse("login"), {"username": "root", "password": password})
    client.post(reverse("login_otp"), {"code": fresh_code(root)})

    page = client.get(f"/admin/approvals/accessprofile/{cast.profile.pk}/change/")

    assert page.status_code == 200
    text = html.unescape(page.content.decode())
    assert policies.boundary_policy_arn(cast.profile.aws_target()) in text
    for sid in (
        "BreakGlassProtectIdentities",
        "BreakGlassProtectWatch",
        "BreakGlassNoRoleChaining",
        "BreakGlassNoPersistence",
    ):
        assert sid in text
    for action in ("cloudtrail:StopLogging", "iam:CreateLoginProfile", "sqs:SendMessage"):
        assert action in text
