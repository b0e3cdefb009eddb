import json

import pytest
from django.core.management import CommandError, call_command

from approvals.models import SecurityAlarm
from approvals.services.guard import guard_check
from awsaccess import policies
from awsaccess.provisioning import profile_provision


@pytest.fixture
def setup(watched):
    """The watched profile's live resources, changed with the provisioner's (admin) keys."""
    sandbox, profile = watched.aws.sandbox, watched.profile
    target = profile.aws_target()
    return {
        "iam": sandbox.client("iam", region_name="us-east-1"),
        "events": sandbox.client("events", region_name=profile.region),
        "role": target.role_name,
        "watch": policies.watch_name(target.role_name),
        "trust": policies.trust_policy(target),
        "profile": profile,
        "target": target,
        "sandbox": sandbox,
    }


def changes(results) -> list[str]:
    [result] = results
    return [f"{drift.resource}: {drift.change}" for drift in result.drifts]


def test_an_untouched_setup_reports_no_drift_and_raises_nothing(setup):
    [result] = guard_check()
    assert result.intact, result.drifts
    assert not SecurityAlarm.objects.exists()


def test_a_disabled_rule_is_named(setup):
    setup["events"].disable_rule(Name=setup["watch"])
    assert changes(guard_check()) == ["watch rule: state is DISABLED, expected ENABLED"]
    alarm = SecurityAlarm.objects.get()
    assert alarm.kind == "guard_drift" and "state is DISABLED" in alarm.title


def test_a_pattern_that_no_longer_matches_is_named(setup):
    pattern = policies.watch_event_pattern(setup["target"])
    pattern["detail"]["eventName"] = ["AssumeRoleWithSAML"]
    setup["events"].put_rule(Name=setup["watch"], EventPattern=json.dumps(pattern))
    assert changes(guard_check()) == [
        'watch rule: event pattern detail.eventName changed from "AssumeRole" to '
        '"AssumeRoleWithSAML"'
    ]


def test_a_removed_target_is_named(setup):
    setup["events"].remove_targets(Rule=setup["watch"], Ids=[policies.WATCH_TARGET_ID])
    [change] = changes(guard_check())
    assert change.startswith("watch rule target: missing: should be arn:aws:sqs:")


def test_a_widened_trust_policy_is_named(setup):
    trust = setup["trust"]
    trust["Statement"][0]["Principal"] = {"AWS": "*"}
    setup["iam"].update_assume_role_policy(RoleName=setup["role"], PolicyDocument=json.dumps(trust))
    assert changes(guard_check()) == [
        "role trust policy: statement BreakGlassPrincipalOnly: Principal changed from "
        '{"AWS":"arn:aws:iam::123456789012:root"} to {"AWS":"*"}'
    ]


def test_a_dropped_region_condition_is_named(setup):
    trust = setup["trust"]
    del trust["Statement"][0]["Condition"]["StringEquals"]
    setup["iam"].update_assume_role_policy(RoleName=setup["role"], PolicyDocument=json.dumps(trust))
    assert changes(guard_check()) == [
        "role trust policy: statement BreakGlassPrincipalOnly: condition StringEquals "
        'aws:RequestedRegion dropped (was "eu-west-1")'
    ]


def test_an_extra_statement_trusting_someone_else_is_named(setup):
    trust = setup["trust"]
    trust["Statement"].append(
        {
            "Sid": "Backdoor",
            "Effect": "Allow",
            "Principal": {"AWS": "arn:aws:iam::210987654321:root"},
            "Action": "sts:AssumeRole",
        }
    )
    setup["iam"].update_assume_role_policy(RoleName=setup["role"], PolicyDocument=json.dumps(trust))
    [change] = changes(guard_check())
    assert change.startswith("role trust policy: statement Backdoor added:")
    assert "210987654321" in change


def test_an_inline_policy_slipped_onto_the_role_is_named(setup):
    setup["iam"].put_role_policy(
        RoleName=setup["role"],
        PolicyName="extra-powers",
        PolicyDocument=json.dumps(
            {
                "Version": "2012-10-17",
                "Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}],
            }
        ),
    )
    assert changes(guard_check()) == [
        "role policies: unexpected inline policy 'extra-powers' on the role"
    ]


def test_the_same_drift_is_one_alarm_until_fixed_and_a_recurrence_is_another(setup):
    setup["events"].disable_rule(Name=setup["watch"])
    guard_check()
    guard_check()
    assert SecurityAlarm.objects.count() == 1

    setup["events"].enable_rule(Name=setup["watch"])
    assert guard_check()[0].intact
    setup["events"].disable_rule(Name=setup["watch"])
    guard_check()
    assert SecurityAlarm.objects.count() == 2


def test_check_guard_exits_non_zero_naming_the_drift(setup, capsys):
    call_command("check_guard")
    assert f"{setup['profile'].slug}: intact" in capsys.readouterr().out

    setup["events"].disable_rule(Name=setup["watch"])
    with pytest.raises(CommandError, match="1 of 1 profiles are not intact"):
        call_command("check_guard")
    assert "DRIFT watch rule: state is DISABLED" in capsys.readouterr().out


def test_fixing_with_provisioning_restores_an_intact_watch(setup):
    setup["events"].remove_targets(Rule=setup["watch"], Ids=[policies.WATCH_TARGET_ID])
    profile_provision(setup["sandbox"].provisioner, setup["target"], check_only=False)
    assert guard_check()[0].intact
