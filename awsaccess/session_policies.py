"""Session policies: what one grant's sessions may do within the role, and from where.

A scope narrows the role for one request (an inline policy and/or managed policies passed as
`PolicyArns`); allowed networks deny every call from elsewhere unless an AWS service makes it on
the session's behalf (AWS's documented `aws:SourceIp` / `aws:ViaAWSService` pattern); a grant
shorter than AWS's 15-minute minimum session ends at its deadline by a dated deny. Pure
functions, so tests can pin the exact JSON, plus the checks an administrator's scope must pass
before any request can name it.
"""

from __future__ import annotations

import ipaddress
import json
import re
from collections.abc import Sequence
from datetime import datetime
from functools import cache
from typing import TYPE_CHECKING, Any, TypedDict

from awsaccess import policies
from awsaccess.types import Grant, SessionScope

if TYPE_CHECKING:
    from mypy_boto3_sts.type_defs import PolicyDescriptorTypeTypeDef

# AWS: "The plaintext that you use for both inline and managed session policies can't exceed
# 2,048 characters", and at most 10 managed policy ARNs. (AWS also packs the policies and the
# session tags into a binary format with its own limit, which only AssumeRole can measure.)
SESSION_POLICY_PLAINTEXT_LIMIT = 2_048
MAX_MANAGED_POLICY_ARNS = 10
MAX_NETWORKS = 20
RESERVED_SID_PREFIX = "BreakGlass"
ALLOW_ALL_SID = "BreakGlassWithinGrant"
EXPIRY_SID = "BreakGlassDenyAfterExpiry"
NETWORK_SID = "BreakGlassSourceNetwork"

_MANAGED_POLICY_ARN = re.compile(
    r"^arn:aws[a-z-]*:iam::(?P<account>\d{12}|aws):policy/[\w+=,.@/-]+$"
)
# parliament findings that mean AWS would refuse the document, or read it otherwise than its
# author meant; anything else it reports (e.g. RESOURCE_STAR) is advice, not an error.
_REFUSED_FINDINGS = {
    "EXCEPTION",
    "MALFORMED_JSON",
    "MALFORMED",
    "DUPLICATE_SID",
    "MISMATCHED_TYPE",
    "UNKNOWN_ACTION",
    "UNKNOWN_PREFIX",
    "UNKNOWN_OPERATOR",
    "INVALID_SID",
    "INVALID_ARN",
    "NO_VERSION",
    "INVALID_VERSION",
    "OLD_VERSION",
    "RESOURCE_MISMATCH",
}
_ACTION_KEYS = ("Action", "NotAction")


# -- the documents -------------------------------------------------------------------------------


def network_deny_statement(cidrs: tuple[str, ...], *, index: int = 0) -> dict:
    """AWS's documented pattern: deny a call from outside the networks, unless an AWS service
    makes it on the session's behalf (CloudFormation, Athena …, which call from AWS's own
    addresses)."""
    return {
        "Sid": f"{NETWORK_SID}{index or ''}",
        "Effect": "Deny",
        "Action": "*",
        "Resource": "*",
        "Condition": {
            "NotIpAddress": {"aws:SourceIp": list(cidrs)},
            "Bool": {"aws:ViaAWSService": "false"},
        },
    }


def expiry_deny_statement(expires_at: datetime) -> dict:
    return {
        "Sid": EXPIRY_SID,
        "Effect": "Deny",
        "Action": "*",
        "Resource": "*",
        "Condition": {"DateGreaterThan": {"aws:CurrentTime": policies.iso_utc(expires_at)}},
    }


def _as_list(value: Any) -> list:
    return value if isinstance(value, list) else [value]


def session_is_pinned(remaining_seconds: float) -> bool:
    """Whether a session issued now carries a dated deny at the grant's deadline: AWS issues 15
    minutes at least, so a shorter grant is ended by its session policy."""
    return remaining_seconds < policies.MIN_SESSION_SECONDS


def session_policy(grant: Grant, *, remaining_seconds: float) -> dict | None:
    """The inline session policy for AssumeRole, or None when the session needs none (the whole
    role, from anywhere, for at least 15 minutes; or managed policies alone)."""
    scope = grant.scope
    denies = [
        network_deny_statement(c, index=i) for i, c in enumerate(scope.networks if scope else ())
    ]
    if session_is_pinned(remaining_seconds):
        denies.append(expiry_deny_statement(grant.expires_at))
    if scope is not None and scope.policy is not None:
        allows = _as_list(scope.policy.get("Statement", []))
    elif scope is not None and scope.managed_policy_arns:
        allows = []  # the managed policies allow; the inline one only adds the denies
    else:
        allows = [{"Sid": ALLOW_ALL_SID, "Effect": "Allow", "Action": "*", "Resource": "*"}]
    if not denies and (scope is None or scope.policy is None):
        return None
    return {"Version": policies.VERSION, "Statement": [*allows, *denies]}


class ScopeParameters(TypedDict, total=False):
    Policy: str
    PolicyArns: Sequence[PolicyDescriptorTypeTypeDef]


def assume_role_scope_parameters(grant: Grant, *, remaining_seconds: float) -> ScopeParameters:
    """`Policy` and `PolicyArns` for AssumeRole (empty when the session gets the whole role)."""
    parameters: ScopeParameters = {}
    document = session_policy(grant, remaining_seconds=remaining_seconds)
    if document is not None:
        parameters["Policy"] = policies.to_json(document)
    if grant.scope is not None and grant.scope.managed_policy_arns:
        parameters["PolicyArns"] = [{"arn": arn} for arn in grant.scope.managed_policy_arns]
    return parameters


def session_ends_at(*, issued_at: datetime, expiration: datetime, deadline: datetime) -> datetime:
    """When a session issued at `issued_at` for a grant ending at `deadline` stops working: its
    STS expiry, or the deadline itself when that was under 15 minutes away (its session policy
    pins it). `issued_at` is recorded after AssumeRole returned, so near 15 minutes this errs
    towards "pinned", which only ever issues fresh credentials when none were needed."""
    if session_is_pinned((deadline - issued_at).total_seconds()):
        return min(expiration, deadline)
    return expiration


# -- the checks an administrator's scope must pass -----------------------------------------------


@cache
def _aws_spelling() -> dict[str, str]:
    """Every IAM action as AWS spells it, by its lower-case form (from parliament's copy of the
    service authorization reference)."""
    from parliament import iam_definition

    return {
        f"{service['prefix']}:{privilege['privilege']}".lower(): (
            f"{service['prefix']}:{privilege['privilege']}"
        )
        for service in iam_definition
        for privilege in service["privileges"]
    }


def _statement_problems(index: int, statement: Any) -> list[str]:
    where = f"statement {index + 1}"
    if not isinstance(statement, dict):
        return [f"{where} is not a JSON object"]
    problems = []
    for key in ("Principal", "NotPrincipal"):
        if key in statement:
            problems.append(f"{where}: a session policy names no {key} (it applies to the session)")
    if str(statement.get("Sid", "")).startswith(RESERVED_SID_PREFIX):
        problems.append(f"{where}: Sids starting {RESERVED_SID_PREFIX!r} are the portal's own")
    spelling = _aws_spelling()
    for key in _ACTION_KEYS:
        for action in _as_list(statement.get(key, [])):
            if not isinstance(action, str) or "*" in action or "?" in action:
                continue
            known = spelling.get(action.lower())
            if known is not None and known != action:
                problems.append(f"{where}: write {known!r} as AWS spells it, not {action!r}")
    return problems


def policy_document_problems(text: str) -> list[str]:
    """Why an inline session policy cannot be used, or []: JSON, IAM grammar, actions that exist
    and are spelled as AWS spells them, no principals, no Sids the portal reserves."""
    try:
        document = json.loads(text)
    except ValueError as error:
        return [f"not valid JSON: {error}"]
    if not isinstance(document, dict):
        return ["a policy is a JSON object with Version and Statement"]
    if "Statement" not in document:
        return ["the policy has no Statement"]
    from parliament import analyze_policy_string

    findings = analyze_policy_string(json.dumps(document)).findings
    problems = [
        f"{finding.issue}: {finding.detail}".rstrip(": ")
        for finding in findings
        if finding.issue in _REFUSED_FINDINGS
    ]
    for index, statement in enumerate(_as_list(document["Statement"])):
        problems += _statement_problems(index, statement)
    return problems


def managed_policy_arn_problem(arn: str, *, account_id: str) -> str | None:
    match = _MANAGED_POLICY_ARN.match(arn)
    if match is None:
        return f"{arn!r} is not an IAM managed policy ARN (arn:aws:iam::ACCOUNT:policy/NAME)"
    if match["account"] not in (account_id, "aws"):
        return f"{arn} is in another account than the profile's ({account_id})"
    return None


def network_problem(cidr: str) -> str | None:
    try:
        network = ipaddress.ip_network(cidr, strict=True)
    except ValueError:
        try:
            loose = ipaddress.ip_network(cidr, strict=False)
        except ValueError:
            return f"{cidr!r} is not a network in CIDR notation (e.g. 203.0.113.0/24)"
        return f"{cidr} has host bits set; the network is {loose}"
    if network.prefixlen == 0:
        return f"{cidr} is every address: allow any network instead of listing it"
    return None


def packed_size_problem(scope: SessionScope, *, expires_at: datetime) -> str | None:
    """Whether the largest session policy this scope can produce (its statements, every network
    deny and the short-grant expiry deny) and its ARNs fit AWS's plaintext limit."""
    if len(scope.managed_policy_arns) > MAX_MANAGED_POLICY_ARNS:
        return f"at most {MAX_MANAGED_POLICY_ARNS} managed policies can be passed to a session"
    grant = Grant(
        request_id="x" * 36, session_name="x", tags={}, expires_at=expires_at, scope=scope
    )
    document = session_policy(grant, remaining_seconds=0)
    size = len(policies.to_json(document)) if document is not None else 0
    size += sum(len(arn) for arn in scope.managed_policy_arns)
    if size > SESSION_POLICY_PLAINTEXT_LIMIT:
        return (
            f"the session policy would be {size} characters with the portal's own statements; "
            f"AWS takes at most {SESSION_POLICY_PLAINTEXT_LIMIT} (inline policy and ARNs together)"
        )
    return None
