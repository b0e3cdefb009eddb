"""A small IAM policy evaluator for the sandbox: the subset of AWS's logic our policies rely on.

Pure functions over parsed policy documents and a request context; moto's own evaluator ignores
conditions (a conditional Deny matches everything), which would make per-request revocation
cut off every session of a role.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from enum import Enum
from functools import lru_cache


class Decision(Enum):
    ALLOW = "allow"
    DENY = "deny"  # explicit deny
    NEUTRAL = "neutral"  # no statement applies (implicit deny)


@dataclass(frozen=True)
class Request:
    action: str  # "s3:ListAllMyBuckets"
    resource: str  # ARN or "*"
    context: Mapping[str, str | list[str]] = field(default_factory=dict)  # lower-case keys
    principal_arn: str | None = None  # only for resource-based (trust) policies


def _as_list(value: object) -> list:
    if value is None:
        return []
    return value if isinstance(value, list) else [value]


@lru_cache(maxsize=8192)
def _glob_regex(pattern: str, case_sensitive: bool) -> re.Pattern[str]:
    # IAM wildcards: * any run, ? one character; nothing else is special. Compiled once per
    # pattern: every request evaluates the same few policies' patterns again.
    regex = "".join(".*" if ch == "*" else "." if ch == "?" else re.escape(ch) for ch in pattern)
    flags = 0 if case_sensitive else re.IGNORECASE
    return re.compile(regex, flags | re.DOTALL)


def _glob(pattern: str, value: str, *, case_sensitive: bool) -> bool:
    return _glob_regex(pattern, case_sensitive).fullmatch(value) is not None


def _parse_time(value: str) -> datetime | None:
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None


def _compare_dates(op: str, actual: str, expected: str) -> bool:
    left, right = _parse_time(actual), _parse_time(expected)
    if left is None or right is None:
        return False
    return {
        "DateEquals": left == right,
        "DateNotEquals": left != right,
        "DateLessThan": left < right,
        "DateLessThanEquals": left <= right,
        "DateGreaterThan": left > right,
        "DateGreaterThanEquals": left >= right,
    }[op]


def _in_network(address: str, network: str) -> bool:
    try:
        return ipaddress.ip_address(address) in ipaddress.ip_network(network, strict=False)
    except ValueError:
        return False  # not an address (e.g. a service name) or not a CIDR: no match


_POSITIVE = {
    "StringEquals": lambda a, e: a == e,
    "StringEqualsIgnoreCase": lambda a, e: a.lower() == e.lower(),
    "StringLike": lambda a, e: _glob(e, a, case_sensitive=True),
    "ArnEquals": lambda a, e: _glob(e, a, case_sensitive=True),
    "ArnLike": lambda a, e: _glob(e, a, case_sensitive=True),
    "Bool": lambda a, e: a.lower() == str(e).lower(),
    "IpAddress": _in_network,
}
_NEGATED = {
    "StringNotEquals": "StringEquals",
    "StringNotEqualsIgnoreCase": "StringEqualsIgnoreCase",
    "StringNotLike": "StringLike",
    "ArnNotEquals": "ArnEquals",
    "ArnNotLike": "ArnLike",
    "NotIpAddress": "IpAddress",
}
_DATES = {
    "DateEquals",
    "DateNotEquals",
    "DateLessThan",
    "DateLessThanEquals",
    "DateGreaterThan",
    "DateGreaterThanEquals",
}


class UnsupportedCondition(Exception):
    """An operator this evaluator does not know; the caller fails closed."""


def _condition_holds(operator: str, key: str, expected: object, context: Mapping) -> bool:
    if_exists = operator.endswith("IfExists")
    base = operator.removesuffix("IfExists")
    if base not in _POSITIVE and base not in _NEGATED and base not in _DATES and base != "Null":
        raise UnsupportedCondition(operator)
    present = key.lower() in context
    actual = [str(value) for value in _as_list(context.get(key.lower()))]
    wanted = [str(value) for value in _as_list(expected)]
    if base == "Null":
        # "true" means the key must be absent, "false" that it must be present.
        return any((value.lower() == "true") != present for value in wanted)
    if not present:
        # AWS: a missing key fails a positive operator and satisfies a negated one.
        return if_exists or base in _NEGATED or base in {"DateNotEquals"}
    if base in _NEGATED:
        positive = _POSITIVE[_NEGATED[base]]
        return all(not positive(a, e) for a in actual for e in wanted)
    if base in _POSITIVE:
        return any(_POSITIVE[base](a, e) for a in actual for e in wanted)
    if base in _DATES:
        if base == "DateNotEquals":
            return all(_compare_dates(base, a, e) for a in actual for e in wanted)
        return any(_compare_dates(base, a, e) for a in actual for e in wanted)
    raise UnsupportedCondition(operator)


def conditions_hold(conditions: Mapping | None, context: Mapping) -> bool:
    """All operators, and all keys within each, must hold; values within a key are ORed."""
    for operator, keys in (conditions or {}).items():
        for key, expected in keys.items():
            if not _condition_holds(operator, key, expected, context):
                return False
    return True


def _principal_matches(principal: object, principal_arn: str | None) -> bool:
    if principal == "*":
        return True
    if not isinstance(principal, Mapping) or principal_arn is None:
        return False
    if ":" not in principal_arn:  # a service principal, e.g. events.amazonaws.com
        return principal_arn in _as_list(principal.get("Service"))
    for value in _as_list(principal.get("AWS")):
        if value == "*" or value == principal_arn:
            return True
        account = principal_arn.split(":")[4]
        # The account (root or bare id) delegates to the account's identity policies.
        if value in (account, f"arn:aws:iam::{account}:root"):
            return True
    return False


def _applies(statement: Mapping, request: Request, *, resource_based: bool) -> bool:
    if "NotAction" in statement:
        if any(
            _glob(a, request.action, case_sensitive=False) for a in _as_list(statement["NotAction"])
        ):
            return False
    elif not any(
        _glob(a, request.action, case_sensitive=False) for a in _as_list(statement.get("Action"))
    ):
        return False
    if resource_based and not _principal_matches(statement.get("Principal"), request.principal_arn):
        return False
    resources = _as_list(statement.get("NotResource", statement.get("Resource", "*")))
    matched = any(_glob(r, request.resource, case_sensitive=True) for r in resources)
    if matched == ("NotResource" in statement):
        return False
    try:
        return conditions_hold(statement.get("Condition"), request.context)
    except UnsupportedCondition:
        # Fail closed: an unknown operator never allows, and always denies.
        return statement.get("Effect") == "Deny"


def evaluate(
    documents: Iterable[Mapping], request: Request, *, resource_based: bool = False
) -> tuple[Decision, list[Mapping]]:
    """Decision over a set of policies of one kind, plus the Allow statements that matched."""
    allowed: list[Mapping] = []
    for document in documents:
        for statement in _as_list(document.get("Statement")):
            if not _applies(statement, request, resource_based=resource_based):
                continue
            if statement.get("Effect") == "Deny":
                return Decision.DENY, []
            allowed.append(statement)
    return (Decision.ALLOW if allowed else Decision.NEUTRAL), allowed


def names_principal_exactly(statement: Mapping, principal_arn: str) -> bool:
    """Whether a trust statement names this very principal (not its account, not "*")."""
    principal = statement.get("Principal")
    return isinstance(principal, Mapping) and principal_arn in _as_list(principal.get("AWS"))
