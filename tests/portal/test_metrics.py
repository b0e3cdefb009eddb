from datetime import timedelta

from django.utils import timezone

from approvals.models import Heartbeat, Status
from approvals.services.requests import request_approve
from approvals.transitions import request_transition
from tests.conftest import totp_code

TOKEN = "metrics-token-for-tests"


def test_metrics_are_hidden_without_the_token(client, settings, db):
    settings.METRICS_TOKEN = TOKEN

    assert client.get("/metrics").status_code == 404
    assert client.get("/metrics", headers={"Authorization": "Bearer wrong"}).status_code == 404


def test_metrics_are_off_when_no_token_is_configured(client, settings, db):
    settings.METRICS_TOKEN = None

    assert client.get("/metrics", headers={"Authorization": "Bearer "}).status_code == 404


def test_metrics_report_requests_durations_overdue_grants_and_component_ages(
    client, settings, cast
):
    settings.METRICS_TOKEN = TOKEN
    cast.open_request()
    approved = cast.open_request(ticket="INC-2")
    for approver in (cast.alice, cast.bob):
        request_approve(
            access_request_id=approved.pk, approver=approver, otp_code=totp_code(approver)
        )
    approved.refresh_from_db()
    past_deadline = {"expires_at": timezone.now() - timedelta(minutes=5)}
    request_transition(
        access_request=approved, to_status=Status.ACTIVATING, code="t", fields=past_deadline
    )
    request_transition(
        access_request=approved,
        to_status=Status.ACTIVE,
        code="t",
        fields={"activated_at": approved.approved_at + timedelta(milliseconds=180)},
    )
    Heartbeat.objects.create(component="sweeper", seen_at=timezone.now() - timedelta(seconds=42))

    response = client.get("/metrics", headers={"Authorization": f"Bearer {TOKEN}"})

    body = response.content.decode()
    assert response.status_code == 200
    assert 'breakglass_requests{status="pending"} 1.0' in body
    assert 'breakglass_requests{status="active"} 1.0' in body
    assert "breakglass_time_to_access_seconds_count 1.0" in body
    assert 'breakglass_time_to_access_seconds_bucket{le="0.1"} 0.0' in body
    assert 'breakglass_time_to_access_seconds_bucket{le="0.25"} 1.0' in body
    assert "breakglass_revocations_overdue 1.0" in body
    assert "breakglass_alarms_open 0.0" in body
    assert 'breakglass_component_last_seen_seconds{component="sweeper"} 4' in body
