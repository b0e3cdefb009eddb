import pytest
from django.test import Client
from django_otp import DEVICE_ID_SESSION_KEY

from approvals.models import SealedTOTPDevice
from approvals.services.api_access import personal_token_create
from tests.api.conftest import assert_error

pytestmark = pytest.mark.django_db


def test_each_token_has_its_own_budget_and_the_429_says_when_to_retry(api, settings):
    settings.API_THROTTLE_RATES = {**settings.API_THROTTLE_RATES, "token": "3/min"}
    api.secrets["rita-2"] = personal_token_create(user=api.cast.requester, name="second")

    statuses = [api.get("rita", "/api/v1/me/").status_code for _ in range(4)]
    throttled = api.get("rita", "/api/v1/me/")

    assert statuses == [200, 200, 200, 429]
    error = assert_error(throttled, 429, code="throttled", message="retry in")
    assert int(throttled.headers["Retry-After"]) > 0
    assert error["fields"] == {}
    assert api.get("rita-2", "/api/v1/me/").status_code == 200


def test_integration_keys_are_throttled_on_their_own_rate(api, settings):
    settings.API_THROTTLE_RATES = {**settings.API_THROTTLE_RATES, "integration": "2/min"}

    statuses = [api.get("servicenow", "/api/v1/profiles/").status_code for _ in range(3)]

    assert statuses == [200, 200, 429]


def _verified_session(user, *, enforce_csrf: bool) -> Client:
    client = Client(enforce_csrf_checks=enforce_csrf)
    client.force_login(user)
    session = client.session
    session[DEVICE_ID_SESSION_KEY] = SealedTOTPDevice.objects.get(user=user).persistent_id
    session.save()
    return client


def test_a_verified_browser_session_can_read_but_must_send_the_csrf_token_to_write(api):
    client = _verified_session(api.cast.requester, enforce_csrf=True)

    assert client.get("/api/v1/me/").json() == {"kind": "person", "name": "rita"}
    refused = client.post("/api/v1/requests/", api.open_body(), content_type="application/json")
    assert_error(refused, 403, code="permission_denied", message="CSRF")


def test_a_session_without_its_second_factor_is_not_signed_in_for_the_api(api):
    client = Client()
    client.force_login(api.cast.requester)

    assert_error(client.get("/api/v1/me/"), 401, code="not_authenticated")
