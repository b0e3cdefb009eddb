"""Prometheus metrics, computed from the database at scrape time.

Nothing is counted in process memory, so every web replica serves the same numbers.
"""

import hmac
from datetime import timedelta

from django.conf import settings
from django.db.models import Count
from django.http import HttpRequest, HttpResponse, HttpResponseNotFound
from django.utils import timezone
from django.views.decorators.http import require_GET
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.core import GaugeMetricFamily, HistogramMetricFamily

from approvals.models import AccessRequest, AlarmStatus, Heartbeat, SecurityAlarm, Status

DURATION_BUCKETS = (0.1, 0.25, 0.5, 1.0, 2.0, 5.0, 10.0, 30.0, 60.0, 300.0)
HISTORY = timedelta(days=30)


def _histogram(name: str, documentation: str, seconds: list[float]) -> HistogramMetricFamily:
    buckets = [(str(bound), sum(1 for s in seconds if s <= bound)) for bound in DURATION_BUCKETS]
    buckets.append(("+Inf", len(seconds)))
    return HistogramMetricFamily(name, documentation, buckets=buckets, sum_value=sum(seconds))


class PortalCollector:
    def collect(self):
        now = timezone.now()
        by_status = dict(
            AccessRequest.objects.values_list("status").annotate(n=Count("pk")).order_by()
        )
        requests = GaugeMetricFamily(
            "breakglass_requests", "Access requests by status.", labels=["status"]
        )
        for status in Status:
            requests.add_metric([status.value], by_status.get(status.value, 0))
        yield requests

        recent = AccessRequest.objects.filter(created_at__gte=now - HISTORY)
        finished = recent.filter(activated_at__isnull=False) | recent.filter(
            revoked_at__isnull=False
        )
        timings = list(
            finished.only(
                "approved_at", "activated_at", "revoke_requested_at", "expires_at", "revoked_at"
            )
        )
        access = [ms / 1000 for ms in (r.time_to_access_ms for r in timings) if ms is not None]
        yield _histogram(
            "breakglass_time_to_access_seconds",
            "Second approval to active grant (last 30 days).",
            access,
        )
        # The request's own formulas, so /metrics and the pages never disagree.
        revoke = [ms / 1000 for ms in (r.time_to_revoke_ms for r in timings) if ms is not None]
        yield _histogram(
            "breakglass_time_to_revoke_seconds",
            "Deadline (or revoke click) to confirmed revocation (last 30 days).",
            revoke,
        )
        overdue = AccessRequest.objects.filter(
            status__in=[Status.ACTIVE, Status.REVOKING],
            expires_at__lte=now - timedelta(seconds=settings.REVOCATION_OVERDUE_SECONDS),
        ).count()
        yield GaugeMetricFamily(
            "breakglass_revocations_overdue", "Grants past their deadline and not revoked.", overdue
        )
        yield GaugeMetricFamily(
            "breakglass_alarms_open",
            "Security alarms nobody has acknowledged.",
            SecurityAlarm.objects.filter(status=AlarmStatus.OPEN).count(),
        )
        ages = GaugeMetricFamily(
            "breakglass_component_last_seen_seconds",
            "Seconds since a background component was last seen alive.",
            labels=["component"],
        )
        for component, seen_at in Heartbeat.objects.values_list("component", "seen_at"):
            ages.add_metric([component], (now - seen_at).total_seconds())
        yield ages


@require_GET
def metrics_view(request: HttpRequest) -> HttpResponse:
    """Served only with `Authorization: Bearer $BREAKGLASS_METRICS_TOKEN`; 404 otherwise."""
    expected = settings.METRICS_TOKEN
    supplied = request.headers.get("Authorization", "").removeprefix("Bearer ").strip()
    if not expected or not hmac.compare_digest(supplied.encode(), expected.encode()):
        return HttpResponseNotFound()
    registry = CollectorRegistry()
    registry.register(PortalCollector())
    return HttpResponse(generate_latest(registry), content_type=CONTENT_TYPE_LATEST)
