"""The guard compares content, not names (issue 12): each thing it compares, changed behind the
portal's back with the provisioner's (an administrator's) keys against the sandbox, is named
exactly, in one alarm; and where provisioning routes the change to the watch, the watcher names
it within 10 s as well. A session of the role is refused all of these by its boundary
(tests/awsaccess/test_hostile_boundary.py); the guard is the backstop for whoever is not."""

import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import pytest

from approvals.models import AccessRequest, SecurityAlarm
from approvals.services.guard import GuardResult, guard_check
from approvals.services.watch import watch_poll
from awsaccess import policies
from awsaccess.sandbox.bootstrap import BUCKET, TRAIL, TRAIL_SELECTORS
from tests.watch.helpers import active_request, revoked_request, tampering_alarm

ALARM_WITHIN_SECONDS = 10
HARMLESS = {
    "Version": "2012-10-17",
    "Statement": [{"Effect": "Allow", "Action": "s3:ListAllMyBuckets", "Resource": "*"}],
}
EVERYTHING = {
    "Version": "2012-10-17",
    "Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}],
}
ELSEWHERE = "arn:aws:sqs:eu-west-1:210987654321:elsewhere"
NOT_COVERED = "trails: no logging trail records every management event of eu-west-1"


@dataclass(frozen=True)
class Plant:
    act: Callable[[dict], object]  # the change, given the scene
    drifts: Callable[[dict], list[str]]  # how each drift the guard names begins, in its order
    action: str = ""  # what the real-time alarm names; "" when no event can reach the watch
    request: Callable[..., AccessRequest] | None = None  # a request of the profile it needs
    undo: Callable[[dict], object] = lambda scene: None  # for what the sandbox's tests share


def _deny_name(scene: dict) -> str:
    """The role policy holding the deny of the scene's revoked request."""
    request_id = str(scene["request"].pk)
    [name] = [
        name
        for name in scene["iam"].list_role_policies(RoleName=scene["role"])["PolicyNames"]
        if policies.revocation_request_id(name) == request_id
    ]
    return name


def _deny_overwrite(scene: dict) -> None:
    scene["deny"] = _deny_name(scene)
    scene["iam"].put_role_policy(
        RoleName=scene["role"], PolicyName=scene["deny"], PolicyDocument=json.dumps(HARMLESS)
    )


def _deny_delete(scene: dict) -> None:
    scene["iam"].delete_role_policy(RoleName=scene["role"], PolicyName=_deny_name(scene))


def _older_sessions_deny_put(scene: dict, issued_before: datetime) -> None:
    """A genuine revoke-older-sessions deny of that moment, as the revocation fallback writes."""
    until = datetime(2099, 12, 31, tzinfo=UTC)
    scene["iam"].put_role_policy(
        RoleName=scene["role"],
        PolicyName=policies.revoke_older_sessions_policy_name(issued_before, until),
        PolicyDocument=policies.to_json(policies.revoke_older_sessions_policy(issued_before)),
    )


def _deny_swapped_for_an_ancient_cut(scene: dict) -> None:
    # A genuine deny of sessions issued before 1970 cuts off nothing the request ever had.
    _older_sessions_deny_put(scene, datetime(1970, 1, 1, tzinfo=UTC))
    _deny_delete(scene)


def _grant_overwrite(scene: dict) -> None:
    scene["grant"] = f"{policies.GRANT_POLICY_PREFIX}{scene['request'].pk}"
    scene["iam"].put_user_policy(
        UserName=scene["principal"],
        PolicyName=scene["grant"],
        PolicyDocument=json.dumps(EVERYTHING),
    )


def _policy_create(scene: dict, name: str) -> str:
    return scene["iam"].create_policy(PolicyName=name, PolicyDocument=json.dumps(EVERYTHING))[
        "Policy"
    ]["Arn"]


def _role_boundary_replace(scene: dict) -> None:
    scene["other"] = _policy_create(scene, f"lenient-{scene['role']}")
    scene["iam"].put_role_permissions_boundary(
        RoleName=scene["role"], PermissionsBoundary=scene["other"]
    )


def _boundary_document_replace(scene: dict) -> None:
    scene["iam"].create_policy_version(
        PolicyArn=policies.boundary_policy_arn(scene["target"]),
        PolicyDocument=json.dumps(EVERYTHING),
        SetAsDefault=True,
    )


def _principal_boundary_put(scene: dict) -> None:
    scene["other"] = _policy_create(scene, f"lenient-{scene['principal']}")
    scene["iam"].put_user_permissions_boundary(
        UserName=scene["principal"], PermissionsBoundary=scene["other"]
    )


def _watch_target_put(**fields: object) -> Callable[[dict], object]:
    return lambda scene: scene["events"].put_targets(
        Rule=scene["watch"],
        Targets=[{"Id": policies.WATCH_TARGET_ID, "Arn": scene["queue_arn"], **fields}],
    )


def _trail_restore(scene: dict) -> None:
    """Back to the sandbox's own trail (bootstrap's), which every other test relies on."""
    trails = scene["cloudtrail"]
    if not trails.describe_trails(trailNameList=[TRAIL])["trailList"]:
        trails.create_trail(
            Name=TRAIL,
            S3BucketName=BUCKET,
            IsMultiRegionTrail=True,
            IncludeGlobalServiceEvents=True,
        )
        trails.start_logging(Name=TRAIL)
    trails.put_event_selectors(TrailName=TRAIL, AdvancedEventSelectors=TRAIL_SELECTORS)


def _deny_of(scene: dict, reason: str) -> list[str]:
    return [f"role policies: '{scene['deny']}' does not hold the portal's deny: {reason}"]


PLANTS = {
    "a revoked request's deny overwritten with a harmless policy": Plant(
        act=_deny_overwrite,
        drifts=lambda s: _deny_of(s, "statement BreakGlassRevoked removed; statement #0 added"),
        action="iam:PutRolePolicy",
        request=revoked_request,
    ),
    "a revoked request's deny deleted": Plant(
        act=_deny_delete,
        drifts=lambda s: [f"role policies: the deny of revoked request {s['request'].pk} is gone"],
        action="iam:DeleteRolePolicy",
        request=revoked_request,
    ),
    "a revoked request's deny swapped for an older-sessions deny of 1970": Plant(
        act=_deny_swapped_for_an_ancient_cut,
        drifts=lambda s: [f"role policies: the deny of revoked request {s['request'].pk} is gone"],
        action="iam:DeleteRolePolicy",
        request=revoked_request,
    ),
    "a live grant widened on the principal": Plant(
        act=_grant_overwrite,
        drifts=lambda s: [f"principal grants: '{s['grant']}' differs from the grant issued"],
        action="iam:PutUserPolicy",
        request=active_request,
    ),
    "a console password for the principal": Plant(
        act=lambda s: s["iam"].create_login_profile(
            UserName=s["principal"], Password="Tamper-Proof-Not-1!"
        ),
        drifts=lambda s: ["principal console password: the principal has a login profile"],
        action="iam:CreateLoginProfile",
    ),
    "a permissions boundary on the principal": Plant(
        act=_principal_boundary_put,
        drifts=lambda s: [f"principal permissions boundary: is {s['other']}"],
        action="iam:PutUserPermissionsBoundary",
    ),
    "the role's boundary removed": Plant(
        act=lambda s: s["iam"].delete_role_permissions_boundary(RoleName=s["role"]),
        drifts=lambda s: [
            "role permissions boundary: missing: is None, should be "
            + policies.boundary_policy_arn(s["target"])
        ],
        action="iam:DeleteRolePermissionsBoundary",
    ),
    "the role's boundary replaced by another policy": Plant(
        act=_role_boundary_replace,
        drifts=lambda s: [
            f"role permissions boundary: drift: is {s['other']}, should be "
            + policies.boundary_policy_arn(s["target"])
        ],
        action="iam:PutRolePermissionsBoundary",
    ),
    "the role's boundary policy rewritten": Plant(
        act=_boundary_document_replace,
        drifts=lambda s: ["role boundary policy: drift: differs from the protective boundary"],
        action="iam:CreatePolicyVersion",
    ),
    "an InputPath on the watch rule's target": Plant(
        act=_watch_target_put(InputPath="$.detail.userIdentity"),
        drifts=lambda s: ['watch rule target: InputPath added: "$.detail.userIdentity"'],
        action="events:PutTargets",
    ),
    "an InputTransformer on the watch rule's target": Plant(
        act=_watch_target_put(
            InputTransformer={
                "InputPathsMap": {"id": "$.id"},
                "InputTemplate": '{"detail": {"eventName": "GetCallerIdentity", "id": <id>}}',
            }
        ),
        drifts=lambda s: ["watch rule target: InputTransformer added: "],
        action="events:PutTargets",
    ),
    "an extra target on the watch rule": Plant(
        act=lambda s: s["events"].put_targets(
            Rule=s["watch"], Targets=[{"Id": "copy", "Arn": ELSEWHERE}]
        ),
        drifts=lambda s: [f'watch rule target: extra target copy: {{"Arn":"{ELSEWHERE}","Id"'],
        action="events:PutTargets",
    ),
    "classic event selectors that record writes only": Plant(
        act=lambda s: s["cloudtrail"].put_event_selectors(
            TrailName=TRAIL,
            EventSelectors=[{"ReadWriteType": "WriteOnly", "IncludeManagementEvents": True}],
        ),
        drifts=lambda s: [
            f"trail {TRAIL}: event selectors do not record every management event",
            NOT_COVERED,
        ],
        action="cloudtrail:PutEventSelectors",
        undo=_trail_restore,
    ),
    "advanced event selectors that record writes only": Plant(
        act=lambda s: s["cloudtrail"].put_event_selectors(
            TrailName=TRAIL,
            AdvancedEventSelectors=[
                {
                    "Name": "Management writes",
                    "FieldSelectors": [
                        {"Field": "eventCategory", "Equals": ["Management"]},
                        {"Field": "readOnly", "Equals": ["false"]},
                    ],
                }
            ],
        ),
        drifts=lambda s: [
            f"trail {TRAIL}: advanced event selectors do not record every management event",
            NOT_COVERED,
        ],
        action="cloudtrail:PutEventSelectors",
        undo=_trail_restore,
    ),
    # A deleted trail records nothing more, its own deletion included: only the guard sees it.
    "a deleted trail": Plant(
        act=lambda s: s["cloudtrail"].delete_trail(Name=TRAIL),
        drifts=lambda s: [NOT_COVERED],
        undo=_trail_restore,
    ),
}


def changes(result: GuardResult) -> list[str]:
    return [f"{drift.resource}: {drift.change}" for drift in result.drifts]


def assert_named(drifts: list[str], beginnings: list[str]) -> None:
    assert len(drifts) == len(beginnings), drifts
    for drift, beginning in zip(drifts, beginnings, strict=True):
        assert drift.startswith(beginning), (drift, beginning)


def the_guard_alarm() -> SecurityAlarm:
    [alarm] = SecurityAlarm.objects.filter(kind="guard_drift")
    return alarm


@pytest.mark.parametrize("name", list(PLANTS))
def test_each_change_is_named_exactly_in_one_alarm(watched, scene, name):
    plant = PLANTS[name]
    if plant.request is not None:
        scene["request"] = plant.request(watched.cast, watched.profile)
    started = time.time()
    try:
        plant.act(scene)
        alarm = tampering_alarm(watched, plant.action) if plant.action else None
        [result] = guard_check()
    finally:
        plant.undo(scene)
    drifts = changes(result)
    assert_named(drifts, plant.drifts(scene))
    guard_alarm = the_guard_alarm()
    assert guard_alarm.detail["changes"] == drifts
    assert drifts[0] in guard_alarm.title
    if alarm is not None:
        assert alarm.opened_at.timestamp() - started <= ALARM_WITHIN_SECONDS
        assert f"breakglass-provisioner did {plant.action}" in alarm.title


@pytest.mark.parametrize(
    ("cut_after_revocation", "named"),
    [(True, False), (False, True)],
    ids=["a later cut, as the fallback's, stands for it", "an earlier cut does not"],
)
def test_an_older_sessions_deny_stands_only_for_requests_revoked_before_its_moment(
    watched, scene, cut_after_revocation, named
):
    scene["request"] = revoked = revoked_request(watched.cast, watched.profile)
    assert revoked.revoked_at is not None
    moment = revoked.revoked_at.replace(microsecond=0) + timedelta(seconds=1)
    if not cut_after_revocation:
        moment -= timedelta(minutes=1)
    _older_sessions_deny_put(scene, moment)
    _deny_delete(scene)
    gone = [f"role policies: the deny of revoked request {revoked.pk} is gone"]
    assert changes(guard_check()[0]) == (gone if named else [])


def test_several_changes_at_once_are_one_alarm_naming_each(watched, scene):
    scene["events"].disable_rule(Name=scene["watch"])
    key = scene["iam"].create_access_key(UserName=scene["principal"])["AccessKey"]["AccessKeyId"]
    scene["iam"].create_login_profile(UserName=scene["principal"], Password="Tamper-Proof-Not-1!")

    drifts = changes(guard_check()[0])
    guard_check()

    assert drifts == [
        "watch rule: state is DISABLED, expected ENABLED",
        f"principal access keys: key {key} is not the portal's",
        "principal console password: the principal has a login profile",
    ]
    alarm = the_guard_alarm()
    assert alarm.detail["changes"] == drifts
    assert alarm.title.endswith(f"{drifts[0]} (and 2 more)")


def test_a_deleted_watch_queue_is_named_and_leaves_the_watcher_blind(watched, scene):
    # Its own DeleteQueue event has nowhere to go: the guard, and the watcher's failed read
    # (which keeps its heartbeat stale), are what see it.
    scene["sqs"].delete_queue(QueueUrl=scene["queue_url"])

    assert watch_poll(wait_seconds=1).queue_errors == 1
    assert changes(guard_check()[0]) == [f"watch queue: missing: {scene['watch']}"]
    assert the_guard_alarm().detail["changes"] == [f"watch queue: missing: {scene['watch']}"]
