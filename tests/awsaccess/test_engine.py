"""Grant, issue, revoke against the sandbox over HTTP, with enforcement on."""

import json
import time
import uuid
from datetime import UTC, datetime, timedelta

import boto3
import pytest
from botocore.exceptions import ClientError

from awsaccess import policies
from awsaccess.engine import AccessEngine, GrantExpiredError
from awsaccess.errors import PermanentAwsError

from .helpers import error_code_of, make_grant, s3_with


def test_issued_credentials_can_do_what_the_role_allows(engine, profile):
    grant = make_grant()
    engine.grant_attach(profile.target, grant)
    credentials = engine.credentials_issue(profile.target, grant, profile.principal_keys)

    buckets = s3_with(credentials).list_buckets()["Buckets"]
    assert "breakglass-sandbox-evidence" in [b["Name"] for b in buckets]
    assert credentials.region == profile.target.region
    assert (credentials.expiration - grant.expires_at).total_seconds() + 1800 + 3600 > 3500


def test_revoked_credentials_are_refused(engine, profile):
    grant = make_grant()
    engine.grant_attach(profile.target, grant)
    credentials = engine.credentials_issue(profile.target, grant, profile.principal_keys)
    s3 = s3_with(credentials)
    s3.list_buckets()

    engine.grant_revoke(profile.target, grant)

    with pytest.raises(ClientError) as excinfo:
        s3.list_buckets()
    assert error_code_of(excinfo) == "AccessDenied"
    assert not engine.grant_is_attached(profile.target, grant)


def test_without_a_grant_the_principal_cannot_assume_the_role(engine, profile):
    with pytest.raises(PermanentAwsError) as excinfo:
        engine.credentials_issue(profile.target, make_grant(), profile.principal_keys)
    assert excinfo.value.code == "AccessDenied"
    assert str(excinfo.value).startswith("sts:AssumeRole failed: AccessDenied")


def test_a_grant_for_one_request_does_not_let_another_request_assume(engine, profile):
    engine.grant_attach(profile.target, make_grant())
    with pytest.raises(PermanentAwsError):
        engine.credentials_issue(profile.target, make_grant(), profile.principal_keys)


def test_another_principal_cannot_assume_the_role(aws_sandbox, engine, profile):
    outsider = aws_sandbox.new_user(
        f"outsider-{profile.target.role_name}",
        {
            "Version": "2012-10-17",
            "Statement": [{"Effect": "Allow", "Action": "sts:*", "Resource": "*"}],
        },
    )
    grant = make_grant()
    engine.grant_attach(profile.target, grant)
    with pytest.raises(PermanentAwsError) as excinfo:
        engine.credentials_issue(profile.target, grant, outsider)
    assert excinfo.value.code == "AccessDenied"


def test_the_role_cannot_be_assumed_through_another_region(aws_sandbox, engine, profile):
    grant = make_grant()
    engine.grant_attach(profile.target, grant)
    sts = aws_sandbox.client(
        "sts",
        region_name="us-east-1",
        aws_access_key_id=profile.principal_keys.access_key_id,
        aws_secret_access_key=profile.principal_keys.secret_access_key,
    )
    with pytest.raises(ClientError) as excinfo:
        sts.assume_role(
            RoleArn=profile.target.role_arn,
            RoleSessionName="other-region",
            SourceIdentity=grant.request_id,
        )
    assert error_code_of(excinfo) == "AccessDenied"
    # The same call through the profile's region is allowed: the region is what differs.
    engine.credentials_issue(profile.target, grant, profile.principal_keys)


def test_the_role_cannot_be_assumed_without_a_source_identity(aws_sandbox, engine, profile):
    engine.grant_attach(profile.target, make_grant())
    sts = aws_sandbox.client(
        "sts",
        aws_access_key_id=profile.principal_keys.access_key_id,
        aws_secret_access_key=profile.principal_keys.secret_access_key,
    )
    with pytest.raises(ClientError) as excinfo:
        sts.assume_role(RoleArn=profile.target.role_arn, RoleSessionName="no-identity")
    assert error_code_of(excinfo) == "AccessDenied"


def test_revoking_one_of_two_grants_leaves_the_other_working(engine, profile):
    first, second = make_grant(), make_grant()
    for grant in (first, second):
        engine.grant_attach(profile.target, grant)
    first_s3 = s3_with(engine.credentials_issue(profile.target, first, profile.principal_keys))
    second_s3 = s3_with(engine.credentials_issue(profile.target, second, profile.principal_keys))

    engine.grant_revoke(profile.target, first)

    with pytest.raises(ClientError):
        first_s3.list_buckets()
    second_s3.list_buckets()
    assert engine.grant_is_attached(profile.target, second)


def test_a_grant_issued_after_a_revocation_works(engine, profile):
    earlier = make_grant()
    engine.grant_attach(profile.target, earlier)
    engine.credentials_issue(profile.target, earlier, profile.principal_keys)
    engine.grant_revoke(profile.target, earlier)

    later = make_grant()
    engine.grant_attach(profile.target, later)
    s3_with(engine.credentials_issue(profile.target, later, profile.principal_keys)).list_buckets()


def test_credentials_past_their_expiry_are_refused(engine, profile, sandbox_clock):
    grant = make_grant(minutes=30)
    engine.grant_attach(profile.target, grant)
    credentials = engine.credentials_issue(profile.target, grant, profile.principal_keys)
    assert round((credentials.expiration - sandbox_clock.now()).total_seconds() / 60) == 30

    sandbox_clock.advance(timedelta(minutes=31))

    with pytest.raises(ClientError) as excinfo:
        s3_with(credentials).list_buckets()
    assert error_code_of(excinfo) == "ExpiredToken"


def test_a_short_grant_ends_at_its_expiry_through_the_session_policy(
    engine, profile, sandbox_clock
):
    grant = make_grant(minutes=5)
    engine.grant_attach(profile.target, grant)
    credentials = engine.credentials_issue(profile.target, grant, profile.principal_keys)
    # AWS issues at least 15 minutes; the session policy cuts it at 5.
    assert round((credentials.expiration - sandbox_clock.now()).total_seconds() / 60) == 15
    s3 = s3_with(credentials)
    s3.list_buckets()

    sandbox_clock.advance(timedelta(minutes=6))

    with pytest.raises(ClientError) as excinfo:
        s3.list_buckets()
    assert error_code_of(excinfo) == "AccessDenied"


def test_an_expired_grant_cannot_issue(engine, profile, sandbox_clock):
    grant = make_grant(minutes=10)
    engine.grant_attach(profile.target, grant)
    sandbox_clock.advance(timedelta(minutes=11))
    with pytest.raises(GrantExpiredError):
        engine.credentials_issue(
            profile.target, grant, profile.principal_keys, now=sandbox_clock.now()
        )
    # Even a caller that ignores our clock is refused by AWS's own condition.
    with pytest.raises(PermanentAwsError):
        engine.credentials_issue(
            profile.target,
            grant,
            profile.principal_keys,
            now=sandbox_clock.now() - timedelta(minutes=5),
        )


def test_revoke_is_idempotent_and_survives_partial_state(aws_sandbox, engine, profile):
    grant = make_grant()
    engine.grant_attach(profile.target, grant)
    credentials = engine.credentials_issue(profile.target, grant, profile.principal_keys)
    engine.grant_revoke(profile.target, grant)
    engine.grant_revoke(profile.target, grant)

    iam = aws_sandbox.client("iam")
    names = iam.list_role_policies(RoleName=profile.target.role_name)["PolicyNames"]
    assert len([n for n in names if grant.request_id in n]) == 1

    # Grant gone but deny missing (crash between the steps in another order): revoke completes.
    for name in names:
        iam.delete_role_policy(RoleName=profile.target.role_name, PolicyName=name)
    s3_with(credentials).list_buckets()
    engine.grant_revoke(profile.target, grant)
    with pytest.raises(ClientError):
        s3_with(credentials).list_buckets()


def test_revoke_deletes_a_grant_whose_deny_is_already_present(engine, profile):
    grant = make_grant()
    engine.grant_attach(profile.target, grant)
    engine.grant_revoke(profile.target, grant)
    engine.grant_attach(profile.target, grant)  # deny present, grant back: a half-done revoke
    engine.grant_revoke(profile.target, grant)
    assert not engine.grant_is_attached(profile.target, grant)


def test_prune_removes_only_revocations_whose_sessions_have_expired(aws_sandbox, engine, profile):
    old, recent = make_grant(), make_grant()
    for grant in (old, recent):
        engine.grant_attach(profile.target, grant)
    engine.grant_revoke(profile.target, old)
    engine.grant_revoke(profile.target, recent)
    now = old.expires_at  # revoked "now": not-after is now + 1 h + margin

    assert engine.revocations_prune(profile.target, now=now) == 0
    assert engine.revocations_prune(profile.target, now=now + timedelta(hours=2)) == 2
    names = aws_sandbox.client("iam").list_role_policies(RoleName=profile.target.role_name)
    assert not [n for n in names["PolicyNames"] if n.startswith("breakglass-revoked-")]


def test_when_denies_no_longer_fit_older_sessions_are_revoked_wholesale(
    aws_sandbox, engine, profile
):
    keep = make_grant()
    engine.grant_attach(profile.target, keep)
    kept = s3_with(engine.credentials_issue(profile.target, keep, profile.principal_keys))
    iam = aws_sandbox.client("iam")
    role_fill(iam, profile.target.role_name, genuine=True)
    grant = make_grant()
    engine.grant_attach(profile.target, grant)
    s3 = s3_with(engine.credentials_issue(profile.target, grant, profile.principal_keys))

    cut = engine.grant_revoke(profile.target, grant)

    assert cut is not None and cut <= datetime.now(UTC) + timedelta(seconds=1)  # not now + 5 min
    with pytest.raises(ClientError):
        s3.list_buckets()
    with pytest.raises(ClientError):
        kept.list_buckets()  # the documented cost of the fallback: the caller re-issues
    names = iam.list_role_policies(RoleName=profile.target.role_name)["PolicyNames"]
    assert any(n.startswith("breakglass-revoked-before-") for n in names)
    time.sleep(max(0.0, (cut - datetime.now(UTC)).total_seconds()) + 0.05)
    fresh = s3_with(engine.credentials_issue(profile.target, keep, profile.principal_keys))
    fresh.list_buckets()  # a session issued after the cut works


def test_counterfeit_denies_filling_the_role_are_pruned_not_a_reason_for_the_fallback(
    aws_sandbox, engine, profile
):
    keep = make_grant()
    engine.grant_attach(profile.target, keep)
    kept = s3_with(engine.credentials_issue(profile.target, keep, profile.principal_keys))
    iam = aws_sandbox.client("iam")
    role_fill(iam, profile.target.role_name, genuine=False)
    grant = make_grant()
    engine.grant_attach(profile.target, grant)
    s3 = s3_with(engine.credentials_issue(profile.target, grant, profile.principal_keys))

    assert engine.grant_revoke(profile.target, grant) is None

    with pytest.raises(ClientError):
        s3.list_buckets()
    kept.list_buckets()  # the other live grant is untouched
    names = iam.list_role_policies(RoleName=profile.target.role_name)["PolicyNames"]
    assert not any("filler" in n or n.startswith("breakglass-revoked-before-") for n in names)


@pytest.mark.parametrize("implausible", ["until", "before"])
def test_exact_denies_no_revocation_could_have_written_do_not_force_the_fallback(
    aws_sandbox, engine, profile, implausible
):
    keep = make_grant()
    engine.grant_attach(profile.target, keep)
    kept = s3_with(engine.credentials_issue(profile.target, keep, profile.principal_keys))
    iam = aws_sandbox.client("iam")
    role_fill(iam, profile.target.role_name, genuine=True, implausible=implausible)
    grant = make_grant()
    engine.grant_attach(profile.target, grant)

    assert engine.grant_revoke(profile.target, grant) is None

    kept.list_buckets()  # the other live grant is untouched
    names = iam.list_role_policies(RoleName=profile.target.role_name)["PolicyNames"]
    assert not any("2099" in n for n in names)


def role_fill(iam, role_name: str, *, genuine: bool, implausible: str = "") -> None:
    """Fill the role's 10,240 inline characters with live revocation denies: each holding the
    exact deny its name says (genuine), or a deny of someone else (counterfeit). Their names
    are ones a revocation could have written now, unless `implausible`: "until" (a not-after
    decades away) or "before" (older-sessions denies of a moment in the future)."""
    now = datetime.now(UTC).replace(microsecond=0)
    until = now + timedelta(minutes=30)
    if implausible:
        until = datetime(2099, 12, 31, tzinfo=UTC)
    for index in range(200):
        request_id = f"filler{index:03d}-{uuid.uuid4().hex[:24]}"
        name = policies.revocation_policy_name(request_id, until)
        document = policies.revocation_policy(request_id if genuine else "x" * 36)
        if implausible == "before":
            moment = until - timedelta(seconds=index)
            name = policies.revoke_older_sessions_policy_name(moment, until)
            document = policies.revoke_older_sessions_policy(moment)
        try:
            iam.put_role_policy(
                RoleName=role_name, PolicyName=name, PolicyDocument=json.dumps(document)
            )
        except ClientError as error:
            assert error.response["Error"]["Code"] == "LimitExceeded"
            return
    pytest.fail("the sandbox did not enforce the role inline policy size limit")


def test_a_role_principal_gets_a_role_inline_grant(aws_sandbox, profile):
    engine = AccessEngine(aws_sandbox.broker, propagation_timeout=0.5)
    with pytest.raises(PermanentAwsError) as excinfo:
        engine.grant_attach(
            profile.target.__class__(
                **{
                    **profile.target.__dict__,
                    "principal_arn": "arn:aws:iam::123456789012:role/other",
                }
            ),
            make_grant(),
        )
    # The broker may only touch break-glass principals: this proves the call was PutRolePolicy.
    assert str(excinfo.value).startswith("iam:PutRolePolicy failed: AccessDenied")


def test_unknown_keys_are_refused(aws_sandbox):
    s3 = boto3.client(
        "s3",
        endpoint_url=aws_sandbox.endpoint_url,
        region_name="eu-west-1",
        aws_access_key_id="AKIAUNKNOWNUNKNOWN00",
        aws_secret_access_key="nope",
    )
    with pytest.raises(ClientError) as excinfo:
        s3.list_buckets()
    assert error_code_of(excinfo) == "InvalidAccessKeyId"
