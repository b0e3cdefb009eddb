"""Background components say they are alive; the sweeper notices when the watcher is not."""

from datetime import datetime, timedelta

from django.conf import settings
from django.utils import timezone

from approvals import selectors
from approvals.models import AccessProfile, Component, Heartbeat
from approvals.services.alarms import alarm_open


def heartbeat(*, component: Component) -> None:
    Heartbeat.objects.update_or_create(
        component=Component(component), defaults={"seen_at": timezone.now()}
    )


def watcher_staleness_check(*, now: datetime) -> bool:
    """Raise an alarm (once per outage) when the watcher has not completed a poll of every watch
    queue for WATCH_STALE_SECONDS: someone may have stopped it to use the role unseen."""
    if not AccessProfile.objects.exists():
        return False
    seen = selectors.watcher_last_poll()
    if seen is None or now - seen < timedelta(seconds=settings.WATCH_STALE_SECONDS):
        return False
    _, created = alarm_open(
        kind="watcher_down",
        title=f"The watcher has not polled since {seen:%Y-%m-%d %H:%M:%S} UTC",
        dedup_key=f"watcher_down:{seen.isoformat()}",
        detail={"last_poll": seen.isoformat(), "stale_after_seconds": settings.WATCH_STALE_SECONDS},
    )
    return created
