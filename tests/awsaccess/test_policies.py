from datetime import UTC, datetime, timedelta

import pytest

from awsaccess import policies, watch_routes
from awsaccess.types import AwsTarget, Grant

TARGET = AwsTarget(
    account_id="111122223333",
    region="eu-west-1",
    role_arn="arn:aws:iam::111122223333:role/breakglass-admin",
    principal_arn="arn:aws:iam::111122223333:user/breakglass-principal",
    max_session_seconds=3600,
)
REQUEST_ID = "0b6f3c1e-8a9d-4f7e-9c1a-2d3e4f5a6b7c"
GRANT = Grant(
    request_id=REQUEST_ID,
    session_name="INC-42-0b6f3c1e",
    tags={"ticket": "INC-42"},
    expires_at=datetime(2030, 1, 2, 3, 4, 5, 600000, tzinfo=UTC),
)


def test_trust_policy_trusts_only_the_principal_in_its_region_with_a_source_identity():
    assert policies.to_json(policies.trust_policy(TARGET)) == (
        '{"Version":"2012-10-17","Statement":[{"Sid":"BreakGlassPrincipalOnly","Effect":"Allow",'
        '"Principal":{"AWS":"arn:aws:iam::111122223333:root"},'
        '"Action":["sts:AssumeRole","sts:SetSourceIdentity","sts:TagSession"],'
        '"Condition":{"ArnEquals":{"aws:PrincipalArn":'
        '"arn:aws:iam::111122223333:user/breakglass-principal"},'
        '"StringEquals":{"aws:RequestedRegion":"eu-west-1"},'
        '"Null":{"sts:SourceIdentity":"false"}}}]}'
    )


def test_grant_policy_allows_only_this_role_until_expiry_with_this_source_identity():
    assert policies.grant_policy_name(GRANT) == f"breakglass-grant-{REQUEST_ID}"
    assert policies.to_json(policies.grant_policy(TARGET, GRANT)) == (
        '{"Version":"2012-10-17","Statement":[{"Sid":"BreakGlassGrant","Effect":"Allow",'
        '"Action":["sts:AssumeRole","sts:SetSourceIdentity","sts:TagSession"],'
        '"Resource":"arn:aws:iam::111122223333:role/breakglass-admin",'
        '"Condition":{"DateLessThan":{"aws:CurrentTime":"2030-01-02T03:04:05Z"},'
        f'"StringEquals":{{"sts:SourceIdentity":"{REQUEST_ID}"}}}}}}]}}'
    )


def test_session_policy_allows_within_the_grant_and_denies_after_expiry():
    assert policies.to_json(policies.session_policy(GRANT)) == (
        '{"Version":"2012-10-17","Statement":['
        '{"Sid":"BreakGlassWithinGrant","Effect":"Allow","Action":"*","Resource":"*"},'
        '{"Sid":"BreakGlassDenyAfterExpiry","Effect":"Deny","Action":"*","Resource":"*",'
        '"Condition":{"DateGreaterThan":{"aws:CurrentTime":"2030-01-02T03:04:05Z"}}}]}'
    )


def test_revocation_policy_denies_everything_to_one_source_identity():
    assert policies.to_json(policies.revocation_policy(REQUEST_ID)) == (
        '{"Version":"2012-10-17","Statement":[{"Sid":"BreakGlassRevoked","Effect":"Deny",'
        '"Action":"*","Resource":"*",'
        f'"Condition":{{"StringEquals":{{"aws:SourceIdentity":"{REQUEST_ID}"}}}}}}]}}'
    )


def test_revoke_older_sessions_policy_denies_by_token_issue_time():
    issued_before = datetime(2030, 1, 1, tzinfo=UTC)
    assert policies.to_json(policies.revoke_older_sessions_policy(issued_before)) == (
        '{"Version":"2012-10-17","Statement":[{"Sid":"BreakGlassRevokedOlder",'
        '"Effect":"Deny","Action":"*","Resource":"*",'
        '"Condition":{"DateLessThan":{"aws:TokenIssueTime":"2030-01-01T00:00:00Z"}}}]}'
    )


def test_revocation_lasts_until_the_longest_session_could_end():
    before_expiry = GRANT.expires_at - timedelta(hours=1)
    assert policies.revocation_not_after(TARGET, GRANT, before_expiry) == before_expiry + timedelta(
        seconds=3600 + 300
    )
    after_expiry = GRANT.expires_at + timedelta(hours=5)
    assert policies.revocation_not_after(
        TARGET, GRANT, after_expiry
    ) == GRANT.expires_at + timedelta(seconds=3600 + 300)


def test_revocation_policy_names_round_trip():
    until = datetime(2030, 1, 2, 3, 4, 5, tzinfo=UTC)
    name = policies.revocation_policy_name(REQUEST_ID, until)
    assert name == f"breakglass-revoked-{REQUEST_ID}-until-20300102T030405Z"
    assert len(name) <= 128
    assert policies.parse_revocation_policy_name(name) == (REQUEST_ID, until)
    older = policies.revoke_older_sessions_policy_name(until - timedelta(hours=1), until)
    assert policies.parse_revocation_policy_name(older) == (None, until)
    assert policies.parse_revocation_policy_name("breakglass-grant-x") is None


def test_watch_names_fit_eventbridge_limits():
    assert policies.watch_name("breakglass-admin") == "breakglass-watch-breakglass-admin"
    long_name = policies.watch_name("r" * 64)
    assert len(long_name) <= 64
    assert long_name != policies.watch_name("r" * 63 + "s")


def test_watch_event_pattern_matches_assume_role_of_the_role():
    assert policies.watch_event_pattern(TARGET) == {
        "source": ["aws.sts"],
        "detail-type": ["AWS API Call via CloudTrail"],
        "detail": {
            "eventSource": ["sts.amazonaws.com"],
            "eventName": ["AssumeRole"],
            "requestParameters": {"roleArn": ["arn:aws:iam::111122223333:role/breakglass-admin"]},
        },
    }


def test_every_rule_the_portal_provisions_matches_only_aws_sources():
    for pattern in (
        policies.watch_event_pattern(TARGET),
        policies.activity_event_pattern(TARGET),
        watch_routes.changes_event_pattern(TARGET),
        watch_routes.forwarder_event_pattern(TARGET),
    ):
        assert pattern["source"] in (["aws.sts"], [{"prefix": "aws."}]), pattern


def _denied(boundary: dict) -> dict[str, list[str]]:
    return {s["Sid"]: s["Action"] for s in boundary["Statement"] if s["Effect"] == "Deny"}


def test_the_boundary_always_denies_role_chaining_and_sending_to_the_watch_queues():
    for protect_persistence in (True, False):
        denied = _denied(
            policies.protective_boundary(TARGET, protect_persistence=protect_persistence)
        )
        assert denied["BreakGlassNoRoleChaining"] == ["sts:AssumeRole"]
        assert "sqs:SendMessage" in denied["BreakGlassProtectWatch"]
        assert "iam:Add*" in denied["BreakGlassProtectIdentities"]  # breakglass-* groups too


def test_passing_roles_to_compute_is_a_persistence_move_a_profile_may_allow():
    assert (
        "iam:PassRole"
        in _denied(policies.protective_boundary(TARGET, protect_persistence=True))[
            "BreakGlassNoPersistence"
        ]
    )
    assert "BreakGlassNoPersistence" not in _denied(
        policies.protective_boundary(TARGET, protect_persistence=False)
    )


def test_it_refuses_invalid_source_identities():
    with pytest.raises(ValueError):
        policies.check_source_identity("has space")
