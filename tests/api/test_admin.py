import hashlib

import pytest
from django.contrib.auth.models import User
from django.contrib.messages import get_messages
from django.test import Client
from django_otp import DEVICE_ID_SESSION_KEY

from approvals.models import IntegrationKey, SealedTOTPDevice, WebhookEndpoint
from approvals.services.identity import totp_device_set

pytestmark = pytest.mark.django_db


@pytest.fixture
def admin_client_verified() -> Client:
    admin = User.objects.create_superuser("root", password="root-password-123")
    totp_device_set(user=admin)
    client = Client()
    client.force_login(admin)
    session = client.session
    session[DEVICE_ID_SESSION_KEY] = SealedTOTPDevice.objects.get(user=admin).persistent_id
    session.save()
    return client


def test_creating_an_integration_key_in_the_admin_shows_it_once_and_stores_its_hash(
    admin_client_verified, client
):
    response = admin_client_verified.post(
        "/admin/approvals/integrationkey/add/", {"name": "jira"}, follow=True
    )

    (message,) = [str(m) for m in get_messages(response.wsgi_request) if "never shown" in str(m)]
    key = message.rsplit(" ", 1)[-1]
    stored = IntegrationKey.objects.get(name="jira")
    assert key.startswith("bgi_")
    assert stored.key_hash == hashlib.sha256(key.encode()).hexdigest()
    assert (
        key
        not in admin_client_verified.get(
            f"/admin/approvals/integrationkey/{stored.pk}/change/"
        ).content.decode()
    )
    me = client.get("/api/v1/me/", HTTP_AUTHORIZATION=f"Bearer {key}")
    assert me.json() == {"kind": "integration", "name": "jira"}


def test_a_webhook_endpoint_added_in_the_admin_gets_a_sealed_secret_shown_once(
    admin_client_verified,
):
    response = admin_client_verified.post(
        "/admin/approvals/webhookendpoint/add/",
        {"url": "https://hooks.example.test/bg", "active": "on"},
        follow=True,
    )

    (message,) = [str(m) for m in get_messages(response.wsgi_request) if "never shown" in str(m)]
    secret = message.rsplit(" ", 1)[-1]
    endpoint = WebhookEndpoint.objects.get()
    assert secret.startswith("whsec_")
    assert secret not in endpoint.sealed_secret
