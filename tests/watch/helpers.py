"""Driving a request through its real lifecycle in-process, against the AWS sandbox."""

from approvals.models import AccessRequest, SecurityAlarm, Status
from approvals.services.grants import request_activate, request_revocation_drive
from approvals.services.requests import request_approve, request_revoke
from tests.conftest import fresh_code


def active_request(cast, profile, **overrides) -> AccessRequest:
    access_request = cast.open_request(profile_slug=profile.slug, **overrides)
    for approver in (cast.alice, cast.bob):
        request_approve(
            access_request_id=access_request.pk, approver=approver, otp_code=fresh_code(approver)
        )
    request_activate(access_request_id=access_request.pk)
    access_request.refresh_from_db()
    assert access_request.status == Status.ACTIVE, access_request.failure_reason
    return access_request


def revoked_request(cast, profile, **overrides) -> AccessRequest:
    access_request = active_request(cast, profile, **overrides)
    request_revoke(
        access_request_id=access_request.pk,
        actor=cast.requester,
        otp_code=fresh_code(cast.requester),
        reason="Incident resolved.",
    )
    assert request_revocation_drive(access_request_id=access_request.pk)
    access_request.refresh_from_db()
    assert access_request.status == Status.REVOKED
    return access_request


def tampering_alarm(watched, action: str) -> SecurityAlarm:
    """Run the watcher until it raises the real-time tampering alarm naming `action`."""

    def raised() -> bool:
        return SecurityAlarm.objects.filter(kind="watch_tampering", detail__action=action).exists()

    watched.poll_until(raised, timeout=30)
    return SecurityAlarm.objects.get(kind="watch_tampering", detail__action=action)
