"""Who people are: sign-in (password, then TOTP or a backup code), TOTP enrolment, backup codes,
and provisioning users for bootstrap and automation."""

import binascii
import hashlib
import re
import secrets
from base64 import b32decode
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.contrib.auth import authenticate
from django.contrib.auth.models import Group, User
from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from approvals.errors import NotAllowed, RequestInvalid, SignatureRefused
from approvals.models import BackupCode, SealedTOTPDevice, SigninThrottle
from approvals.rules import Refusal
from approvals.sealing import seal
from approvals.services.signing import otp_check, refusal_raise, signature_check
from approvals.timeline import EventSource, timeline_append


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
    user: User
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
    user_model = User
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


BACKUP_CODE_COUNT = 10
_BACKUP_CODE_ALPHABET = "abcdefghijklmnopqrstuvwxyz234567"
BACKUP_CODE_PATTERN = re.compile(r"^[a-z2-7]{4}-?[a-z2-7]{4}-?[a-z2-7]{4}$")


# Counters the purge deletes in one transaction at most (the next run takes the rest).
SIGNIN_THROTTLE_PURGE_BATCH = 5_000


def _throttle_row(*, username: str, address: str) -> SigninThrottle:
    """The counter for this username (or ANY_USERNAME) and address, locked for the attempt from
    the moment it is read or created (the unique constraint settles two creating it at once), so
    the purge can never delete it between the two."""
    row, _ = SigninThrottle.objects.select_for_update().get_or_create(
        username=username, address=address
    )
    return row


def signin_throttles_purge(*, now: datetime | None = None) -> int:
    """Delete the sign-in counters that hold nothing any more: no failure within the window, no
    delay running, no throttle event within the window (it still spaces the next one). Every
    username tried from every address leaves a row, so unauthenticated traffic would otherwise
    grow the table without bound. Refused attempts not yet reported get their one
    `signin.throttled` event first: the record keeps the count. -> how many were deleted."""
    now = now or timezone.now()
    window_start = now - timedelta(minutes=settings.SIGNIN_FAILURE_WINDOW_MINUTES)
    quiet = (
        (Q(last_failure_at__isnull=True) | Q(last_failure_at__lt=window_start))
        & (Q(blocked_until__isnull=True) | Q(blocked_until__lte=now))
        & (Q(throttled_reported_at__isnull=True) | Q(throttled_reported_at__lt=window_start))
    )
    with transaction.atomic():
        # A counter an attempt holds is skipped: it is in use, and its next purge is soon.
        rows = list(
            SigninThrottle.objects.select_for_update(skip_locked=True)
            .filter(quiet)
            .order_by("pk")[:SIGNIN_THROTTLE_PURGE_BATCH]
        )
        for row in rows:
            if row.throttled_unreported:
                timeline_append(
                    access_request=None,
                    code="approvals.signin.throttled",
                    actor_name="anonymous",
                    outcome="refused",
                    detail={"username": row.username, "count": row.throttled_unreported},
                    source=EventSource(ip=None if row.address == "unknown" else row.address),
                )
        SigninThrottle.objects.filter(pk__in=[row.pk for row in rows]).delete()
    return len(rows)


def _blocked(row: SigninThrottle, now: datetime) -> bool:
    return row.blocked_until is not None and row.blocked_until > now


def _throttle_refuse(row: SigninThrottle, *, username: str, source: EventSource) -> NotAllowed:
    """Count a refused attempt; the timeline gets one event per window carrying the count, so
    hammering a throttled sign-in cannot grow the hash-chained record without bound."""
    now = timezone.now()
    window = timedelta(minutes=settings.SIGNIN_FAILURE_WINDOW_MINUTES)
    row.throttled_unreported += 1
    if row.throttled_reported_at is None or now - row.throttled_reported_at >= window:
        timeline_append(
            access_request=None,
            code="approvals.signin.throttled",
            actor_name="anonymous",
            outcome="refused",
            detail={"username": username, "count": row.throttled_unreported},
            source=source,
        )
        row.throttled_unreported = 0
        row.throttled_reported_at = now
    row.save(update_fields=["throttled_unreported", "throttled_reported_at"])
    assert row.blocked_until is not None
    wait = max(1, int((row.blocked_until - now).total_seconds()) + 1)
    return NotAllowed(
        f"too many failed sign-ins from here; wait {wait} seconds and try again",
        code="signin_throttled",
    )


def _throttle_fail(row: SigninThrottle, *, free_failures: int) -> None:
    """One more failure: past the free ones, each makes this row wait twice as long as the last
    (from the first delay up to the window). Failures older than the window are forgotten."""
    now = timezone.now()
    window = timedelta(minutes=settings.SIGNIN_FAILURE_WINDOW_MINUTES)
    if row.last_failure_at is not None and now - row.last_failure_at >= window:
        row.failures = 0
    row.failures += 1
    row.last_failure_at = now
    excess = row.failures - free_failures
    if excess >= 0:
        delay = timedelta(seconds=settings.SIGNIN_DELAY_SECONDS * 2 ** min(excess, 20))
        row.blocked_until = now + min(delay, window)
    row.save(update_fields=["failures", "last_failure_at", "blocked_until"])


def signin_password_check(*, username: str, password: str, source: EventSource):
    """The first factor, throttled per username+address (and per address for any username) by a
    growing delay. The counters are rows locked for the whole attempt, so concurrent guesses
    are judged one after another and can never exceed the limit; each failure is recorded with
    where it came from."""
    username = (username or "").strip()[:150].lower()
    address = source.ip or "unknown"
    limit = settings.SIGNIN_MAX_FAILURES
    now = timezone.now()
    user = None
    refusal: NotAllowed | None = None
    with transaction.atomic():
        # Always the address row first, then the username's: one lock order, no deadlock.
        by_address = _throttle_row(username=SigninThrottle.ANY_USERNAME, address=address)
        if _blocked(by_address, now):
            refusal = _throttle_refuse(by_address, username=username, source=source)
        else:
            by_user = _throttle_row(username=username, address=address)
            if _blocked(by_user, now):
                refusal = _throttle_refuse(by_user, username=username, source=source)
            else:
                user = authenticate(None, username=username, password=password or "")
                if user is None:
                    _throttle_fail(by_user, free_failures=limit)
                    _throttle_fail(by_address, free_failures=limit * 4)
                    timeline_append(
                        access_request=None,
                        code="approvals.signin.failed",
                        actor_name="anonymous",
                        outcome="failure",
                        detail={"username": username},
                        source=source,
                    )
                    refusal = NotAllowed(
                        "the username or password is not right", code="signin_failed"
                    )
                elif by_user.failures:
                    by_user.failures, by_user.blocked_until = 0, None
                    by_user.save(update_fields=["failures", "blocked_until"])
    if refusal is not None:
        raise refusal
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
    refusal_raise(refusal)
    return SealedTOTPDevice.objects.devices_for_user(user, confirmed=True).get()


def _backup_code_hash(code: str) -> str:
    return hashlib.sha256(code.replace("-", "").encode()).hexdigest()


def _backup_code_use(*, user, code: str) -> Refusal | None:
    device = SealedTOTPDevice.objects.select_for_update().filter(user=user, confirmed=True).first()
    if device is None:
        return Refusal("no_otp_device", "you have no confirmed TOTP device; enrol one first")
    allowed, _ = device.verify_is_allowed()
    if not allowed:
        return Refusal("otp_throttled", "too many failed OTP attempts; wait a moment and retry")
    used = BackupCode.objects.filter(
        user=user, code_hash=_backup_code_hash(code), used_at__isnull=True
    ).update(used_at=timezone.now())
    if used:
        device.throttle_reset()
        return None
    device.throttle_increment()
    return Refusal("backup_code_invalid", "the backup code is not valid or was already used")


def backup_codes_generate(*, user, otp_code: str, source: EventSource) -> list[str]:
    """A new set of single-use backup codes, replacing the old set, after a fresh TOTP code.

    Only their SHA-256 is stored: the returned list is the one time anyone sees them.
    """
    codes: list[str] = []
    with transaction.atomic():
        refusal = signature_check(
            user=user,
            otp_code=otp_code,
            refused_code="approvals.backup_codes.refused",
            detail={"count": 0},
            source=source,
        )
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
                code="approvals.backup_codes.generated",
                actor=user,
                detail={"count": len(codes)},
                source=source,
            )
    refusal_raise(refusal)
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
