"""Issue 12, the protective boundary: a live session of the break-glass role (allowed "*" by the
role's own policies) is refused by AWS every change to the break-glass machinery, and, unless
its profile allows them, the persistence moves."""

import html
import json
from collections.abc import Callable

import pytest
from botocore.exceptions import ClientError
from django.contrib.auth.models import User
from django.test import Client
from django.urls import reverse

from approvals.models import Status
from approvals.services.identity import totp_device_set
from awsaccess import policies
from awsaccess.provisioning import profile_provision
from tests.awsaccess.hostile import HostileSession, hostile_session
from tests.conftest import fresh_code

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

    hostile.client("iam").create_user(UserName=name)

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
    for sid in ("BreakGlassProtectIdentities", "BreakGlassProtectWatch", "BreakGlassNoPersistence"):
        assert sid in text
    assert "cloudtrail:StopLogging" in text and "iam:CreateLoginProfile" in text
