"""Is the watch on a break-glass role still what provisioning set up, and does AWS hold only what
the portal wrote? Read-only, broker identity.

`profile_provision(check_only=True)` says *that* something differs; this names *what* changed
(the condition that was dropped, the pattern field that was edited), because a security alarm
that only says "differs" sends someone to diff JSON by hand during an attack. It compares content,
never names (issue 12): every `breakglass-*` policy's document against what the database says
should exist (`GuardExpectation`, passed in by the services layer), the principal's keys, login
profile and boundary, the role's managed policies, every field of every watch rule's target, the
queue policy, and the trails' logging status and event selectors.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from awsaccess import offline_kit, policies, watch_routes
from awsaccess.clients import ClientFactory
from awsaccess.engine import IAM_REGION, principal_kind_and_name
from awsaccess.errors import PermanentAwsError, aws_call
from awsaccess.policies import normalize
from awsaccess.provisioning import profile_provision
from awsaccess.types import AwsConnection, AwsTarget, Grant

_OLDER_SESSIONS_NAME = re.compile(
    rf"^{policies.REVOCATION_POLICY_PREFIX}before-(?P<before>\d{{8}}T\d{{6}}Z)-until-"
)


@dataclass(frozen=True)
class Drift:
    resource: str  # e.g. "role trust policy", "watch rule"
    change: str  # what exactly differs, for people


@dataclass(frozen=True)
class GuardExpectation:
    """What the database says AWS should hold for a profile (the services layer builds it)."""

    live_grants: Sequence[Grant] = ()  # the principal's grant policies, exactly these documents
    revoked_request_ids: frozenset[str] = frozenset()  # requests whose deny may be on the role
    # Revoked requests whose sessions may still live → when each was revoked: its deny stays,
    # unless an older-sessions deny of a later moment took its place (the revocation fallback).
    required_denies: Mapping[str, datetime] = field(default_factory=dict)
    access_key_ids: frozenset[str] | None = None  # the principal's keys; None: not known
    role_policy_arns: frozenset[str] | None = None  # the role's managed policies; None: any


def watch_integrity_check(
    connection: AwsConnection, target: AwsTarget, expected: GuardExpectation | None = None
) -> list[Drift]:
    """Every difference between the live setup and what provisioning and the database expect;
    [] when intact."""
    expected = expected or GuardExpectation()
    report = profile_provision(connection, target, check_only=True)
    clients = ClientFactory(connection)
    drifts: list[Drift] = []
    for finding in report.findings:
        if finding.status not in ("drift", "missing"):
            continue
        if finding.resource == "role trust policy":
            drifts += _trust_policy_drift(clients, target)
        elif finding.status == "drift" and finding.resource in _rules(target):
            drifts += _rule_drift(clients, target, finding.resource)
        elif finding.status == "drift" and finding.resource.removesuffix(" target") in _rules(
            target
        ):
            drifts += _target_drift(clients, target, finding.resource.removesuffix(" target"))
        elif finding.resource == "watch queue policy" and finding.status == "drift":
            drifts += _queue_policy_drift(clients, target)
        else:
            detail = f": {finding.detail}" if finding.detail else ""
            drifts.append(Drift(finding.resource, f"{finding.status}{detail}"))
    drifts += _role_inline_policy_drift(clients, target, expected)
    drifts += _role_managed_policy_drift(clients, target, expected)
    drifts += _principal_drift(clients, target, expected)
    drifts += _trail_drift(clients, target)
    return drifts


def _trust_policy_drift(clients: ClientFactory, target: AwsTarget) -> list[Drift]:
    iam = clients.client("iam", IAM_REGION)
    with aws_call("iam:GetRole"):
        role = iam.get_role(RoleName=target.role_name)["Role"]
    live = normalize(role["AssumeRolePolicyDocument"])
    expected = normalize(offline_kit.role_trust_policy(target))
    changes = statements_diff(_statements(expected), _statements(live))
    return [Drift("role trust policy", change) for change in changes] or [
        Drift("role trust policy", "differs from the expected trust policy")
    ]


def _rules(target: AwsTarget) -> dict[str, tuple[str, str, dict, dict[str, str]]]:
    """label → (region, rule name, event pattern, its one target), for every watch rule."""
    role = target.role_name
    queue_arn = f"arn:aws:sqs:{target.region}:{target.account_id}:{policies.watch_name(role)}"
    queue_target = watch_routes.changes_target(queue_arn)
    rules = {
        "watch rule": (
            target.region,
            policies.watch_name(role),
            policies.watch_event_pattern(target),
            queue_target,
        ),
        "activity rule": (
            target.region,
            policies.activity_rule_name(role),
            policies.activity_event_pattern(target),
            queue_target,
        ),
        "changes rule": (
            target.region,
            watch_routes.changes_rule_name(role),
            watch_routes.changes_event_pattern(target),
            queue_target,
        ),
    }
    if watch_routes.forwarding_needed(target):
        rules["forwarder rule"] = (
            watch_routes.FORWARDER_REGION,
            watch_routes.forwarder_rule_name(role),
            watch_routes.forwarder_event_pattern(target),
            watch_routes.forwarder_target(target),
        )
    return rules


def _rule_drift(clients: ClientFactory, target: AwsTarget, label: str) -> list[Drift]:
    region, name, pattern, _ = _rules(target)[label]
    events = clients.client("events", region)
    with aws_call("events:DescribeRule"):
        rule = events.describe_rule(Name=name)
    drifts = []
    if rule.get("State") != "ENABLED":
        drifts.append(Drift(label, f"state is {rule.get('State')}, expected ENABLED"))
    live = normalize(rule.get("EventPattern") or "{}")
    drifts += [
        Drift(label, f"event pattern {change}") for change in mapping_diff(normalize(pattern), live)
    ]
    return drifts


def _target_drift(clients: ClientFactory, target: AwsTarget, label: str) -> list[Drift]:
    """Each field of each target that differs: an `Input` constant, an `InputPath`, an
    `InputTransformer`, another queue, a second target."""
    region, name, _, expected = _rules(target)[label]
    events = clients.client("events", region)
    with aws_call("events:ListTargetsByRule"):
        live = {t["Id"]: dict(t) for t in events.list_targets_by_rule(Rule=name)["Targets"]}
    resource = f"{label} target"
    drifts = [
        Drift(resource, f"extra target {target_id}: {_compact(value)}")
        for target_id, value in sorted(live.items())
        if target_id != expected["Id"]
    ]
    if expected["Id"] not in live:
        return [*drifts, Drift(resource, f"target {expected['Id']} removed")]
    return drifts + [
        Drift(resource, change) for change in mapping_diff(expected, live[expected["Id"]])
    ]


def _queue_policy_drift(clients: ClientFactory, target: AwsTarget) -> list[Drift]:
    sqs = clients.client("sqs", target.region)
    name = policies.watch_name(target.role_name)
    with aws_call("sqs:GetQueueUrl"):
        url = sqs.get_queue_url(QueueName=name)["QueueUrl"]
    with aws_call("sqs:GetQueueAttributes"):
        attributes = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["Policy", "QueueArn"])
    live = normalize(attributes["Attributes"].get("Policy") or "{}")
    where = f"arn:aws:events:{target.region}:{target.account_id}:rule"
    expected = policies.watch_queue_policy(
        attributes["Attributes"]["QueueArn"],
        f"{where}/{name}",
        f"{where}/{policies.activity_rule_name(target.role_name)}",
        f"{where}/{watch_routes.changes_rule_name(target.role_name)}",
    )
    changes = statements_diff(_statements(normalize(expected)), _statements(live))
    return [Drift("watch queue policy", change) for change in changes] or [
        Drift("watch queue policy", "differs from the expected queue policy")
    ]


# -- what AWS holds against what the database says (issue 12) ---------------------------------


def _iam_listed(operation: str, call: Any) -> Any:
    """One IAM read; None when the entity is gone (reported as missing by provisioning)."""
    try:
        with aws_call(operation):
            return call()
    except PermanentAwsError as error:
        if error.code == "NoSuchEntity":
            return None
        raise


def _role_inline_policy_drift(
    clients: ClientFactory, target: AwsTarget, expected: GuardExpectation
) -> list[Drift]:
    """The role's inline policies are the portal's revocation denies, each holding exactly the
    deny it names, for a request the portal revoked; a revoked request whose sessions may still
    live keeps its deny. Anything else was added behind the portal's back."""
    iam = clients.client("iam", IAM_REGION)
    role = target.role_name
    listed = _iam_listed("iam:ListRolePolicies", lambda: iam.list_role_policies(RoleName=role))
    if listed is None:
        return []
    drifts: list[Drift] = []
    denied: set[str] = set()
    cut: datetime | None = None  # the latest moment a genuine older-sessions deny cuts at
    for name in sorted(listed["PolicyNames"]):
        want, problem = _revocation_deny_expected(name, expected)
        if problem:
            drifts.append(Drift("role policies", problem))
        if want is None:
            continue
        got = _iam_listed(
            "iam:GetRolePolicy", lambda n=name: iam.get_role_policy(RoleName=role, PolicyName=n)
        )
        if got is None:
            continue
        request_id = policies.revocation_request_id(name)
        if request_id is not None:
            denied.add(request_id)  # a counterfeit is named once, as not holding the deny
        if not policies.same_document(got["PolicyDocument"], want):
            changes = statements_diff(
                _statements(normalize(want)), _statements(normalize(got["PolicyDocument"]))
            )
            drifts.append(
                Drift(
                    "role policies",
                    f"{name!r} does not hold the portal's deny: {'; '.join(changes)}",
                )
            )
        elif (older := _OLDER_SESSIONS_NAME.match(name)) is not None:
            moment = _older_sessions_moment(older)
            cut = max(cut, moment) if cut else moment
    # An older-sessions deny stands for the requests revoked before its moment (the engine
    # folds their denies into it), never for one revoked later: a planted deny of some past
    # moment must not excuse a missing per-request deny.
    drifts += [
        Drift("role policies", f"the deny of revoked request {request_id} is gone")
        for request_id, revoked_at in sorted(expected.required_denies.items())
        if request_id not in denied and (cut is None or revoked_at >= cut)
    ]
    return drifts


def _revocation_deny_expected(name: str, expected: GuardExpectation) -> tuple[dict | None, str]:
    """The deny a role policy of this name must hold (None: none the portal writes), and what
    is wrong with the name itself ("" when nothing)."""
    if not name.startswith(policies.REVOCATION_POLICY_PREFIX):
        return None, f"unexpected inline policy {name!r} on the role"
    if (older := _OLDER_SESSIONS_NAME.match(name)) is not None:
        return policies.revoke_older_sessions_policy(_older_sessions_moment(older)), ""
    request_id = policies.revocation_request_id(name)
    if request_id is None:
        return None, f"{name!r} is not a name the portal writes"
    if request_id not in expected.revoked_request_ids:
        return policies.revocation_policy(request_id), (
            f"{name!r} names no request the portal revoked"
        )
    return policies.revocation_policy(request_id), ""


def _older_sessions_moment(older: re.Match[str]) -> datetime:
    """The moment a `breakglass-revoked-before-<moment>-until-…` deny cuts sessions at."""
    return datetime.strptime(older["before"], "%Y%m%dT%H%M%SZ").replace(tzinfo=UTC)


def _role_managed_policy_drift(
    clients: ClientFactory, target: AwsTarget, expected: GuardExpectation
) -> list[Drift]:
    if expected.role_policy_arns is None:
        return []
    iam = clients.client("iam", IAM_REGION)
    listed = _iam_listed(
        "iam:ListAttachedRolePolicies",
        lambda: iam.list_attached_role_policies(RoleName=target.role_name),
    )
    if listed is None:
        return []
    live = {policy["PolicyArn"] for policy in listed["AttachedPolicies"]}
    return [
        Drift("role managed policies", f"{arn} attached, the profile does not list it")
        for arn in sorted(live - expected.role_policy_arns)
    ] + [
        Drift("role managed policies", f"{arn} detached, the profile lists it")
        for arn in sorted(expected.role_policy_arns - live)
    ]


def _principal_drift(
    clients: ClientFactory, target: AwsTarget, expected: GuardExpectation
) -> list[Drift]:
    """The principal holds the live grants' exact documents, the portal's key only, no console
    password and no boundary (attached policies and groups: provisioning's finding)."""
    kind, name = principal_kind_and_name(target.principal_arn)
    if kind != "user":
        return []
    iam = clients.client("iam", IAM_REGION)
    listed = _iam_listed("iam:ListUserPolicies", lambda: iam.list_user_policies(UserName=name))
    if listed is None:
        return []
    grants = {
        policies.grant_policy_name(grant): policies.grant_policy(target, grant)
        for grant in expected.live_grants
    }
    drifts = []
    for policy_name in sorted(listed["PolicyNames"]):
        if not policy_name.startswith(policies.GRANT_POLICY_PREFIX):
            continue  # named by provisioning's "principal permissions"
        if policy_name not in grants:
            drifts.append(
                Drift("principal grants", f"{policy_name!r} is the grant of no live request")
            )
            continue
        got = _iam_listed(
            "iam:GetUserPolicy",
            lambda n=policy_name: iam.get_user_policy(UserName=name, PolicyName=n),
        )
        if got is not None and not policies.same_document(
            got["PolicyDocument"], grants[policy_name]
        ):
            drifts.append(
                Drift("principal grants", f"{policy_name!r} differs from the grant issued")
            )
    drifts += _principal_credentials_drift(iam, name, expected)
    return drifts


def _principal_credentials_drift(iam: Any, name: str, expected: GuardExpectation) -> list[Drift]:
    drifts = []
    if expected.access_key_ids is not None:
        keys = _iam_listed("iam:ListAccessKeys", lambda: iam.list_access_keys(UserName=name))
        live = {key["AccessKeyId"] for key in (keys or {}).get("AccessKeyMetadata", [])}
        drifts += [
            Drift("principal access keys", f"key {key_id} is not the portal's")
            for key_id in sorted(live - expected.access_key_ids)
        ] + [
            Drift("principal access keys", f"the portal's key {key_id} is gone")
            for key_id in sorted(expected.access_key_ids - live)
        ]
    if _iam_listed("iam:GetLoginProfile", lambda: iam.get_login_profile(UserName=name)):
        drifts.append(Drift("principal console password", "the principal has a login profile"))
    user = _iam_listed("iam:GetUser", lambda: iam.get_user(UserName=name))
    boundary = ((user or {}).get("User") or {}).get("PermissionsBoundary")
    if boundary:
        drifts.append(
            Drift("principal permissions boundary", f"is {boundary.get('PermissionsBoundaryArn')}")
        )
    return drifts


# -- the trails that feed the watch ----------------------------------------------------------


def _trail_drift(clients: ClientFactory, target: AwsTarget) -> list[Drift]:
    """Every trail logs and records every management event; one of them covers the profile's
    region (and IAM's us-east-1 events). Skipped where the broker may not read trails (an
    organisation trail in the management account)."""
    cloudtrail = clients.client("cloudtrail", target.region)
    try:
        with aws_call("cloudtrail:DescribeTrails"):
            trails = cloudtrail.describe_trails(includeShadowTrails=True)["trailList"]
        drifts, covering = [], False
        for trail in {t["TrailARN"]: t for t in trails}.values():
            with aws_call("cloudtrail:GetTrailStatus"):
                logging_on = cloudtrail.get_trail_status(Name=trail["TrailARN"])["IsLogging"]
            with aws_call("cloudtrail:GetEventSelectors"):
                selectors = cloudtrail.get_event_selectors(TrailName=trail["TrailARN"])
            resource = f"trail {trail['Name']}"
            if not logging_on:
                drifts.append(Drift(resource, "is not logging"))
            narrowed = _management_gap(selectors)
            if narrowed:
                drifts.append(Drift(resource, narrowed))
            covering |= logging_on and not narrowed and _covers(trail, target)
    except PermanentAwsError as error:
        if error.code in ("AccessDenied", "AccessDeniedException"):
            return []
        raise
    if not covering:
        drifts.append(
            Drift("trails", f"no logging trail records every management event of {target.region}")
        )
    return drifts


def _covers(trail: Mapping[str, Any], target: AwsTarget) -> bool:
    regional = trail.get("IsMultiRegionTrail") or trail.get("HomeRegion") == target.region
    global_events = trail.get("IncludeGlobalServiceEvents", True) and (
        trail.get("IsMultiRegionTrail") or trail.get("HomeRegion") == IAM_REGION
    )
    return bool(regional and global_events)


def _management_gap(selectors: Mapping[str, Any]) -> str:
    """ "" when the selectors record every management event (reads and writes), else what not.
    AWS holds one kind or the other; a reply with both (the sandbox keeps advanced selectors
    under classic ones) is judged on each, so neither can hide a narrowed other."""
    advanced = selectors.get("AdvancedEventSelectors") or []
    classic = selectors.get("EventSelectors") or []
    whole = [{"Field": "eventCategory", "Equals": ["Management"]}]
    gaps = []
    if advanced and not any(s.get("FieldSelectors") == whole for s in advanced):
        gaps.append("advanced event selectors do not record every management event")
    if classic and not any(
        selector.get("ReadWriteType", "All") == "All"
        and selector.get("IncludeManagementEvents", True)
        and not selector.get("ExcludeManagementEventSources")
        for selector in classic
    ):
        gaps.append("event selectors do not record every management event (reads and writes)")
    return "; ".join(gaps)


def _statements(document: Any) -> dict[str, dict]:
    statements = document.get("Statement", []) if isinstance(document, dict) else []
    if isinstance(statements, dict):
        statements = [statements]
    return {
        str(statement.get("Sid") or f"#{index}"): statement
        for index, statement in enumerate(statements)
        if isinstance(statement, dict)
    }


def statements_diff(expected: dict[str, dict], live: dict[str, dict]) -> list[str]:
    changes = []
    for sid, statement in expected.items():
        if sid not in live:
            changes.append(f"statement {sid} removed")
            continue
        changes += [f"statement {sid}: {c}" for c in _statement_diff(statement, live[sid])]
    for sid, statement in live.items():
        if sid not in expected:
            changes.append(f"statement {sid} added: {_compact(statement)}")
    return changes


def _statement_diff(expected: dict, live: dict) -> list[str]:
    changes = []
    for key in sorted(set(expected) | set(live)):
        if key == "Condition":
            continue
        if expected.get(key) != live.get(key):
            changes.append(
                f"{key} changed from {_compact(expected.get(key))} to {_compact(live.get(key))}"
            )
    want = expected.get("Condition") or {}
    have = live.get("Condition") or {}
    for operator in sorted(set(want) | set(have)):
        want_keys, have_keys = want.get(operator) or {}, have.get(operator) or {}
        for key in sorted(set(want_keys) | set(have_keys)):
            if key not in have_keys:
                changes.append(
                    f"condition {operator} {key} dropped (was {_compact(want_keys[key])})"
                )
            elif key not in want_keys:
                changes.append(f"condition {operator} {key} added: {_compact(have_keys[key])}")
            elif want_keys[key] != have_keys[key]:
                changes.append(
                    f"condition {operator} {key} changed from {_compact(want_keys[key])} "
                    f"to {_compact(have_keys[key])}"
                )
    return changes


def mapping_diff(expected: Any, live: Any, path: str = "") -> list[str]:
    """Leaf-by-leaf differences of two JSON values, named by dotted path."""
    where = path or "(whole)"
    if isinstance(expected, dict) and isinstance(live, dict):
        changes = []
        for key in sorted(set(expected) | set(live)):
            sub = f"{path}.{key}" if path else key
            if key not in live:
                changes.append(f"{sub} removed (was {_compact(expected[key])})")
            elif key not in expected:
                changes.append(f"{sub} added: {_compact(live[key])}")
            else:
                changes += mapping_diff(expected[key], live[key], sub)
        return changes
    if expected != live:
        return [f"{where} changed from {_compact(expected)} to {_compact(live)}"]
    return []


def _compact(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"))
