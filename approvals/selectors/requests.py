"""Reads of requests: fetching one (as anyone may see it), the request form and page,
the API's lists and a request's verifiable timeline."""

from dataclasses import dataclass
from datetime import datetime

from django.contrib.auth import get_user_model
from django.core.exceptions import ValidationError as DjangoValidationError
from django.db.models import Q
from django.utils import timezone

from approvals import rules
from approvals.errors import NotFound
from approvals.models import (
    AccessProfile,
    AccessRequest,
    Approval,
    Decision,
    IssuedCredential,
    Status,
    TimelineEvent,
    TimelineHead,
)
from approvals.selectors.people import SignerOn, ViewerScope, signers_same_person_as


def request_timeline(*, access_request: AccessRequest):
    return TimelineEvent.objects.filter(request=access_request).order_by("sequence")


def request_get(*, access_request_id) -> AccessRequest:
    try:
        return AccessRequest.objects.select_related("profile").get(pk=access_request_id)
    except (AccessRequest.DoesNotExist, ValueError, DjangoValidationError):
        raise NotFound(f"no request {access_request_id}") from None


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
    *,
    scope: ViewerScope,
    access_request: AccessRequest,
    signed: bool,
    now: datetime | None = None,
    same_person_as: str = "",
) -> str | None:
    """Why this user cannot sign this request now (None: they can): the service's own rule.
    `same_person_as` is `signer_same_person_as` for this user (a query: a list may leave it out,
    and the request's page then says why)."""
    refusal = rules.signing_refusal(
        access_request=access_request,
        signer_id=scope.user_id,
        is_approver=scope.is_approver_for(access_request.profile),
        already_signed=signed,
        now=now or timezone.now(),
        same_person_as=same_person_as,
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


def profiles_all() -> list[AccessProfile]:
    return list(AccessProfile.objects.only("slug", "name"))


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
    signed_ids = tuple(s.approver_id for s in signatures)
    approvals_given = sum(1 for s in signatures if s.decision == Decision.APPROVE)
    candidates: list[tuple[int, str]] = []
    if access_request.status == Status.PENDING:
        candidates = list(
            get_user_model()
            .objects.filter(is_active=True, groups=access_request.profile.approver_group_id)
            .exclude(pk__in=[*signed_ids, access_request.requester_id])
            .order_by("username")
            .values_list("pk", "username")
        )
    # The viewer and every approver who has not signed, asked in one read: a second account of
    # the requester or of a signer cannot sign, so it is neither offered a signature nor listed.
    viewer_same_person_as, *candidates_same_person_as = signers_same_person_as(
        [
            SignerOn(user_id, access_request, signed_ids)
            for user_id in (scope.user_id, *(pk for pk, _ in candidates))
        ]
    )
    can_still_approve = [
        username
        for (_, username), shared in zip(candidates, candidates_same_person_as, strict=True)
        if not shared
    ]
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
            scope=scope,
            access_request=access_request,
            signed=scope.user_id in signed_ids,
            same_person_as=viewer_same_person_as,
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
    return requests.prefetch_related("approvals", "extensions__approvals")


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
