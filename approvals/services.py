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
from dataclasses import dataclass
from datetime import timedelta

from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.models import AbstractBaseUser, Group
from django.core.exceptions import ValidationError as DjangoValidationError
from django.db import transaction
from django.db.models import Q
from django.utils import timezone
from django_otp import verify_token

from approvals import selectors
from approvals.errors import (
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
    Approval,
    Decision,
    Heartbeat,
    IssuedCredential,
    PersonalToken,
    SealedTOTPDevice,
    Status,
)
from approvals.notifications import notify_revocation_overdue
from approvals.sealing import seal, unseal
from approvals.timeline import SYSTEM_SOURCE, EventSource, timeline_append
from approvals.transitions import request_transition
from awsaccess import runtime
from awsaccess.engine import GrantExpiredError
from awsaccess.errors import AwsError, PermanentAwsError, TransientAwsError
from awsaccess.types import AwsTarget, Grant, IssuedCredentials

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


def _aws_target(profile: AccessProfile) -> AwsTarget:
    return AwsTarget(
        account_id=profile.account_id,
        region=profile.region,
        role_arn=profile.role_arn,
        principal_arn=profile.principal_arn,
        max_session_seconds=profile.role_max_session_seconds,
    )


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
    target, grant = _aws_target(access_request.profile), _aws_grant(access_request)
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
        engine.grant_revoke(_aws_target(access_request.profile), _aws_grant(access_request))


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
