"""Who may do what to a request or an alarm: each rule written once.

The services enforce these on locked rows; the pages and the API call the same functions to say
why a button is missing, so the explanation and the enforcement can never disagree. The
functions are pure: callers pass what they know (is this person an approver of the profile,
have they signed) so a page listing a hundred requests needs no query per row.
"""

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime

from approvals.models import (
    AccessRequest,
    AlarmStatus,
    Approval,
    Decision,
    ExtensionStatus,
    GrantExtension,
    ProfileChange,
    ProfileChangeStatus,
    SecurityAlarm,
    Status,
)


@dataclass(frozen=True)
class Refusal:
    """Why an action is refused: `code` for machines, `message` for the person refused, and
    `explanation` for a page saying beforehand why someone cannot act ("You cannot sign: …")."""

    code: str
    message: str
    explanation: str = ""

    @property
    def why(self) -> str:
        return self.explanation or self.message


def signer_refusal(
    *,
    access_request: AccessRequest,
    signer_id: int | None,
    is_approver: bool,
    same_person_as: str = "",
) -> Refusal | None:
    """Whether this person may be one of the request's signers at all (two-person rule).
    `same_person_as`: whose account (see `person_shared_with`) belongs to the signer's person."""
    if signer_id is None:
        return Refusal("signer_deleted", "the signer's account no longer exists")
    if signer_id == access_request.requester_id:
        return Refusal(
            "self_approval", "you cannot approve your own request", "this is your own request"
        )
    if same_person_as:
        return Refusal(
            "same_person",
            f"this account belongs to the same person as {same_person_as}: a second account "
            "of one person is not a second approver",
            f"your account belongs to the same person as {same_person_as}",
        )
    if not is_approver:
        slug = access_request.profile.slug
        return Refusal(
            "not_an_approver",
            f"you are not in the approver group of profile {slug}",
            f"you are not in the approver group of {slug}",
        )
    return None


def signing_refusal(
    *,
    access_request: AccessRequest,
    signer_id: int,
    is_approver: bool,
    already_signed: bool,
    now: datetime,
    same_person_as: str = "",
) -> Refusal | None:
    """The approval rules (DESIGN.md §3), checked before any OTP code is looked at."""
    if access_request.status != Status.PENDING:
        return Refusal(
            "not_pending",
            f"the request is {access_request.status}, not pending",
            f"the request is {access_request.get_status_display().lower()}",
        )
    if now >= access_request.approval_deadline:
        return Refusal(
            "deadline_passed",
            "the request's approval deadline has passed",
            "its approval deadline has passed",
        )
    refusal = signer_refusal(
        access_request=access_request,
        signer_id=signer_id,
        is_approver=is_approver,
        same_person_as=same_person_as,
    )
    if refusal is not None:
        return refusal
    if already_signed:
        return Refusal(
            "already_signed", "you have already signed this request", "you have already signed it"
        )
    return None


def approval_still_counts(
    *,
    access_request: AccessRequest,
    approval: Approval,
    is_approver: bool,
    same_person_as: str = "",
) -> bool:
    """At activation: an approval counts if it signed this exact content, by a person who may
    still sign (not the requester, still an approver of the profile, not a person already
    counted through another account)."""
    return (
        approval.decision == Decision.APPROVE
        and approval.content_digest == access_request.content_digest()
        and signer_refusal(
            access_request=access_request,
            signer_id=approval.approver_id,
            is_approver=is_approver,
            same_person_as=same_person_as,
        )
        is None
    )


def person_shared_with(
    *,
    signer_id: int | None,
    requester_id: int | None,
    other_signer_ids: Iterable[int | None],
    person_of: Mapping[int, str],
) -> str:
    """Whose account belongs to the same person as the signer's ("" when nobody's): the
    requester's, or another signer's. Accounts without a person identifier are their own person."""
    person = person_of.get(signer_id) if signer_id is not None else None
    if not person:
        return ""
    if (
        requester_id is not None
        and requester_id != signer_id
        and person_of.get(requester_id) == person
    ):
        return "the requester"
    for other in other_signer_ids:
        if other is not None and other != signer_id and person_of.get(other) == person:
            return "another signer of this request"
    return ""


def profile_change_needs_second_admin(
    *, old_group_id: int, new_group_id: int, old_required: int, new_required: int
) -> bool:
    """Who approves a profile, and how many must, change only with a second administrator:
    a new approver group, or fewer required approvals (more is always allowed)."""
    return old_group_id != new_group_id or new_required < old_required


def profile_change_confirm_refusal(
    *,
    change: ProfileChange,
    confirmer_id: int,
    may_administer_profiles: bool,
    same_person_as_proposer: bool,
    profile_unchanged_since: bool,
    now: datetime,
) -> Refusal | None:
    """A second administrator confirms a pending profile change: someone else than the one who
    proposed it (another account of the same person is not someone else), while the profile is
    still as the proposal found it. The TOTP code is checked after this."""
    if change.status != ProfileChangeStatus.PENDING:
        return Refusal("not_pending", f"this change is {change.get_status_display().lower()}")
    if change.is_expired(now):
        return Refusal("expired", "this change was proposed too long ago; propose it again")
    if not may_administer_profiles:
        return Refusal("not_allowed", "only an administrator of profiles can confirm a change")
    if confirmer_id == change.proposed_by_id or same_person_as_proposer:
        return Refusal(
            "self_confirmation",
            "you proposed this change (or it was proposed from another account of yours); a "
            "second administrator must confirm it",
        )
    if not profile_unchanged_since:
        return Refusal(
            "stale",
            "the profile's approver group or required approvals changed since this was "
            "proposed; propose the change again",
        )
    return None


def extension_ask_refusal(
    *,
    access_request: AccessRequest,
    user_id: int | None,
    has_open_extension: bool,
    total_minutes: int,
    max_minutes: int,
    now: datetime,
) -> Refusal | None:
    """The requester asks for more time on an active grant, one extension at a time, within the
    profile's maximum in all (`total_minutes`: the grant's minutes with this extension's)."""
    if user_id is None or user_id != access_request.requester_id:
        return Refusal("not_allowed", "only the requester can ask for more time")
    if access_request.status != Status.ACTIVE or (
        access_request.expires_at is not None and access_request.expires_at <= now
    ):
        return Refusal(
            "not_active",
            f"only an active grant can be extended; this one is {access_request.status}",
        )
    if has_open_extension:
        return Refusal("extension_open", "an extension of this grant is already waiting")
    if total_minutes > max_minutes:
        return Refusal(
            "too_long",
            f"the grant would last {total_minutes} minutes in all; profile "
            f"{access_request.profile.slug} allows at most {max_minutes}",
        )
    return None


def extension_signing_refusal(
    *,
    extension: GrantExtension,
    signer_id: int,
    is_approver: bool,
    already_signed: bool,
    now: datetime,
    same_person_as: str = "",
) -> Refusal | None:
    """An extension is signed under the request's own rules (`signer_refusal`), while it waits
    and the grant is still active."""
    if extension.status != ExtensionStatus.PENDING:
        return Refusal(
            "not_pending",
            f"the extension is {extension.status}, not pending",
            f"the extension is {extension.get_status_display().lower()}",
        )
    if now >= extension.approval_deadline:
        return Refusal(
            "deadline_passed",
            "the extension's approval deadline has passed",
            "its approval deadline has passed",
        )
    if extension.request.status != Status.ACTIVE:
        return Refusal("not_active", f"the grant is {extension.request.status}, not active")
    refusal = signer_refusal(
        access_request=extension.request,
        signer_id=signer_id,
        is_approver=is_approver,
        same_person_as=same_person_as,
    )
    if refusal is not None:
        return refusal
    if already_signed:
        return Refusal(
            "already_signed",
            "you have already signed this extension",
            "you have already signed it",
        )
    return None


def extension_approval_still_counts(
    *, extension: GrantExtension, approval, is_approver: bool, same_person_as: str = ""
) -> bool:
    """When the worker applies it: an extension signature counts as a request's does."""
    return (
        approval.decision == Decision.APPROVE
        and approval.content_digest == extension.content_digest()
        and signer_refusal(
            access_request=extension.request,
            signer_id=approval.approver_id,
            is_approver=is_approver,
            same_person_as=same_person_as,
        )
        is None
    )


def cancel_refusal(
    *, access_request: AccessRequest, user_id: int | None, integration: str = ""
) -> Refusal | None:
    """Only the requester (or the integration that opened it) withdraws a pending request."""
    if integration:
        if access_request.opened_by != integration:
            return Refusal("not_allowed", "an integration can only cancel requests it opened")
    elif user_id is None or user_id != access_request.requester_id:
        return Refusal("not_allowed", "only the requester can cancel a request")
    if access_request.status != Status.PENDING:
        return Refusal(
            "not_allowed",
            f"only a pending request can be cancelled; this one is {access_request.status}",
        )
    return None


def revoke_refusal(
    *, access_request: AccessRequest, user_id: int, is_approver: bool
) -> Refusal | None:
    """The requester or an approver of the profile may end an active grant early."""
    if user_id != access_request.requester_id and not is_approver:
        return Refusal("not_allowed", "only the requester or an approver of the profile can revoke")
    if access_request.status != Status.ACTIVE:
        return Refusal(
            "not_allowed",
            f"only an active grant can be revoked; this one is {access_request.status}",
        )
    return None


def credentials_refusal(*, access_request: AccessRequest, user_id: int) -> Refusal | None:
    """Only the requester sees the credentials, and only while access is active."""
    if user_id != access_request.requester_id:
        return Refusal("not_allowed", "only the requester can see the credentials")
    if access_request.status != Status.ACTIVE:
        return Refusal(
            "not_allowed",
            f"credentials exist only while access is active; it is {access_request.status}",
        )
    return None


def alarm_acknowledge_refusal(
    *, alarm: SecurityAlarm, may_handle_alarms: bool, involved: bool
) -> Refusal | None:
    """Approvers (of the alarm's profile, or any for a system-wide alarm) and auditors take
    alarms in hand, once; never someone who requested or signed the request the alarm is about,
    who would be closing the alarm raised about their own access. (Whether the person may see
    the alarm at all is decided before: an alarm they cannot see does not exist for them.)"""
    if not may_handle_alarms:
        return Refusal("not_allowed", "only approvers and auditors can acknowledge alarms")
    if involved:
        return Refusal(
            "involved",
            "you are involved in the request this alarm is about (requester or signer); "
            "someone else must acknowledge it",
        )
    if alarm.status != AlarmStatus.OPEN:
        return Refusal(
            "not_allowed", f"the alarm was already acknowledged by {alarm.acknowledged_by_name}"
        )
    return None
