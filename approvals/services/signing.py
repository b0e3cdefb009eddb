"""Signed actions: every step that needs a fresh TOTP code goes through here.

The order is django-otp's: is the device allowed to try (throttle)? verify (replay-protected);
then the refusal is written on the timeline in the caller's transaction. The caller lets that
transaction commit and only then raises, so an attacker's failed attempts (and the throttle
counter) are never rolled back.
"""

import re
from datetime import datetime
from typing import Any, TypeVar

from django.contrib.auth.models import AnonymousUser, User
from django.db.models import QuerySet

from approvals import signatures
from approvals.errors import RequestInvalid, SignatureRefused
from approvals.models import (
    AccessRequest,
    Approval,
    Decision,
    ExtensionApproval,
    SealedTOTPDevice,
    TimelineEvent,
)
from approvals.rules import Refusal
from approvals.timeline import (
    SYSTEM_SOURCE,
    EventSource,
    chain_for,
    timeline_append,
    timeline_verify,
)

OTP_CODE_PATTERN = re.compile(r"^\d{6,8}$")


def otp_check(*, user: User | AnonymousUser, otp_code: str) -> Refusal | None:
    """Verify a TOTP code now, on the user's confirmed device; must run inside a transaction.

    Failures are written by django-otp (throttle counter) in that transaction, so the caller must
    commit it even when refusing.
    """
    # Locked until the caller's transaction ends, as django_otp.verify_token would lock it (in a
    # savepoint of its own and a second read): concurrent uses of one code cannot both pass.
    device = (
        SealedTOTPDevice.objects.devices_for_user(user, confirmed=True).select_for_update().first()
    )
    if device is None:
        return Refusal("no_otp_device", "you have no confirmed TOTP device; enrol one first")
    allowed, throttle = device.verify_is_allowed()
    if not allowed:
        locked_until = (throttle or {}).get("locked_until")
        wait = f" until {locked_until:%H:%M:%S} UTC" if locked_until else ""
        return Refusal("otp_throttled", f"too many failed OTP attempts; wait{wait} and retry")
    code = (otp_code or "").strip()
    if device.verify_token(code):
        return None
    if not OTP_CODE_PATTERN.match(code):
        return Refusal("otp_malformed", "the OTP code must be 6 digits")
    if device.code_was_already_used(code):
        return Refusal("otp_replayed", "OTP code already used; wait for the next one")
    return Refusal("otp_invalid", "the OTP code is not valid")


def refusal_record(
    *,
    refusal: Refusal,
    code: str,
    actor: User | None,
    access_request: AccessRequest | None = None,
    detail: dict[str, Any] | None = None,
    source: EventSource = SYSTEM_SOURCE,
) -> None:
    """Put a refused signed action on the timeline (in the caller's transaction)."""
    timeline_append(
        access_request=access_request,
        code=code,
        actor=actor,
        outcome="refused",
        detail={**(detail or {}), "refusal": refusal.code, "message": refusal.message},
        source=source,
    )


def signature_check(
    *,
    user: User,
    otp_code: str,
    refused_code: str,
    access_request: AccessRequest | None = None,
    detail: dict[str, Any] | None = None,
    source: EventSource = SYSTEM_SOURCE,
) -> Refusal | None:
    """A fresh code for a signed action; a refusal is recorded as `refused_code` and returned.

    Call inside the transaction that locks what is being acted on; after it commits, call
    `refusal_raise` with the result.
    """
    refusal = otp_check(user=user, otp_code=otp_code)
    if refusal is not None:
        refusal_record(
            refusal=refusal,
            code=refused_code,
            actor=user,
            access_request=access_request,
            detail=detail,
            source=source,
        )
    return refusal


def refusal_raise(refusal: Refusal | None) -> None:
    """Raise a signed action's refusal once its record has been committed."""
    if refusal is not None:
        raise SignatureRefused(refusal.message, code=refusal.code)


def text_clean(
    value: str | None,
    *,
    field: str,
    max_length: int,
    required: bool,
    message: str,
    too_long_message: str | None = None,
) -> str:
    """A reason or note: stripped, present when required, bounded; or RequestInvalid naming the
    field."""
    text = (value or "").strip()
    if required and not text:
        raise RequestInvalid(message, fields={field: [f"{field} is required"]})
    if len(text) > max_length:
        raise RequestInvalid(
            too_long_message or message,
            fields={field: [f"{field} must be at most {max_length} characters"]},
        )
    return text


APPROVAL_PURPOSE = "approval"
APPROVED_EVENT = "approvals.signature.approved"
REJECTED_EVENT = "approvals.signature.rejected"

# A request's approval or an extension's: the same fields, signed and checked the same way.
SignedApproval = TypeVar("SignedApproval", Approval, ExtensionApproval)


def signature_record(
    approval: SignedApproval,
    *,
    access_request: AccessRequest,
    approver: User,
    decision: Decision,
    reason: str,
    now: datetime,
    source: EventSource,
    purpose: str,
    event_code: str,
) -> SignedApproval:
    """Store a signature on what `approval` names (its subject and content digest): the approver,
    the TOTP step that just verified, and the portal key's signature made at that moment. Its
    event (`event_code`) carries the signed fields and the signature: with the public key, anyone
    holding the timeline can check it (the request id is the chain's)."""
    # The device row is still locked by the verification: last_t is the step that just verified.
    device = SealedTOTPDevice.objects.devices_for_user(approver, confirmed=True).get()
    approval.approver, approval.approver_name = approver, approver.get_username()
    approval.decision, approval.reason, approval.created_at = decision, reason, now
    approval.device_id, approval.time_step = device.persistent_id, device.last_t
    approval.source_ip = source.ip
    signature = signatures.sign(purpose, approval.signed_payload())
    approval.signature_key_id, approval.signature = signature.key_id, signature.value
    approval.save()
    signed = {k: v for k, v in approval.signed_payload().items() if k != "request"}
    timeline_append(
        access_request=access_request,
        code=event_code,
        actor=approver,
        detail={**signed, "signature": signature.as_dict(), "reason": reason},
        source=source,
    )
    return approval


def signed_approvals_forgery(
    *,
    access_request: AccessRequest,
    approvals: QuerySet[Approval] | QuerySet[ExtensionApproval],
    purpose: str,
    signed_event: str,
) -> str | None:
    """Why these approvals (the request's, or one of its extensions') cannot be trusted, or None.

    The worker asks before anything reaches AWS: every approval must carry a valid signature of
    the portal's key (which is not in the database) for `purpose`, and its `signed_event` must be
    on the request's intact chain. A row inserted by a database writer has neither.
    """
    chain = chain_for(access_request)
    verification = timeline_verify(chain=chain)
    if not verification.ok:
        return f"the request's timeline is broken: {verification.reason}"
    signed_events = {
        str((event.detail.get("signature") or {}).get("value")): event.detail
        for event in TimelineEvent.objects.filter(chain=chain, code=signed_event)
    }
    for approval in approvals.filter(decision=Decision.APPROVE):
        if not signatures.verify(
            purpose, approval.signed_payload(), approval.signature_key_id, approval.signature
        ):
            return f"the approval by {approval.approver_name} carries no valid signature"
        event_detail = signed_events.get(approval.signature)
        if event_detail is None or event_detail.get("approver_id") != approval.approver_id:
            return (
                f"the approval by {approval.approver_name} has no matching signed event on the "
                "request's timeline"
            )
    return None


def approvals_forgery(access_request: AccessRequest) -> str | None:
    """Why the request's own approvals cannot be trusted, or None."""
    return signed_approvals_forgery(
        access_request=access_request,
        approvals=access_request.approvals.all(),
        purpose=APPROVAL_PURPOSE,
        signed_event=APPROVED_EVENT,
    )
