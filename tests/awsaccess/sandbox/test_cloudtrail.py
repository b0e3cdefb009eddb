"""The sandbox emits CloudTrail: every call made with credentials becomes a record in AWS's
format, delivered through EventBridge rules to SQS, over HTTP with boto3 only."""

import json
import uuid

import boto3
import pytest
from botocore.exceptions import ClientError

from ..helpers import error_code_of, make_grant, s3_with
from .trail import details, forwarding_role, receive, session_pattern, wait_recorded, watch


def _issue(engine, profile):
    grant = make_grant()
    engine.grant_attach(profile.target, grant)
    return grant, engine.credentials_issue(profile.target, grant, profile.principal_keys)


def _client(service, credentials, region=None):
    return boto3.client(
        service,
        endpoint_url=credentials.endpoint_url,
        region_name=region or credentials.region,
        aws_access_key_id=credentials.access_key_id,
        aws_secret_access_key=credentials.secret_access_key,
        aws_session_token=credentials.session_token,
    )


def test_every_call_of_a_session_reaches_a_rule_on_its_issuer_in_order(
    aws_sandbox, engine, profile
):
    sqs, url = watch(aws_sandbox, session_pattern(profile.target.role_arn))
    grant, credentials = _issue(engine, profile)

    s3_with(credentials).list_buckets()
    _client("ec2", credentials).describe_instances()
    with pytest.raises(ClientError) as excinfo:
        _client("sqs", credentials).list_queues()  # the role does not allow it
    assert error_code_of(excinfo) == "AccessDenied"

    records = details(receive(sqs, url, 3))
    assert [r["eventName"] for r in records] == ["ListBuckets", "DescribeInstances", "ListQueues"]
    listed, _, denied = records
    assert listed["eventSource"] == "s3.amazonaws.com"
    assert listed["awsRegion"] == profile.target.region
    assert listed["readOnly"] is True and listed["managementEvent"] is True
    assert listed["eventType"] == "AwsApiCall" and listed["eventVersion"] == "1.09"
    assert listed["recipientAccountId"] == profile.target.account_id
    assert listed["sourceIPAddress"] == "127.0.0.1"
    assert "Boto3" in listed["userAgent"]
    assert uuid.UUID(listed["eventID"]) and listed["requestID"]
    assert listed["responseElements"] is None and "errorCode" not in listed
    user = listed["userIdentity"]
    role_name = profile.target.role_arn.split("/")[-1]
    assert user["type"] == "AssumedRole"
    assert user["accessKeyId"] == credentials.access_key_id
    assert user["arn"].endswith(f":assumed-role/{role_name}/{grant.session_name}")
    assert user["principalId"].endswith(f":{grant.session_name}")
    issuer = user["sessionContext"]["sessionIssuer"]
    assert issuer == {
        "type": "Role",
        "principalId": user["principalId"].split(":")[0],
        "arn": profile.target.role_arn,
        "accountId": profile.target.account_id,
        "userName": role_name,
    }
    assert user["sessionContext"]["sourceIdentity"] == grant.request_id
    assert user["sessionContext"]["attributes"]["mfaAuthenticated"] == "false"
    assert denied["errorCode"] == "AccessDenied" and denied["errorMessage"]
    assert denied["eventSource"] == "sqs.amazonaws.com"


def test_assume_role_is_recorded_with_its_caller_and_without_secrets(aws_sandbox, engine, profile):
    sqs, url = watch(
        aws_sandbox,
        {
            "detail-type": ["AWS API Call via CloudTrail"],
            "source": ["aws.sts"],
            "detail": {
                "eventName": ["AssumeRole"],
                "requestParameters": {"roleArn": [profile.target.role_arn]},
            },
        },
    )
    grant, credentials = _issue(engine, profile)

    (body,) = receive(sqs, url, 1)
    assert credentials.secret_access_key not in body
    assert credentials.session_token not in body
    record = json.loads(body)["detail"]
    assert record["eventSource"] == "sts.amazonaws.com"
    assert record["userIdentity"]["type"] == "IAMUser"
    assert record["userIdentity"]["arn"] == profile.target.principal_arn
    assert record["userIdentity"]["accessKeyId"] == profile.principal_keys.access_key_id
    parameters = record["requestParameters"]
    assert parameters["roleSessionName"] == grant.session_name
    assert parameters["sourceIdentity"] == grant.request_id
    assert {"key": "ticket", "value": "INC-42"} in parameters["tags"]
    elements = record["responseElements"]
    assert elements["credentials"]["accessKeyId"] == credentials.access_key_id
    assert set(elements["credentials"]) == {"accessKeyId", "expiration"}
    assert elements["assumedRoleUser"]["arn"].endswith(f"/{grant.session_name}")
    assert elements["sourceIdentity"] == grant.request_id
    assert record["resources"][0]["ARN"] == profile.target.role_arn


def test_iam_events_are_delivered_in_us_east_1_as_on_aws(aws_sandbox, engine, profile):
    """IAM is global: its CloudTrail events reach EventBridge in us-east-1 only. A us-east-1
    rule that forwards to the profile region's bus is how a watch there sees them."""
    pattern = {"source": ["aws.iam"], "detail": {"requestParameters": {"userName": ["nobody-x"]}}}
    home_sqs, home_url = watch(aws_sandbox, pattern)
    east_sqs, east_url = watch(aws_sandbox, pattern, region="us-east-1")
    forward = f"ct-forward-{uuid.uuid4().hex[:8]}"
    east_events = aws_sandbox.client("events", region_name="us-east-1")
    east_events.put_rule(Name=forward, EventPattern=json.dumps(pattern))
    home_bus = f"arn:aws:events:{aws_sandbox.region}:{aws_sandbox.account_id}:event-bus/default"
    role = forwarding_role(aws_sandbox, forward)
    east_events.put_targets(
        Rule=forward, Targets=[{"Id": "home", "Arn": home_bus, "RoleArn": role}]
    )

    with pytest.raises(ClientError):
        aws_sandbox.client("iam").get_user(UserName="nobody-x")

    (east,) = details(receive(east_sqs, east_url, 1))
    assert east["awsRegion"] == "us-east-1" and east["errorCode"] == "NoSuchEntity"
    (forwarded,) = details(receive(home_sqs, home_url, 1))
    assert forwarded["eventID"] == east["eventID"]


def test_target_input_input_path_and_disabled_rules_behave_as_on_aws(aws_sandbox, engine, profile):
    pattern = session_pattern(profile.target.role_arn)
    constant_sqs, constant_url = watch(aws_sandbox, pattern, Input='{"hello": "constant"}')
    path_sqs, path_url = watch(aws_sandbox, pattern, InputPath="$.detail.eventName")
    disabled_sqs, disabled_url = watch(aws_sandbox, pattern)
    rule = disabled_url.rsplit("/", 1)[-1]
    aws_sandbox.client("events").disable_rule(Name=rule)
    _, credentials = _issue(engine, profile)

    s3_with(credentials).list_buckets()

    assert receive(constant_sqs, constant_url, 1) == ['{"hello": "constant"}']
    assert receive(path_sqs, path_url, 1) == ['"ListBuckets"']
    wait_recorded(aws_sandbox)
    assert receive(disabled_sqs, disabled_url, 1, timeout=1) == []


def test_whole_event_carries_the_eventbridge_envelope(aws_sandbox, engine, profile):
    sqs, url = watch(aws_sandbox, session_pattern(profile.target.role_arn))
    _, credentials = _issue(engine, profile)

    s3_with(credentials).list_buckets()

    (body,) = receive(sqs, url, 1)
    event = json.loads(body)
    assert event["detail-type"] == "AWS API Call via CloudTrail"
    assert event["source"] == "aws.s3"
    assert event["account"] == profile.target.account_id
    assert event["region"] == profile.target.region
    assert event["time"] == event["detail"]["eventTime"]
    assert set(event) == {
        "version",
        "id",
        "detail-type",
        "source",
        "account",
        "time",
        "region",
        "resources",
        "detail",
    }


def test_calls_with_unknown_keys_emit_nothing(aws_sandbox, profile):
    sqs, url = watch(aws_sandbox, {"source": ["aws.s3"], "detail": {"eventName": ["ListBuckets"]}})
    stranger = aws_sandbox.client(
        "s3", aws_access_key_id="AKIAUNKNOWNUNKNOWN00", aws_secret_access_key="nope"
    )
    with pytest.raises(ClientError):
        stranger.list_buckets()
    wait_recorded(aws_sandbox)
    assert receive(sqs, url, 1, timeout=1) == []
