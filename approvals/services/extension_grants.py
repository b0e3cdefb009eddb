"""The worker's side of an extension: check its signatures, apply it in AWS and in the database,
and time out the ones nobody signed (see `approvals.services.extensions`)."""

from dataclasses import replace
from datetime import datetime, timedelta
from uuid import UUID

from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from approvals import rules, selectors
from approvals.models import (
    AccessProfile,
    AccessRequest,
    Decision,
    ExtensionStatus,
    GrantExtension,
    IssuedCredential,
    Status,
)
from approvals.selectors.people import signer_same_person_as
from approvals.services.extensions import (
    EXTENSION_PURPOSE,
    SIGNED_EVENT,
    extension_announce,
    extension_end,
    extension_locked,
)
from approvals.services.grants import _aws_grant  # the grant as AWS holds it
from approvals.services.queue import Job, RetryLater, enqueue_after_commit
from approvals.services.requests import request_locked
from approvals.services.signing import signed_approvals_forgery
from approvals.timeline import timeline_append
from awsaccess import runtime, session_policies
from awsaccess.engine import GrantExpiredError
from awsaccess.errors import PermanentAwsError, TransientAwsError
from awsaccess.types import IssuedCredentials

# An approved extension the worker has not applied after this long is re-driven by the sweeper.
REDRIVE_AFTER = timedelta(seconds=10)


def _valid_extension_approvals(extension: GrantExtension) -> int:
    counted: list[int | None] = []
    approvals = extension.approvals.filter(decision=Decision.APPROVE).select_related("approver")
    for approval in approvals.order_by("created_at", "pk"):
        if rules.extension_approval_still_counts(
            extension=extension,
            approval=approval,
            is_approver=approval.approver is not None
            and selectors.user_is_approver_for(
                user=approval.approver, profile=extension.request.profile
            ),
            same_person_as=signer_same_person_as(
                access_request=extension.request,
                signer_id=approval.approver_id,
                other_signer_ids=counted,
            ),
        ):
            counted.append(approval.approver_id)
    return len(counted)


def _apply_refusal(access_request: AccessRequest, extension: GrantExtension) -> str | None:
    if access_request.status != Status.ACTIVE:
        return f"the grant ended first (it is {access_request.status})"
    if access_request.expires_at != extension.from_expires_at:
        return "the grant's deadline moved since the extension was asked for"
    forgery = signed_approvals_forgery(
        access_request=access_request,
        approvals=extension.approvals.all(),
        purpose=EXTENSION_PURPOSE,
        signed_event=SIGNED_EVENT,
    )
    if forgery is not None:
        return f"approvals do not verify: {forgery}"
    valid, required = (
        _valid_extension_approvals(extension),
        access_request.profile.required_approvals,
    )
    if valid < required:
        return f"only {valid} of the {required} required approvals are still valid"
    return None


def extension_apply(*, extension_id: UUID | str) -> None:
    """APPROVED → APPLIED (the worker's job; idempotent). The profile's row stays locked while
    AWS is rewritten, as a revocation locks it, so another request's revocation never puts back
    the grant's old expiry; the request's row too, so this grant cannot be revoked half-way
    (its revocation waits, then finds the new deadline)."""
    extension = GrantExtension.objects.select_related("request").filter(pk=extension_id).first()
    if extension is None or extension.status != ExtensionStatus.APPROVED:
        return
    with transaction.atomic():
        AccessProfile.objects.select_for_update().get(pk=extension.request.profile_id)
        access_request = request_locked(extension.request_id)
        extension = extension_locked(access_request, extension_id)
        if extension.status != ExtensionStatus.APPROVED:
            return
        refusal = _apply_refusal(access_request, extension)
        if refusal is not None:
            extension_end(extension, ExtensionStatus.FAILED, refusal)
            return
        try:
            credentials = _aws_extend(access_request, extension)
        except (PermanentAwsError, runtime.MissingAwsKeys, GrantExpiredError) as exc:
            extension_end(extension, ExtensionStatus.FAILED, f"AWS refused: {exc}")
            return
        _extension_applied(access_request, extension, credentials)


def extension_run(*, extension_id: UUID | str) -> None:
    """The worker's job: apply, retried while AWS is unreachable and the old deadline is ahead
    (after it, the grant has ended and the sweeper fails the extension)."""
    try:
        extension_apply(extension_id=extension_id)
    except TransientAwsError as exc:
        due = (
            GrantExtension.objects.filter(pk=extension_id)
            .values_list("from_expires_at", flat=True)
            .first()
        )
        if due is not None and timezone.now() < due:
            raise RetryLater(str(exc), seconds=2.0) from exc


def _aws_extend(
    access_request: AccessRequest, extension: GrantExtension
) -> IssuedCredentials | None:
    """Rewrite the grant's expiry in AWS, and issue fresh credentials when the current session
    would end before the new deadline; None when the current session reaches it."""
    engine = runtime.access_engine()
    target = access_request.profile.aws_target()
    grant = replace(_aws_grant(access_request), expires_at=extension.to_expires_at)
    engine.grant_attach(target, grant)
    current = access_request.credential
    ends = session_policies.session_ends_at(
        issued_at=current.issued_at,
        expiration=current.expiration,
        deadline=extension.from_expires_at,
    )
    if ends >= extension.to_expires_at:
        return None
    keys = runtime.principal_keys(access_request.profile.principal_arn)
    return engine.credentials_issue(target, grant, keys)


def _extension_applied(
    access_request: AccessRequest, extension: GrantExtension, credentials: IssuedCredentials | None
) -> None:
    """Move the deadline, store fresh credentials, reschedule the revocation (one transaction)."""
    now, to_expires_at = timezone.now(), extension.to_expires_at
    AccessRequest.objects.filter(
        pk=access_request.pk, status=Status.ACTIVE, expires_at=extension.from_expires_at
    ).update(expires_at=to_expires_at)
    access_request.expires_at = to_expires_at
    replaced = ""
    if credentials is not None:
        stored = access_request.credential
        replaced = stored.access_key_id
        fields = IssuedCredential.stored_fields(credentials, now)
        for name, value in fields.items():
            setattr(stored, name, value)
        stored.save(update_fields=list(fields))
    GrantExtension.objects.filter(pk=extension.pk).update(
        status=ExtensionStatus.APPLIED, applied_at=now, replaced_access_key_id=replaced
    )
    extension.status, extension.applied_at = ExtensionStatus.APPLIED, now
    event = timeline_append(
        access_request=access_request,
        code="approvals.extension.applied",
        detail={
            "extension": str(extension.pk),
            "from_expires_at": extension.from_expires_at.isoformat(),
            "expires_at": to_expires_at.isoformat(),
            # Not "…credentials": the timeline's scrubber blanks keys that look secret.
            "new_session_issued": credentials is not None,
            "access_key_id": credentials.access_key_id if credentials else "",
        },
    )
    extension_announce(extension, event, "applied")
    enqueue_after_commit(Job.REVOKE, access_request.pk, eta=to_expires_at)


def extension_time_out(*, extension_id: UUID | str) -> None:
    """The job queued for one extension's approval deadline: time it out if it is still unsigned.

    It takes the request's lock then the extension's, as signing does, and waits for them: the
    revocation due at the same moment holds the request's row, and skipping it would leave the
    extension pending until a sweep. A run the timer fires early is retried, never dropped.
    """
    request_id = (
        GrantExtension.objects.filter(pk=extension_id).values_list("request_id", flat=True).first()
    )
    if request_id is None:
        return
    with transaction.atomic():
        access_request = request_locked(request_id)
        extension = extension_locked(access_request, extension_id)
        if extension.status != ExtensionStatus.PENDING:
            return
        early = (extension.approval_deadline - timezone.now()).total_seconds()
        if access_request.status == Status.ACTIVE and early > 0:
            raise RetryLater("the extension's approval deadline is not reached", seconds=early)
        extension_end(extension, ExtensionStatus.TIMED_OUT, _not_signed_reason(extension))


def _not_signed_reason(extension: GrantExtension) -> str:
    return (
        f"not signed in time; the deadline stays {extension.from_expires_at:%Y-%m-%d %H:%M:%S} UTC"
    )


def extensions_time_out(*, now: datetime | None = None, limit: int = 200) -> int:
    """Time out pending extensions past their deadline (or whose grant ended), and re-drive
    approved ones the worker has not applied. Safe if two sweepers run."""
    now = now or timezone.now()
    ended = 0
    with transaction.atomic():
        due = (
            GrantExtension.objects.select_for_update(skip_locked=True)
            .select_related("request__profile")
            .filter(status=ExtensionStatus.PENDING)
            .filter(Q(approval_deadline__lte=now) | ~Q(request__status=Status.ACTIVE))
            .order_by("approval_deadline")[:limit]
        )
        for extension in due:
            extension_end(extension, ExtensionStatus.TIMED_OUT, _not_signed_reason(extension))
            ended += 1
    stuck = GrantExtension.objects.filter(
        status=ExtensionStatus.APPROVED, approved_at__lte=now - REDRIVE_AFTER
    ).values_list("pk", flat=True)[:limit]
    for extension_id in stuck:
        try:
            extension_apply(extension_id=extension_id)
        except TransientAwsError:
            continue  # the next sweep tries again
    return ended
