"""Issue 12, revocation: a live session cannot talk the portal out of revoking it."""

import json

import boto3
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError

from approvals.models import IssuedCredential, Status
from approvals.services.grants import _aws_grant, request_revocation_drive
from approvals.services.requests import request_revoke
from awsaccess import policies, runtime
from awsaccess.engine import RevocationUnconfirmedError
from tests.awsaccess.hostile import HostileSession, hostile_session
from tests.conftest import fresh_code
from tests.watch.helpers import active_request

HARMLESS = {
    "Version": "2012-10-17",
    "Statement": [{"Effect": "Allow", "Action": "s3:ListAllMyBuckets", "Resource": "*"}],
}


@pytest.fixture
def hostile(cast, aws_sandbox, settings, tmp_path) -> HostileSession:
    return hostile_session(cast=cast, aws_sandbox=aws_sandbox, settings=settings, tmp_path=tmp_path)


def assume_with(session: HostileSession, key: dict, source_identity: str):
    sts = boto3.client(
        "sts",
        endpoint_url=session.credentials.endpoint_url,
        region_name=session.aws.profile.region,
        aws_access_key_id=key["AccessKeyId"],
        aws_secret_access_key=key["SecretAccessKey"],
        config=Config(retries={"max_attempts": 1}),
    )
    return sts.assume_role(
        RoleArn=session.aws.profile.role_arn,
        RoleSessionName="back-door",
        SourceIdentity=source_identity,
    )


def plant_way_back_in(session: HostileSession, iam) -> dict:
    """The issue's attack: a deny *name* that is harmless, a grant of its own, a second key."""
    iam.put_role_policy(
        RoleName=session.role_name,
        PolicyName=f"breakglass-revoked-{session.source_identity}-until-20991231T000000Z",
        PolicyDocument=json.dumps(HARMLESS),
    )
    iam.put_user_policy(
        UserName=session.principal_name,
        PolicyName="breakglass-grant-zzz",
        PolicyDocument=json.dumps(
            {
                "Version": "2012-10-17",
                "Statement": [
                    {
                        "Effect": "Allow",
                        "Action": policies.ASSUME_ACTIONS,
                        "Resource": session.aws.profile.role_arn,
                    }
                ],
            }
        ),
    )
    return iam.create_access_key(UserName=session.principal_name)["AccessKey"]


def test_planted_deny_name_grant_and_key_do_not_survive_revocation(hostile):
    with pytest.raises(ClientError) as excinfo:  # the role's boundary refuses the session...
        plant_way_back_in(hostile, hostile.client("iam"))
    assert excinfo.value.response["Error"]["Code"] == "AccessDenied"
    # ...and revocation does not rely on it: an identity outside the boundary plants them.
    planted_key = plant_way_back_in(hostile, hostile.provisioner("iam"))
    assert assume_with(hostile, planted_key, "someone-else")  # the back door works while live

    hostile.revoke()

    assert hostile.request.status == Status.REVOKED
    assert not hostile.works()
    with pytest.raises(ClientError):
        assume_with(hostile, planted_key, "someone-else")
    iam = hostile.provisioner("iam")
    names = iam.list_role_policies(RoleName=hostile.role_name)["PolicyNames"]
    ours = [n for n in names if policies.revocation_request_id(n) == hostile.source_identity]
    assert len(ours) == 1 and not ours[0].endswith("-until-20991231T000000Z")
    held = iam.get_role_policy(RoleName=hostile.role_name, PolicyName=ours[0])["PolicyDocument"]
    assert policies.same_document(held, policies.revocation_policy(hostile.source_identity))
    assert iam.list_user_policies(UserName=hostile.principal_name)["PolicyNames"] == []
    keys = iam.list_access_keys(UserName=hostile.principal_name)["AccessKeyMetadata"]
    portal_key = runtime.principal_keys(hostile.aws.profile.principal_arn).access_key_id
    assert [k["AccessKeyId"] for k in keys] == [portal_key]


def test_the_other_live_grants_are_kept_and_a_tampered_one_is_restored(hostile):
    other = active_request(hostile.cast, hostile.aws.profile)
    iam = hostile.provisioner("iam")
    other_grant = f"breakglass-grant-{other.source_identity}"
    # Someone (outside the boundary) widens the other request's grant to any SourceIdentity.
    iam.put_user_policy(
        UserName=hostile.principal_name,
        PolicyName=other_grant,
        PolicyDocument=json.dumps(
            {
                "Version": "2012-10-17",
                "Statement": [
                    {"Effect": "Allow", "Action": "sts:*", "Resource": hostile.aws.profile.role_arn}
                ],
            }
        ),
    )

    hostile.revoke()

    assert hostile.request.status == Status.REVOKED
    assert iam.list_user_policies(UserName=hostile.principal_name)["PolicyNames"] == [other_grant]
    held = iam.get_user_policy(UserName=hostile.principal_name, PolicyName=other_grant)
    expected = policies.grant_policy(hostile.aws.profile.aws_target(), _aws_grant(other))
    assert policies.same_document(held["PolicyDocument"], expected)


def test_revoked_is_recorded_only_once_aws_shows_the_exact_deny(hostile):
    """IAM is eventually consistent: while reads of the role do not show the deny just written,
    the revocation is not confirmed, the request stays REVOKING with its credentials kept on
    record, and the retry confirms it once AWS does."""
    request_revoke(
        access_request_id=hostile.request.pk,
        actor=hostile.cast.requester,
        otp_code=fresh_code(hostile.cast.requester),
        reason="Hostile session: revoke now.",
    )
    hostile.aws.sandbox.iam_stale_reads(hostile.role_name, 1000)
    try:
        with pytest.raises(RevocationUnconfirmedError, match="the deny just written is gone"):
            request_revocation_drive(access_request_id=hostile.request.pk)
        hostile.request.refresh_from_db()
        assert hostile.request.status == Status.REVOKING
        assert IssuedCredential.objects.get(request=hostile.request).wiped_at is None
        assert not hostile.request.events.filter(code="approvals.request.revoked").exists()
    finally:
        hostile.aws.sandbox.iam_stale_reads(hostile.role_name, 0)

    assert request_revocation_drive(access_request_id=hostile.request.pk)  # the retry

    hostile.request.refresh_from_db()
    assert hostile.request.status == Status.REVOKED and not hostile.works()
