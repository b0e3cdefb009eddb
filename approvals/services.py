"""Writes of the approvals domain. Every surface (pages, API, tasks, commands) calls these."""

import binascii
import hashlib
import itertools
import json
import logging
import re
import secrets
import time
from base64 import b32decode
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.contrib.auth import authenticate, get_user_model
from django.contrib.auth.models import AbstractBaseUser, Group
from django.core.exceptions import ValidationError as DjangoValidationError
from django.db import IntegrityError, transaction
from django.db.models import Q
from django.utils import timezone
from django_otp import verify_token

from approvals import selectors
from approvals.errors import (
    IdempotencyConflict,
    NotAllowed,
    NotFound,
    RequestInvalid,
    SignatureRefused,
    StaleTransition,
)
from approvals.models import (
    JUSTIFICATION_MAX_LENGTH,
    REASON_MAX_LENGTH,
    TICKET_MAX_LENGTH,
    TICKET_PATTERN,
    AccessProfile,
    AccessRequest,
    AlarmStatus,
    Approval,
    BackupCode,
    Decision,
    Heartbeat,
    IdempotencyRecord,
    IntegrationKey,
    IssuedCredential,
    PersonalToken,
    SealedTOTPDevice,
    SecurityAlarm,
    Status,
)
from approvals.notifications import notify_request_changed, notify_revocation_overdue
from approvals.sealing import seal, unseal
from approvals.timeline import SYSTEM_SOURCE, EventSource, timeline_append
from approvals.transitions import request_transition
from approvals.webhooks import webhooks_request_changed
from awsaccess import runtime
from awsaccess.engine import GrantExpiredError
from awsaccess.errors import AwsError, PermanentAwsError, TransientAwsError
from awsaccess.types import Grant, IssuedCredentials

logger = logging.getLogger(__name__)

OTP_CODE_PATTERN = re.compile(r"^\d{6,8}$")


def request_open(
    *,
    profile_slug: str,
    requester: AbstractBaseUser,
    ticket: str,
    justification: str,
    duration_minutes: int,
    opened_by: str = "",
    is_drill: bool = False,
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
            is_drill=is_drill,
            created_at=now,
            approval_deadline=now + timedelta(minutes=settings.APPROVAL_TIMEOUT_MINUTES),
        )
        access_request.save()
        opened = timeline_append(
            access_request=access_request,
            code="approvals.request.opened",
            actor=actor or requester,
            detail={
                "profile": profile.slug,
                "ticket": ticket,
                "requester": requester.get_username(),
                "opened_by": opened_by,
                "duration_minutes": duration_minutes,
                "is_drill": is_drill,
                "justification": justification,
                "approval_deadline": access_request.approval_deadline.isoformat(),
                "content_digest": access_request.content_digest(),
            },
            source=source,
        )
        webhooks_request_changed(
            access_request=access_request,
            from_status=None,
            changes={"status": Status.PENDING},
            timeline_event=opened,
        )
        notify_request_changed(access_request_id=access_request.pk, event="opened")
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


def _enqueue_after_commit(task_name: str, access_request_id, *, eta=None) -> None:
    """Send the task only once the transaction that justifies it has committed (ids only)."""
    from portal.celery import app

    request_id = str(access_request_id)
    transaction.on_commit(lambda: app.send_task(task_name, args=[request_id], eta=eta))


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


# --- Activation and revocation: the worker's side --------------------------------------------

_SESSION_NAME_UNSAFE = re.compile(r"[^\w+=,.@-]")


def _aws_grant(access_request: AccessRequest) -> Grant:
    session_name = _SESSION_NAME_UNSAFE.sub("-", f"{access_request.ticket}-{access_request.pk}")
    return Grant(
        request_id=access_request.source_identity,
        session_name=session_name[:64],
        tags={
            "breakglass-request": str(access_request.pk),
            "ticket": access_request.ticket,
            "requester": access_request.requester_name,
        },
        expires_at=access_request.expires_at,
    )


def _valid_approval_count(access_request: AccessRequest) -> int:
    """Approvals that still hold: signed this exact content, by a current, distinct approver."""
    digest = access_request.content_digest()
    return sum(
        1
        for approval in access_request.approvals.filter(decision=Decision.APPROVE).select_related(
            "approver"
        )
        if approval.content_digest == digest
        and approval.approver is not None
        and approval.approver_id != access_request.requester_id
        and selectors.user_is_approver_for(user=approval.approver, profile=access_request.profile)
    )


def request_activate(*, access_request_id) -> None:
    """APPROVED → ACTIVATING → ACTIVE: attach the grant, issue credentials, schedule revocation.

    Idempotent: anything but an APPROVED request is left alone, so a duplicate delivery is a
    no-op. `expires_at` is committed before any AWS call, so the sweeper always knows the deadline.
    """
    with transaction.atomic():
        access_request = _locked_request(access_request_id)
        if access_request.status != Status.APPROVED:
            return
        valid = _valid_approval_count(access_request)
        expires_at = timezone.now() + timedelta(minutes=access_request.duration_minutes)
        request_transition(
            access_request=access_request,
            to_status=Status.ACTIVATING,
            code="approvals.activation.started",
            detail={"expires_at": expires_at.isoformat(), "valid_approvals": valid},
            fields={"expires_at": expires_at},
        )
    required = access_request.profile.required_approvals
    if valid < required:
        activation_fail(
            access_request=access_request,
            reason=f"only {valid} of the {required} required approvals are still valid",
        )
        return
    _activation_complete(access_request)


def _activation_complete(access_request: AccessRequest) -> None:
    engine = runtime.access_engine()
    target, grant = access_request.profile.aws_target(), _aws_grant(access_request)
    give_up_at = time.monotonic() + settings.ACTIVATION_RETRY_SECONDS
    attached = False
    for attempt in itertools.count(1):
        try:
            engine.grant_attach(target, grant)
            if not attached:
                attached = True
                timeline_append(
                    access_request=access_request,
                    code="approvals.activation.grant_attached",
                    detail={"principal": target.principal_arn, "role": target.role_arn},
                )
            keys = runtime.principal_keys(access_request.profile.principal_arn)
            credentials = engine.credentials_issue(target, grant, keys)
            break
        except TransientAwsError as exc:
            backoff = min(0.5 * 2**attempt, 8.0)
            if time.monotonic() + backoff > give_up_at:
                activation_fail(access_request=access_request, reason=f"AWS unavailable: {exc}")
                return
            time.sleep(backoff)
        except (PermanentAwsError, runtime.MissingAwsKeys, GrantExpiredError) as exc:
            activation_fail(access_request=access_request, reason=str(exc))
            return

    now = timezone.now()
    try:
        with transaction.atomic():
            locked = _locked_request(access_request.pk)
            IssuedCredential.objects.create(
                request=locked,
                sealed=seal(
                    json.dumps(
                        {
                            "access_key_id": credentials.access_key_id,
                            "secret_access_key": credentials.secret_access_key,
                            "session_token": credentials.session_token,
                        }
                    ).encode()
                ),
                access_key_id=credentials.access_key_id,
                expiration=credentials.expiration,
                issued_at=now,
            )
            request_transition(
                access_request=locked,
                to_status=Status.ACTIVE,
                code="approvals.request.active",
                detail={
                    "access_key_id": credentials.access_key_id,
                    "session_expiration": credentials.expiration.isoformat(),
                    "expires_at": locked.expires_at.isoformat(),
                    "time_to_access_ms": round((now - locked.approved_at).total_seconds() * 1000),
                },
                fields={"activated_at": now},
            )
            _enqueue_after_commit("approvals.revoke_request", locked.pk, eta=locked.expires_at)
    except StaleTransition:
        # The sweeper gave this activation up for dead and failed it meanwhile: what we just
        # attached and issued must not outlive that decision.
        _aws_revoke(access_request)


def activation_fail(*, access_request: AccessRequest, reason: str) -> None:
    """Take back whatever an activation did in AWS, then ACTIVATING → FAILED.

    If AWS cannot be reached the request stays ACTIVATING and the sweeper retries the clean-up:
    FAILED promises that nothing is left attached.
    """
    try:
        _aws_revoke(access_request)
    except AwsError as exc:
        timeline_append(
            access_request=access_request,
            code="approvals.activation.cleanup_failed",
            outcome="failure",
            detail={"reason": reason, "error": str(exc)},
        )
        return
    with transaction.atomic():
        locked = _locked_request(access_request.pk)
        if locked.status != Status.ACTIVATING:
            return
        request_transition(
            access_request=locked,
            to_status=Status.FAILED,
            code="approvals.request.failed",
            outcome="failure",
            detail={"reason": reason},
            fields={"failure_reason": reason},
        )


def _aws_revoke(access_request: AccessRequest) -> None:
    """Detach the grant and deny the request's sessions (idempotent)."""
    engine = runtime.access_engine()
    with transaction.atomic():
        # The role's revocation policy is read-modified-written: one revocation per profile at
        # a time, or two workers could each drop the other's deny statement.
        AccessProfile.objects.select_for_update().get(pk=access_request.profile_id)
        engine.grant_revoke(access_request.profile.aws_target(), _aws_grant(access_request))


def request_revoke(
    *, access_request_id, actor, otp_code: str, reason: str, source: EventSource = SYSTEM_SOURCE
) -> AccessRequest:
    """Early revocation by the requester or an approver of the profile, signed with TOTP."""
    reason = (reason or "").strip()
    if not reason or len(reason) > REASON_MAX_LENGTH:
        message = (
            "reason is required"
            if not reason
            else f"reason must be at most {REASON_MAX_LENGTH} characters"
        )
        raise RequestInvalid("An early revocation needs a reason.", fields={"reason": [message]})
    refusal: _Refusal | None = None
    with transaction.atomic():
        access_request = _locked_request(access_request_id)
        if actor.pk != access_request.requester_id and not selectors.user_is_approver_for(
            user=actor, profile=access_request.profile
        ):
            raise NotAllowed("only the requester or an approver of the profile can revoke")
        if access_request.status != Status.ACTIVE:
            raise NotAllowed(
                f"only an active grant can be revoked; this one is {access_request.status}"
            )
        refusal = otp_check(user=actor, otp_code=otp_code)
        if refusal is not None:
            timeline_append(
                access_request=access_request,
                code="approvals.revocation.refused",
                actor=actor,
                outcome="refused",
                detail={"refusal": refusal.code, "message": refusal.message},
                source=source,
            )
        else:
            request_transition(
                access_request=access_request,
                to_status=Status.REVOKING,
                code="approvals.revocation.requested",
                actor=actor,
                detail={"reason": reason},
                source=source,
                fields={"revoke_requested_at": timezone.now()},
            )
            _enqueue_after_commit("approvals.revoke_request", access_request.pk)
    if refusal is not None:
        raise SignatureRefused(refusal.message, code=refusal.code)
    return access_request


def request_revocation_drive(*, access_request_id, skip_locked: bool = False) -> bool:
    """Finish a revocation that is due: at the deadline, or after an early revoke. Idempotent.

    Returns True when this call confirmed the revocation. AWS errors propagate (the caller
    retries; the sweeper always will).
    """
    with transaction.atomic():
        access_request = (
            AccessRequest.objects.select_for_update(skip_locked=skip_locked)
            .select_related("profile")
            .filter(pk=access_request_id)
            .first()
        )
        if access_request is None:
            return False
        if access_request.status == Status.ACTIVE:
            if access_request.expires_at > timezone.now():
                return False
            request_transition(
                access_request=access_request,
                to_status=Status.REVOKING,
                code="approvals.revocation.deadline",
                detail={"expires_at": access_request.expires_at.isoformat()},
            )
        elif access_request.status != Status.REVOKING:
            return False
    _aws_revoke(access_request)
    with transaction.atomic():
        locked = _locked_request(access_request.pk)
        if locked.status != Status.REVOKING:
            return False
        now = timezone.now()
        wiped = IssuedCredential.objects.filter(request=locked, wiped_at__isnull=True).update(
            sealed="", wiped_at=now
        )
        request_transition(
            access_request=locked,
            to_status=Status.REVOKED,
            code="approvals.request.revoked",
            detail={
                "credentials_wiped": bool(wiped),
                "time_to_revoke_ms": max(
                    0,
                    round(
                        (now - (locked.revoke_requested_at or locked.expires_at)).total_seconds()
                        * 1000
                    ),
                ),
            },
            fields={"revoked_at": now},
        )
    return True


def credentials_reveal(
    *, access_request_id, user, otp_code: str, source: EventSource = SYSTEM_SOURCE
) -> IssuedCredentials:
    """The requester's credentials, after a fresh TOTP code; every view is on the timeline."""
    refusal: _Refusal | None = None
    with transaction.atomic():
        access_request = _locked_request(access_request_id)
        if user.pk != access_request.requester_id:
            raise NotAllowed("only the requester can see the credentials")
        if access_request.status != Status.ACTIVE:
            raise NotAllowed(
                f"credentials exist only while access is active; it is {access_request.status}"
            )
        refusal = otp_check(user=user, otp_code=otp_code)
        if refusal is None:
            stored = IssuedCredential.objects.get(request=access_request, wiped_at__isnull=True)
            timeline_append(
                access_request=access_request,
                code="approvals.credentials.viewed",
                actor=user,
                detail={"access_key_id": stored.access_key_id},
                source=source,
            )
        else:
            timeline_append(
                access_request=access_request,
                code="approvals.credentials.refused",
                actor=user,
                outcome="refused",
                detail={"refusal": refusal.code, "message": refusal.message},
                source=source,
            )
    if refusal is not None:
        raise SignatureRefused(refusal.message, code=refusal.code)
    values = json.loads(unseal(stored.sealed))
    return IssuedCredentials(
        access_key_id=values["access_key_id"],
        secret_access_key=values["secret_access_key"],
        session_token=values["session_token"],
        expiration=stored.expiration,
        region=access_request.profile.region,
        endpoint_url=settings.AWS_ENDPOINT_URL,
    )


def heartbeat(*, component: str) -> None:
    Heartbeat.objects.update_or_create(component=component, defaults={"seen_at": timezone.now()})


@dataclass(frozen=True)
class SweepReport:
    timed_out: int = 0
    revoked: int = 0
    redriven: int = 0
    failed_orphans: int = 0
    overdue_alarms: int = 0
    errors: int = 0


def grants_sweep(*, limit: int = 500) -> SweepReport:
    """The backstop (DESIGN.md §5): whatever the fast path missed, this finishes.

    Runs every few seconds from celery beat. Safe if two ever run at once: rows are taken with
    skip_locked and every step is a conditional transition.
    """
    heartbeat(component="sweeper")
    now = timezone.now()
    timed_out = requests_time_out(now=now, limit=limit)
    revoked = redriven = failed_orphans = errors = 0

    due = AccessRequest.objects.filter(
        Q(status=Status.ACTIVE, expires_at__lte=now)
        | Q(status=Status.REVOKING, status_changed_at__lte=now - timedelta(seconds=5))
    ).order_by("expires_at")
    for request_id in due.values_list("pk", flat=True)[:limit]:
        try:
            revoked += request_revocation_drive(access_request_id=request_id, skip_locked=True)
        except AwsError as exc:
            errors += 1
            logger.warning("revocation of %s not confirmed yet: %s", request_id, exc)

    stuck_approved = AccessRequest.objects.filter(
        status=Status.APPROVED, status_changed_at__lte=now - timedelta(seconds=10)
    )
    for request_id in stuck_approved.values_list("pk", flat=True)[:limit]:
        request_activate(access_request_id=request_id)
        redriven += 1

    orphaned = AccessRequest.objects.filter(
        status=Status.ACTIVATING,
        status_changed_at__lte=now - timedelta(seconds=settings.ACTIVATION_ORPHAN_SECONDS),
    ).select_related("profile")
    for access_request in orphaned[:limit]:
        activation_fail(
            access_request=access_request,
            reason="activation was interrupted (worker lost); nothing left attached",
        )
        failed_orphans += 1

    watcher_staleness_check(now=now)
    return SweepReport(
        timed_out=timed_out,
        revoked=revoked,
        redriven=redriven,
        failed_orphans=failed_orphans,
        overdue_alarms=_overdue_alarms_raise(now=now),
        errors=errors,
    )


def _overdue_alarms_raise(*, now) -> int:
    """One alarm per grant whose revocation is late by more than the configured bound."""
    overdue = AccessRequest.objects.filter(
        status__in=[Status.ACTIVE, Status.REVOKING],
        expires_at__lte=now - timedelta(seconds=settings.REVOCATION_OVERDUE_SECONDS),
    ).exclude(events__code="approvals.revocation.overdue")
    raised = 0
    for access_request in overdue.select_related("profile"):
        overdue_seconds = round((now - access_request.expires_at).total_seconds())
        timeline_append(
            access_request=access_request,
            code="approvals.revocation.overdue",
            outcome="alarm",
            detail={"overdue_seconds": overdue_seconds, "status": access_request.status},
        )
        notify_revocation_overdue(access_request=access_request, overdue_seconds=overdue_seconds)
        raised += 1
    return raised


# --- Pages: sign-in, TOTP enrolment, backup codes ----------------------------------------------

BACKUP_CODE_COUNT = 10
_BACKUP_CODE_ALPHABET = "abcdefghijklmnopqrstuvwxyz234567"
BACKUP_CODE_PATTERN = re.compile(r"^[a-z2-7]{4}-?[a-z2-7]{4}-?[a-z2-7]{4}$")


def signin_password_check(*, username: str, password: str, source: EventSource):
    """The first factor. Recent failures on the system chain throttle it per username and per
    address (in the database, so every web process sees the same count); each failure is
    recorded with where it came from."""
    username = (username or "").strip()[:150]
    window = settings.SIGNIN_FAILURE_WINDOW_MINUTES
    by_user, by_ip = selectors.signin_failures_recent(
        username=username.lower(), ip=source.ip, since=timezone.now() - timedelta(minutes=window)
    )
    limit = settings.SIGNIN_MAX_FAILURES
    if by_user >= limit or by_ip >= limit * 4:
        timeline_append(
            access_request=None,
            code="approvals.signin.throttled",
            actor_name="anonymous",
            outcome="refused",
            detail={"username": username.lower()},
            source=source,
        )
        raise NotAllowed(
            f"too many failed sign-ins; wait {window} minutes and try again",
            code="signin_throttled",
        )
    user = authenticate(None, username=username, password=password or "")
    if user is None:
        timeline_append(
            access_request=None,
            code="approvals.signin.failed",
            actor_name="anonymous",
            outcome="failure",
            detail={"username": username.lower()},
            source=source,
        )
        raise NotAllowed("the username or password is not right", code="signin_failed")
    return user


def signin_otp_verify(*, user, code: str, source: EventSource) -> SealedTOTPDevice:
    """The second factor at sign-in: a TOTP code, or one unused backup code. Throttled by the
    device (django-otp), recorded either way, and the failure is committed before refusing."""
    code = re.sub(r"\s", "", code or "").lower()
    with transaction.atomic():
        if BACKUP_CODE_PATTERN.match(code):
            factor, refusal = "backup_code", _backup_code_use(user=user, code=code)
        else:
            factor, refusal = "totp", otp_check(user=user, otp_code=code)
        timeline_append(
            access_request=None,
            code="approvals.signin.succeeded" if refusal is None else "approvals.signin.otp_failed",
            actor=user,
            outcome="success" if refusal is None else "failure",
            detail={"factor": factor}
            | ({"refusal": refusal.code, "message": refusal.message} if refusal else {}),
            source=source,
        )
    if refusal is not None:
        raise SignatureRefused(refusal.message, code=refusal.code)
    return SealedTOTPDevice.objects.devices_for_user(user, confirmed=True).get()


def _backup_code_hash(code: str) -> str:
    return hashlib.sha256(code.replace("-", "").encode()).hexdigest()


def _backup_code_use(*, user, code: str) -> _Refusal | None:
    device = SealedTOTPDevice.objects.select_for_update().filter(user=user, confirmed=True).first()
    if device is None:
        return _Refusal("no_otp_device", "you have no confirmed TOTP device; enrol one first")
    allowed, _ = device.verify_is_allowed()
    if not allowed:
        return _Refusal("otp_throttled", "too many failed OTP attempts; wait a moment and retry")
    used = BackupCode.objects.filter(
        user=user, code_hash=_backup_code_hash(code), used_at__isnull=True
    ).update(used_at=timezone.now())
    if used:
        device.throttle_reset()
        return None
    device.throttle_increment()
    return _Refusal("backup_code_invalid", "the backup code is not valid or was already used")


def backup_codes_generate(*, user, otp_code: str, source: EventSource) -> list[str]:
    """A new set of single-use backup codes, replacing the old set, after a fresh TOTP code.

    Only their SHA-256 is stored: the returned list is the one time anyone sees them.
    """
    codes: list[str] = []
    with transaction.atomic():
        refusal = otp_check(user=user, otp_code=otp_code)
        if refusal is None:
            codes = [
                "-".join(
                    "".join(secrets.choice(_BACKUP_CODE_ALPHABET) for _ in range(4))
                    for _ in range(3)
                )
                for _ in range(BACKUP_CODE_COUNT)
            ]
            BackupCode.objects.filter(user=user).delete()
            BackupCode.objects.bulk_create(
                [BackupCode(user=user, code_hash=_backup_code_hash(c)) for c in codes]
            )
        timeline_append(
            access_request=None,
            code="approvals.backup_codes.generated"
            if refusal is None
            else "approvals.backup_codes.refused",
            actor=user,
            outcome="success" if refusal is None else "refused",
            detail={"count": len(codes)}
            | ({"refusal": refusal.code, "message": refusal.message} if refusal else {}),
            source=source,
        )
    if refusal is not None:
        raise SignatureRefused(refusal.message, code=refusal.code)
    return codes


def totp_enrolment_start(*, user) -> SealedTOTPDevice:
    """The unconfirmed device the user is enrolling; the same one across reloads, so the QR code
    they may already have scanned stays valid."""
    if SealedTOTPDevice.objects.filter(user=user, confirmed=True).exists():
        raise NotAllowed("you already have a confirmed TOTP device", code="already_enrolled")
    device = SealedTOTPDevice.objects.filter(user=user, confirmed=False).first()
    return device or totp_device_set(user=user, confirmed=False)


def totp_enrolment_confirm(*, user, otp_code: str, source: EventSource) -> SealedTOTPDevice:
    """Confirm the device being enrolled with its first valid code (throttled like any code)."""
    with transaction.atomic():
        device = (
            SealedTOTPDevice.objects.select_for_update().filter(user=user, confirmed=False).first()
        )
        if device is None:
            raise NotAllowed("there is no TOTP device being enrolled; start again")
        verified = device.verify_token((otp_code or "").strip())
        if verified:
            SealedTOTPDevice.objects.filter(pk=device.pk).update(confirmed=True)
            device.confirmed = True
        timeline_append(
            access_request=None,
            code="approvals.otp.enrolled" if verified else "approvals.otp.enrolment_refused",
            actor=user,
            outcome="success" if verified else "refused",
            detail={"device": device.persistent_id},
            source=source,
        )
    if not verified:
        raise SignatureRefused(
            "the code does not match; check the clock of your phone and try the next code",
            code="otp_invalid",
        )
    return device


# --- API: keys, tokens, idempotency, alarms ---------------------------------------------------

PERSONAL_TOKEN_PREFIX = "bgp_"  # noqa: S105 (a prefix, not a token)
INTEGRATION_KEY_PREFIX = "bgi_"
_LAST_USED_RESOLUTION = timedelta(minutes=1)


def _secret_hash(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def integration_key_create(
    *, name: str, expires_at: datetime | None = None, actor=None
) -> tuple[IntegrationKey, str]:
    """A new integration key; only its hash is kept, so this is the one time it is seen."""
    name = (name or "").strip()
    if not name:
        raise RequestInvalid("An integration needs a name.", fields={"name": ["name is required"]})
    if IntegrationKey.objects.filter(name=name).exists():
        raise RequestInvalid(
            "That integration name is taken.",
            fields={"name": [f"an integration called {name!r} already exists"]},
        )
    if expires_at is not None and expires_at <= timezone.now():
        raise RequestInvalid(
            "The expiry is in the past.",
            fields={"expires_at": ["expires_at must be in the future"]},
        )
    key = f"{INTEGRATION_KEY_PREFIX}{secrets.token_urlsafe(32)}"
    with transaction.atomic():
        integration = IntegrationKey.objects.create(
            name=name, prefix=key[:12], key_hash=_secret_hash(key), expires_at=expires_at
        )
        timeline_append(
            access_request=None,
            code="approvals.integration_key.created",
            actor=actor,
            detail={
                "integration": name,
                "prefix": key[:12],
                "expires_at": expires_at.isoformat() if expires_at else None,
            },
        )
    return integration, key


def integration_key_revoke(*, integration_key_id: int, actor=None) -> IntegrationKey:
    with transaction.atomic():
        integration = (
            IntegrationKey.objects.select_for_update().filter(pk=integration_key_id).first()
        )
        if integration is None:
            raise NotFound(f"no integration key {integration_key_id}")
        if integration.revoked_at is None:
            integration.revoked_at = timezone.now()
            integration.save(update_fields=["revoked_at"])
            timeline_append(
                access_request=None,
                code="approvals.integration_key.revoked",
                actor=actor,
                detail={"integration": integration.name, "prefix": integration.prefix},
            )
    return integration


def personal_token_revoke(*, token_id: int, user) -> PersonalToken:
    """The owner withdraws one of their tokens (idempotent)."""
    with transaction.atomic():
        token = PersonalToken.objects.select_for_update().filter(pk=token_id, user=user).first()
        if token is None:
            raise NotFound(f"you have no API token {token_id}")
        if token.revoked_at is None:
            token.revoked_at = timezone.now()
            token.save(update_fields=["revoked_at"])
            timeline_append(
                access_request=None,
                code="approvals.token.revoked",
                actor=user,
                detail={"prefix": token.prefix, "name": token.name},
            )
    return token


def _touch_last_used(model, obj, now) -> None:
    # Minute resolution: a busy integration must not turn every read into a write.
    if obj.last_used_at is None or now - obj.last_used_at >= _LAST_USED_RESOLUTION:
        model.objects.filter(pk=obj.pk).update(last_used_at=now)
        obj.last_used_at = now


def personal_token_authenticate(*, token: str) -> PersonalToken:
    """The live token for this secret, or NotAllowed saying why not."""
    found = (
        PersonalToken.objects.select_related("user").filter(token_hash=_secret_hash(token)).first()
    )
    if found is None:
        raise NotAllowed("unknown API token")
    if found.revoked_at is not None:
        raise NotAllowed("this API token was revoked")
    if not found.user.is_active:
        raise NotAllowed(f"user {found.user.get_username()} is not active")
    _touch_last_used(PersonalToken, found, timezone.now())
    return found


def integration_key_authenticate(*, key: str) -> IntegrationKey:
    """The live integration key for this secret, or NotAllowed saying why not."""
    found = IntegrationKey.objects.filter(key_hash=_secret_hash(key)).first()
    if found is None:
        raise NotAllowed("unknown integration key")
    now = timezone.now()
    if found.revoked_at is not None:
        raise NotAllowed(f"integration key of {found.name} was revoked")
    if found.expires_at is not None and found.expires_at <= now:
        raise NotAllowed(
            f"integration key of {found.name} expired at {found.expires_at:%Y-%m-%d %H:%M} UTC"
        )
    _touch_last_used(IntegrationKey, found, now)
    return found


@dataclass(frozen=True)
class IdempotentResponse:
    status: int
    body: dict
    replayed: bool


IDEMPOTENCY_KEY_PATTERN = re.compile(r"^[\x21-\x7e]{1,200}$")


def idempotency_run(
    *, caller: str, key: str, body: dict, produce: Callable[[], tuple[int, dict]]
) -> IdempotentResponse:
    """Run `produce` once per (caller, key); a retry with the same body gets the first response.

    The placeholder row is inserted first: a concurrent retry blocks on its unique index until
    this transaction ends, then replays what it committed (or runs again if it rolled back).
    Only successes are kept, so a refused attempt can be corrected and retried with the same key.
    """
    if not IDEMPOTENCY_KEY_PATTERN.match(key or ""):
        raise RequestInvalid(
            "The Idempotency-Key header is not valid.",
            fields={
                "Idempotency-Key": ["Idempotency-Key must be 1-200 printable ASCII characters"]
            },
        )
    body_hash = hashlib.sha256(
        json.dumps(body, sort_keys=True, separators=(",", ":"), default=str).encode()
    ).hexdigest()
    with transaction.atomic():
        try:
            with transaction.atomic():
                record = IdempotencyRecord.objects.create(
                    caller=caller, key=key, body_hash=body_hash, response_status=0, response_body={}
                )
        except IntegrityError:
            first = IdempotencyRecord.objects.get(caller=caller, key=key)
            if first.body_hash != body_hash:
                raise IdempotencyConflict(
                    f"Idempotency-Key {key!r} was already used with a different body"
                ) from None
            return IdempotentResponse(first.response_status, first.response_body, replayed=True)
        status, response_body = produce()
        record.response_status = status
        record.response_body = response_body
        record.save(update_fields=["response_status", "response_body"])
    return IdempotentResponse(status, response_body, replayed=False)


ALARM_NOTE_MAX_LENGTH = 1000


def alarm_acknowledge(
    *, alarm_id, user, otp_code: str, note: str, source: EventSource = SYSTEM_SOURCE
) -> SecurityAlarm:
    """A person takes an alarm in hand, signed with TOTP. Alarms never close by themselves.

    As with approvals, an OTP refusal is recorded and committed before it is raised.
    """
    from approvals.webhooks import webhooks_enqueue

    note = (note or "").strip()
    if not note or len(note) > ALARM_NOTE_MAX_LENGTH:
        message = (
            "note is required"
            if not note
            else f"note must be at most {ALARM_NOTE_MAX_LENGTH} characters"
        )
        raise RequestInvalid("An acknowledgement needs a note.", fields={"note": [message]})
    if not selectors.user_may_handle_alarms(user=user):
        raise NotAllowed("only approvers and auditors can acknowledge alarms")
    refusal: _Refusal | None = None
    with transaction.atomic():
        alarm = SecurityAlarm.objects.select_for_update().filter(pk=alarm_id).first()
        if alarm is None:
            raise NotFound(f"no alarm {alarm_id}")
        if alarm.status != AlarmStatus.OPEN:
            raise NotAllowed(f"the alarm was already acknowledged by {alarm.acknowledged_by_name}")
        refusal = otp_check(user=user, otp_code=otp_code)
        detail = {"alarm": alarm.pk, "kind": alarm.kind, "title": alarm.title}
        if refusal is not None:
            timeline_append(
                access_request=None,
                code="approvals.alarm.acknowledge_refused",
                actor=user,
                outcome="refused",
                detail={**detail, "refusal": refusal.code, "message": refusal.message},
                source=source,
            )
        else:
            now = timezone.now()
            SecurityAlarm.objects.filter(pk=alarm.pk).update(
                status=AlarmStatus.ACKNOWLEDGED,
                acknowledged_by=user,
                acknowledged_by_name=user.get_username(),
                acknowledged_at=now,
                note=note,
            )
            alarm.refresh_from_db()
            timeline_append(
                access_request=None,
                code="approvals.alarm.acknowledged",
                actor=user,
                detail={**detail, "note": note},
                source=source,
            )
            webhooks_enqueue(
                event="approvals.alarm.acknowledged",
                payload={
                    "alarm": {
                        "id": alarm.pk,
                        "kind": alarm.kind,
                        "title": alarm.title,
                        "status": alarm.status,
                        "acknowledged_by": alarm.acknowledged_by_name,
                        "acknowledged_at": now.isoformat(),
                        "note": note,
                    }
                },
            )
    if refusal is not None:
        raise SignatureRefused(refusal.message, code=refusal.code)
    return alarm


# --- Watching the glass: observed uses of the role, security alarms, the watcher's liveness ----

WATCHER_COMPONENT = "watcher"
_SESSION_TOKEN_TEXT = re.compile(r'("sessionToken"\s*:\s*)"[^"]*"')


def alarm_open(
    *,
    kind: str,
    title: str,
    dedup_key: str,
    detail: dict | None = None,
    raw_event: dict | None = None,
    profile: AccessProfile | None = None,
    access_request: AccessRequest | None = None,
) -> tuple[SecurityAlarm, bool]:
    """Open a security alarm once per `dedup_key` → (alarm, created).

    It goes on the timeline (the request's chain, else the system chain) and, once committed, to
    every notification channel and webhook. Nothing ever closes it but a person's acknowledgement.
    """
    from approvals import notifications
    from approvals.webhooks import webhooks_enqueue

    detail = detail or {}
    with transaction.atomic():
        existing = SecurityAlarm.objects.filter(dedup_key=dedup_key).first()
        if existing is not None:
            return existing, False
        try:
            with transaction.atomic():
                alarm = SecurityAlarm.objects.create(
                    kind=kind,
                    title=title[:300],
                    detail=detail,
                    raw_event=raw_event,
                    profile=profile,
                    request=access_request,
                    dedup_key=dedup_key[:200],
                    opened_at=timezone.now(),
                )
        except IntegrityError:
            # Another poller stored the same alarm a moment ago.
            return SecurityAlarm.objects.get(dedup_key=dedup_key[:200]), False
        timeline_append(
            access_request=access_request,
            code="approvals.alarm.opened",
            outcome="alarm",
            detail={"alarm": alarm.pk, "kind": kind, "title": alarm.title, **detail},
        )
        notifications.notify_alarm(alarm=alarm)
        webhooks_enqueue(
            event="approvals.alarm.opened",
            payload={
                "alarm": {
                    "id": alarm.pk,
                    "kind": kind,
                    "title": alarm.title,
                    "status": alarm.status,
                    "profile": profile.slug if profile else None,
                    "request": str(access_request.pk) if access_request else None,
                    "opened_at": alarm.opened_at.isoformat(),
                    "detail": detail,
                }
            },
        )
    logger.error("SECURITY ALARM %s: %s", kind, alarm.title)
    return alarm, True


def observed_use_record(
    *, use, profile: AccessProfile, access_request: AccessRequest | None, unexplained: str
):
    """Store one AssumeRole seen in CloudTrail (an approvals.watch.RoleUse) → ObservedUse, or None
    when that eventID was already recorded. Tied to its request's timeline; an alarm if no
    approved, active request explains it (`unexplained` says why)."""
    from approvals.models import ObservedUse

    with transaction.atomic():
        if ObservedUse.objects.filter(event_id=use.event_id).exists():
            return None
        try:
            with transaction.atomic():
                observed = ObservedUse.objects.create(
                    event_id=use.event_id,
                    profile=profile,
                    request=access_request,
                    event_time=use.event_time,
                    role_arn=use.role_arn,
                    principal_arn=use.principal_arn,
                    session_name=use.session_name,
                    source_identity=use.source_identity,
                    source_ip=use.source_ip,
                    user_agent=use.user_agent,
                    region=use.region,
                    explained=not unexplained,
                    raw_event=use.raw,
                    received_at=timezone.now(),
                )
        except IntegrityError:
            return None
        detail = {
            "message": use.summary,
            "event_id": use.event_id,
            "event_time": use.event_time.isoformat(),
            "principal": use.principal_arn,
            "source_ip": use.source_ip,
            "user_agent": use.user_agent,
            "region": use.region,
            "session_name": use.session_name,
            "source_identity": use.source_identity,
            "error_code": use.error_code,
            "explained": not unexplained,
            "unexplained": unexplained,
        }
        if access_request is not None:
            timeline_append(
                access_request=access_request,
                code="approvals.role.assume_failed" if use.error_code else "approvals.role.assumed",
                actor_name=(use.principal_arn or "unknown principal")[:150],
                outcome="alarm" if unexplained else "success",
                detail=detail,
                source=EventSource(ip=use.ip, user_agent=use.user_agent),
            )
        if unexplained:
            role = use.role_arn.rsplit("/", 1)[-1]
            alarm_open(
                kind="unexplained_use",
                title=f"Unexplained AssumeRole of {role}: {use.summary}; {unexplained}",
                dedup_key=f"use:{use.event_id}",
                detail=detail,
                raw_event=use.raw,
                profile=profile,
                access_request=access_request,
            )
    return observed


def poison_message_record(
    *, queue_url: str, message_id: str, body: str, error: str, profile: AccessProfile | None
):
    """Set aside a watch message we cannot read (kept, never lost) and report it → PoisonMessage,
    or None when it was already set aside."""
    from approvals.models import PoisonMessage

    clean_body = _SESSION_TOKEN_TEXT.sub(r'\1"[scrubbed]"', body or "")
    with transaction.atomic():
        try:
            with transaction.atomic():
                poison = PoisonMessage.objects.create(
                    queue_url=queue_url[:600],
                    message_id=message_id[:100],
                    body=clean_body,
                    error=error,
                    received_at=timezone.now(),
                )
        except IntegrityError:
            return None
        alarm_open(
            kind="poison_message",
            title=f"Unreadable message on the watch queue of {profile or 'a profile'}: {error}",
            dedup_key=f"poison:{message_id}",
            detail={"message_id": message_id, "queue_url": queue_url, "error": error},
            profile=profile,
        )
    return poison


def watcher_staleness_check(*, now) -> bool:
    """Raise an alarm (once per outage) when the watcher has not completed a poll of every watch
    queue for WATCH_STALE_SECONDS: someone may have stopped it to use the role unseen."""
    if not AccessProfile.objects.exists():
        return False
    seen = selectors.watcher_last_poll()
    if seen is None or now - seen < timedelta(seconds=settings.WATCH_STALE_SECONDS):
        return False
    _, created = alarm_open(
        kind="watcher_down",
        title=f"The watcher has not polled since {seen:%Y-%m-%d %H:%M:%S} UTC",
        dedup_key=f"watcher_down:{seen.isoformat()}",
        detail={"last_poll": seen.isoformat(), "stale_after_seconds": settings.WATCH_STALE_SECONDS},
    )
    return created
