"""Permissions boundaries and the management calls the guard relies on, evaluated by the
sandbox as AWS does, tested from the caller's side over HTTP."""

import json
import uuid

import boto3
import pytest
from botocore.exceptions import ClientError

from ..helpers import error_code_of, make_grant, s3_with


def _managed(aws_sandbox, statements: list[dict]) -> str:
    iam = aws_sandbox.client("iam")
    name = f"boundary-{uuid.uuid4().hex[:8]}"
    document = {"Version": "2012-10-17", "Statement": statements}
    return iam.create_policy(PolicyName=name, PolicyDocument=json.dumps(document))["Policy"]["Arn"]


def _session(engine, profile):
    grant = make_grant()
    engine.grant_attach(profile.target, grant)
    return engine.credentials_issue(profile.target, grant, profile.principal_keys)


def _as(aws_sandbox, service, keys, region=None):
    return aws_sandbox.client(
        service,
        region_name=region or aws_sandbox.region,
        aws_access_key_id=keys.access_key_id,
        aws_secret_access_key=keys.secret_access_key,
    )


def _with(service, credentials):
    return boto3.client(
        service,
        endpoint_url=credentials.endpoint_url,
        region_name=credentials.region,
        aws_access_key_id=credentials.access_key_id,
        aws_secret_access_key=credentials.secret_access_key,
        aws_session_token=credentials.session_token,
    )


def test_a_role_boundary_limits_its_sessions(aws_sandbox, engine, profile):
    role_name = profile.target.role_arn.split("/")[-1]
    boundary = _managed(
        aws_sandbox, [{"Effect": "Allow", "Action": "s3:ListAllMyBuckets", "Resource": "*"}]
    )
    aws_sandbox.client("iam").put_role_permissions_boundary(
        RoleName=role_name, PermissionsBoundary=boundary
    )
    credentials = _session(engine, profile)

    s3_with(credentials).list_buckets()  # the role and the boundary allow it
    with pytest.raises(ClientError) as excinfo:
        _with("ec2", credentials).describe_instances()  # the role allows it, the boundary not
    assert error_code_of(excinfo) == "AccessDenied"
    role = aws_sandbox.client("iam").get_role(RoleName=role_name)["Role"]
    assert role["PermissionsBoundary"]["PermissionsBoundaryArn"] == boundary


def test_an_explicit_deny_in_a_boundary_wins(aws_sandbox, engine, profile):
    boundary = _managed(
        aws_sandbox,
        [
            {"Effect": "Allow", "Action": "*", "Resource": "*"},
            {"Effect": "Deny", "Action": "s3:ListAllMyBuckets", "Resource": "*"},
        ],
    )
    aws_sandbox.client("iam").put_role_permissions_boundary(
        RoleName=profile.target.role_arn.split("/")[-1], PermissionsBoundary=boundary
    )
    credentials = _session(engine, profile)
    with pytest.raises(ClientError) as excinfo:
        s3_with(credentials).list_buckets()
    assert error_code_of(excinfo) == "AccessDenied"


def test_an_inline_deny_on_the_role_applies_to_live_sessions(aws_sandbox, engine, profile):
    credentials = _session(engine, profile)
    s3_with(credentials).list_buckets()
    aws_sandbox.client("iam").put_role_policy(
        RoleName=profile.target.role_arn.split("/")[-1],
        PolicyName="deny-listing",
        PolicyDocument=json.dumps(
            {
                "Version": "2012-10-17",
                "Statement": [{"Effect": "Deny", "Action": "s3:List*", "Resource": "*"}],
            }
        ),
    )
    with pytest.raises(ClientError) as excinfo:
        s3_with(credentials).list_buckets()
    assert error_code_of(excinfo) == "AccessDenied"


def test_a_user_boundary_is_stored_shown_evaluated_and_removable(aws_sandbox):
    name = f"bounded-{uuid.uuid4().hex[:8]}"
    keys = aws_sandbox.new_user(
        name,
        {
            "Version": "2012-10-17",
            "Statement": [{"Effect": "Allow", "Action": ["s3:*", "sqs:*"], "Resource": "*"}],
        },
    )
    boundary = _managed(aws_sandbox, [{"Effect": "Allow", "Action": "sqs:*", "Resource": "*"}])
    iam = aws_sandbox.client("iam")
    iam.put_user_permissions_boundary(UserName=name, PermissionsBoundary=boundary)

    shown = iam.get_user(UserName=name)["User"]["PermissionsBoundary"]
    assert shown == {
        "PermissionsBoundaryType": "PermissionsBoundaryPolicy",
        "PermissionsBoundaryArn": boundary,
    }
    _as(aws_sandbox, "sqs", keys).list_queues()
    with pytest.raises(ClientError) as excinfo:
        _as(aws_sandbox, "s3", keys).list_buckets()
    assert error_code_of(excinfo) == "AccessDenied"

    iam.delete_user_permissions_boundary(UserName=name)
    _as(aws_sandbox, "s3", keys).list_buckets()
    assert "PermissionsBoundary" not in iam.get_user(UserName=name)["User"]


def test_rule_and_trail_operations_are_authorized_per_resource(aws_sandbox):
    """A user allowed to manage only `guarded-*` rules and trails is refused on the others."""
    suffix = uuid.uuid4().hex[:8]
    region, account = aws_sandbox.region, aws_sandbox.account_id
    keys = aws_sandbox.new_user(
        f"rules-{suffix}",
        {
            "Version": "2012-10-17",
            "Statement": [
                {
                    "Effect": "Allow",
                    "Action": ["events:*", "cloudtrail:*"],
                    "Resource": [
                        f"arn:aws:events:{region}:{account}:rule/guarded-*",
                        f"arn:aws:cloudtrail:{region}:{account}:trail/guarded-*",
                    ],
                }
            ],
        },
    )
    events, trails = aws_sandbox.client("events"), aws_sandbox.client("cloudtrail")
    aws_sandbox.client("s3").create_bucket(
        Bucket=f"trail-{suffix}", CreateBucketConfiguration={"LocationConstraint": region}
    )
    for prefix in ("guarded", "other"):
        events.put_rule(Name=f"{prefix}-{suffix}", EventPattern='{"source": ["x"]}')
        trails.create_trail(Name=f"{prefix}-{suffix}", S3BucketName=f"trail-{suffix}")
        trails.start_logging(Name=f"{prefix}-{suffix}")
    as_user_events, as_user_trails = (
        _as(aws_sandbox, "events", keys),
        _as(aws_sandbox, "cloudtrail", keys),
    )

    as_user_events.disable_rule(Name=f"guarded-{suffix}")
    as_user_trails.stop_logging(Name=f"guarded-{suffix}")
    assert events.describe_rule(Name=f"guarded-{suffix}")["State"] == "DISABLED"
    assert not trails.get_trail_status(Name=f"guarded-{suffix}")["IsLogging"]
    for call in (
        lambda: as_user_events.disable_rule(Name=f"other-{suffix}"),
        lambda: as_user_events.put_targets(
            Rule=f"other-{suffix}", Targets=[{"Id": "x", "Arn": "arn:aws:sqs:eu-west-1:1:q"}]
        ),
        lambda: as_user_trails.stop_logging(Name=f"other-{suffix}"),
        lambda: as_user_trails.delete_trail(Name=f"other-{suffix}"),
        lambda: as_user_trails.put_event_selectors(
            TrailName=f"other-{suffix}", EventSelectors=[{"ReadWriteType": "WriteOnly"}]
        ),
    ):
        with pytest.raises(ClientError) as excinfo:
            call()
        assert error_code_of(excinfo) == "AccessDeniedException"
    assert trails.get_trail_status(Name=f"other-{suffix}")["IsLogging"]
    for prefix in ("guarded", "other"):  # a stopped trail left behind is drift for the guard
        trails.delete_trail(Name=f"{prefix}-{suffix}")


def test_queue_policy_calls_are_authorized(aws_sandbox):
    suffix = uuid.uuid4().hex[:8]
    sqs = aws_sandbox.client("sqs")
    url = sqs.create_queue(QueueName=f"guarded-{suffix}")["QueueUrl"]
    keys = aws_sandbox.new_user(
        f"reader-{suffix}",
        {
            "Version": "2012-10-17",
            "Statement": [{"Effect": "Allow", "Action": "sqs:GetQueueAttributes", "Resource": "*"}],
        },
    )
    reader = _as(aws_sandbox, "sqs", keys)
    reader.get_queue_attributes(QueueUrl=url, AttributeNames=["Policy"])
    with pytest.raises(ClientError) as excinfo:
        reader.set_queue_attributes(QueueUrl=url, Attributes={"Policy": "{}"})
    assert error_code_of(excinfo) == "AccessDenied"
