"""Source-address, via-service and MFA conditions, managed session policies (PolicyArns), and
virtual MFA devices with real TOTP codes, against the sandbox over HTTP."""

import base64
import json
import uuid

import boto3
import pytest
from botocore.exceptions import ClientError
from django_otp.oath import totp

from ..helpers import error_code_of, make_grant
from .trail import wait_recorded

VERSION = "2012-10-17"


def _code(seed: str, steps_ahead: int = 0) -> str:
    """What an authenticator app shows for this seed (django-otp's RFC 6238, not the sandbox's)."""
    value = totp(base64.b32decode(seed), step=30, t0=0, digits=6, drift=steps_ahead)
    return f"{value:06d}"


def _as(aws_sandbox, service, keys=None, credentials=None):
    if credentials is not None:
        return boto3.client(
            service,
            endpoint_url=aws_sandbox.endpoint_url,
            region_name=aws_sandbox.region,
            aws_access_key_id=credentials["AccessKeyId"],
            aws_secret_access_key=credentials["SecretAccessKey"],
            aws_session_token=credentials["SessionToken"],
        )
    return aws_sandbox.client(
        service,
        aws_access_key_id=keys.access_key_id,
        aws_secret_access_key=keys.secret_access_key,
    )


def _user_allowed_to_list(aws_sandbox, condition: dict) -> object:
    statement = {"Effect": "Allow", "Action": "s3:ListAllMyBuckets", "Resource": "*"}
    document = {"Version": VERSION, "Statement": [{**statement, "Condition": condition}]}
    return aws_sandbox.new_user(f"cond-{uuid.uuid4().hex[:8]}", document)


def test_source_ip_is_the_callers_address(aws_sandbox):
    inside = _user_allowed_to_list(aws_sandbox, {"IpAddress": {"aws:SourceIp": "127.0.0.0/8"}})
    outside = _user_allowed_to_list(aws_sandbox, {"IpAddress": {"aws:SourceIp": "10.0.0.0/8"}})
    negated = _user_allowed_to_list(aws_sandbox, {"NotIpAddress": {"aws:SourceIp": "10.0.0.0/8"}})

    _as(aws_sandbox, "s3", inside).list_buckets()
    _as(aws_sandbox, "s3", negated).list_buckets()
    with pytest.raises(ClientError) as excinfo:
        _as(aws_sandbox, "s3", outside).list_buckets()
    assert error_code_of(excinfo) == "AccessDenied"


def test_a_network_deny_spares_calls_via_aws_services_only(aws_sandbox):
    """AWS's documented pattern: deny outside the network unless an AWS service calls."""
    name = f"net-{uuid.uuid4().hex[:8]}"
    keys = aws_sandbox.new_user(
        name,
        {
            "Version": VERSION,
            "Statement": [
                {"Effect": "Allow", "Action": "s3:ListAllMyBuckets", "Resource": "*"},
                {
                    "Effect": "Deny",
                    "Action": "*",
                    "Resource": "*",
                    "Condition": {
                        "NotIpAddress": {"aws:SourceIp": ["10.0.0.0/8", "192.0.2.0/24"]},
                        "Bool": {"aws:ViaAWSService": "false"},
                    },
                },
            ],
        },
    )
    with pytest.raises(ClientError) as excinfo:
        _as(aws_sandbox, "s3", keys).list_buckets()
    assert error_code_of(excinfo) == "AccessDenied"


def _assume(aws_sandbox, profile, engine, **extra):
    grant = make_grant()
    engine.grant_attach(profile.target, grant)
    sts = _as(aws_sandbox, "sts", profile.principal_keys)
    tags = [{"Key": key, "Value": value} for key, value in grant.tags.items()]
    return sts.assume_role(
        RoleArn=profile.target.role_arn,
        RoleSessionName=grant.session_name,
        SourceIdentity=grant.request_id,
        Tags=tags,
        **extra,
    )["Credentials"]


def test_managed_session_policies_narrow_the_session(aws_sandbox, engine, profile):
    scope = aws_sandbox.client("iam").create_policy(
        PolicyName=f"scope-{uuid.uuid4().hex[:8]}",
        PolicyDocument=json.dumps(
            {
                "Version": VERSION,
                "Statement": [{"Effect": "Allow", "Action": "ec2:Describe*", "Resource": "*"}],
            }
        ),
    )["Policy"]["Arn"]
    credentials = _assume(aws_sandbox, profile, engine, PolicyArns=[{"arn": scope}])

    _as(aws_sandbox, "ec2", credentials=credentials).describe_instances()
    with pytest.raises(ClientError) as excinfo:
        _as(aws_sandbox, "s3", credentials=credentials).list_buckets()  # the role allows it
    assert error_code_of(excinfo) == "AccessDenied"


def _user_with_mfa(aws_sandbox) -> tuple[str, object, str, str]:
    name = f"mfa-{uuid.uuid4().hex[:8]}"
    keys = aws_sandbox.new_user(name)
    iam = aws_sandbox.client("iam")
    device = iam.create_virtual_mfa_device(VirtualMFADeviceName=name)["VirtualMFADevice"]
    seed = device["Base32StringSeed"].decode()
    serial = device["SerialNumber"]
    with pytest.raises(ClientError) as excinfo:
        iam.enable_mfa_device(
            UserName=name, SerialNumber=serial, AuthenticationCode1="123456",
            AuthenticationCode2="654321",
        )  # fmt: skip
    assert error_code_of(excinfo) == "InvalidAuthenticationCode"
    iam.enable_mfa_device(
        UserName=name,
        SerialNumber=serial,
        AuthenticationCode1=_code(seed, -1),
        AuthenticationCode2=_code(seed),
    )
    return name, keys, serial, seed


def _mfa_role(aws_sandbox, user_arn: str) -> str:
    iam = aws_sandbox.client("iam")
    name = f"mfa-role-{uuid.uuid4().hex[:8]}"
    trust = {
        "Version": VERSION,
        "Statement": [
            {
                "Effect": "Allow",
                "Principal": {"AWS": user_arn},
                "Action": "sts:AssumeRole",
                "Condition": {"Bool": {"aws:MultiFactorAuthPresent": "true"}},
            }
        ],
    }
    arn = iam.create_role(RoleName=name, AssumeRolePolicyDocument=json.dumps(trust))["Role"]["Arn"]
    iam.put_role_policy(
        RoleName=name,
        PolicyName="mfa-only",
        PolicyDocument=json.dumps(
            {
                "Version": VERSION,
                "Statement": [
                    {
                        "Effect": "Allow",
                        "Action": "s3:ListAllMyBuckets",
                        "Resource": "*",
                        "Condition": {"BoolIfExists": {"aws:MultiFactorAuthPresent": "true"}},
                    }
                ],
            }
        ),
    )
    return arn


def test_assume_role_checks_the_mfa_code_against_the_device(aws_sandbox):
    name, keys, serial, seed = _user_with_mfa(aws_sandbox)
    user_arn = f"arn:aws:iam::{aws_sandbox.account_id}:user/{name}"
    role_arn = _mfa_role(aws_sandbox, user_arn)
    sts = _as(aws_sandbox, "sts", keys)
    wrong = f"{(int(_code(seed)) + 1) % 1_000_000:06d}"

    for extra in ({}, {"SerialNumber": serial, "TokenCode": wrong}, {"SerialNumber": serial}):
        with pytest.raises(ClientError) as excinfo:
            sts.assume_role(RoleArn=role_arn, RoleSessionName="no-mfa", **extra)
        assert error_code_of(excinfo) == "AccessDenied"

    credentials = sts.assume_role(
        RoleArn=role_arn, RoleSessionName="with-mfa", SerialNumber=serial, TokenCode=_code(seed)
    )["Credentials"]
    _as(aws_sandbox, "s3", credentials=credentials).list_buckets()
    wait_recorded(aws_sandbox)
    records = [
        json.loads(e["CloudTrailEvent"])
        for e in aws_sandbox.client("cloudtrail").lookup_events(
            LookupAttributes=[
                {"AttributeKey": "AccessKeyId", "AttributeValue": credentials["AccessKeyId"]}
            ]
        )["Events"]
    ]
    assert records
    assert records[0]["userIdentity"]["sessionContext"]["attributes"]["mfaAuthenticated"] == "true"


def test_a_device_of_another_user_does_not_count(aws_sandbox):
    _, _, serial, seed = _user_with_mfa(aws_sandbox)
    name, keys, _, _ = _user_with_mfa(aws_sandbox)
    role_arn = _mfa_role(aws_sandbox, f"arn:aws:iam::{aws_sandbox.account_id}:user/{name}")
    with pytest.raises(ClientError) as excinfo:
        _as(aws_sandbox, "sts", keys).assume_role(
            RoleArn=role_arn,
            RoleSessionName="other-device",
            SerialNumber=serial,
            TokenCode=_code(seed),
        )
    assert error_code_of(excinfo) == "AccessDenied"


def test_sqs_batch_operations_are_authorised_as_their_single_action(aws_sandbox):
    # AWS has no sqs:DeleteMessageBatch or sqs:SendMessageBatch permission: the batch is
    # allowed or refused exactly as DeleteMessage / SendMessage would be.
    admin_sqs = aws_sandbox.client("sqs")
    url = admin_sqs.create_queue(QueueName=f"batch-{uuid.uuid4().hex[:8]}")["QueueUrl"]
    arn = admin_sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"][
        "QueueArn"
    ]

    def user(*actions: str):
        statement = {"Effect": "Allow", "Action": list(actions), "Resource": arn}
        document = {"Version": VERSION, "Statement": [statement]}
        return _as(
            aws_sandbox, "sqs", aws_sandbox.new_user(f"sqs-{uuid.uuid4().hex[:8]}", document)
        )

    consumer = user("sqs:SendMessage", "sqs:ReceiveMessage", "sqs:DeleteMessage")
    reader = user("sqs:ReceiveMessage")
    entries = [{"Id": str(n), "MessageBody": f"m{n}"} for n in range(3)]
    assert len(consumer.send_message_batch(QueueUrl=url, Entries=entries)["Successful"]) == 3
    with pytest.raises(ClientError) as excinfo:
        reader.send_message_batch(QueueUrl=url, Entries=entries)
    assert error_code_of(excinfo) in ("AccessDenied", "AccessDeniedException")

    messages = consumer.receive_message(QueueUrl=url, MaxNumberOfMessages=10)["Messages"]
    handles = [{"Id": str(n), "ReceiptHandle": m["ReceiptHandle"]} for n, m in enumerate(messages)]
    with pytest.raises(ClientError) as excinfo:
        reader.delete_message_batch(QueueUrl=url, Entries=handles)
    assert error_code_of(excinfo) in ("AccessDenied", "AccessDeniedException")
    assert len(consumer.delete_message_batch(QueueUrl=url, Entries=handles)["Successful"]) == 3
