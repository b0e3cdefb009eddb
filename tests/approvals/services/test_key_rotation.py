"""Retiring an encryption key: after `rotate_encryption_keys`, every sealed value (TOTP seeds,
issued STS credentials, webhook signing secrets) opens with the new key alone, so the old key,
perhaps leaked, can be removed from BREAKGLASS_ENCRYPTION_KEYS."""

import io
import json

import pytest
from cryptography.fernet import Fernet
from django.core.management import CommandError, call_command

from approvals.models import IssuedCredential, SealedTOTPDevice, TimelineEvent, WebhookEndpoint
from approvals.sealing import SealBroken, seal, unseal
from approvals.timeline import SYSTEM_CHAIN, timeline_verify
from tests.web.helpers import active

OLD_KEY = Fernet.generate_key().decode()
NEW_KEY = Fernet.generate_key().decode()
WEBHOOK_URL = "https://hooks.example.com/bg"
WEBHOOK_SECRET = b"whsec-signing-secret"


def rotate(*args: str) -> str:
    out = io.StringIO()
    call_command("rotate_encryption_keys", *args, stdout=out)
    return out.getvalue()


def totp_seeds() -> dict[int, bytes]:
    return {device.pk: device.bin_key for device in SealedTOTPDevice.objects.all()}


def every_sealed_value_opens(seeds: dict[int, bytes]) -> None:
    assert totp_seeds() == seeds
    credential = IssuedCredential.objects.get()
    assert json.loads(unseal(credential.sealed))["secret_access_key"] == "test-secret-value"
    assert unseal(WebhookEndpoint.objects.get(url=WEBHOOK_URL).sealed_secret) == WEBHOOK_SECRET


@pytest.fixture
def sealed_under_old_key(settings, request):
    """Users with authenticators, an active grant's credentials and a webhook, all sealed while
    the old key was the only one."""
    settings.ENCRYPTION_KEYS = [OLD_KEY]
    cast = request.getfixturevalue("cast")
    active(cast)
    WebhookEndpoint.objects.create(url=WEBHOOK_URL, sealed_secret=seal(WEBHOOK_SECRET))
    return totp_seeds()


def test_values_sealed_under_the_old_key_open_with_the_new_key_alone_after_rotation(
    sealed_under_old_key, settings
):
    settings.ENCRYPTION_KEYS = [NEW_KEY]
    with pytest.raises(SealBroken):
        every_sealed_value_opens(sealed_under_old_key)

    settings.ENCRYPTION_KEYS = [NEW_KEY, OLD_KEY]
    output = rotate()
    settings.ENCRYPTION_KEYS = [NEW_KEY]

    devices = SealedTOTPDevice.objects.count()
    assert f"re-sealed {devices + 2} value(s); 0 already under the newest key" in output
    every_sealed_value_opens(sealed_under_old_key)
    event = TimelineEvent.objects.get(chain=SYSTEM_CHAIN, code="approvals.encryption_keys.rotated")
    assert event.detail["resealed"] == devices + 2
    assert timeline_verify().ok


def test_a_second_run_changes_nothing(sealed_under_old_key, settings):
    settings.ENCRYPTION_KEYS = [NEW_KEY, OLD_KEY]
    rotate("--batch-size", "2")
    before = list(SealedTOTPDevice.objects.order_by("pk").values_list("sealed_key", flat=True))

    output = rotate("--batch-size", "2")

    assert "re-sealed 0 value(s)" in output
    after = list(SealedTOTPDevice.objects.order_by("pk").values_list("sealed_key", flat=True))
    assert after == before


def test_a_value_no_key_opens_is_named_and_the_rest_is_still_rotated(
    sealed_under_old_key, settings
):
    stray_key = Fernet.generate_key().decode()
    settings.ENCRYPTION_KEYS = [stray_key]
    endpoint = WebhookEndpoint.objects.create(
        url="https://hooks.example.com/other", sealed_secret=seal(b"sealed under a lost key")
    )

    settings.ENCRYPTION_KEYS = [NEW_KEY, OLD_KEY]
    with pytest.raises(CommandError, match=f"approvals.WebhookEndpoint {endpoint.pk}"):
        rotate("--batch-size", "1")

    # Each batch was committed on its own: everything readable moved to the new key, and a
    # re-run (once the lost key is found) finishes the job.
    settings.ENCRYPTION_KEYS = [NEW_KEY]
    every_sealed_value_opens(sealed_under_old_key)
    settings.ENCRYPTION_KEYS = [NEW_KEY, OLD_KEY, stray_key]
    assert "re-sealed 1 value(s)" in rotate()
    settings.ENCRYPTION_KEYS = [NEW_KEY]
    assert unseal(WebhookEndpoint.objects.get(pk=endpoint.pk).sealed_secret) == (
        b"sealed under a lost key"
    )
