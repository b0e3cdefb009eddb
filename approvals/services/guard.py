"""Guarding the guard: is each profile's watch (trust policy, role policies, EventBridge rule,
its target, the queue) still what provisioning set up? Any drift is a security alarm naming
exactly what changed, since disabling the watch is the first thing an attacker would do.

An alarm is raised once per distinct drift and episode: the same drift seen every five minutes
is one alarm; once the setup is found intact again, a recurrence is a new alarm.
"""

import hashlib
import logging
from dataclasses import dataclass, field

from django.utils import timezone

from approvals.models import AccessProfile, Component, GuardEpisode
from approvals.services.alarms import alarm_open
from approvals.services.liveness import heartbeat
from awsaccess import runtime
from awsaccess.errors import AwsError, TransientAwsError
from awsaccess.watch_integrity import Drift, watch_integrity_check

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
            result.drifts = watch_integrity_check(connection, profile.aws_target())
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
