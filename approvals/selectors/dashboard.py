"""The approver dashboard: what waits for a signature, what is in flight, the history."""

from dataclasses import dataclass
from datetime import date, datetime

from django.contrib.postgres.aggregates import ArrayAgg
from django.core.paginator import Page, Paginator
from django.db.models import Count, Exists, OuterRef, Q, QuerySet
from django.utils import timezone

from approvals.models import AccessRequest, AlarmStatus, Approval, Decision, SecurityAlarm, Status
from approvals.selectors.alarms import alarms_visible
from approvals.selectors.people import SignerOn, ViewerScope, signers_same_person_as, viewer_scope
from approvals.selectors.requests import requests_visible, signing_blocker


@dataclass(frozen=True)
class HistoryFilters:
    status: str = ""
    profile: str = ""
    requester: str = ""
    ticket: str = ""
    since: date | None = None
    until: date | None = None


@dataclass(frozen=True)
class PendingRow:
    request: AccessRequest
    approvals_given: int
    signing_blocker: str | None


@dataclass(frozen=True)
class Dashboard:
    scope: ViewerScope
    alarms: list[SecurityAlarm]
    pending: list[PendingRow]  # mine to sign first, then the ones I cannot sign; oldest first
    active: list[AccessRequest]
    history: Page


IN_FLIGHT = (Status.APPROVED, Status.ACTIVATING, Status.ACTIVE, Status.REVOKING)


DASHBOARD_SECTION_LIMIT = 100


def _history_filtered(
    history: QuerySet[AccessRequest], filters: HistoryFilters
) -> QuerySet[AccessRequest]:
    if filters.status:
        history = history.filter(status=filters.status)
    if filters.profile:
        history = history.filter(profile__slug=filters.profile)
    if filters.requester:
        history = history.filter(requester_name__iexact=filters.requester)
    if filters.ticket:
        history = history.filter(ticket__iexact=filters.ticket)
    if filters.since:
        history = history.filter(created_at__date__gte=filters.since)
    if filters.until:
        history = history.filter(created_at__date__lte=filters.until)
    return history


def _pending_rows(
    *, scope: ViewerScope, visible: QuerySet[AccessRequest], now: datetime
) -> list[PendingRow]:
    """What waits for a signature, mine to sign first. Each row's signers come with it, and who
    is one person is read once for all rows, so the service's whole rule costs no query per row."""
    waiting = list(
        visible.filter(status=Status.PENDING, approval_deadline__gt=now)
        .annotate(
            approvals_count=Count("approvals", filter=Q(approvals__decision=Decision.APPROVE)),
            # Every signer, whatever they decided, as the service counts them ([None]: nobody).
            signer_ids=ArrayAgg("approvals__approver_id"),
            signed_by_me=Exists(
                Approval.objects.filter(request=OuterRef("pk"), approver_id=scope.user_id)
            ),
        )
        .order_by("created_at")[:DASHBOARD_SECTION_LIMIT]
    )
    same_person_as = signers_same_person_as(
        [SignerOn(scope.user_id, r, tuple(r.signer_ids)) for r in waiting]
    )
    pending = [
        PendingRow(
            request=access_request,
            approvals_given=access_request.approvals_count,
            signing_blocker=signing_blocker(
                scope=scope,
                access_request=access_request,
                signed=access_request.signed_by_me,
                now=now,
                same_person_as=shared,
            ),
        )
        for access_request, shared in zip(waiting, same_person_as, strict=True)
    ]
    pending.sort(key=lambda row: row.signing_blocker is not None)
    return pending


def dashboard_get(
    *, user, filters: HistoryFilters, page_number: int | str = 1, per_page: int = 25
) -> Dashboard:
    """The approver dashboard in a fixed number of queries, whatever the amount of data."""
    scope = viewer_scope(user=user)
    visible = requests_visible(scope=scope)
    now = timezone.now()

    pending = _pending_rows(scope=scope, visible=visible, now=now)

    active = list(visible.filter(status__in=IN_FLIGHT).order_by("expires_at", "created_at")[:100])

    history = _history_filtered(visible.order_by("-created_at"), filters)

    alarms = list(
        alarms_visible(scope=scope)
        .filter(status=AlarmStatus.OPEN)
        .select_related("profile")
        .order_by("-opened_at")[:20]
    )

    return Dashboard(
        scope=scope,
        alarms=alarms,
        pending=pending,
        active=active,
        history=Paginator(history, per_page).get_page(page_number),
    )
