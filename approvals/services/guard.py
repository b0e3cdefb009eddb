"""Guarding the guard: is each profile's watch (trust policy, role policies, EventBridge rules,
their targets, the queue, the trails) still what provisioning set up, and does AWS hold only what
the database says the portal wrote (grants, revocation denies, the principal's key)? Any drift is
a security alarm naming exactly what changed, since disabling the watch is the first thing an
attacker would do. Real-time tampering alarms (services.tampering) come first; this is the
backstop.

An alarm is raised once per distinct drift and episode: the same drift seen every five minutes
is one alarm; once the setup is found intact again, a recurrence is a new alarm.
"""

import hashlib
import logging
from dataclasses import dataclass, field
from datetime import timedelta

from django.utils import timezone

from approvals.models import (
    AccessProfile,
    AccessRequest,
    Component,
    GuardEpisode,
    RequestKind,
    Status,
)
from approvals.services.alarms import alarm_open
from approvals.services.grants import _aws_grant
from approvals.services.liveness import heartbeat
from awsaccess import policies, runtime
from awsaccess.errors import AwsError, TransientAwsError
from awsaccess.watch_integrity import Drift, GuardExpectation, watch_integrity_check

logger = logging.getLogger(__name__)


@dataclass
class GuardResult:
    profile: AccessProfile
    drifts: list[Drift] = field(default_factory=list)
    error: str = ""
    alarm_id: int | None = None

    @property
    def intact(self) -> bool:
        return not self.drifts and not self.error


# Statuses whose grant may still be on the principal, and whose deny may be on the role.
_GRANT_HOLDING = (Status.ACTIVATING, Status.ACTIVE, Status.REVOKING)
_DENY_HOLDING = (Status.ACTIVATING, Status.REVOKING, Status.REVOKED, Status.FAILED)
# A deny may be pruned this long before the guard stops requiring it (clock skew, propagation).
_PRUNE_SLACK = timedelta(minutes=1)


def guard_expectation(profile: AccessProfile) -> GuardExpectation:
    """What AWS should hold for the profile, from the database: the grants of the live requests
    on its principal, the denies of the requests revoked on its role (profiles may share either),
    and the one key the portal holds for the principal."""
    on_principal = (
        AccessRequest.objects.filter(
            profile__principal_arn=profile.principal_arn,
            status__in=_GRANT_HOLDING,
            expires_at__isnull=False,
        )
        .exclude(kind=RequestKind.OFFLINE)
        .select_related("profile")
    )  # an offline kit's opening holds no grant on the principal
    on_role = AccessRequest.objects.filter(
        profile__role_arn=profile.role_arn, status__in=_DENY_HOLDING
    ).select_related("profile")
    now = timezone.now()
    longest = timedelta(seconds=max(profile.role_max_session_seconds, policies.MIN_SESSION_SECONDS))
    required = {
        revoked.source_identity: revoked.revoked_at
        for revoked in on_role
        if revoked.status == Status.REVOKED
        and revoked.revoked_at is not None
        and revoked.expires_at is not None
        and min(revoked.revoked_at, revoked.expires_at) + longest + policies.REVOCATION_MARGIN
        > now + _PRUNE_SLACK
    }
    try:
        keys: frozenset[str] | None = frozenset(
            {runtime.principal_keys(profile.principal_arn).access_key_id}
        )
    except runtime.MissingAwsKeys:
        keys = None
    return GuardExpectation(
        live_grants=[_aws_grant(live) for live in on_principal],
        revoked_request_ids=frozenset(revoked.source_identity for revoked in on_role),
        required_denies=required,
        access_key_ids=keys,
        # Unlisted, uncompared: which managed policies a break-glass role holds is the
        # organisation's choice (often AdministratorAccess), so the guard has no truth to hold
        # them to. What matters still holds: the boundary keeps any of them off the machinery,
        # and attaching or detaching one is a real-time tampering alarm all the same (the
        # changes rule routes every IAM write naming the role). Listing them adds the backstop.
        role_policy_arns=frozenset(profile.role_policy_arns.split()) or None,
    )


def guard_check(*, profile_slugs: list[str] | None = None) -> list[GuardResult]:
    """Check every profile (or the named ones) with the broker identity; alarm on drift."""
    profiles = AccessProfile.objects.order_by("slug")
    if profile_slugs:
        profiles = profiles.filter(slug__in=profile_slugs)
    connection = runtime.broker_connection()
    results = []
    for profile in profiles:
        result = GuardResult(profile)
        results.append(result)
        episode = (
            GuardEpisode.objects.filter(profile=profile).values_list("intact_at", flat=True).first()
        )
        episode_text = episode.isoformat() if episode else "first"
        try:
            result.drifts = watch_integrity_check(
                connection, profile.aws_target(), guard_expectation(profile)
            )
        except TransientAwsError as exc:
            # AWS is unreachable right now: the next run checks again.
            result.error = str(exc)
            logger.warning("guard could not check %s: %s", profile.slug, exc)
            continue
        except AwsError as exc:
            result.error = str(exc)
            alarm, _ = alarm_open(
                kind="guard_blind",
                title=f"The guard cannot read the watch of {profile.slug}: {exc}",
                dedup_key=f"guard_blind:{profile.pk}:{exc.operation}:{exc.code}:{episode_text}",
                detail={"operation": exc.operation, "code": exc.code, "reason": exc.reason},
                profile=profile,
            )
            result.alarm_id = alarm.pk
            continue
        if not result.drifts:
            GuardEpisode.objects.update_or_create(
                profile=profile, defaults={"intact_at": timezone.now()}
            )
            continue
        changes = [f"{drift.resource}: {drift.change}" for drift in result.drifts]
        digest = hashlib.sha256("\n".join(sorted(changes)).encode()).hexdigest()[:16]
        more = f" (and {len(changes) - 1} more)" if len(changes) > 1 else ""
        alarm, _ = alarm_open(
            kind="guard_drift",
            title=f"The watch of {profile.slug} was changed: {changes[0]}{more}",
            dedup_key=f"guard_drift:{profile.pk}:{digest}:{episode_text}",
            detail={"changes": changes, "role": profile.role_arn, "region": profile.region},
            profile=profile,
        )
        result.alarm_id = alarm.pk
    heartbeat(component=Component.GUARD)
    return results
