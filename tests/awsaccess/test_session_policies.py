"""Session policies: the exact JSON for each case, and what the sandbox makes of it when the
engine issues a session (inline scope, managed scope with the portal's denies inline, networks,
the short-grant expiry), with the credentials AWS returns."""

import json
import uuid
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest
from botocore.exceptions import ClientError

from awsaccess import policies, session_policies
from awsaccess.types import SessionScope

from .helpers import error_code_of, make_grant, s3_with

EXPIRES = datetime(2030, 1, 2, 3, 4, 5, tzinfo=UTC)
READ = {"Effect": "Allow", "Action": "s3:ListAllMyBuckets", "Resource": "*"}
NETWORK_DENY = {
    "Sid": "BreakGlassSourceNetwork",
    "Effect": "Deny",
    "Action": "*",
    "Resource": "*",
    "Condition": {
        "NotIpAddress": {"aws:SourceIp": ["192.0.2.0/24"]},
        "Bool": {"aws:ViaAWSService": "false"},
    },
}


def grant(scope=None):
    return replace(make_grant(), expires_at=EXPIRES, scope=scope)


def parameters(scope=None, remaining=3600):
    return session_policies.assume_role_scope_parameters(grant(scope), remaining_seconds=remaining)


def test_the_whole_role_for_fifteen_minutes_or_more_needs_no_session_policy():
    assert parameters() == {}


def test_a_short_grant_keeps_its_expiry_deny_exactly_as_before():
    short = grant()
    assert json.loads(parameters(remaining=899)["Policy"]) == policies.session_policy(short)


def test_an_inline_scope_with_networks_and_a_short_grant():
    scope = SessionScope(
        name="read-only",
        policy={"Version": "2012-10-17", "Statement": [READ]},
        networks=(("192.0.2.0/24",), ("192.0.2.128/25",)),
    )
    document = json.loads(parameters(scope, remaining=600)["Policy"])
    assert document["Statement"] == [
        READ,
        NETWORK_DENY,
        {
            **NETWORK_DENY,
            "Sid": "BreakGlassSourceNetwork1",
            "Condition": {
                **NETWORK_DENY["Condition"],
                "NotIpAddress": {"aws:SourceIp": ["192.0.2.128/25"]},
            },
        },
        {
            "Sid": "BreakGlassDenyAfterExpiry",
            "Effect": "Deny",
            "Action": "*",
            "Resource": "*",
            "Condition": {"DateGreaterThan": {"aws:CurrentTime": "2030-01-02T03:04:05Z"}},
        },
    ]


def test_managed_policies_alone_pass_no_inline_policy_and_with_networks_only_the_denies():
    arn = "arn:aws:iam::aws:policy/ReadOnlyAccess"
    assert parameters(SessionScope(name="ro", managed_policy_arns=(arn,))) == {
        "PolicyArns": [{"arn": arn}]
    }
    with_networks = parameters(
        SessionScope(name="ro", managed_policy_arns=(arn,), networks=(("192.0.2.0/24",),))
    )
    assert with_networks["PolicyArns"] == [{"arn": arn}]
    assert json.loads(with_networks["Policy"])["Statement"] == [NETWORK_DENY]


def test_profile_networks_without_a_scope_keep_the_whole_role():
    document = json.loads(
        parameters(SessionScope(name="", networks=(("192.0.2.0/24",),)))["Policy"]
    )
    assert document["Statement"][0] == {
        "Sid": "BreakGlassWithinGrant",
        "Effect": "Allow",
        "Action": "*",
        "Resource": "*",
    }
    assert document["Statement"][1] == NETWORK_DENY


def test_when_a_session_ends():
    issued = datetime(2030, 1, 1, 12, 0, tzinfo=UTC)
    expiration = issued + timedelta(minutes=15)
    pinned_deadline = issued + timedelta(minutes=5)
    assert (
        session_policies.session_ends_at(
            issued_at=issued, expiration=expiration, deadline=pinned_deadline
        )
        == pinned_deadline
    )
    long_deadline = issued + timedelta(minutes=30)
    assert session_policies.session_ends_at(
        issued_at=issued, expiration=issued + timedelta(minutes=30), deadline=long_deadline
    ) == issued + timedelta(minutes=30)


def _managed(aws_sandbox, *statements) -> str:
    return aws_sandbox.client("iam").create_policy(
        PolicyName=f"scope-{uuid.uuid4().hex[:8]}",
        PolicyDocument=json.dumps({"Version": "2012-10-17", "Statement": list(statements)}),
    )["Policy"]["Arn"]


def _issue(engine, profile, scope):
    scoped = replace(make_grant(), scope=scope)
    engine.grant_attach(profile.target, scoped)
    return engine.credentials_issue(profile.target, scoped, profile.principal_keys)


def test_a_managed_scope_with_an_inline_network_deny_in_the_sandbox(aws_sandbox, engine, profile):
    arn = _managed(aws_sandbox, READ)
    outside = _issue(
        engine,
        profile,
        SessionScope(name="ro", managed_policy_arns=(arn,), networks=(("192.0.2.0/24",),)),
    )
    with pytest.raises(ClientError) as excinfo:
        s3_with(outside).list_buckets()
    assert error_code_of(excinfo) == "AccessDenied"

    inside = _issue(
        engine,
        profile,
        SessionScope(name="ro", managed_policy_arns=(arn,), networks=(("127.0.0.0/8",),)),
    )
    s3_with(inside).list_buckets()  # the managed policy allows it, from loopback


def test_an_inline_scope_narrows_a_session_in_the_sandbox(aws_sandbox, engine, profile):
    narrow = _issue(
        engine,
        profile,
        SessionScope(
            name="ec2",
            policy={
                "Version": "2012-10-17",
                "Statement": [{"Effect": "Allow", "Action": "ec2:Describe*", "Resource": "*"}],
            },
        ),
    )
    with pytest.raises(ClientError) as excinfo:
        s3_with(narrow).list_buckets()  # the role allows it; the scope does not
    assert error_code_of(excinfo) == "AccessDenied"
