"""Who may do what to a request or an alarm: each rule written once.

The services enforce these on locked rows; the pages and the API call the same functions to say
why a button is missing, so the explanation and the enforcement can never disagree. The
functions are pure: callers pass what they know (is this person an approver of the profile,
have they signed) so a page listing a hundred requests needs no query per row.
"""

from dataclasses import dataclass
from datetime import datetime

from approvals.models import (
    AccessRequest,
    AlarmStatus,
    Approval,
    Decision,
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
    *, access_request: AccessRequest, signer_id: int | None, is_approver: bool
) -> Refusal | None:
    """Whether this person may be one of the request's signers at all (two-person rule)."""
    if signer_id is None:
        return Refusal("signer_deleted", "the signer's account no longer exists")
    if signer_id == access_request.requester_id:
        return Refusal(
            "self_approval", "you cannot approve your own request", "this is your own request"
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
        access_request=access_request, signer_id=signer_id, is_approver=is_approver
    )
    if refusal is not None:
        return refusal
    if already_signed:
        return Refusal(
            "already_signed", "you have already signed this request", "you have already signed it"
        )
    return None


def approval_still_counts(
    *, access_request: AccessRequest, approval: Approval, is_approver: bool
) -> bool:
    """At activation: an approval counts if it signed this exact content, by a person who may
    still sign (not the requester, still an approver of the profile)."""
    return (
        approval.decision == Decision.APPROVE
        and approval.content_digest == access_request.content_digest()
        and signer_refusal(
            access_request=access_request, signer_id=approval.approver_id, is_approver=is_approver
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
