"""Issue 12, from the attacker's side: an administrator's identity (the provisioner's keys: a
session of the role is refused all of this by its boundary) plants a way back in or blinds the
watch. Each is a real-time alarm within 10 s naming who did what (routed by CloudTrail →
EventBridge → the watch queue, no injected events), and each is named by the guard and
`check_guard`."""

import json
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass

import pytest
from django.core.management import CommandError, call_command

from approvals.models import SecurityAlarm
from approvals.services.guard import guard_check
from awsaccess import policies
from awsaccess.provisioning import profile_provision
from awsaccess.sandbox.bootstrap import TRAIL
from tests.watch.helpers import revoked_request, tampering_alarm

ALARM_WITHIN_SECONDS = 10
HARMLESS = json.dumps(
    {
        "Version": "2012-10-17",
        "Statement": [{"Effect": "Allow", "Action": "s3:ListAllMyBuckets", "Resource": "*"}],
    }
)
ASSUME = json.dumps(
    {
        "Version": "2012-10-17",
        "Statement": [{"Effect": "Allow", "Action": "sts:AssumeRole", "Resource": "*"}],
    }
)


@dataclass
class Sabotage:
    act: Callable[[dict], object]  # the attack, given the scene
    action: str  # what the alarm must name
    drift: str  # what check_guard must name
    undo: Callable[[dict], object] = lambda scene: None


def _open_queue_policy(scene: dict) -> None:
    sqs = scene["sqs"]
    current = json.loads(
        sqs.get_queue_attributes(QueueUrl=scene["queue_url"], AttributeNames=["Policy"])[
            "Attributes"
        ]["Policy"]
    )
    current["Statement"].append(
        {
            "Sid": "Forgeries",
            "Effect": "Allow",
            "Principal": "*",
            "Action": "sqs:SendMessage",
            "Resource": scene["queue_arn"],
        }
    )
    sqs.set_queue_attributes(
        QueueUrl=scene["queue_url"], Attributes={"Policy": json.dumps(current)}
    )


def _trust_widen(scene: dict) -> None:
    trust = scene["iam"].get_role(RoleName=scene["role"])["Role"]["AssumeRolePolicyDocument"]
    trust["Statement"][0]["Principal"] = {"AWS": "*"}
    scene["iam"].update_assume_role_policy(RoleName=scene["role"], PolicyDocument=json.dumps(trust))


def _watch_rule_delete(scene: dict) -> None:
    scene["events"].remove_targets(Rule=scene["watch"], Ids=[policies.WATCH_TARGET_ID])
    scene["events"].delete_rule(Name=scene["watch"])


SABOTAGES = {
    "a planted breakglass-revoked-* policy": Sabotage(
        act=lambda s: s["iam"].put_role_policy(
            RoleName=s["role"],
            PolicyName=f"breakglass-revoked-{uuid.uuid4()}-until-20991231T000000Z",
            PolicyDocument=HARMLESS,
        ),
        action="iam:PutRolePolicy",
        drift="names no request the portal revoked",
    ),
    "a planted breakglass-grant-* policy": Sabotage(
        act=lambda s: s["iam"].put_user_policy(
            UserName=s["principal"], PolicyName="breakglass-grant-zzz", PolicyDocument=ASSUME
        ),
        action="iam:PutUserPolicy",
        drift="principal grants: 'breakglass-grant-zzz' is the grant of no live request",
    ),
    "a planted principal key": Sabotage(
        act=lambda s: s["iam"].create_access_key(UserName=s["principal"]),
        action="iam:CreateAccessKey",
        drift="is not the portal's",
    ),
    "a changed rule target": Sabotage(
        act=lambda s: s["events"].put_targets(
            Rule=s["watch"],
            Targets=[{"Id": policies.WATCH_TARGET_ID, "Arn": s["queue_arn"], "Input": "{}"}],
        ),
        action="events:PutTargets",
        drift='watch rule target: Input added: "{}"',
    ),
    "a disabled rule": Sabotage(
        act=lambda s: s["events"].disable_rule(Name=s["watch"]),
        action="events:DisableRule",
        drift="watch rule: state is DISABLED, expected ENABLED",
    ),
    "a changed queue policy": Sabotage(
        act=_open_queue_policy,
        action="sqs:SetQueueAttributes",
        drift="watch queue policy: statement Forgeries added",
    ),
    "a stopped trail": Sabotage(
        act=lambda s: s["cloudtrail"].stop_logging(Name=TRAIL),
        action="cloudtrail:StopLogging",
        drift=f"trail {TRAIL}: is not logging",
        undo=lambda s: s["cloudtrail"].start_logging(Name=TRAIL),
    ),
    "a widened trust policy": Sabotage(
        act=_trust_widen,
        action="iam:UpdateAssumeRolePolicy",
        drift="role trust policy: statement BreakGlassPrincipalOnly: Principal changed",
    ),
    "removed rule targets": Sabotage(
        act=lambda s: s["events"].remove_targets(
            Rule=policies.activity_rule_name(s["role"]), Ids=[policies.WATCH_TARGET_ID]
        ),
        action="events:RemoveTargets",
        drift="activity rule target: missing",
    ),
    "a deleted rule": Sabotage(
        act=_watch_rule_delete,
        action="events:DeleteRule",
        drift="watch rule: missing",
    ),
    "a trail narrowed to its home region": Sabotage(
        act=lambda s: s["cloudtrail"].update_trail(Name=TRAIL, IsMultiRegionTrail=False),
        action="cloudtrail:UpdateTrail",
        drift="trails: no logging trail records every management event",
        undo=lambda s: s["cloudtrail"].update_trail(Name=TRAIL, IsMultiRegionTrail=True),
    ),
}


@pytest.mark.parametrize("name", list(SABOTAGES))
def test_each_sabotage_is_alarmed_in_seconds_and_named_by_check_guard(watched, scene, name, capsys):
    sabotage = SABOTAGES[name]
    started = time.time()
    try:
        sabotage.act(scene)
        alarm = tampering_alarm(watched, sabotage.action)
        seconds = alarm.opened_at.timestamp() - started
        drifts = [f"{d.resource}: {d.change}" for d in guard_check()[0].drifts]
        with pytest.raises(CommandError, match="profiles are not intact"):
            call_command("check_guard", profile=[watched.profile.slug])
    finally:
        sabotage.undo(scene)
    assert seconds <= ALARM_WITHIN_SECONDS, f"alarm after {seconds:.1f} s"
    assert alarm.detail["actor"].endswith(":user/breakglass-provisioner")
    assert "breakglass-provisioner did " + sabotage.action in alarm.title
    assert alarm.profile == watched.profile
    assert any(sabotage.drift in drift for drift in drifts), drifts
    assert sabotage.drift in capsys.readouterr().out


def test_the_broker_s_own_revocation_writes_raise_no_tampering_alarm(watched, scene):
    revoked_request(watched.cast, watched.profile)
    watched.aws.sandbox.trail_idle()
    watched.poll_until(lambda: True)
    watched.poll_until(lambda: True)
    assert not SecurityAlarm.objects.filter(kind="watch_tampering").exists()
    assert guard_check()[0].intact, guard_check()[0].drifts


def test_a_queue_policy_that_blinds_the_watch_is_named_by_the_guard(watched, scene):
    # This change stops its own event reaching the queue: only the guard can see it.
    scene["sqs"].set_queue_attributes(
        QueueUrl=scene["queue_url"], Attributes={"Policy": HARMLESS.replace("s3:", "sqs:")}
    )
    drifts = [f"{d.resource}: {d.change}" for d in guard_check()[0].drifts]
    assert any(
        d.startswith("watch queue policy: statement BreakGlassWatchRule removed") for d in drifts
    )
    profile_provision(
        scene["sandbox"].provisioner, scene["target"], check_only=False, fix_drift=True
    )
    assert guard_check()[0].intact


@pytest.mark.parametrize("listed", [True, False], ids=["listed", "not listed"])
def test_a_managed_policy_attached_to_the_role_is_alarmed(watched, scene, listed):
    # The guard compares the role's managed policies only with a list to compare against
    # (guard_expectation says why); the real-time alarm does not need one.
    profile = watched.profile
    if listed:
        attached = scene["iam"].list_attached_role_policies(RoleName=scene["role"])
        profile.role_policy_arns = "\n".join(p["PolicyArn"] for p in attached["AttachedPolicies"])
        profile.save()
    extra = f"arn:aws:iam::{profile.account_id}:policy/breakglass-extra-{uuid.uuid4().hex[:8]}"
    scene["iam"].create_policy(PolicyName=extra.rsplit("/", 1)[-1], PolicyDocument=HARMLESS)
    started = time.time()

    scene["iam"].attach_role_policy(RoleName=scene["role"], PolicyArn=extra)

    alarm = tampering_alarm(watched, "iam:AttachRolePolicy")
    assert alarm.opened_at.timestamp() - started <= ALARM_WITHIN_SECONDS
    drifts = [f"{d.resource}: {d.change}" for d in guard_check()[0].drifts]
    named = [f"role managed policies: {extra} attached, the profile does not list it"]
    assert drifts == (named if listed else [])


def test_a_purged_queue_is_alarmed_though_the_guard_has_nothing_to_see(watched, scene):
    # The watch is intact; only what it had not read yet is gone. The alarm is the witness.
    started = time.time()

    scene["sqs"].purge_queue(QueueUrl=scene["queue_url"])

    alarm = tampering_alarm(watched, "sqs:PurgeQueue")
    assert alarm.opened_at.timestamp() - started <= ALARM_WITHIN_SECONDS
    assert "breakglass-provisioner did sqs:PurgeQueue" in alarm.title
    assert guard_check()[0].intact


def test_a_broker_write_under_a_deny_name_that_is_no_deny_is_alarmed(watched, scene):
    """From the attacker's side, with the broker's stolen keys: a policy named like a revocation
    deny but allowing everything is not the broker's routine, whatever its name."""
    broker_iam = scene["sandbox"].client("iam", scene["sandbox"].broker, region_name="us-east-1")
    name = f"breakglass-revoked-{uuid.uuid4()}-until-20991231T000000Z"
    allow_all = {
        "Version": "2012-10-17",
        "Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}],
    }

    broker_iam.put_role_policy(
        RoleName=scene["role"], PolicyName=name, PolicyDocument=json.dumps(allow_all)
    )

    alarm = tampering_alarm(watched, "iam:PutRolePolicy")
    assert "breakglass-broker did iam:PutRolePolicy" in alarm.title
