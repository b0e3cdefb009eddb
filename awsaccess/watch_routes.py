"""Tampering seen in seconds: which CloudTrail events touch a profile's break-glass machinery, and
how they reach its watch queue.

Two more EventBridge routes per profile, besides the AssumeRole and activity rules:

* the **changes rule** (profile region): every write to the profile's machinery — IAM on the
  role, the principal, the boundary policy or the forwarder role; EventBridge on the watch rules;
  SQS on the watch queue; any CloudTrail trail change — to the watch queue;
* the **forwarder** (us-east-1, when the profile lives elsewhere): IAM records its events in
  us-east-1 only, so a us-east-1 rule sends those machinery changes, the role sessions' IAM calls
  (the activity record) and us-east-1 changes of the watch's own rules and trails to the profile
  region's default bus, through a role EventBridge assumes (AWS's cross-region routing).

The same predicate in Python (`machinery_change`) tells the watcher what a record touched.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from functools import lru_cache
from typing import TYPE_CHECKING, Any, Literal

from botocore.exceptions import ClientError

from awsaccess import policies
from awsaccess.clients import ClientFactory
from awsaccess.errors import aws_call, error_code, translate
from awsaccess.policies import normalize
from awsaccess.types import AwsConnection, AwsTarget

if TYPE_CHECKING:
    from mypy_boto3_events import EventBridgeClient
    from mypy_boto3_iam import IAMClient

FORWARDER_REGION = "us-east-1"  # where IAM's (global) events are recorded
FORWARDER_ROLE_NAME = "breakglass-watch-forwarder"
FORWARDER_POLICY_NAME = "breakglass-forward-to-watch"
FORWARD_TARGET_ID = "breakglass-watch-bus"
DETAIL_TYPE = "AWS API Call via CloudTrail"
# Changes to the queue itself (its messages are the broker's to read and delete: the boundary
# keeps sessions from them, and routing them would feed the queue its own reads).
QUEUE_CHANGES = (
    "AddPermission",
    "DeleteQueue",
    "PurgeQueue",
    "RemovePermission",
    "SetQueueAttributes",
    "TagQueue",
    "UntagQueue",
)
_CHANGES_PREFIX = f"{policies.WATCH_NAME_PREFIX}changes."
_FORWARD_PREFIX = f"{policies.WATCH_NAME_PREFIX}iam."


def _rule_name(prefix: str, role_name: str) -> str:
    """Under the watch prefix (the broker may read it, the boundary protects it), <= 64 chars."""
    name = f"{prefix}{role_name}"
    if len(name) <= 64:
        return name
    digest = hashlib.sha256(role_name.encode()).hexdigest()[:8]
    return f"{prefix}{role_name[: 64 - len(prefix) - 9]}-{digest}"


def changes_rule_name(role_name: str) -> str:
    return _rule_name(_CHANGES_PREFIX, role_name)


def forwarder_rule_name(role_name: str) -> str:
    return _rule_name(_FORWARD_PREFIX, role_name)


def forwarding_needed(target: AwsTarget) -> bool:
    return target.region != FORWARDER_REGION


def forwarder_role_arn(target: AwsTarget) -> str:
    return f"arn:aws:iam::{target.account_id}:role/{FORWARDER_ROLE_NAME}"


def profile_bus_arn(target: AwsTarget) -> str:
    return f"arn:aws:events:{target.region}:{target.account_id}:event-bus/default"


def watch_rule_names(target: AwsTarget) -> list[str]:
    role = target.role_name
    names = [
        policies.watch_name(role),
        policies.activity_rule_name(role),
        changes_rule_name(role),
    ]
    return names + ([forwarder_rule_name(role)] if forwarding_needed(target) else [])


def _principal_name(target: AwsTarget) -> str:
    return target.principal_arn.rsplit("/", 1)[-1]


def _machinery_alternatives(target: AwsTarget) -> list[dict[str, Any]]:
    """One EventBridge pattern alternative per way of touching the machinery (writes only)."""
    writes: dict[str, Any] = {"readOnly": [False]}
    rules = watch_rule_names(target)
    queue = policies.watch_name(target.role_name)
    return [
        {
            **writes,
            "eventSource": ["iam.amazonaws.com"],
            "requestParameters": {"roleName": [target.role_name, FORWARDER_ROLE_NAME]},
        },
        {
            **writes,
            "eventSource": ["iam.amazonaws.com"],
            "requestParameters": {"userName": [_principal_name(target)]},
        },
        {
            **writes,
            "eventSource": ["iam.amazonaws.com"],
            "requestParameters": {"policyArn": [policies.boundary_policy_arn(target)]},
        },
        {**writes, "eventSource": ["events.amazonaws.com"], "requestParameters": {"name": rules}},
        {**writes, "eventSource": ["events.amazonaws.com"], "requestParameters": {"rule": rules}},
        {
            **writes,
            "eventSource": ["sqs.amazonaws.com"],
            "eventName": list(QUEUE_CHANGES),
            "requestParameters": {"queueUrl": [{"suffix": f"/{queue}"}]},
        },
        {**writes, "eventSource": ["cloudtrail.amazonaws.com"]},
    ]


def changes_event_pattern(target: AwsTarget) -> dict:
    return {
        "source": policies.aws_sources(),
        "detail-type": [DETAIL_TYPE],
        "detail": {"$or": _machinery_alternatives(target)},
    }


def forwarder_event_pattern(target: AwsTarget) -> dict:
    session_iam_calls = {
        "eventSource": ["iam.amazonaws.com"],
        "userIdentity": {"sessionContext": {"sessionIssuer": {"arn": [target.role_arn]}}},
    }
    return {
        "source": policies.aws_sources(),
        "detail-type": [DETAIL_TYPE],
        "detail": {"$or": [session_iam_calls, *_machinery_alternatives(target)]},
    }


def forwarder_trust_policy() -> dict:
    return {
        "Version": policies.VERSION,
        "Statement": [
            {
                "Sid": "EventBridgeForwards",
                "Effect": "Allow",
                "Principal": {"Service": "events.amazonaws.com"},
                "Action": "sts:AssumeRole",
            }
        ],
    }


def forwarder_policy(account_id: str) -> dict:
    """Put events on the default bus of any region (each profile's region is one)."""
    return {
        "Version": policies.VERSION,
        "Statement": [
            {
                "Sid": "ForwardToWatchRegions",
                "Effect": "Allow",
                "Action": "events:PutEvents",
                "Resource": f"arn:aws:events:*:{account_id}:event-bus/default",
            }
        ],
    }


def changes_target(queue_arn: str) -> dict[str, str]:
    return {"Id": policies.WATCH_TARGET_ID, "Arn": queue_arn}


def forwarder_target(target: AwsTarget) -> dict[str, str]:
    return {
        "Id": FORWARD_TARGET_ID,
        "Arn": profile_bus_arn(target),
        "RoleArn": forwarder_role_arn(target),
    }


# -- the same predicate, for the watcher ------------------------------------------------------


def is_write(record: dict[str, Any]) -> bool:
    """A record of a call that may change something: only those can touch the machinery."""
    return record.get("readOnly") is False


def machinery_change(record: dict[str, Any], target: AwsTarget) -> str:
    """What of the profile's machinery a CloudTrail record writes to ("" when nothing)."""
    if not is_write(record):
        return ""
    source = str(record.get("eventSource", ""))
    parameters = record.get("requestParameters")
    parameters = parameters if isinstance(parameters, dict) else {}
    if source == "cloudtrail.amazonaws.com":
        return f"trail {parameters.get('name') or parameters.get('trailName') or '(unnamed)'}"
    if source == "iam.amazonaws.com":
        if parameters.get("roleName") in (target.role_name, FORWARDER_ROLE_NAME):
            return f"role {parameters['roleName']}"
        if parameters.get("userName") == _principal_name(target):
            return f"principal {parameters['userName']}"
        if parameters.get("policyArn") == policies.boundary_policy_arn(target):
            return f"boundary policy {parameters['policyArn']}"
    if source == "events.amazonaws.com":
        rule = parameters.get("name") or parameters.get("rule")
        if rule in watch_rule_names(target):
            return f"watch rule {rule}"
    if source == "sqs.amazonaws.com" and record.get("eventName") in QUEUE_CHANGES:
        url = str(parameters.get("queueUrl", ""))
        if url.endswith(f"/{policies.watch_name(target.role_name)}"):
            return f"watch queue {url.rsplit('/', 1)[-1]}"
    return ""


# -- provisioning the routes (called by provisioning with its clients and report) --------------

RouteStatus = Literal["ok", "created", "drift", "missing", "fixed"]  # provisioning's Status
Report = Callable[[str, RouteStatus, str], None]  # (resource, status, detail): ProvisionReport.add


def rule_ensure(
    events: EventBridgeClient,
    report: Report,
    *,
    name: str,
    pattern: dict,
    description: str,
    label: str,
    check_only: bool,
    fix: bool,
) -> bool:
    """The rule with exactly this pattern, ENABLED: reported, created, or fixed when asked.
    → whether the rule exists (or was created) afterwards."""
    try:
        rule: dict[str, Any] | None = dict(events.describe_rule(Name=name))
    except ClientError as error:
        if error_code(error) != "ResourceNotFoundException":
            raise translate("events:DescribeRule", error) from None
        rule = None
    if rule is None and check_only:
        report(label, "missing", name)
        return False
    problems = []
    if rule is not None and normalize(rule.get("EventPattern", "{}")) != normalize(pattern):
        problems.append("event pattern differs")
    if rule is not None and rule.get("State") != "ENABLED":
        problems.append(f"state is {rule.get('State')}")
    if rule is None or (problems and fix):
        with aws_call("events:PutRule"):
            events.put_rule(
                Name=name,
                EventPattern=json.dumps(pattern),
                State="ENABLED",
                Description=description,
            )
    if rule is None:
        report(label, "created", name)
    elif problems:
        report(label, "fixed" if fix else "drift", "; ".join(problems))
    else:
        report(label, "ok", name)
    return True


def targets_ensure(
    events: EventBridgeClient,
    report: Report,
    *,
    rule: str,
    expected: dict[str, str],
    label: str,
    check_only: bool,
    fix: bool,
) -> None:
    """The rule's one target is exactly `expected`: no other target, and no other field (an
    `Input` constant, an `InputPath` or `InputTransformer` would feed the watch a forgery)."""
    try:
        targets = events.list_targets_by_rule(Rule=rule)["Targets"]
    except ClientError as error:
        if error_code(error) != "ResourceNotFoundException":
            raise translate("events:ListTargetsByRule", error) from None
        targets = []
    live = [dict(t) for t in targets]
    if live == [expected]:
        report(f"{label} target", "ok", expected["Arn"])
        return
    if check_only or (live and not fix):
        status: RouteStatus = "drift" if live else "missing"
        report(f"{label} target", status, f"should be {expected['Arn']} and nothing else")
        return
    extra = [str(t["Id"]) for t in live if t["Id"] != expected["Id"]]
    if extra:
        with aws_call("events:RemoveTargets"):
            events.remove_targets(Rule=rule, Ids=extra)
    with aws_call("events:PutTargets"):
        events.put_targets(Rule=rule, Targets=[expected])  # type: ignore[list-item]  # a plain dict
    report(f"{label} target", "fixed" if live else "created", expected["Arn"])


def forwarder_role_ensure(
    iam: IAMClient, report: Report, target: AwsTarget, *, check_only: bool, fix: bool
) -> None:
    """The role EventBridge assumes to forward us-east-1 events: its trust and one policy."""
    trust, policy = forwarder_trust_policy(), forwarder_policy(target.account_id)
    try:
        role = iam.get_role(RoleName=FORWARDER_ROLE_NAME)["Role"]
    except ClientError as error:
        if error_code(error) != "NoSuchEntity":
            raise translate("iam:GetRole", error) from None
        if check_only:
            report("watch forwarder role", "missing", FORWARDER_ROLE_NAME)
            return
        with aws_call("iam:CreateRole"):
            iam.create_role(
                RoleName=FORWARDER_ROLE_NAME,
                AssumeRolePolicyDocument=policies.to_json(trust),
                Description="Break-glass: EventBridge forwards IAM's us-east-1 events to the watch",
            )
        role = None
    with aws_call("iam:ListRolePolicies"):
        names = iam.list_role_policies(RoleName=FORWARDER_ROLE_NAME)["PolicyNames"]
    documents = {}
    for name in names:
        with aws_call("iam:GetRolePolicy"):
            documents[name] = iam.get_role_policy(RoleName=FORWARDER_ROLE_NAME, PolicyName=name)[
                "PolicyDocument"
            ]
    intact = (
        role is not None
        and policies.same_document(role["AssumeRolePolicyDocument"], trust)
        and set(documents) == {FORWARDER_POLICY_NAME}
        and policies.same_document(documents[FORWARDER_POLICY_NAME], policy)
    )
    if intact:
        report("watch forwarder role", "ok", FORWARDER_ROLE_NAME)
        return
    if role is not None and (check_only or not fix):
        report("watch forwarder role", "drift", "trust or policies differ from the forwarder's")
        return
    with aws_call("iam:UpdateAssumeRolePolicy"):
        iam.update_assume_role_policy(
            RoleName=FORWARDER_ROLE_NAME, PolicyDocument=policies.to_json(trust)
        )
    for name in set(documents) - {FORWARDER_POLICY_NAME}:
        with aws_call("iam:DeleteRolePolicy"):
            iam.delete_role_policy(RoleName=FORWARDER_ROLE_NAME, PolicyName=name)
    with aws_call("iam:PutRolePolicy"):
        iam.put_role_policy(
            RoleName=FORWARDER_ROLE_NAME,
            PolicyName=FORWARDER_POLICY_NAME,
            PolicyDocument=policies.to_json(policy),
        )
    report("watch forwarder role", "created" if role is None else "fixed", FORWARDER_ROLE_NAME)


@lru_cache(maxsize=8)
def caller_arn(connection: AwsConnection) -> str:
    """The ARN of the identity a connection signs as (the broker's, to tell its own writes)."""
    sts = ClientFactory(connection).client("sts", FORWARDER_REGION)
    with aws_call("sts:GetCallerIdentity"):
        return str(sts.get_caller_identity()["Arn"])
