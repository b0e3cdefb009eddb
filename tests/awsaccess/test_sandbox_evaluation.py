"""The sandbox's policy evaluator, on its own (the HTTP tests prove it end to end)."""

from awsaccess.sandbox.evaluation import Decision, Request, evaluate

DENY_ONE = {
    "Statement": [
        {
            "Effect": "Deny",
            "Action": "*",
            "Resource": "*",
            "Condition": {"StringEquals": {"aws:SourceIdentity": "req-1"}},
        }
    ]
}
ALLOW_S3 = {"Statement": [{"Effect": "Allow", "Action": "s3:List*", "Resource": "*"}]}


def decide(documents, action="s3:ListAllMyBuckets", **context):
    return evaluate(documents, Request(action, "*", {k.lower(): v for k, v in context.items()}))[0]


def test_a_conditional_deny_matches_only_its_source_identity():
    assert decide([ALLOW_S3, DENY_ONE], **{"aws:SourceIdentity": "req-1"}) is Decision.DENY
    assert decide([ALLOW_S3, DENY_ONE], **{"aws:SourceIdentity": "req-2"}) is Decision.ALLOW
    assert decide([ALLOW_S3, DENY_ONE]) is Decision.ALLOW


def test_date_conditions_compare_times():
    policy = {
        "Statement": [
            {
                "Effect": "Allow",
                "Action": "*",
                "Resource": "*",
                "Condition": {"DateLessThan": {"aws:CurrentTime": "2030-01-01T00:00:00Z"}},
            }
        ]
    }
    assert decide([policy], **{"aws:CurrentTime": "2029-12-31T23:59:59Z"}) is Decision.ALLOW
    assert decide([policy], **{"aws:CurrentTime": "2030-01-01T00:00:00Z"}) is Decision.NEUTRAL


def test_null_and_missing_keys_follow_aws_rules():
    requires = {
        "Statement": [
            {
                "Effect": "Allow",
                "Action": "*",
                "Condition": {"Null": {"sts:SourceIdentity": "false"}},
            }
        ]
    }
    assert decide([requires], **{"sts:SourceIdentity": "x"}) is Decision.ALLOW
    assert decide([requires]) is Decision.NEUTRAL
    negated = {
        "Statement": [
            {"Effect": "Allow", "Action": "*", "Condition": {"StringNotEquals": {"aws:x": "a"}}}
        ]
    }
    assert decide([negated]) is Decision.ALLOW


def test_unknown_operators_fail_closed():
    weird = {"Effect": "Allow", "Action": "*", "Condition": {"IpAddressFancy": {"aws:x": "a"}}}
    assert decide([{"Statement": [weird]}]) is Decision.NEUTRAL
    assert decide([{"Statement": [{**weird, "Effect": "Deny"}]}]) is Decision.DENY
