"""Health: whether the database and broker answer, and when each component was last seen."""

from dataclasses import dataclass
from datetime import datetime

from django.conf import settings
from django.db import connection
from django.utils import timezone

from approvals.models import Component, Heartbeat


@dataclass(frozen=True)
class ComponentHealth:
    name: str
    ok: bool
    age_seconds: float | None = None
    reason: str = ""


def health_check(*, now=None) -> list[ComponentHealth]:
    """Database, broker, worker, sweeper and watcher: alive, and how long ago each was seen."""
    from kombu import Connection

    now = now or timezone.now()
    components: list[ComponentHealth] = []
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
        components.append(ComponentHealth("database", True, 0.0))
        database_up = True
    except Exception as exc:
        components.append(ComponentHealth("database", False, None, f"database unreachable: {exc}"))
        database_up = False
    try:
        with Connection(
            settings.CELERY_BROKER_URL,
            transport_options=settings.CELERY_BROKER_TRANSPORT_OPTIONS,
            connect_timeout=2,
        ) as broker:
            broker.ensure_connection(max_retries=1, interval_start=0, interval_step=0, timeout=2)
        components.append(ComponentHealth("broker", True, 0.0))
    except Exception as exc:
        components.append(ComponentHealth("broker", False, None, f"broker unreachable: {exc}"))
    seen = dict(Heartbeat.objects.values_list("component", "seen_at")) if database_up else {}
    limits = {
        Component.WORKER: settings.HEALTH_STALE_SECONDS,
        Component.SWEEPER: settings.HEALTH_STALE_SECONDS,
        Component.WATCHER: settings.WATCH_STALE_SECONDS,
    }
    for component, limit in limits.items():
        seen_at = seen.get(component)
        if not database_up:
            components.append(ComponentHealth(component, False, None, "unknown: database down"))
        elif seen_at is None:
            components.append(ComponentHealth(component, False, None, f"{component} never seen"))
        else:
            age = round((now - seen_at).total_seconds(), 3)
            stale = age > limit
            reason = f"{component} last seen {age:.0f} s ago (limit {limit} s)" if stale else ""
            components.append(ComponentHealth(component, not stale, age, reason))
    return components


def watcher_last_poll() -> datetime | None:
    """When the watcher last read every watch queue (None: never)."""
    return (
        Heartbeat.objects.filter(component=Component.WATCHER)
        .values_list("seen_at", flat=True)
        .first()
    )
