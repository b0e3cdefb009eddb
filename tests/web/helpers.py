"""Put requests into later states through the real transition function (no AWS needed)."""

import json
from datetime import timedelta

from django.utils import timezone

from approvals.models import AccessRequest, IssuedCredential, Status, TimelineEvent
from approvals.sealing import seal
from approvals.services.requests import request_approve
from approvals.transitions import request_transition
from tests.conftest import fresh_code


def approved(cast, **overrides) -> AccessRequest:
    access_request = cast.open_request(**overrides)
    for approver in (cast.alice, cast.bob):
        request_approve(
            access_request_id=access_request.pk, approver=approver, otp_code=fresh_code(approver)
        )
    access_request.refresh_from_db()
    return access_request


def active(cast, **overrides) -> AccessRequest:
    """An ACTIVE request with sealed credentials, as the worker would leave it."""
    access_request = approved(cast, **overrides)
    now = timezone.now()
    expires_at = now + timedelta(minutes=access_request.duration_minutes)
    request_transition(
        access_request=access_request,
        to_status=Status.ACTIVATING,
        code="approvals.activation.started",
        fields={"expires_at": expires_at},
    )
    IssuedCredential.objects.create(
        request=access_request,
        sealed=seal(
            json.dumps(
                {
                    "access_key_id": "ASIATESTKEY",
                    "secret_access_key": "test-secret-value",
                    "session_token": "test-session-token",
                }
            ).encode()
        ),
        access_key_id="ASIATESTKEY",
        expiration=expires_at,
        issued_at=now,
    )
    request_transition(
        access_request=access_request,
        to_status=Status.ACTIVE,
        code="approvals.request.active",
        fields={"activated_at": now},
    )
    return access_request


def codes(access_request) -> list[str]:
    return list(
        TimelineEvent.objects.filter(request=access_request)
        .order_by("sequence")
        .values_list("code", flat=True)
    )


def system_events(code: str):
    return TimelineEvent.objects.filter(chain="system", code=code)


def wrong_code(code: str) -> str:
    return "000000" if code != "000000" else "111111"
