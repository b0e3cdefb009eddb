import pytest
from django.test import Client
from django_otp import DEVICE_ID_SESSION_KEY

from approvals.models import SealedTOTPDevice


def verified_client(user) -> Client:
    """A browser session that has passed password and TOTP (the sign-in pages have their own
    tests; here every code is kept for the action under test)."""
    client = Client()
    client.force_login(user)
    session = client.session
    session[DEVICE_ID_SESSION_KEY] = SealedTOTPDevice.objects.get(user=user).persistent_id
    session.save()
    return client


@pytest.fixture
def as_user():
    return verified_client
