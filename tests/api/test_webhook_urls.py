"""Webhook URLs aimed inside, from the attacker's side: every path that sets a URL refuses
them, and a delivery never connects to an internal address whatever the name resolves to."""

import contextlib

import pytest
from django.contrib.auth.models import User
from django.core.management import CommandError, call_command
from django.test import Client
from django_otp import DEVICE_ID_SESSION_KEY

from approvals.errors import RequestInvalid
from approvals.models import SealedTOTPDevice, WebhookDelivery, WebhookEndpoint
from approvals.services.identity import totp_device_set
from approvals.services.queue import RetryLater
from approvals.services.requests import request_cancel
from approvals.services.webhooks import webhook_deliver, webhook_endpoint_create
from tests.api.receiver import Receiver

pytestmark = pytest.mark.django_db

INSIDE = [
    "ftp://hooks.example.com/x",
    "file:///etc/passwd",
    "http://hooks.example.com/x",  # plain http to anywhere but loopback
    "https://169.254.169.254/latest/meta-data/",
    "https://[::ffff:169.254.169.254]/latest/meta-data/",
    "https://10.0.0.5/hook",
    "https://192.168.1.1/hook",
    "https://100.64.0.1/hook",
    "https://0.0.0.0/hook",
    "https://user:secret@hooks.example.com/x",
    "hooks.example.com/x",
    "",
]


@pytest.fixture
def receiver():
    started = Receiver().start()
    yield started
    started.stop()


@pytest.fixture
def admin_client() -> Client:
    admin = User.objects.create_superuser("root", password="root-password-123")
    totp_device_set(user=admin)
    client = Client()
    client.force_login(admin)
    session = client.session
    session[DEVICE_ID_SESSION_KEY] = SealedTOTPDevice.objects.get(user=admin).persistent_id
    session.save()
    return client


@pytest.mark.parametrize("url", INSIDE)
def test_the_service_refuses_urls_aimed_inside(url):
    with pytest.raises(RequestInvalid):
        webhook_endpoint_create(url=url)
    assert not WebhookEndpoint.objects.exists()


@pytest.mark.parametrize("url", ["https://169.254.169.254/", "ftp://hooks.example.com/"])
def test_the_command_refuses_urls_aimed_inside(url):
    with pytest.raises(CommandError):
        call_command("add_webhook", url)
    assert not WebhookEndpoint.objects.exists()


def test_the_admin_refuses_such_urls_on_add_and_on_edit(admin_client, settings):
    settings.WEBHOOK_ALLOW_HTTP_LOOPBACK = False  # as in production
    response = admin_client.post(
        "/admin/approvals/webhookendpoint/add/",
        {"url": "https://169.254.169.254/latest/meta-data/", "active": "on"},
    )
    assert response.status_code == 200 and not WebhookEndpoint.objects.exists()
    endpoint, _ = webhook_endpoint_create(url="https://hooks.example.com/bg")
    for url in ("ftp://hooks.example.com/x", "http://127.0.0.1:5000/moto-api/reset"):
        response = admin_client.post(
            f"/admin/approvals/webhookendpoint/{endpoint.pk}/change/", {"url": url, "active": "on"}
        )
        assert response.status_code == 200
        endpoint.refresh_from_db()
        assert endpoint.url == "https://hooks.example.com/bg"


def test_http_to_loopback_only_when_development_allows_it(settings):
    settings.WEBHOOK_ALLOW_HTTP_LOOPBACK = False
    with pytest.raises(RequestInvalid):
        webhook_endpoint_create(url="http://127.0.0.1:5000/moto-api/reset")
    settings.WEBHOOK_ALLOW_HTTP_LOOPBACK = True
    assert webhook_endpoint_create(url="http://127.0.0.1:5000/hook")[0].pk


def test_an_allow_listed_network_may_be_set(settings):
    with pytest.raises(RequestInvalid):
        webhook_endpoint_create(url="https://10.20.0.5/hook")
    settings.WEBHOOK_ALLOWED_NETWORKS = ["10.20.0.0/16"]
    assert webhook_endpoint_create(url="https://10.20.0.5/hook")[0].pk


def _deliver_a_cancellation(cast) -> WebhookDelivery:
    access_request = cast.open_request()
    request_cancel(access_request_id=access_request.pk, actor=cast.requester)
    delivery = WebhookDelivery.objects.get(event="approvals.request.cancelled")
    # A refused send is a failed attempt, retried later like any other.
    with contextlib.suppress(RetryLater):
        webhook_deliver(delivery_id=delivery.pk)
    delivery.refresh_from_db()
    return delivery


def test_a_name_resolving_inside_is_refused_at_send_time(cast, receiver, settings):
    # Registered while allowed (or by a name that later resolves inside): "localhost" is such a
    # name. At send time the resolved address is checked and nothing is sent.
    port = receiver.url.split(":")[2].split("/")[0]
    webhook_endpoint_create(url=f"http://localhost:{port}/hook")
    settings.WEBHOOK_ALLOW_HTTP_LOOPBACK = False
    delivery = _deliver_a_cancellation(cast)
    assert receiver.received == []
    assert delivery.delivered_at is None
    assert "not a public address" in delivery.last_error


def test_the_allow_list_lets_an_internal_receiver_through_at_send_time(cast, receiver, settings):
    webhook_endpoint_create(url=receiver.url)
    settings.WEBHOOK_ALLOW_HTTP_LOOPBACK = False
    settings.WEBHOOK_ALLOWED_NETWORKS = ["127.0.0.0/8"]
    delivery = _deliver_a_cancellation(cast)
    assert delivery.delivered_at is not None
    assert len(receiver.received) == 1
