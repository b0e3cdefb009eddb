"""Reads about people: what one viewer may see, who is one person across accounts, their
devices, tokens and codes."""

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.models import User
from django.db.models import F

from approvals import rules
from approvals.models import (
    AccessProfile,
    AccessRequest,
    BackupCode,
    PersonalToken,
    PersonIdentity,
    SealedTOTPDevice,
)


def user_is_approver_for(*, user, profile: AccessProfile) -> bool:
    return user.is_active and user.groups.filter(pk=profile.approver_group_id).exists()


@dataclass(frozen=True)
class SignerFacts:
    """What the rules need about a request's signers, read at once: who of them may approve for
    its profile now (active, in the approver group), and each account's person identifier."""

    approver_ids: frozenset[int]
    person_of: dict[int, str]


def signer_facts(*, access_request: AccessRequest, signer_ids: Iterable[int | None]) -> SignerFacts:
    """`user_is_approver_for` and the person reads of `signer_same_person_as`, for all of a
    request's signers in two queries (the worker checks every approval before activating)."""
    wanted = {user_id for user_id in signer_ids if user_id is not None}
    approver_ids = (
        get_user_model()
        .objects.filter(
            pk__in=wanted, is_active=True, groups=access_request.profile.approver_group_id
        )
        .values_list("pk", flat=True)
        if wanted
        else []
    )
    return SignerFacts(
        approver_ids=frozenset(approver_ids),
        person_of=PersonIdentity.objects.persons_of(
            user_ids=[access_request.requester_id, *wanted]
        ),
    )


def user_is_auditor(*, user) -> bool:
    return user.is_active and user.groups.filter(name=settings.AUDITORS_GROUP).exists()


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


@dataclass(frozen=True)
class SignerOn:
    """One would-be signer of one request (or of one of its extensions), with who signed it."""

    signer_id: int | None
    access_request: AccessRequest
    other_signer_ids: tuple[int | None, ...]


def signers_same_person_as(cases: Sequence[SignerOn]) -> list[str]:
    """`signer_same_person_as` for each case, in order, in one read for all of them (a page
    listing many requests, extensions or approvers asks no query per row)."""
    person_of = PersonIdentity.objects.persons_of(
        user_ids=[
            user_id
            for case in cases
            for user_id in (
                case.signer_id,
                case.access_request.requester_id,
                *case.other_signer_ids,
            )
        ]
    )
    return [
        rules.person_shared_with(
            signer_id=case.signer_id,
            requester_id=case.access_request.requester_id,
            other_signer_ids=case.other_signer_ids,
            person_of=person_of,
        )
        for case in cases
    ]


def signer_same_person_as(
    *, access_request: AccessRequest, signer_id: int | None, other_signer_ids: Iterable[int | None]
) -> str:
    """Whose account on this request belongs to the signer's person ("" when nobody's)."""
    (shared,) = signers_same_person_as(
        [SignerOn(signer_id, access_request, tuple(other_signer_ids))]
    )
    return shared


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


def user_by_username(*, username: str):
    return get_user_model().objects.filter(username=username).first()
