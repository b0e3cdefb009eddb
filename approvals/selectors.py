"""Reads of the approvals domain."""

from dataclasses import dataclass
from datetime import date, datetime

from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.models import User
from django.core.exceptions import ValidationError as DjangoValidationError
from django.core.paginator import Page, Paginator
from django.db import connection
from django.db.models import Count, Exists, F, OuterRef, Q, QuerySet
from django.utils import timezone

from approvals import rules
from approvals.errors import NotFound
from approvals.models import (
    AccessProfile,
    AccessRequest,
    AlarmStatus,
    Approval,
    BackupCode,
    Component,
    Decision,
    Drill,
    Heartbeat,
    IssuedCredential,
    PersonalToken,
    SealedTOTPDevice,
    SecurityAlarm,
    Status,
    TimelineEvent,
    TimelineHead,
)


def user_is_approver_for(*, user, profile: AccessProfile) -> bool:
    return user.is_active and user.groups.filter(pk=profile.approver_group_id).exists()


def user_is_auditor(*, user) -> bool:
    return user.is_active and user.groups.filter(name=settings.AUDITORS_GROUP).exists()


def request_timeline(*, access_request: AccessRequest):
    return TimelineEvent.objects.filter(request=access_request).order_by("sequence")


def request_get(*, access_request_id) -> AccessRequest:
    try:
        return AccessRequest.objects.select_related("profile").get(pk=access_request_id)
    except (AccessRequest.DoesNotExist, ValueError, DjangoValidationError):
        raise NotFound(f"no request {access_request_id}") from None


# --- Pages: who may see what, the dashboard, sign-in throttling ---------------------------------


@dataclass(frozen=True)
class ViewerScope:
    """What one user may see, read once per page so later reads need no per-row queries."""

    user_id: int
    group_ids: frozenset[int]
    is_auditor: bool

    def is_approver_for(self, profile: AccessProfile) -> bool:
        return profile.approver_group_id in self.group_ids


def viewer_scope(*, user) -> ViewerScope:
    groups = list(user.groups.values_list("id", "name")) if user.is_active else []
    return ViewerScope(
        user_id=user.pk,
        group_ids=frozenset(group_id for group_id, _ in groups),
        is_auditor=any(name == settings.AUDITORS_GROUP for _, name in groups),
    )


def requests_visible(*, scope: ViewerScope):
    """Requests a user may see: their own, those of profiles they approve, all for auditors."""
    requests = AccessRequest.objects.select_related("profile")
    if scope.is_auditor:
        return requests
    return requests.filter(
        Q(requester_id=scope.user_id) | Q(profile__approver_group_id__in=scope.group_ids)
    )


def request_visible_get(*, scope: ViewerScope, access_request_id) -> AccessRequest:
    """The request if this user may see it; NotFound otherwise, so ids are not confirmed."""
    try:
        return requests_visible(scope=scope).get(pk=access_request_id)
    except (AccessRequest.DoesNotExist, ValueError, DjangoValidationError):
        raise NotFound(f"no request {access_request_id}") from None


def signing_blocker(
    *, scope: ViewerScope, access_request: AccessRequest, signed: bool, now: datetime | None = None
) -> str | None:
    """Why this user cannot sign this request now (None: they can): the service's own rule."""
    refusal = rules.signing_refusal(
        access_request=access_request,
        signer_id=scope.user_id,
        is_approver=scope.is_approver_for(access_request.profile),
        already_signed=signed,
        now=now or timezone.now(),
    )
    return refusal.why if refusal is not None else None


@dataclass(frozen=True)
class ProfileChoice:
    """A profile on the request form, with who approves it."""

    profile: AccessProfile
    approver_names: list[str]


def profiles_for_request_form() -> list[ProfileChoice]:
    """Every profile with the usernames of who approves it (for the request form)."""
    profiles = list(AccessProfile.objects.select_related("approver_group"))
    members: dict[int, list[str]] = {}
    user_model = get_user_model()
    for group_id, username in (
        user_model.objects.filter(
            is_active=True, groups__in=[p.approver_group_id for p in profiles]
        )
        .order_by("username")
        .values_list("groups", "username")
    ):
        members.setdefault(group_id, []).append(username)
    return [
        ProfileChoice(profile, members.get(profile.approver_group_id, [])) for profile in profiles
    ]


@dataclass(frozen=True)
class RequestPage:
    access_request: AccessRequest
    signatures: list[Approval]
    approvals_given: int
    can_still_approve: list[str]
    signing_blocker: str | None
    may_cancel: bool
    may_revoke: bool
    may_see_credentials: bool
    credentials_expire_at: object


def request_page_get(*, scope: ViewerScope, access_request: AccessRequest) -> RequestPage:
    signatures = list(access_request.approvals.all())
    signed_ids = {s.approver_id for s in signatures}
    approvals_given = sum(1 for s in signatures if s.decision == Decision.APPROVE)
    can_still_approve: list[str] = []
    if access_request.status == Status.PENDING:
        can_still_approve = list(
            get_user_model()
            .objects.filter(is_active=True, groups=access_request.profile.approver_group_id)
            .exclude(pk__in=[*signed_ids, access_request.requester_id])
            .order_by("username")
            .values_list("username", flat=True)
        )
    credential = None
    if rules.credentials_refusal(access_request=access_request, user_id=scope.user_id) is None:
        credential = IssuedCredential.objects.filter(
            request=access_request, wiped_at__isnull=True
        ).first()
    return RequestPage(
        access_request=access_request,
        signatures=signatures,
        approvals_given=approvals_given,
        can_still_approve=can_still_approve,
        signing_blocker=signing_blocker(
            scope=scope, access_request=access_request, signed=scope.user_id in signed_ids
        ),
        may_cancel=rules.cancel_refusal(access_request=access_request, user_id=scope.user_id)
        is None,
        may_revoke=rules.revoke_refusal(
            access_request=access_request,
            user_id=scope.user_id,
            is_approver=scope.is_approver_for(access_request.profile),
        )
        is None,
        may_see_credentials=credential is not None,
        credentials_expire_at=credential.expiration if credential else None,
    )


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


def dashboard_get(
    *, user, filters: HistoryFilters, page_number: int | str = 1, per_page: int = 25
) -> Dashboard:
    """The approver dashboard in a fixed number of queries, whatever the amount of data."""
    scope = viewer_scope(user=user)
    visible = requests_visible(scope=scope)
    now = timezone.now()

    waiting = (
        visible.filter(status=Status.PENDING, approval_deadline__gt=now)
        .annotate(
            approvals_count=Count("approvals", filter=Q(approvals__decision=Decision.APPROVE)),
            signed_by_me=Exists(
                Approval.objects.filter(request=OuterRef("pk"), approver_id=scope.user_id)
            ),
        )
        .order_by("created_at")[:DASHBOARD_SECTION_LIMIT]
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
            ),
        )
        for access_request in waiting
    ]
    pending.sort(key=lambda row: row.signing_blocker is not None)

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


def user_has_confirmed_device(*, user) -> bool:
    return SealedTOTPDevice.objects.filter(user=user, confirmed=True).exists()


def personal_tokens_of(*, user: User) -> list[PersonalToken]:
    """A person's API tokens, live ones first, newest first (their hashes never leave here)."""
    return list(
        PersonalToken.objects.filter(user=user)
        .defer("token_hash")
        .order_by(F("revoked_at").desc(nulls_first=True), "-created_at")
    )


def backup_codes_unused(*, user) -> int:
    return BackupCode.objects.filter(user=user, used_at__isnull=True).count()


def profiles_all() -> list[AccessProfile]:
    return list(AccessProfile.objects.only("slug", "name"))


# --- API: callers, lists, timelines, alarms, health -------------------------------------------


def requests_visible_to_integration(*, integration_name: str):
    """An integration sees exactly the requests it opened."""
    if not integration_name:
        return AccessRequest.objects.none()
    return AccessRequest.objects.select_related("profile").filter(opened_by=integration_name)


def requests_filtered(
    requests,
    *,
    status: str | None = None,
    profile: str | None = None,
    requester: str | None = None,
    ticket: str | None = None,
):
    if status:
        requests = requests.filter(status=status)
    if profile:
        requests = requests.filter(profile__slug=profile)
    if requester:
        requests = requests.filter(requester_name=requester)
    if ticket:
        requests = requests.filter(ticket=ticket)
    return requests.prefetch_related("approvals")


@dataclass(frozen=True)
class VerifiableTimeline:
    chain: str
    head_sequence: int
    head_hash: str
    events: list[TimelineEvent]


def request_timeline_verifiable(*, access_request: AccessRequest) -> VerifiableTimeline:
    """The request's chain up to its head, so a reader can check nothing is missing at the end."""
    chain = f"request:{access_request.pk}"
    head = TimelineHead.objects.filter(chain=chain).first()
    if head is None:
        return VerifiableTimeline(chain, 0, "0" * 64, [])
    # Events appended after the head was read are left out, so head and events always agree.
    events = list(
        TimelineEvent.objects.filter(chain=chain, sequence__lte=head.sequence).order_by("sequence")
    )
    return VerifiableTimeline(chain, head.sequence, head.hash, events)


def user_may_handle_alarms(*, user) -> bool:
    """Approvers of any profile and auditors see and acknowledge (some) security alarms."""
    if not user.is_active:
        return False
    return (
        user_is_auditor(user=user)
        or user.groups.filter(pk__in=AccessProfile.objects.values("approver_group_id")).exists()
    )


def alarms_visible(*, scope: ViewerScope):
    """Auditors see every alarm. An approver sees the alarms of the profiles they approve and the
    system-wide ones (no profile: the watch, the guard), which concern whoever approves access;
    never another profile's. Anyone else sees none."""
    alarms = SecurityAlarm.objects.all()
    if scope.is_auditor:
        return alarms
    approves_any = AccessProfile.objects.filter(approver_group_id__in=scope.group_ids).exists()
    if not approves_any:
        return alarms.none()
    return alarms.filter(
        Q(profile__isnull=True) | Q(profile__approver_group_id__in=scope.group_ids)
    )


def alarm_involves(*, alarm: SecurityAlarm, user_id: int) -> bool:
    """Whether this person requested or signed the request the alarm is about."""
    if alarm.request_id is None:
        return False
    return (
        AccessRequest.objects.filter(pk=alarm.request_id, requester_id=user_id).exists()
        or Approval.objects.filter(request_id=alarm.request_id, approver_id=user_id).exists()
    )


def alarms_list(*, scope: ViewerScope, status: str | None = None):
    alarms = alarms_visible(scope=scope).select_related("profile").order_by("-opened_at", "-pk")
    return alarms.filter(status=status) if status else alarms


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


# --- Watching the glass ---------------------------------------------------------------------


def watcher_last_poll() -> datetime | None:
    """When the watcher last read every watch queue (None: never)."""
    return (
        Heartbeat.objects.filter(component=Component.WATCHER)
        .values_list("seen_at", flat=True)
        .first()
    )


def user_by_username(*, username: str):
    return get_user_model().objects.filter(username=username).first()


def drills_recent(*, limit: int = 50) -> list[Drill]:
    return list(Drill.objects.select_related("profile")[:limit])
