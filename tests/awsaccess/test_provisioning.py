import json

from awsaccess import policies, watch_routes
from awsaccess.provisioning import profile_provision


def statuses(report) -> dict[str, str]:
    return {finding.resource: finding.status for finding in report.findings}


def test_provisioning_is_idempotent(aws_sandbox, profile):
    report = profile_provision(aws_sandbox.provisioner, profile.target, check_only=False)
    assert set(statuses(report).values()) == {"ok"}
    assert not report.has_drift


def test_provisioning_creates_role_rule_and_queue(aws_sandbox, profile):
    iam, events, sqs = (aws_sandbox.client(s) for s in ("iam", "events", "sqs"))
    role = iam.get_role(RoleName=profile.target.role_name)["Role"]
    assert role["AssumeRolePolicyDocument"] == policies.trust_policy(profile.target)
    name = policies.watch_name(profile.target.role_name)
    rule = events.describe_rule(Name=name)
    assert json.loads(rule["EventPattern"]) == policies.watch_event_pattern(profile.target)
    assert rule["State"] == "ENABLED"
    queue_url = sqs.get_queue_url(QueueName=name)["QueueUrl"]
    queue_arn = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])[
        "Attributes"
    ]["QueueArn"]
    targets = events.list_targets_by_rule(Rule=name)["Targets"]
    assert [t["Arn"] for t in targets] == [queue_arn]


def test_check_only_changes_nothing_and_reports_missing(aws_sandbox, profile):
    fresh = profile.target.__class__(
        **{**profile.target.__dict__, "role_arn": profile.target.role_arn + "-unprovisioned"}
    )
    report = profile_provision(aws_sandbox.provisioner, fresh, check_only=True)
    assert report.has_drift
    assert statuses(report)["role"] == "missing"
    assert statuses(report)["watch rule"] == "missing"
    iam = aws_sandbox.client("iam")
    assert fresh.role_name not in [r["RoleName"] for r in iam.list_roles()["Roles"]]


def test_drift_is_reported_not_silently_fixed(aws_sandbox, profile):
    iam, events = aws_sandbox.client("iam"), aws_sandbox.client("events")
    widened = policies.trust_policy(profile.target)
    widened["Statement"][0]["Condition"].pop("ArnEquals")  # anyone in the account
    iam.update_assume_role_policy(
        RoleName=profile.target.role_name, PolicyDocument=json.dumps(widened)
    )
    events.disable_rule(Name=policies.watch_name(profile.target.role_name))
    iam.put_user_policy(
        UserName=profile.target.principal_arn.rsplit("/", 1)[1],
        PolicyName="sneaky",
        PolicyDocument=json.dumps(
            {
                "Version": "2012-10-17",
                "Statement": [{"Effect": "Allow", "Action": "sts:AssumeRole", "Resource": "*"}],
            }
        ),
    )

    for check_only in (True, False):
        report = profile_provision(aws_sandbox.provisioner, profile.target, check_only=check_only)
        found = statuses(report)
        assert found["role trust policy"] == "drift"
        assert found["watch rule"] == "drift"
        assert found["principal permissions"] == "drift"
        assert report.has_drift

    fixed = profile_provision(
        aws_sandbox.provisioner, profile.target, check_only=False, fix_drift=True
    )
    assert statuses(fixed)["role trust policy"] == "fixed"
    assert statuses(fixed)["watch rule"] == "fixed"
    again = statuses(profile_provision(aws_sandbox.provisioner, profile.target, check_only=True))
    assert again["role trust policy"] == again["watch rule"] == "ok"


def test_rules_and_boundary_from_before_issue_12_s_audit_are_drift_until_fixed(
    aws_sandbox, profile
):
    """Rules that let any event source through, and a boundary that lets sessions send to the
    watch queue or chain into other roles: what provisioning found on accounts provisioned
    earlier. A plain run names them; `fix_drift` converges them."""
    target, events, iam = profile.target, aws_sandbox.client("events"), aws_sandbox.client("iam")
    for name, pattern in (
        (policies.activity_rule_name(target.role_name), policies.activity_event_pattern(target)),
        (
            watch_routes.changes_rule_name(target.role_name),
            watch_routes.changes_event_pattern(target),
        ),
    ):
        del pattern["source"]
        events.put_rule(Name=name, EventPattern=json.dumps(pattern), State="ENABLED")
    earlier = policies.protective_boundary(target, protect_persistence=True)
    earlier["Statement"] = [
        statement
        for statement in earlier["Statement"]
        if statement["Sid"] != "BreakGlassNoRoleChaining"
    ]
    watch = next(s for s in earlier["Statement"] if s["Sid"] == "BreakGlassProtectWatch")
    watch["Action"].remove("sqs:SendMessage")
    iam.create_policy_version(
        PolicyArn=policies.boundary_policy_arn(target),
        PolicyDocument=json.dumps(earlier),
        SetAsDefault=True,
    )
    drifted = ("activity rule", "changes rule", "role boundary policy")

    found = statuses(profile_provision(aws_sandbox.provisioner, target, check_only=False))
    assert {resource: found[resource] for resource in drifted} == dict.fromkeys(drifted, "drift")

    fixed = profile_provision(aws_sandbox.provisioner, target, check_only=False, fix_drift=True)
    assert {r: statuses(fixed)[r] for r in drifted} == dict.fromkeys(drifted, "fixed")
    again = profile_provision(aws_sandbox.provisioner, target, check_only=True)
    assert set(statuses(again).values()) == {"ok"}
