"""Which `breakglass-revoked-*` policies on a role are the portal's: the exact deny their name
says, under a name a revocation could have written by now. Used when the role's space is full
(role_space) and to tell the broker's routine writes from tampering (the watch)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from awsaccess import policies
from awsaccess.types import AwsTarget


def is_older_sessions_deny(document: object) -> bool:
    """The document is the revoke-older-sessions deny (of whatever moment)."""
    normalized = policies.normalize(document)
    statements = normalized.get("Statement") if isinstance(normalized, dict) else None
    if isinstance(statements, dict):
        statements = [statements]
    if not isinstance(statements, list) or len(statements) != 1:
        return False
    moment = statements[0].get("Condition", {}).get("DateLessThan", {}).get("aws:TokenIssueTime")
    if not isinstance(moment, str):
        return False
    try:
        issued_before = datetime.strptime(moment, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)
    except ValueError:
        return False
    return policies.same_document(document, policies.revoke_older_sessions_policy(issued_before))


def is_revocation_deny(name: str, document: object) -> bool:
    """The policy `name` holds exactly the deny its name says: the request's, or the
    revoke-older-sessions one. A deny's name alone proves nothing (anyone may choose it)."""
    parsed = policies.parse_revocation_policy_name(name)
    if parsed is None:
        return False
    if parsed[0] is None:
        return is_older_sessions_deny(document)
    return policies.same_document(document, policies.revocation_policy(parsed[0]))


def revocation_deny_plausible(name: str, target: AwsTarget, now: datetime) -> bool:
    """Whether a revocation could have written this name by now: its not-after at most a
    longest session (plus margin) away, and an older-sessions deny's moment not in the future.
    A deny beyond that (planted `-until-20991231…`, or `before-<future>` cutting every session)
    is pruned when the role's space is full, never a reason to cut every live grant. Decided
    from AWS and the clock alone: the database must not be able to excuse a deny away."""
    parsed = policies.parse_revocation_policy_name(name)
    if parsed is None:
        return False
    longest = timedelta(seconds=max(target.max_session_seconds, policies.MIN_SESSION_SECONDS))
    if parsed[1] > now + longest + policies.REVOCATION_MARGIN:
        return False
    moment = policies.older_sessions_moment(name)
    return moment is None or moment <= now + timedelta(seconds=2)
