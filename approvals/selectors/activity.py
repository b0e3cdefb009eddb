"""What a request's sessions did in AWS: the calls, their outcomes and how complete the
record is."""

from dataclasses import dataclass
from datetime import datetime

from django.db.models import Count, Q, QuerySet

from approvals.models import AccessRequest, SessionActivity
from approvals.models.activity import ActivityLookupCursor, history_regions

ACTIVITY_PANEL_LIMIT = 200  # the page shows the newest calls; the API and exports have them all


_DENIAL_MARKERS = ("AccessDenied", "Unauthorized", "AuthorizationError", "NotAuthorized")


_NOT_A_TARGET = frozenset({"Host"})  # S3 logs the endpoint it was called on with every call


def call_outcome(call: SessionActivity) -> str:
    """allowed; denied (AWS refused the caller's permissions); failed (another error)."""
    if not call.error_code:
        return "allowed"
    if any(marker in call.error_code for marker in _DENIAL_MARKERS):
        return "denied"
    return "failed"


def call_resources(call: SessionActivity, *, limit: int = 200) -> str:
    """What the call touched, in one line: the ARNs CloudTrail listed, else the request's scalar
    parameters (bucketName=…, queueName=…), which is where most services name their target."""
    listed = call.resources if isinstance(call.resources, list) else []
    names = [str(item.get("ARN") or item.get("arn")) for item in listed if isinstance(item, dict)]
    names = [name for name in names if name and name != "None"]
    if not names and isinstance(call.request_parameters, dict):
        names = [
            f"{key}={value}"
            for key, value in call.request_parameters.items()
            if isinstance(value, str | int | float | bool) and key not in _NOT_A_TARGET
        ]
    text = ", ".join(names)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def request_activity(
    *, access_request: AccessRequest, mutating: bool | None = None, errors: bool | None = None
) -> QuerySet[SessionActivity]:
    """The calls tied to this request, in event time order. An unknown read-only flag counts as
    mutating (SessionActivity.mutating): a reviewer should look at it."""
    calls = SessionActivity.objects.filter(request=access_request).select_related("seal")
    if mutating is True:
        calls = calls.exclude(read_only=True)
    elif mutating is False:
        calls = calls.filter(read_only=True)
    if errors is True:
        calls = calls.exclude(error_code="")
    elif errors is False:
        calls = calls.filter(error_code="")
    return calls.order_by("event_time", "id")


@dataclass(frozen=True)
class ActivityLine:
    call: SessionActivity
    outcome: str
    resources: str


@dataclass(frozen=True)
class ActivityPanel:
    """The request page's table: the newest calls (oldest first) and counts over all of them."""

    lines: list[ActivityLine]
    total: int
    mutating: int
    errors: int


def request_activity_panel(
    *, access_request: AccessRequest, limit: int = ACTIVITY_PANEL_LIMIT
) -> ActivityPanel:
    calls = request_activity(access_request=access_request)
    counts = calls.aggregate(
        total=Count("id"),
        mutating=Count("id", filter=~Q(read_only=True)),
        errors=Count("id", filter=~Q(error_code="")),
    )
    newest = list(calls.order_by("-event_time", "-id")[:limit])
    newest.reverse()
    return ActivityPanel(
        lines=[ActivityLine(call, call_outcome(call), call_resources(call)) for call in newest],
        total=counts["total"],
        mutating=counts["mutating"],
        errors=counts["errors"],
    )


@dataclass(frozen=True)
class ServiceCount:
    service: str
    calls: int
    mutating: int
    errors: int


def request_activity_by_service(*, access_request: AccessRequest) -> list[ServiceCount]:
    """How many calls the request's sessions made per AWS service, most used first."""
    rows = (
        SessionActivity.objects.filter(request=access_request)
        .values("service")
        .annotate(
            calls=Count("id"),
            mutating_calls=Count("id", filter=~Q(read_only=True)),
            error_calls=Count("id", filter=~Q(error_code="")),
        )
        .order_by("-calls", "service")
    )
    return [
        ServiceCount(row["service"], row["calls"], row["mutating_calls"], row["error_calls"])
        for row in rows
    ]


def activity_complete_until(access_request: AccessRequest) -> datetime | None:
    """The time up to which every call of the request's sessions is known to be on the record:
    the LookupEvents backstop has read CloudTrail's history of the profile's region and of
    us-east-1 in full, from before the request was opened, up to then (whatever the watch queue
    lost). None while it has not: a first look still under way, or one that began after the
    request was opened (its earlier calls are not vouched for)."""
    profile = access_request.profile
    regions = history_regions(profile)
    # Profiles sharing a role share its watch: any of their cursors covers the role's sessions.
    cursors = ActivityLookupCursor.objects.filter(
        profile__role_arn=profile.role_arn,
        profile__region=profile.region,
        region__in=regions,
        covered_from__lte=access_request.created_at,
    )
    reached: dict[str, datetime] = {}
    for cursor in cursors:
        reached[cursor.region] = max(
            cursor.complete_until, reached.get(cursor.region, cursor.complete_until)
        )
    if set(reached) != set(regions):
        return None
    return min(reached.values())
