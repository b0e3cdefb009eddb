"""The two-person rule for the rules themselves.

A new approver group for a profile, or fewer required approvals, is only proposed by the first
administrator; it takes effect when a different administrator (not another account of the same
person) confirms it with a fresh TOTP code. Proposal, refusal and confirmation are on the system
chain; the change itself is recorded (with an alarm) by the administration record when applied.
"""

from django.contrib.auth.models import Group, User
from django.db import transaction
from django.utils import timezone

from approvals import rules
from approvals.errors import NotAllowed, NotFound
from approvals.models import AccessProfile, PersonIdentity, ProfileChange, ProfileChangeStatus
from approvals.services.administration_record import acting_as, confirmed_change_applying
from approvals.services.signing import otp_check, refusal_raise, refusal_record
from approvals.timeline import SYSTEM_SOURCE, EventSource, timeline_append


def may_administer_profiles(user: User) -> bool:
    return user.is_active and user.is_staff and user.has_perm("approvals.change_accessprofile")


def profile_change_propose(
    *,
    profile: AccessProfile,
    approver_group: Group,
    required_approvals: int,
    proposer: User,
    source: EventSource = SYSTEM_SOURCE,
) -> ProfileChange:
    """Record a pending change of who approves `profile` (or how many must); nothing changes
    until a second administrator confirms it."""
    if not may_administer_profiles(proposer):
        raise NotAllowed("only an administrator of profiles can propose a change")
    with transaction.atomic():
        locked = AccessProfile.objects.select_for_update().get(pk=profile.pk)
        change = ProfileChange.objects.create(
            profile=locked,
            old_approver_group_id=locked.approver_group_id,
            new_approver_group=approver_group,
            old_required_approvals=locked.required_approvals,
            new_required_approvals=required_approvals,
            proposed_by=proposer,
            proposed_by_name=proposer.get_username(),
            proposed_at=timezone.now(),
        )
        timeline_append(
            access_request=None,
            code="approvals.admin.profile_change_proposed",
            actor=proposer,
            detail=_change_detail(change),
            source=source,
        )
    return change


def _change_detail(change: ProfileChange) -> dict:
    return {
        "change": change.pk,
        "profile": change.profile.slug,
        "proposed_by": change.proposed_by_name,
        "changes": change.summary(),
    }


def profile_change_confirm(
    *,
    change_id: int | str,
    confirmer: User,
    otp_code: str,
    source: EventSource = SYSTEM_SOURCE,
) -> ProfileChange:
    """A second administrator applies a pending change with a fresh TOTP code. A refusal is
    committed on the system chain (with the OTP throttle counter) before it is raised."""
    with transaction.atomic():
        change = _change_locked(change_id)
        profile = AccessProfile.objects.select_for_update().get(pk=change.profile_id)
        refusal = rules.profile_change_confirm_refusal(
            change=change,
            confirmer_id=confirmer.pk,
            may_administer_profiles=may_administer_profiles(confirmer),
            same_person_as_proposer=_same_person(confirmer.pk, change.proposed_by_id),
            profile_unchanged_since=(
                profile.approver_group_id == change.old_approver_group_id
                and profile.required_approvals == change.old_required_approvals
            ),
            now=timezone.now(),
        ) or otp_check(user=confirmer, otp_code=otp_code)
        if refusal is not None:
            refusal_record(
                refusal=refusal,
                code="approvals.admin.profile_change_refused",
                actor=confirmer,
                detail=_change_detail(change),
                source=source,
            )
        else:
            _change_apply(change, profile, confirmer, source)
    refusal_raise(refusal)
    return change


def _change_locked(change_id: int | str) -> ProfileChange:
    try:
        return (
            ProfileChange.objects.select_for_update()
            .select_related("profile", "old_approver_group", "new_approver_group")
            .get(pk=change_id)
        )
    except (ProfileChange.DoesNotExist, ValueError):
        raise NotFound(f"no profile change {change_id}") from None


def _same_person(user_id: int, other_id: int | None) -> bool:
    persons = PersonIdentity.objects.persons_of(user_ids=[user_id, other_id])
    return user_id in persons and persons.get(user_id) == persons.get(other_id or -1)


def _change_apply(
    change: ProfileChange, profile: AccessProfile, confirmer: User, source: EventSource
) -> None:
    now = timezone.now()
    ProfileChange.objects.filter(pk=change.pk).update(
        status=ProfileChangeStatus.CONFIRMED,
        decided_by=confirmer,
        decided_by_name=confirmer.get_username(),
        decided_at=now,
    )
    change.refresh_from_db()
    timeline_append(
        access_request=None,
        code="approvals.admin.profile_change_confirmed",
        actor=confirmer,
        detail={**_change_detail(change), "confirmed_by": confirmer.get_username()},
        source=source,
    )
    profile.approver_group_id = change.new_approver_group_id
    profile.required_approvals = change.new_required_approvals
    with acting_as(confirmer, source), confirmed_change_applying(change):
        profile.save(update_fields=["approver_group", "required_approvals"])


def profile_change_withdraw(
    *, change_id: int | str, user: User, source: EventSource = SYSTEM_SOURCE
) -> ProfileChange:
    """Any administrator may withdraw a pending change (it is the safe direction)."""
    if not may_administer_profiles(user):
        raise NotAllowed("only an administrator of profiles can withdraw a change")
    with transaction.atomic():
        change = _change_locked(change_id)
        if change.status != ProfileChangeStatus.PENDING:
            raise NotAllowed(f"this change is {change.get_status_display().lower()}")
        ProfileChange.objects.filter(pk=change.pk).update(
            status=ProfileChangeStatus.WITHDRAWN,
            decided_by=user,
            decided_by_name=user.get_username(),
            decided_at=timezone.now(),
        )
        change.refresh_from_db()
        timeline_append(
            access_request=None,
            code="approvals.admin.profile_change_withdrawn",
            actor=user,
            detail=_change_detail(change),
            source=source,
        )
    return change
