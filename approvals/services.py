"""Writes of the approvals domain. Every surface (pages, API, tasks, commands) calls these."""

import binascii
import hashlib
import re
import secrets
from base64 import b32decode
from dataclasses import dataclass
from datetime import timedelta

from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.models import AbstractBaseUser, Group
from django.core.exceptions import ValidationError as DjangoValidationError
from django.db import transaction
from django.utils import timezone
from django_otp import verify_token

from approvals import selectors
from approvals.errors import NotAllowed, NotFound, RequestInvalid, SignatureRefused
from approvals.models import (
    JUSTIFICATION_MAX_LENGTH,
    REASON_MAX_LENGTH,
    TICKET_MAX_LENGTH,
    TICKET_PATTERN,
    AccessProfile,
    AccessRequest,
    Approval,
    Decision,
    PersonalToken,
    SealedTOTPDevice,
    Status,
)
from approvals.sealing import seal
from approvals.timeline import SYSTEM_SOURCE, EventSource, timeline_append
from approvals.transitions import request_transition

OTP_CODE_PATTERN = re.compile(r"^\d{6,8}$")


def request_open(
    *,
    profile_slug: str,
    requester: AbstractBaseUser,
    ticket: str,
    justification: str,
    duration_minutes: int,
    opened_by: str = "",
    actor=None,
    source: EventSource = SYSTEM_SOURCE,
) -> AccessRequest:
    """Open a PENDING request. `actor` differs from `requester` when an integration opens it."""
    errors: dict[str, list[str]] = {}
    profile = (
        AccessProfile.objects.filter(slug=profile_slug).select_related("approver_group").first()
    )
    if profile is None:
        errors["profile"] = [f"unknown access profile {profile_slug!r}"]

    ticket = (ticket or "").strip()
    if not ticket:
        errors["ticket"] = ["ticket is required"]
    elif len(ticket) > TICKET_MAX_LENGTH:
        errors["ticket"] = [f"ticket must be at most {TICKET_MAX_LENGTH} characters"]
    elif not re.match(TICKET_PATTERN, ticket):
        errors["ticket"] = ["ticket must look like INC-1234 (capital letters, a dash, digits)"]

    justification = (justification or "").strip()
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
    if errors:
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
            created_at=now,
            approval_deadline=now + timedelta(minutes=settings.APPROVAL_TIMEOUT_MINUTES),
        )
        access_request.save()
        timeline_append(
            access_request=access_request,
            code="approvals.request.opened",
            actor=actor or requester,
            detail={
                "profile": profile.slug,
                "ticket": ticket,
                "requester": requester.get_username(),
                "opened_by": opened_by,
                "duration_minutes": duration_minutes,
                "justification": justification,
                "approval_deadline": access_request.approval_deadline.isoformat(),
                "content_digest": access_request.content_digest(),
            },
            source=source,
        )
    return access_request


@dataclass(frozen=True)
class _Refusal:
    code: str
    message: str


def _signing_refusal(access_request: AccessRequest, approver, now) -> _Refusal | None:
    """The approval rules (DESIGN.md §3), checked on the locked row, before the OTP."""
    if access_request.status != Status.PENDING:
        return _Refusal("not_pending", f"the request is {access_request.status}, not pending")
    if now >= access_request.approval_deadline:
        return _Refusal("deadline_passed", "the request's approval deadline has passed")
    if approver.pk == access_request.requester_id:
        return _Refusal("self_approval", "you cannot approve your own request")
    if not selectors.user_is_approver_for(user=approver, profile=access_request.profile):
        return _Refusal(
            "not_an_approver",
            f"you are not in the approver group of profile {access_request.profile.slug}",
        )
    if access_request.approvals.filter(approver=approver).exists():
        return _Refusal("already_signed", "you have already signed this request")
    return None


def otp_check(*, user, otp_code: str) -> _Refusal | None:
    """Verify a TOTP code now, on the user's confirmed device; must run inside a transaction.

    Failures are written by django-otp (throttle counter) in that transaction, so the caller must
    commit it even when refusing.
    """
    device = SealedTOTPDevice.objects.devices_for_user(user, confirmed=True).first()
    if device is None:
        return _Refusal("no_otp_device", "you have no confirmed TOTP device; enrol one first")
    allowed, throttle = device.verify_is_allowed()
    if not allowed:
        locked_until = throttle.get("locked_until")
        wait = f" until {locked_until:%H:%M:%S} UTC" if locked_until else ""
        return _Refusal("otp_throttled", f"too many failed OTP attempts; wait{wait} and retry")
    code = (otp_code or "").strip()
    if verify_token(user, device.persistent_id, code) is not None:
        return None
    device.refresh_from_db()
    if not OTP_CODE_PATTERN.match(code):
        return _Refusal("otp_malformed", "the OTP code must be 6 digits")
    if device.code_was_already_used(code):
        return _Refusal("otp_replayed", "OTP code already used; wait for the next one")
    return _Refusal("otp_invalid", "the OTP code is not valid")


def request_sign(
    *,
    access_request_id,
    approver,
    otp_code: str,
    decision: Decision,
    reason: str = "",
    source: EventSource = SYSTEM_SOURCE,
) -> Approval:
    """Approve or reject with a fresh TOTP code. The last required approval moves it to APPROVED.

    A refusal is recorded on the timeline and committed (with the OTP throttle counter) before
    it is raised, so an attacker's failed attempts are never rolled back.
    """
    reason = (reason or "").strip()
    if decision == Decision.REJECT and not reason:
        raise RequestInvalid(
            "A rejection needs a reason.", fields={"reason": ["reason is required"]}
        )
    if len(reason) > REASON_MAX_LENGTH:
        raise RequestInvalid(
            "The reason is too long.",
            fields={"reason": [f"reason must be at most {REASON_MAX_LENGTH} characters"]},
        )
    refusal: _Refusal | None = None
    approval: Approval | None = None
    with transaction.atomic():
        access_request = _locked_request(access_request_id)
        now = timezone.now()
        refusal = _signing_refusal(access_request, approver, now) or otp_check(
            user=approver, otp_code=otp_code
        )
        if refusal is not None:
            timeline_append(
                access_request=access_request,
                code="approvals.signature.refused",
                actor=approver,
                outcome="refused",
                detail={"decision": decision, "refusal": refusal.code, "message": refusal.message},
                source=source,
            )
        else:
            approval = _record_signature(access_request, approver, decision, reason, source, now)
    if refusal is not None:
        raise SignatureRefused(refusal.message, code=refusal.code)
    assert approval is not None
    return approval


def _record_signature(access_request, approver, decision, reason, source, now) -> Approval:
    device = SealedTOTPDevice.objects.devices_for_user(approver, confirmed=True).first()
    approval = Approval.objects.create(
        request=access_request,
        approver=approver,
        approver_name=approver.get_username(),
        decision=decision,
        reason=reason,
        device_id=device.persistent_id,
        content_digest=access_request.content_digest(),
        created_at=now,
        source_ip=source.ip,
    )
    timeline_append(
        access_request=access_request,
        code=f"approvals.signature.{'approved' if decision == Decision.APPROVE else 'rejected'}",
        actor=approver,
        detail={
            "content_digest": approval.content_digest,
            "device": approval.device_id,
            "reason": reason,
        },
        source=source,
    )
    if decision == Decision.REJECT:
        request_transition(
            access_request=access_request,
            to_status=Status.REJECTED,
            code="approvals.request.rejected",
            actor=approver,
            detail={"reason": reason},
            source=source,
        )
        return approval
    approvals = access_request.approvals.filter(decision=Decision.APPROVE).count()
    if approvals >= access_request.profile.required_approvals:
        request_transition(
            access_request=access_request,
            to_status=Status.APPROVED,
            code="approvals.request.approved",
            actor=approver,
            detail={"approvals": approvals},
            source=source,
            fields={"approved_at": now},
        )
        _enqueue_after_commit("approvals.activate_request", access_request.pk)
    return approval


def request_approve(
    *, access_request_id, approver, otp_code: str, source=SYSTEM_SOURCE
) -> Approval:
    return request_sign(
        access_request_id=access_request_id,
        approver=approver,
        otp_code=otp_code,
        decision=Decision.APPROVE,
        source=source,
    )


def request_reject(
    *, access_request_id, approver, otp_code: str, reason: str, source=SYSTEM_SOURCE
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
    *, access_request_id, actor, opened_by: str = "", source: EventSource = SYSTEM_SOURCE
) -> AccessRequest:
    """The requester (or the integration that opened it) withdraws a pending request."""
    with transaction.atomic():
        access_request = _locked_request(access_request_id)
        if opened_by:
            if access_request.opened_by != opened_by:
                raise NotAllowed("an integration can only cancel requests it opened")
        elif actor is None or actor.pk != access_request.requester_id:
            raise NotAllowed("only the requester can cancel a request")
        if access_request.status != Status.PENDING:
            raise NotAllowed(
                f"only a pending request can be cancelled; this one is {access_request.status}"
            )
        return request_transition(
            access_request=access_request,
            to_status=Status.CANCELLED,
            code="approvals.request.cancelled",
            actor=actor,
            detail={"opened_by": opened_by} if opened_by else None,
            source=source,
        )


def requests_time_out(*, now=None, limit: int = 500) -> int:
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
            request_transition(
                access_request=access_request,
                to_status=Status.TIMED_OUT,
                code="approvals.request.timed_out",
                detail={"approval_deadline": access_request.approval_deadline.isoformat()},
            )
            timed_out += 1
    return timed_out


def _locked_request(access_request_id) -> AccessRequest:
    try:
        return (
            AccessRequest.objects.select_for_update()
            .select_related("profile")
            .get(pk=access_request_id)
        )
    except (AccessRequest.DoesNotExist, ValueError, DjangoValidationError):
        raise NotFound(f"no request {access_request_id}") from None


def _enqueue_after_commit(task_name: str, access_request_id) -> None:
    """Send the task only once the transaction that justifies it has committed (ids only)."""
    from portal.celery import app

    request_id = str(access_request_id)
    transaction.on_commit(lambda: app.send_task(task_name, args=[request_id]))


def _decode_totp_secret(secret: str) -> bytes:
    cleaned = re.sub(r"[\s-]", "", secret).upper()
    if not re.fullmatch(r"[A-Z2-7]+=*", cleaned):
        raise RequestInvalid(
            "The TOTP secret is not base32.",
            fields={"totp_secret": ["TOTP secret must be base32 (letters A-Z and digits 2-7)"]},
        )
    cleaned = cleaned.rstrip("=")
    try:
        key = b32decode(cleaned + "=" * (-len(cleaned) % 8))
    except binascii.Error:
        raise RequestInvalid(
            "The TOTP secret is not base32.",
            fields={"totp_secret": ["TOTP secret is not valid base32"]},
        ) from None
    if not 10 <= len(key) <= 64:
        raise RequestInvalid(
            "The TOTP secret has the wrong length.",
            fields={
                "totp_secret": ["TOTP secret must decode to 10-64 bytes (16+ base32 characters)"]
            },
        )
    return key


def totp_device_set(
    *, user, secret: bytes | None = None, confirmed: bool = True
) -> SealedTOTPDevice:
    """Give the user exactly one TOTP device with this seed (a random one when None)."""
    key = secret if secret is not None else secrets.token_bytes(20)
    with transaction.atomic():
        SealedTOTPDevice.objects.filter(user=user).delete()
        return SealedTOTPDevice.objects.create(
            user=user, name="authenticator", sealed_key=seal(key), confirmed=confirmed
        )


@dataclass(frozen=True)
class ProvisionedUser:
    user: AbstractBaseUser
    created: bool
    device: SealedTOTPDevice | None  # set when a (new) device was created: its URI is shown once


def user_provision(
    *,
    username: str,
    email: str = "",
    password: str | None = None,
    approver: bool = False,
    totp_secret: str | None = None,
) -> ProvisionedUser:
    """Create or update a user for bootstrap and automation (idempotent)."""
    key = _decode_totp_secret(totp_secret) if totp_secret else None
    user_model = get_user_model()
    with transaction.atomic():
        user, created = user_model.objects.get_or_create(username=username)
        if email:
            user.email = email
        if password:
            user.set_password(password)
        elif created:
            user.set_unusable_password()
        user.save()
        if approver:
            group, _ = Group.objects.get_or_create(name=settings.APPROVERS_GROUP)
            user.groups.add(group)
        device = None
        has_device = SealedTOTPDevice.objects.filter(user=user, confirmed=True).exists()
        if key is not None or not has_device:
            device = totp_device_set(user=user, secret=key)
        timeline_append(
            access_request=None,
            code="approvals.user.provisioned",
            detail={
                "user": username,
                "created": created,
                "approver": approver,
                "new_device": bool(device),
            },
        )
    return ProvisionedUser(user=user, created=created, device=device)


def personal_token_create(*, user, name: str = "") -> str:
    """A new personal API token; only its hash is kept, so this is the one time it is seen."""
    token = f"bgp_{secrets.token_urlsafe(32)}"
    PersonalToken.objects.create(
        user=user,
        name=name,
        prefix=token[:12],
        token_hash=hashlib.sha256(token.encode()).hexdigest(),
    )
    timeline_append(
        access_request=None,
        code="approvals.token.created",
        actor=user,
        detail={"prefix": token[:12], "name": name},
    )
    return token
