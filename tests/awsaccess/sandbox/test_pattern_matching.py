"""The sandbox matches each event against a bus's rules with a matcher of its own that stops at
the first failing key (moto's tries them all, which made a bus watching many roles the sandbox's
bottleneck). It must decide exactly as moto's does, for the patterns the portal provisions."""

import itertools

from moto.events.models import EventPattern

from awsaccess import policies, watch_routes
from awsaccess.sandbox import targets
from awsaccess.types import AwsTarget

ACCOUNT = "123456789012"
TARGET = AwsTarget(
    account_id=ACCOUNT,
    region="eu-west-1",
    role_arn=f"arn:aws:iam::{ACCOUNT}:role/breakglass-admin",
    principal_arn=f"arn:aws:iam::{ACCOUNT}:user/breakglass-principal",
    max_session_seconds=3600,
)
OTHER_ROLE = f"arn:aws:iam::{ACCOUNT}:role/someone-else"

PORTAL_RULES = ("watch", "activity", "changes", "forwarder")
PATTERNS = {
    "watch": policies.watch_event_pattern(TARGET),
    "activity": policies.activity_event_pattern(TARGET),
    "changes": watch_routes.changes_event_pattern(TARGET),
    "forwarder": watch_routes.forwarder_event_pattern(TARGET),
    "empty": {},
    "prefix and anything-but": {
        "detail": {
            "eventName": [{"prefix": "Put"}],
            "awsRegion": [{"anything-but": ["us-west-2"]}],
        }
    },
}


def _session(role_arn: str) -> dict:
    return {"type": "AssumedRole", "sessionContext": {"sessionIssuer": {"arn": role_arn}}}


def _event(source: str, name: str, *, read_only: bool, parameters: dict, identity: dict) -> dict:
    return {
        "version": "0",
        "detail-type": "AWS API Call via CloudTrail",
        "source": f"aws.{source.split('.')[0]}",
        "account": ACCOUNT,
        "region": "eu-west-1",
        "detail": {
            "eventSource": source,
            "eventName": name,
            "awsRegion": "eu-west-1",
            "readOnly": read_only,
            "requestParameters": parameters,
            "userIdentity": identity,
        },
    }


BROKER = {"type": "IAMUser", "arn": f"arn:aws:iam::{ACCOUNT}:user/broker"}
EVENTS = [
    _event("sts.amazonaws.com", "AssumeRole", read_only=True,
           parameters={"roleArn": TARGET.role_arn}, identity=BROKER),
    _event("sts.amazonaws.com", "AssumeRole", read_only=True,
           parameters={"roleArn": OTHER_ROLE}, identity=BROKER),
    _event("s3.amazonaws.com", "ListBuckets", read_only=True, parameters={},
           identity=_session(TARGET.role_arn)),
    _event("iam.amazonaws.com", "PutRolePolicy", read_only=False,
           parameters={"roleName": TARGET.role_name}, identity=_session(TARGET.role_arn)),
    _event("iam.amazonaws.com", "PutUserPolicy", read_only=False,
           parameters={"userName": "breakglass-principal"}, identity=BROKER),
    _event("iam.amazonaws.com", "PutUserPolicy", read_only=False,
           parameters={"userName": "someone"}, identity=BROKER),
    _event("iam.amazonaws.com", "GetUserPolicy", read_only=True,
           parameters={"userName": "breakglass-principal"}, identity=BROKER),
    _event("events.amazonaws.com", "DisableRule", read_only=False,
           parameters={"name": policies.activity_rule_name(TARGET.role_name)},
           identity=_session(OTHER_ROLE)),
    _event("sqs.amazonaws.com", "SetQueueAttributes", read_only=False,
           parameters={"queueUrl": f"https://sqs/{ACCOUNT}/{policies.watch_name(TARGET.role_name)}"},
           identity=BROKER),
    _event("cloudtrail.amazonaws.com", "StopLogging", read_only=False, parameters={},
           identity=_session(OTHER_ROLE)),
]  # fmt: skip
# What anyone allowed events:PutEvents may send: CloudTrail-shaped, any source but "aws.*".
FORGED = [
    {**event, "source": "forged.by.session"}
    for event in (EVENTS[0], EVENTS[2], EVENTS[3], EVENTS[4], EVENTS[7], EVENTS[9])
]
EVENTS += FORGED


def _sandbox_decides(pattern: dict, event: dict) -> bool:
    rule = type("Rule", (), {"state": "ENABLED", "event_pattern": EventPattern(None, pattern)})
    return targets._matches(rule, targets.flattened(event))  # type: ignore[arg-type]


def test_the_sandbox_matcher_decides_every_portal_pattern_as_moto_does():
    decisions = {}
    for (label, pattern), (n, event) in itertools.product(PATTERNS.items(), enumerate(EVENTS)):
        moto = EventPattern(None, pattern).matches_event(event)
        assert _sandbox_decides(pattern, event) is moto, (label, n)
        decisions[label, n] = moto
    # Both outcomes occur for every non-empty pattern: the comparison is not vacuous.
    for label in PATTERNS.keys() - {"empty"}:
        outcomes = {decisions[label, n] for n in range(len(EVENTS))}
        assert outcomes == {True, False}, label


def test_no_portal_pattern_matches_an_event_an_aws_service_did_not_emit():
    portal = {label: pattern for label, pattern in PATTERNS.items() if label in PORTAL_RULES}
    for (label, pattern), event in itertools.product(portal.items(), FORGED):
        assert not _sandbox_decides(pattern, event), (label, event["detail"]["eventName"])


def test_a_disabled_rule_matches_nothing():
    rule = type("Rule", (), {"state": "DISABLED", "event_pattern": EventPattern(None, {})})
    assert not targets._matches(rule, targets.flattened(EVENTS[0]))  # type: ignore[arg-type]
