"""Is the watch on a break-glass role still what provisioning set up? Read-only, broker identity.

`profile_provision(check_only=True)` says *that* something differs; this names *what* changed
(the condition that was dropped, the pattern field that was edited), because a security alarm
that only says "differs" sends someone to diff JSON by hand during an attack.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from botocore.exceptions import ClientError

from awsaccess import policies
from awsaccess.clients import ClientFactory
from awsaccess.engine import IAM_REGION
from awsaccess.errors import aws_call, error_code, translate
from awsaccess.policies import normalize
from awsaccess.provisioning import profile_provision
from awsaccess.types import AwsConnection, AwsTarget


@dataclass(frozen=True)
class Drift:
    resource: str  # e.g. "role trust policy", "watch rule"
    change: str  # what exactly differs, for people


def watch_integrity_check(connection: AwsConnection, target: AwsTarget) -> list[Drift]:
    """Every difference between the live setup and what provisioning expects; [] when intact."""
    report = profile_provision(connection, target, check_only=True)
    clients = ClientFactory(connection)
    drifts: list[Drift] = []
    for finding in report.findings:
        if finding.status not in ("drift", "missing"):
            continue
        if finding.resource == "role trust policy":
            drifts += _trust_policy_drift(clients, target)
        elif finding.resource == "watch rule" and finding.status == "drift":
            drifts += _rule_drift(clients, target)
        else:
            detail = f": {finding.detail}" if finding.detail else ""
            drifts.append(Drift(finding.resource, f"{finding.status}{detail}"))
    drifts += _role_inline_policy_drift(clients, target)
    return drifts


def _trust_policy_drift(clients: ClientFactory, target: AwsTarget) -> list[Drift]:
    iam = clients.client("iam", IAM_REGION)
    with aws_call("iam:GetRole"):
        role = iam.get_role(RoleName=target.role_name)["Role"]
    live = normalize(role["AssumeRolePolicyDocument"])
    expected = normalize(policies.trust_policy(target))
    changes = statements_diff(_statements(expected), _statements(live))
    return [Drift("role trust policy", change) for change in changes] or [
        Drift("role trust policy", "differs from the expected trust policy")
    ]


def _rule_drift(clients: ClientFactory, target: AwsTarget) -> list[Drift]:
    events = clients.client("events", target.region)
    with aws_call("events:DescribeRule"):
        rule = events.describe_rule(Name=policies.watch_name(target.role_name))
    drifts = []
    if rule.get("State") != "ENABLED":
        drifts.append(Drift("watch rule", f"state is {rule.get('State')}, expected ENABLED"))
    live = normalize(rule.get("EventPattern") or "{}")
    expected = normalize(policies.watch_event_pattern(target))
    drifts += [
        Drift("watch rule", f"event pattern {change}") for change in mapping_diff(expected, live)
    ]
    return drifts


def _role_inline_policy_drift(clients: ClientFactory, target: AwsTarget) -> list[Drift]:
    """The role's inline policies are ours alone (per-request revocation denies); anything else
    was added behind the portal's back."""
    iam = clients.client("iam", IAM_REGION)
    try:
        names = iam.list_role_policies(RoleName=target.role_name)["PolicyNames"]
    except ClientError as error:
        if error_code(error) == "NoSuchEntity":
            return []  # reported as a missing role already
        raise translate("iam:ListRolePolicies", error) from None
    return [
        Drift("role policies", f"unexpected inline policy {name!r} on the role")
        for name in sorted(names)
        if not name.startswith(policies.REVOCATION_POLICY_PREFIX)
    ]


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
