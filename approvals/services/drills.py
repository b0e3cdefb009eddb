"""The break-glass drill: the real procedure end to end, timed, against the profile's AWS.

A procedure first run during an outage is useless; this rehearses it. In the sandbox the drill
can sign with approvers it created itself (`auto_sign`); against real AWS two people must sign.
"""

import time
from collections.abc import Callable
from dataclasses import dataclass

from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.models import User
from django.utils import timezone

from approvals.errors import NotAllowed, NotFound, PortalError
from approvals.models import (
    TERMINAL_STATUSES,
    AccessProfile,
    AccessRequest,
    Drill,
    SealedTOTPDevice,
    Status,
)
from approvals.services.identity import totp_device_set
from approvals.services.requests import (
    credentials_reveal,
    request_approve,
    request_open,
    request_revoke,
)
from awsaccess.errors import AwsError
from awsaccess.probe import credentials_work
from awsaccess.types import IssuedCredentials

DRILL_REQUESTER = "drill-requester"
DRILL_APPROVERS = ("drill-approver-1", "drill-approver-2")
POLL_SECONDS = 0.5


class DrillFailed(Exception):
    """The procedure did not hold; the message says at which step and why."""


@dataclass(frozen=True)
class DrillPlan:
    profile_slug: str
    duration_minutes: int = 1
    auto_sign: bool = False
    approvers: tuple[str, ...] = ()
    step_timeout_seconds: float = 120.0


def _drill_user(username: str, *, approver_group=None):
    """A dedicated drill identity with its own TOTP device (the drill knows its seed)."""
    user, created = get_user_model().objects.get_or_create(username=username)
    if created:
        user.set_unusable_password()
        user.save()
    if approver_group is not None:
        user.groups.add(approver_group)
    if not SealedTOTPDevice.objects.filter(user=user, confirmed=True).exists():
        totp_device_set(user=user)
    return user


def _code_for(user) -> str:
    """The drill user's next unused TOTP code (waits for the next step when all are used)."""
    for _ in range(3):
        device = SealedTOTPDevice.objects.get(user=user, confirmed=True)
        code = device.unused_code()
        if code is not None:
            return code
        time.sleep(device.seconds_to_next_step() + 0.05)
    raise DrillFailed(f"no fresh TOTP code for {user.get_username()}")


def _wait(
    access_request: AccessRequest,
    wanted: Status,
    *,
    timeout: float,
    progress: Callable[[str], None],
) -> AccessRequest:
    deadline = time.monotonic() + timeout
    shown = ""
    while time.monotonic() < deadline:
        access_request.refresh_from_db()
        line = f"status {access_request.status}, {access_request.approvals.count()} signature(s)"
        if line != shown:
            progress(line)
            shown = line
        if access_request.status == wanted:
            return access_request
        if access_request.status in TERMINAL_STATUSES:
            break
        time.sleep(POLL_SECONDS)
    raise DrillFailed(
        f"waited for {wanted} but the request is {access_request.status}"
        + (f": {access_request.failure_reason}" if access_request.failure_reason else "")
    )


def _ms(start, end) -> int:
    return max(0, round((end - start).total_seconds() * 1000))


def drill_run(*, plan: DrillPlan, progress: Callable[[str], None]) -> Drill:
    """Run the drill and store its result; a failed drill is stored too, then raised."""
    profile = AccessProfile.objects.filter(slug=plan.profile_slug).first()
    if profile is None:
        raise NotFound(f"unknown access profile {plan.profile_slug!r}")
    if plan.auto_sign and settings.AWS_ENDPOINT_URL is None:
        raise NotAllowed("auto-sign is for the sandbox only; on real AWS two people must sign")
    requester = _drill_user(DRILL_REQUESTER)
    drill = Drill.objects.create(profile=profile, started_at=timezone.now())
    try:
        _drill_steps(drill, plan, requester, progress)
    except (DrillFailed, PortalError, AwsError) as exc:
        drill.failure = str(exc)
        drill.finished_at = timezone.now()
        drill.save()
        raise DrillFailed(str(exc)) from None
    return drill


def _revocation_time(
    access_request: AccessRequest,
    requester: User,
    credentials: IssuedCredentials,
    timeout: float,
    progress: Callable[[str], None],
) -> tuple[int | None, int]:
    """Revoke early, wait for the confirmation, then for AWS to refuse the credentials →
    (time to revoke, time until refused) in ms."""
    request_revoke(
        access_request_id=access_request.pk,
        actor=requester,
        otp_code=_code_for(requester),
        reason="Drill complete.",
    )
    clicked = timezone.now()
    try:
        _wait(access_request, Status.REVOKED, timeout=timeout, progress=progress)
    except DrillFailed as exc:
        raise DrillFailed(
            f"REVOCATION NOT CONFIRMED by AWS within {timeout:.0f} s: {exc}"
        ) from None

    deadline = time.monotonic() + timeout
    while credentials_work(credentials):
        if time.monotonic() > deadline:
            raise DrillFailed("CREDENTIALS STILL WORK after revocation was confirmed")
        time.sleep(POLL_SECONDS)
    return access_request.time_to_revoke_ms, _ms(clicked, timezone.now())


def _drill_steps(
    drill: Drill, plan: DrillPlan, requester: User, progress: Callable[[str], None]
) -> None:
    profile = drill.profile
    access_request = request_open(
        profile_slug=profile.slug,
        requester=requester,
        ticket=f"DRILL-{Drill.objects.count()}",
        justification="Scheduled break-glass drill: rehearsing the emergency procedure.",
        duration_minutes=plan.duration_minutes,
        is_drill=True,
    )
    drill.request = access_request
    drill.save(update_fields=["request"])
    progress(f"opened drill request {access_request.pk} on profile {profile.slug}")

    if plan.auto_sign:
        for username in DRILL_APPROVERS:
            approver = _drill_user(username, approver_group=profile.approver_group)
            request_approve(
                access_request_id=access_request.pk, approver=approver, otp_code=_code_for(approver)
            )
            progress(f"signed by {username}")
    else:
        who = ", ".join(plan.approvers) or f"two members of {profile.approver_group.name}"
        progress(f"waiting for {who} to sign request {access_request.pk} in the portal")
    # People need longer than a machine: wait up to the request's own approval deadline.
    approval_wait = (access_request.approval_deadline - timezone.now()).total_seconds()
    timeout = plan.step_timeout_seconds
    _wait(access_request, Status.APPROVED, timeout=max(timeout, approval_wait), progress=progress)
    drill.time_to_approve_ms = _ms(access_request.created_at, access_request.approved_at)

    _wait(access_request, Status.ACTIVE, timeout=timeout, progress=progress)
    drill.time_to_access_ms = access_request.time_to_access_ms
    credentials = credentials_reveal(
        access_request_id=access_request.pk, user=requester, otp_code=_code_for(requester)
    )
    if not credentials_work(credentials):
        raise DrillFailed("the issued credentials were refused by AWS while the grant was active")
    progress("credentials work (s3:ListAllMyBuckets allowed)")

    drill.time_to_revoke_ms, drill.time_to_refused_ms = _revocation_time(
        access_request, requester, credentials, timeout, progress
    )
    progress("credentials refused by AWS")
    drill.passed = True
    drill.finished_at = timezone.now()
    drill.save()
