"""The sandbox behaves like an account with enforcement on, and the broker is least-privilege."""

import pytest
from botocore.exceptions import ClientError

from .helpers import error_code_of, make_grant


def test_unknown_keys_are_refused_by_iam(aws_sandbox):
    iam = aws_sandbox.client(
        "iam", aws_access_key_id="AKIAUNKNOWNUNKNOWN00", aws_secret_access_key="nope"
    )
    with pytest.raises(ClientError) as excinfo:
        iam.list_users()
    assert error_code_of(excinfo) == "InvalidClientTokenId"


def test_the_broker_cannot_do_more_than_its_job(aws_sandbox):
    iam = aws_sandbox.client("iam", aws_sandbox.broker)
    with pytest.raises(ClientError):
        iam.create_user(UserName="broker-made-this")
    with pytest.raises(ClientError):
        iam.put_user_policy(
            UserName="breakglass-broker",
            PolicyName="x",
            PolicyDocument='{"Version":"2012-10-17","Statement":[]}',
        )
    sts = aws_sandbox.client("sts", aws_sandbox.broker)
    with pytest.raises(ClientError):
        sts.assume_role(
            RoleArn=aws_sandbox.role_arn,
            RoleSessionName="broker",
            SourceIdentity=make_grant().request_id,
        )


def test_the_principal_alone_can_do_nothing(aws_sandbox):
    s3 = aws_sandbox.client(
        "s3",
        aws_access_key_id=aws_sandbox.principal_keys.access_key_id,
        aws_secret_access_key=aws_sandbox.principal_keys.secret_access_key,
    )
    with pytest.raises(ClientError) as excinfo:
        s3.list_buckets()
    assert error_code_of(excinfo) == "AccessDenied"


def test_session_duration_beyond_the_role_maximum_is_refused(aws_sandbox, engine, profile):
    grant = make_grant(minutes=30)
    engine.grant_attach(profile.target, grant)
    sts = aws_sandbox.client(
        "sts",
        aws_access_key_id=profile.principal_keys.access_key_id,
        aws_secret_access_key=profile.principal_keys.secret_access_key,
    )
    with pytest.raises(ClientError) as excinfo:
        sts.assume_role(
            RoleArn=profile.target.role_arn,
            RoleSessionName="too-long",
            SourceIdentity=grant.request_id,
            DurationSeconds=7200,
        )
    assert error_code_of(excinfo) == "ValidationError"
