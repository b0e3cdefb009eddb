"""The request lifecycle as people drive it: open, sign (approve or reject), cancel, time out,
revoke early, and reveal the credentials to the requester."""

import json
import re
from datetime import datetime, timedelta
from typing import Any
from uuid import UUID

from django.conf import settings
from django.contrib.auth.models import AnonymousUser, User
from django.core.exceptions import ValidationError as DjangoValidationError
from django.db import transaction
from django.utils import timezone

from approvals import rules, selectors
from approvals.errors import NotAllowed, NotFound, RequestInvalid
from approvals.models import (
    JUSTIFICATION_MAX_LENGTH,
    REASON_MAX_LENGTH,
    TICKET_MAX_LENGTH,
    TICKET_PATTERN,
    AccessProfile,
    AccessRequest,
    AccessScope,
    Approval,
    Decision,
    IssuedCredential,
    Status,
)
from approvals.sealing import unseal
from approvals.selectors.people import signer_same_person_as
from approvals.services.lifecycle import request_changed_announce, request_move
from approvals.services.queue import Job, enqueue_after_commit
from approvals.services.scopes import scope_for_request
from approvals.services.signing import (
    APPROVAL_PURPOSE,
    APPROVED_EVENT,
    REJECTED_EVENT,
    otp_check,
    refusal_raise,
    refusal_record,
    signature_check,
    signature_record,
    text_clean,
)
from approvals.timeline import SYSTEM_SOURCE, EventSource, timeline_append
from awsaccess.types import IssuedCredentials

RequestId = UUID | str


def _request_fields_check(
    profile: AccessProfile | None,
    profile_slug: str,
    ticket: str,
    justification: str,
    duration_minutes: Any,
    requester: User,
) -> dict[str, list[str]]:
    errors: dict[str, list[str]] = {}
    if profile is None:
        errors["profile"] = [f"unknown access profile {profile_slug!r}"]
    if not ticket:
        errors["ticket"] = ["ticket is required"]
    elif len(ticket) > TICKET_MAX_LENGTH:
        errors["ticket"] = [f"ticket must be at most {TICKET_MAX_LENGTH} characters"]
    elif not re.match(TICKET_PATTERN, ticket):
        errors["ticket"] = ["ticket must look like INC-1234 (capital letters, a dash, digits)"]
    if not justification:
        errors["justification"] = ["justification is required"]
    elif len(justification) > JUSTIFICATION_MAX_LENGTH:
        errors["justification"] = [
            f"justification must be at most {JUSTIFICATION_MAX_LENGTH} characters"
        ]
    if isinstance(duration_minutes, bool) or not isinstance(duration_minutes, int):
        errors["duration_minutes"] = ["duration_minutes must be a whole number of minutes"]
    elif profile is not None and not 1 <= duration_minutes <= profile.max_duration_minutes:
        errors["duration_minutes"] = [
            f"duration_minutes must be between 1 and {profile.max_duration_minutes} "
            f"for profile {profile.slug}"
        ]
    if not requester.is_active:
        errors["requester"] = [f"user {requester.get_username()} is not active"]
    return errors


def requester_resolve(*, named: str, caller: User | AnonymousUser, integration: str = "") -> User:
    """Who a new request is for: an integration must name the requester; a person opens
    requests for themselves only."""
    if integration:
        if not named:
            raise RequestInvalid(
                "An integration must name the requester.",
                fields={"requester": ["requester is required for integration keys"]},
            )
        requester = selectors.user_by_username(username=named)
        if requester is None:
            raise RequestInvalid(
                "The requester is unknown.", fields={"requester": [f"no user {named!r}"]}
            )
        return requester
    if not isinstance(caller, User) or (named and named != caller.get_username()):
        raise NotAllowed("people open requests for themselves only")
    return caller


def request_open(
    *,
    profile_slug: str,
    requester: User,
    ticket: str,
    justification: str,
    duration_minutes: int,
    opened_by: str = "",
    is_drill: bool = False,
    actor: User | None = None,
    source: EventSource = SYSTEM_SOURCE,
    scope: str | None = None,
) -> AccessRequest:
    """Open a PENDING request. `actor` differs from `requester` when an integration opens it;
    `scope` names one of the profile's scopes (None: its default, if it has scopes)."""
    profile = (
        AccessProfile.objects.filter(slug=profile_slug).select_related("approver_group").first()
    )
    ticket = (ticket or "").strip()
    justification = (justification or "").strip()
    errors = _request_fields_check(
        profile, profile_slug, ticket, justification, duration_minutes, requester
    )
    chosen_scope = _scope_chosen(profile, scope, errors)
    if errors or profile is None:
        raise RequestInvalid("The request is not valid.", fields=errors)

    now = timezone.now()
    with transaction.atomic():
        access_request = AccessRequest(
            profile=profile,
            requester=requester,
            requester_name=requester.get_username(),
            opened_by=opened_by,
            ticket=ticket,
            justification=justification,
            duration_minutes=duration_minutes,
            is_drill=is_drill,
            scope=chosen_scope,
            created_at=now,
            approval_deadline=now + timedelta(minutes=settings.APPROVAL_TIMEOUT_MINUTES),
        )
        access_request.save()
        opened = timeline_append(
            access_request=access_request,
            code="approvals.request.opened",
            actor=actor or requester,
            detail=_opened_detail(access_request),
            source=source,
        )
        request_changed_announce(
            access_request=access_request,
            from_status=None,
            changes={"status": Status.PENDING},
            event=opened,
        )
    return access_request


def _scope_chosen(
    profile: AccessProfile | None, name: str | None, errors: dict[str, list[str]]
) -> AccessScope | None:
    """The scope the request asks for; a wrong name joins the other field errors."""
    if profile is None:
        return None
    try:
        return scope_for_request(profile=profile, name=(name or "").strip() or None)
    except RequestInvalid as invalid:
        errors.update(invalid.fields)
        return None


def _opened_detail(access_request: AccessRequest) -> dict[str, Any]:
    """The request's content as its first timeline event records it, with the digest the
    approvers will sign."""
    return {
        "profile": access_request.profile.slug,
        "ticket": access_request.ticket,
        "requester": access_request.requester_name,
        "opened_by": access_request.opened_by,
        "duration_minutes": access_request.duration_minutes,
        "is_drill": access_request.is_drill,
        "justification": access_request.justification,
        "approval_deadline": access_request.approval_deadline.isoformat(),
        "scope": access_request.scope_content(),
        "content_digest": access_request.content_digest(),
    }


def request_locked(access_request_id: RequestId) -> AccessRequest:
    """The request's row, locked for the rest of the transaction (NotFound if there is none)."""
    try:
        return (
            AccessRequest.objects.select_for_update()
            .select_related("profile")
            .get(pk=access_request_id)
        )
    except (AccessRequest.DoesNotExist, ValueError, DjangoValidationError):
        raise NotFound(f"no request {access_request_id}") from None


def request_sign(
    *,
    access_request_id: RequestId,
    approver: User,
    otp_code: str,
    decision: Decision,
    reason: str = "",
    source: EventSource = SYSTEM_SOURCE,
) -> Approval:
    """Approve or reject with a fresh TOTP code. The last required approval moves it to APPROVED.

    A refusal is recorded on the timeline and committed (with the OTP throttle counter) before
    it is raised, so an attacker's failed attempts are never rolled back.
    """
    reason = text_clean(
        reason,
        field="reason",
        max_length=REASON_MAX_LENGTH,
        required=decision == Decision.REJECT,
        message="A rejection needs a reason.",
        too_long_message="The reason is too long.",
    )
    approval: Approval | None = None
    with transaction.atomic():
        access_request = request_locked(access_request_id)
        now = timezone.now()
        signer_ids = list(access_request.approvals.values_list("approver_id", flat=True))
        refusal = rules.signing_refusal(
            access_request=access_request,
            signer_id=approver.pk,
            is_approver=selectors.user_is_approver_for(
                user=approver, profile=access_request.profile
            ),
            already_signed=approver.pk in signer_ids,
            now=now,
            same_person_as=signer_same_person_as(
                access_request=access_request, signer_id=approver.pk, other_signer_ids=signer_ids
            ),
        ) or otp_check(user=approver, otp_code=otp_code)
        if refusal is not None:
            refusal_record(
                refusal=refusal,
                code="approvals.signature.refused",
                actor=approver,
                access_request=access_request,
                detail={"decision": decision},
                source=source,
            )
        else:
            approval = _signature_record(access_request, approver, decision, reason, source, now)
    refusal_raise(refusal)
    assert approval is not None
    return approval


def _signature_record(
    access_request: AccessRequest,
    approver: User,
    decision: Decision,
    reason: str,
    source: EventSource,
    now: datetime,
) -> Approval:
    approval = signature_record(
        Approval(request=access_request, content_digest=access_request.content_digest()),
        access_request=access_request,
        approver=approver,
        decision=decision,
        reason=reason,
        now=now,
        source=source,
        purpose=APPROVAL_PURPOSE,
        event_code=APPROVED_EVENT if decision == Decision.APPROVE else REJECTED_EVENT,
    )
    if decision == Decision.REJECT:
        request_move(
            access_request=access_request,
            to_status=Status.REJECTED,
            code="approvals.request.rejected",
            actor=approver,
            detail={"reason": reason},
            source=source,
        )
        return approval
    # Only signatures of the content as it stands count (a scope edited meanwhile makes the
    # earlier ones stale): the request waits for fresh ones.
    approvals = access_request.approvals.filter(
        decision=Decision.APPROVE, content_digest=approval.content_digest
    ).count()
    if approvals >= access_request.profile.required_approvals:
        # Queued before the move, whose notices and webhooks queue their own sends: commit
        # callbacks run in order (~2.5 ms a send), so the activation goes first. Nothing is sent
        # unless the transaction, the move with it, commits.
        enqueue_after_commit(Job.ACTIVATE, access_request.pk)
        request_move(
            access_request=access_request,
            to_status=Status.APPROVED,
            code="approvals.request.approved",
            actor=approver,
            detail={"approvals": approvals},
            source=source,
            fields={"approved_at": now},
        )
    return approval


def request_approve(
    *,
    access_request_id: RequestId,
    approver: User,
    otp_code: str,
    source: EventSource = SYSTEM_SOURCE,
) -> Approval:
    return request_sign(
        access_request_id=access_request_id,
        approver=approver,
        otp_code=otp_code,
        decision=Decision.APPROVE,
        source=source,
    )


def request_reject(
    *,
    access_request_id: RequestId,
    approver: User,
    otp_code: str,
    reason: str,
    source: EventSource = SYSTEM_SOURCE,
) -> Approval:
    return request_sign(
        access_request_id=access_request_id,
        approver=approver,
        otp_code=otp_code,
        decision=Decision.REJECT,
        reason=reason,
        source=source,
    )


def request_cancel(
    *,
    access_request_id: RequestId,
    actor: User | None,
    opened_by: str = "",
    source: EventSource = SYSTEM_SOURCE,
) -> AccessRequest:
    """The requester (or the integration that opened it) withdraws a pending request."""
    with transaction.atomic():
        access_request = request_locked(access_request_id)
        refusal = rules.cancel_refusal(
            access_request=access_request,
            user_id=actor.pk if actor is not None else None,
            integration=opened_by,
        )
        if refusal is not None:
            raise NotAllowed(refusal.message)
        return request_move(
            access_request=access_request,
            to_status=Status.CANCELLED,
            code="approvals.request.cancelled",
            actor=actor,
            detail={"opened_by": opened_by} if opened_by else None,
            source=source,
        )


def requests_time_out(*, now: datetime | None = None, limit: int = 500) -> int:
    """Time out pending requests past their approval deadline. Safe if two sweepers run."""
    now = now or timezone.now()
    timed_out = 0
    with transaction.atomic():
        expired = (
            AccessRequest.objects.select_for_update(skip_locked=True)
            .filter(status=Status.PENDING, approval_deadline__lte=now)
            .order_by("approval_deadline")[:limit]
        )
        for access_request in expired:
            request_move(
                access_request=access_request,
                to_status=Status.TIMED_OUT,
                code="approvals.request.timed_out",
                detail={"approval_deadline": access_request.approval_deadline.isoformat()},
            )
            timed_out += 1
    return timed_out


def request_revoke(
    *,
    access_request_id: RequestId,
    actor: User,
    otp_code: str,
    reason: str,
    source: EventSource = SYSTEM_SOURCE,
) -> AccessRequest:
    """Early revocation by the requester or an approver of the profile, signed with TOTP."""
    reason = text_clean(
        reason,
        field="reason",
        max_length=REASON_MAX_LENGTH,
        required=True,
        message="An early revocation needs a reason.",
    )
    with transaction.atomic():
        access_request = request_locked(access_request_id)
        not_allowed = rules.revoke_refusal(
            access_request=access_request,
            user_id=actor.pk,
            is_approver=selectors.user_is_approver_for(user=actor, profile=access_request.profile),
        )
        if not_allowed is not None:
            raise NotAllowed(not_allowed.message)
        refusal = signature_check(
            user=actor,
            otp_code=otp_code,
            refused_code="approvals.revocation.refused",
            access_request=access_request,
            source=source,
        )
        if refusal is None:
            request_move(
                access_request=access_request,
                to_status=Status.REVOKING,
                code="approvals.revocation.requested",
                actor=actor,
                detail={"reason": reason},
                source=source,
                fields={"revoke_requested_at": timezone.now()},
            )
            enqueue_after_commit(Job.REVOKE, access_request.pk)
    refusal_raise(refusal)
    return access_request


def credentials_reveal(
    *,
    access_request_id: RequestId,
    user: User,
    otp_code: str,
    source: EventSource = SYSTEM_SOURCE,
) -> IssuedCredentials:
    """The requester's credentials, after a fresh TOTP code; every view is on the timeline."""
    with transaction.atomic():
        access_request = request_locked(access_request_id)
        not_allowed = rules.credentials_refusal(access_request=access_request, user_id=user.pk)
        if not_allowed is not None:
            raise NotAllowed(not_allowed.message)
        refusal = signature_check(
            user=user,
            otp_code=otp_code,
            refused_code="approvals.credentials.refused",
            access_request=access_request,
            source=source,
        )
        if refusal is None:
            stored = IssuedCredential.objects.get(request=access_request, wiped_at__isnull=True)
            timeline_append(
                access_request=access_request,
                code="approvals.credentials.viewed",
                actor=user,
                detail={"access_key_id": stored.access_key_id},
                source=source,
            )
    refusal_raise(refusal)
    values = json.loads(unseal(stored.sealed))
    return IssuedCredentials(
        access_key_id=values["access_key_id"],
        secret_access_key=values["secret_access_key"],
        session_token=values["session_token"],
        expiration=stored.expiration,
        region=access_request.profile.region,
        endpoint_url=settings.AWS_ENDPOINT_URL,
    )
