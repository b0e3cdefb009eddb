"""More time for an active grant: asked for by its requester, signed by two approvers under the
request's own rules, applied by the worker (`approvals.services.extension_grants`).

The extension's content (the request's signed digest, the minutes, the reason, the old and new
deadlines) is digested and each approval of it is signed with the portal's key, as a request's
are. Applying it rewrites the grant's `aws:CurrentTime` condition, issues fresh credentials when
the current session would end before the new deadline, moves `expires_at` and reschedules the
revocation, which still ends every session of the request. An extension nobody signs in time
times out and leaves the deadline as it was.
"""

from datetime import timedelta
from typing import Any
from uuid import UUID

from django.conf import settings
from django.contrib.auth.models import User
from django.core.exceptions import ValidationError as DjangoValidationError
from django.db import transaction
from django.db.models import Sum
from django.utils import timezone

from approvals import rules, selectors
from approvals.errors import NotFound, RequestInvalid
from approvals.models import (
    OPEN_EXTENSION_STATUSES,
    REASON_MAX_LENGTH,
    AccessRequest,
    Decision,
    ExtensionApproval,
    ExtensionStatus,
    GrantExtension,
    TimelineEvent,
)
from approvals.selectors.people import signer_same_person_as
from approvals.services.notifications import notify_extension_changed
from approvals.services.queue import Job, enqueue_after_commit
from approvals.services.requests import RequestId, request_locked
from approvals.services.signing import (
    otp_check,
    refusal_raise,
    refusal_record,
    signature_record,
    text_clean,
)
from approvals.services.webhooks import webhooks_extension_changed
from approvals.timeline import (
    SYSTEM_SOURCE,
    EventSource,
    timeline_append,
)

EXTENSION_PURPOSE = "extension_approval"
SIGNED_EVENT = "approvals.extension.signature.approved"
REJECTED_EVENT = "approvals.extension.signature.rejected"


def extension_announce(extension: GrantExtension, event: TimelineEvent, what: str) -> None:
    """Webhooks and notices of an extension's step, in the caller's transaction."""
    webhooks_extension_changed(
        access_request=extension.request,
        extension=extension_summary(extension),
        timeline_event=event,
    )
    notify_extension_changed(extension_id=extension.pk, event=what)


def extension_summary(extension: GrantExtension) -> dict[str, Any]:
    """An extension as the record, webhooks and the API show it."""
    return {
        "id": str(extension.pk),
        "status": str(extension.status),
        "minutes": extension.minutes,
        "reason": extension.reason,
        "requester": extension.requester_name,
        "created_at": extension.created_at.isoformat(),
        "approval_deadline": extension.approval_deadline.isoformat(),
        "from_expires_at": extension.from_expires_at.isoformat(),
        "to_expires_at": extension.to_expires_at.isoformat(),
        "applied_at": extension.applied_at.isoformat() if extension.applied_at else None,
        "failure_reason": extension.failure_reason,
    }


def _minutes_check(minutes: Any) -> int:
    if isinstance(minutes, bool) or not isinstance(minutes, int) or minutes < 1:
        raise RequestInvalid(
            "The extension is not valid.",
            fields={"minutes": ["minutes must be a whole number of minutes, at least 1"]},
        )
    return minutes


def extension_ask(
    *,
    access_request_id: RequestId,
    requester: User,
    minutes: Any,
    reason: str,
    source: EventSource = SYSTEM_SOURCE,
) -> GrantExtension:
    """The requester asks for `minutes` more on an ACTIVE grant, with a reason; it waits for
    signatures until min(now + BREAKGLASS_EXTENSION_APPROVAL_MINUTES, the grant's end)."""
    minutes = _minutes_check(minutes)
    reason = text_clean(
        reason,
        field="reason",
        max_length=REASON_MAX_LENGTH,
        required=True,
        message="An extension needs a reason.",
    )
    with transaction.atomic():
        access_request = request_locked(access_request_id)
        now = timezone.now()
        applied = access_request.extensions.filter(status=ExtensionStatus.APPLIED).aggregate(
            total=Sum("minutes")
        )["total"]
        refusal = rules.extension_ask_refusal(
            access_request=access_request,
            user_id=requester.pk,
            has_open_extension=access_request.extensions.filter(
                status__in=OPEN_EXTENSION_STATUSES
            ).exists(),
            total_minutes=access_request.duration_minutes + (applied or 0) + minutes,
            max_minutes=access_request.profile.max_duration_minutes,
            now=now,
        )
        if refusal is not None:
            raise RequestInvalid(refusal.message, code=refusal.code, fields={"minutes": []})
        assert access_request.expires_at is not None  # active
        extension = GrantExtension.objects.create(
            request=access_request,
            requester=requester,
            requester_name=requester.get_username(),
            minutes=minutes,
            reason=reason,
            from_expires_at=access_request.expires_at,
            created_at=now,
            approval_deadline=min(
                now + timedelta(minutes=settings.EXTENSION_APPROVAL_MINUTES),
                access_request.expires_at,
            ),
        )
        event = timeline_append(
            access_request=access_request,
            code="approvals.extension.requested",
            actor=requester,
            detail={**extension_summary(extension), "content_digest": extension.content_digest()},
            source=source,
        )
        extension_announce(extension, event, "requested")
        enqueue_after_commit(Job.EXTENSIONS_TIME_OUT, extension.pk, eta=extension.approval_deadline)
    return extension


def extension_locked(access_request: AccessRequest, extension_id: UUID | str) -> GrantExtension:
    try:
        extension = GrantExtension.objects.select_for_update().get(
            pk=extension_id, request=access_request
        )
    except (GrantExtension.DoesNotExist, ValueError, DjangoValidationError):
        raise NotFound(f"no extension {extension_id} of request {access_request.pk}") from None
    extension.request = access_request
    return extension


def extension_sign(
    *,
    access_request_id: RequestId,
    extension_id: UUID | str,
    approver: User,
    otp_code: str,
    decision: Decision,
    reason: str = "",
    source: EventSource = SYSTEM_SOURCE,
) -> ExtensionApproval:
    """Approve or reject an extension with a fresh TOTP code, under the request's rules; the
    last required approval hands it to the worker. A refusal is committed, then raised."""
    reason = text_clean(
        reason,
        field="reason",
        max_length=REASON_MAX_LENGTH,
        required=decision == Decision.REJECT,
        message="A rejection needs a reason.",
    )
    approval: ExtensionApproval | None = None
    with transaction.atomic():
        access_request = request_locked(access_request_id)
        extension = extension_locked(access_request, extension_id)
        signer_ids = list(extension.approvals.values_list("approver_id", flat=True))
        refusal = rules.extension_signing_refusal(
            extension=extension,
            signer_id=approver.pk,
            is_approver=selectors.user_is_approver_for(
                user=approver, profile=access_request.profile
            ),
            already_signed=approver.pk in signer_ids,
            now=timezone.now(),
            same_person_as=signer_same_person_as(
                access_request=access_request, signer_id=approver.pk, other_signer_ids=signer_ids
            ),
        ) or otp_check(user=approver, otp_code=otp_code)
        if refusal is not None:
            refusal_record(
                refusal=refusal,
                code="approvals.extension.signature.refused",
                actor=approver,
                access_request=access_request,
                detail={"extension": str(extension.pk), "decision": decision},
                source=source,
            )
        else:
            approval = _extension_signature_record(extension, approver, decision, reason, source)
    refusal_raise(refusal)
    assert approval is not None
    return approval


def _extension_signature_record(
    extension: GrantExtension,
    approver: User,
    decision: Decision,
    reason: str,
    source: EventSource,
) -> ExtensionApproval:
    now = timezone.now()
    approval = signature_record(
        ExtensionApproval(extension=extension, content_digest=extension.content_digest()),
        access_request=extension.request,
        approver=approver,
        decision=decision,
        reason=reason,
        now=now,
        source=source,
        purpose=EXTENSION_PURPOSE,
        event_code=SIGNED_EVENT if decision == Decision.APPROVE else REJECTED_EVENT,
    )
    if decision == Decision.REJECT:
        extension_end(extension, ExtensionStatus.REJECTED, reason, actor=approver, source=source)
        return approval
    counted = extension.approvals.filter(
        decision=Decision.APPROVE, content_digest=approval.content_digest
    ).count()
    if counted >= extension.request.profile.required_approvals:
        GrantExtension.objects.filter(pk=extension.pk).update(
            status=ExtensionStatus.APPROVED, approved_at=now
        )
        extension.status, extension.approved_at = ExtensionStatus.APPROVED, now
        event = timeline_append(
            access_request=extension.request,
            code="approvals.extension.approved",
            actor=approver,
            detail={"extension": str(extension.pk), "approvals": counted},
            source=source,
        )
        extension_announce(extension, event, "approved")
        enqueue_after_commit(Job.EXTEND, extension.pk)
    return approval


def extension_end(
    extension: GrantExtension,
    status: ExtensionStatus,
    reason: str,
    *,
    actor: User | None = None,
    source: EventSource = SYSTEM_SOURCE,
) -> None:
    """PENDING/APPROVED → REJECTED, TIMED_OUT or FAILED (the caller holds both row locks)."""
    now = timezone.now()
    GrantExtension.objects.filter(pk=extension.pk, status__in=OPEN_EXTENSION_STATUSES).update(
        status=status,
        ended_at=now,
        failure_reason=reason if status == ExtensionStatus.FAILED else "",
    )
    extension.status, extension.ended_at = status, now
    event = timeline_append(
        access_request=extension.request,
        code=f"approvals.extension.{status}",
        actor=actor,
        outcome="success" if status == ExtensionStatus.REJECTED else "failure",
        detail={
            "extension": str(extension.pk),
            "reason": reason,
            "expires_at": extension.from_expires_at.isoformat(),
        },
        source=source,
    )
    extension_announce(extension, event, str(status))
