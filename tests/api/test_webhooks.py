import hashlib
import hmac
import json
import time

import pytest
from django.db import transaction

from approvals.models import WebhookDelivery
from approvals.services.queue import RetryLater
from approvals.services.requests import request_cancel
from approvals.services.scopes import scope_set
from approvals.services.webhooks import webhook_deliver, webhook_endpoint_create, webhooks_enqueue
from tests.api.conftest import INTEGRATION
from tests.api.receiver import Receiver
from tests.api.test_extensions import READ_ONLY, active_request, path
from tests.broker import drain_task_messages
from tests.conftest import fresh_code
from tests.processes import celery_worker, child_env, wait_until


@pytest.fixture
def receiver():
    started = Receiver().start()
    yield started
    started.stop()


def verify(secret: str, headers: dict, body: bytes) -> dict:
    """What a receiver does (README): recompute the HMAC over "<timestamp>.<body>"."""
    timestamp = headers["X-Breakglass-Timestamp"]
    expected = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256)
    assert hmac.compare_digest(headers["X-Breakglass-Signature"], f"sha256={expected.hexdigest()}")
    assert abs(time.time() - int(timestamp)) < 300
    return json.loads(body)


@pytest.mark.django_db
def test_a_state_change_is_posted_signed_with_a_delivery_id_and_no_secrets(api, receiver):
    _, secret = webhook_endpoint_create(url=receiver.url)
    access_request = api.cast.open_request()

    request_cancel(access_request_id=access_request.pk, actor=api.cast.requester)
    delivery = WebhookDelivery.objects.get(event="approvals.request.cancelled")
    assert webhook_deliver(delivery_id=delivery.pk) is None

    (got,) = receiver.received
    payload = verify(secret, got.headers, got.body)
    assert got.headers["X-Breakglass-Delivery"] == str(delivery.delivery_id) == payload["id"]
    assert payload["event"] == "approvals.request.cancelled"
    assert payload["data"]["request"]["status"] == "cancelled"
    assert payload["data"]["previous_status"] == "pending"
    assert secret not in got.body.decode()
    delivery.refresh_from_db()
    assert delivery.delivered_at is not None
    assert [a["status"] for a in delivery.attempt_log] == [204]


@pytest.mark.django_db
def test_a_new_request_is_posted_so_the_ticket_can_follow_it(api, receiver):
    webhook_endpoint_create(url=receiver.url)

    access_request = api.cast.open_request()

    delivery = WebhookDelivery.objects.get()
    assert delivery.event == "approvals.request.opened"
    assert delivery.payload["request"]["id"] == str(access_request.pk)
    assert delivery.payload["previous_status"] is None
    assert "incident_report" not in delivery.payload


@pytest.mark.django_db
def test_a_request_that_ends_carries_its_incident_report(api, receiver):
    webhook_endpoint_create(url=receiver.url)
    access_request = api.cast.open_request()

    request_cancel(access_request_id=access_request.pk, actor=api.cast.requester)
    delivery = WebhookDelivery.objects.get(event="approvals.request.cancelled")
    # Rendered at delivery, outside the transaction that changed the status.
    assert "incident_report" not in delivery.payload
    webhook_deliver(delivery_id=delivery.pk)

    (got,) = receiver.received
    report = json.loads(got.body)["data"]["incident_report"]
    delivery.refresh_from_db()
    assert delivery.payload["incident_report"] == report  # retries send the same body
    assert report["request"]["status"] == "cancelled"
    assert report["chain_verified"] is True
    assert [e["code"] for e in report["timeline"]][-1] == "approvals.request.cancelled"


@pytest.mark.django_db
def test_a_wrong_secret_does_not_verify(api, receiver):
    webhook_endpoint_create(url=receiver.url)
    webhooks_enqueue(event="approvals.alarm.raised", payload={"alarm": {"title": "x"}})
    webhook_deliver(delivery_id=WebhookDelivery.objects.get().pk)

    (got,) = receiver.received
    with pytest.raises(AssertionError):
        verify("whsec_guessed", got.headers, got.body)


@pytest.mark.django_db
def test_an_integrations_endpoint_only_hears_about_its_own_requests_but_all_alarms(api, receiver):
    from approvals.models import IntegrationKey

    webhook_endpoint_create(
        url=receiver.url, integration=IntegrationKey.objects.get(name=INTEGRATION)
    )
    others = api.cast.open_request()
    mine = api.cast.open_request(opened_by=INTEGRATION)

    request_cancel(access_request_id=others.pk, actor=api.cast.requester)
    request_cancel(access_request_id=mine.pk, actor=None, opened_by=INTEGRATION)
    webhooks_enqueue(event="approvals.alarm.raised", payload={"alarm": {"title": "use"}})

    deliveries = list(WebhookDelivery.objects.order_by("pk"))
    assert [(d.event, d.payload.get("request", {}).get("id")) for d in deliveries] == [
        ("approvals.request.opened", str(mine.pk)),
        ("approvals.request.cancelled", str(mine.pk)),
        ("approvals.alarm.raised", None),
    ]


@pytest.mark.django_db
def test_secret_looking_values_are_scrubbed_from_alarm_payloads(api, receiver):
    webhook_endpoint_create(url=receiver.url)

    (delivery,) = webhooks_enqueue(
        event="approvals.alarm.raised",
        payload={"alarm": {"title": "t", "session_token": "IQo...", "otp": "123456"}},
    )

    assert delivery.payload["alarm"] == {
        "title": "t",
        "session_token": "[scrubbed]",
        "otp": "[scrubbed]",
    }


@pytest.mark.django_db
def test_nothing_is_delivered_for_a_change_that_rolled_back(api, receiver):
    webhook_endpoint_create(url=receiver.url)
    access_request = api.cast.open_request()

    with pytest.raises(RuntimeError), transaction.atomic():
        request_cancel(access_request_id=access_request.pk, actor=api.cast.requester)
        raise RuntimeError("something after the change failed")

    assert not WebhookDelivery.objects.filter(event="approvals.request.cancelled").exists()


@pytest.mark.django_db
def test_a_failed_attempt_is_logged_and_retried_later_with_backoff(api, settings):
    settings.WEBHOOK_BACKOFF_SECONDS = 3
    dead = Receiver().start()
    dead_url = dead.url
    dead.stop()  # nothing listens there any more
    webhook_endpoint_create(url=dead_url)
    (delivery,) = webhooks_enqueue(event="approvals.alarm.raised", payload={"alarm": {}})

    with pytest.raises(RetryLater) as first:
        webhook_deliver(delivery_id=delivery.pk)
    with pytest.raises(RetryLater) as second:
        webhook_deliver(delivery_id=delivery.pk)

    assert (first.value.seconds, second.value.seconds) == (3.0, 6.0)
    delivery.refresh_from_db()
    assert delivery.attempts == 2 and delivery.delivered_at is None
    assert delivery.attempt_log[0]["status"] is None and delivery.attempt_log[0]["error"]


@pytest.mark.django_db
def test_it_gives_up_once_the_retry_window_is_over(api, settings, receiver):
    settings.WEBHOOK_RETRY_SECONDS = 1
    receiver.fail_first = 10
    webhook_endpoint_create(url=receiver.url)
    (delivery,) = webhooks_enqueue(event="approvals.alarm.raised", payload={"alarm": {}})

    assert webhook_deliver(delivery_id=delivery.pk) is None

    delivery.refresh_from_db()
    assert delivery.attempt_log[-1]["final"] is True
    assert delivery.last_status == 500


@pytest.mark.django_db(transaction=True)
def test_a_real_worker_retries_a_failing_receiver_until_it_accepts(api, tmp_path):
    # Ending the request also sends the chain's seal checkpoint (timeline.checkpoint) to every
    # endpoint: only the cancellation's requests fail, so its own retries are what is counted.
    receiver = Receiver(fail_first=2, fail_event="approvals.request.cancelled").start()
    drain_task_messages(wait=0.1)
    worker = celery_worker(tmp_path, child_env({"BREAKGLASS_WEBHOOK_BACKOFF_SECONDS": "1"}))
    try:
        worker.start(ready_text="ready.", timeout=40)
        access_request = api.cast.open_request()
        _, secret = webhook_endpoint_create(url=receiver.url)  # hears only the cancellation
        request_cancel(access_request_id=access_request.pk, actor=api.cast.requester)

        delivery = WebhookDelivery.objects.get()
        wait_until(
            lambda: WebhookDelivery.objects.filter(pk=delivery.pk, delivered_at__isnull=False),
            timeout=30,
            what="webhook delivered",
        )
    finally:
        worker.stop()
        receiver.stop()

    delivery.refresh_from_db()
    assert [a["status"] for a in delivery.attempt_log] == [500, 500, 204]
    assert delivery.event == "approvals.request.cancelled"
    ours = [r for r in receiver.received if r.headers["X-Breakglass-Event"] == delivery.event]
    assert len(ours) == 3
    assert {r.headers["X-Breakglass-Delivery"] for r in ours} == {str(delivery.delivery_id)}
    # Registered after the request opened, the endpoint hears nothing but the end and its seal.
    others = {r.headers["X-Breakglass-Event"] for r in receiver.received} - {delivery.event}
    assert others <= {"timeline.checkpoint"}
    verify(secret, ours[-1].headers, ours[-1].body)


@pytest.mark.django_db
def test_each_step_of_an_extension_is_posted_with_the_request_and_its_scope(api, receiver):
    scope_set(
        profile_slug=api.cast.profile.slug,
        name="read-only",
        policy_text=json.dumps(READ_ONLY),
        make_default=True,
    )
    access_request = active_request(api.cast)
    _, secret = webhook_endpoint_create(url=receiver.url)
    refused = api.post("rita", path(access_request), {"minutes": 5, "reason": "one more"})
    refused_id = refused.json()["id"]
    api.post(
        "carol",
        path(access_request, f"{refused_id}/reject/"),
        {"otp": fresh_code(api.cast.carol), "reason": "open a new request"},
    )

    for delivery in WebhookDelivery.objects.order_by("pk"):
        webhook_deliver(delivery_id=delivery.pk)
    payloads = [verify(secret, got.headers, got.body) for got in receiver.received]
    assert [(p["event"], p["data"]["extension"]["status"]) for p in payloads] == [
        ("approvals.extension.requested", "pending"),
        ("approvals.extension.rejected", "rejected"),
    ]
    asked, rejected = (p["data"] for p in payloads)
    assert asked["extension"]["id"] == refused_id
    assert asked["extension"]["minutes"] == 5 and asked["extension"]["reason"] == "one more"
    assert asked["request"]["id"] == str(access_request.pk)
    assert asked["request"]["scope"] == "read-only"
    access_request.refresh_from_db()
    assert rejected["request"]["expires_at"] == access_request.expires_at.isoformat()
    assert rejected["extension"]["from_expires_at"] == access_request.expires_at.isoformat()
    detail = api.get("rita", f"/api/v1/requests/{access_request.pk}/").json()
    assert detail["scope"] == "read-only"
    assert [e["status"] for e in detail["extensions"]] == ["rejected"]


@pytest.mark.django_db
def test_an_extension_is_posted_when_asked_for_and_when_approved_not_at_each_signature(
    api, receiver
):
    access_request = active_request(api.cast)
    webhook_endpoint_create(url=receiver.url)
    asked = api.post("rita", path(access_request), {"minutes": 10, "reason": "replica lags"})
    extension_id = asked.json()["id"]
    for who, user in (("alice", api.cast.alice), ("bob", api.cast.bob)):
        api.post(who, path(access_request, f"{extension_id}/approve/"), {"otp": fresh_code(user)})

    deliveries = list(WebhookDelivery.objects.order_by("pk"))
    assert [(d.event, d.payload["extension"]["status"]) for d in deliveries] == [
        ("approvals.extension.requested", "pending"),
        ("approvals.extension.approved", "approved"),
    ]
    assert {d.payload["extension"]["id"] for d in deliveries} == {extension_id}
    assert all(d.payload["request"]["scope"] is None for d in deliveries)  # no scopes: whole role
