import re
import time

import pytest
from django.test import Client
from django.urls import reverse

from approvals.models import BackupCode, SealedTOTPDevice
from approvals.web.access import LAST_ACTIVITY_KEY
from tests.conftest import fresh_code, totp_code
from tests.web.helpers import system_events, wrong_code

pytestmark = pytest.mark.django_db

UA = "Mozilla/5.0 test-browser"


def password_step(client: Client, user, password: str | None = None, next_url: str = ""):
    url = reverse("login") + (f"?next={next_url}" if next_url else "")
    return client.post(
        url,
        {"username": user.username, "password": password or f"{user.username}-password-123"},
        HTTP_USER_AGENT=UA,
    )


def test_it_signs_in_with_password_then_totp_and_marks_the_session_verified(cast):
    client = Client()
    response = password_step(client, cast.alice)
    assert response.status_code == 302 and response.url == reverse("login_otp")
    # The password alone opens no session: every page still sends you to sign in.
    assert client.get(reverse("dashboard")).status_code == 302
    response = client.post(reverse("login_otp"), {"code": fresh_code(cast.alice)})
    assert response.status_code == 302 and response.url == reverse("dashboard")
    page = client.get(reverse("dashboard"))
    assert page.status_code == 200
    assert b"OTP verified" in page.content and b"alice" in page.content
    event = system_events("approvals.signin.succeeded").get()
    assert event.actor_name == "alice" and event.source_ip == "127.0.0.1"


def test_it_records_a_wrong_password_with_address_and_user_agent(cast):
    client = Client()
    response = password_step(client, cast.alice, password="nope")
    assert response.status_code == 400
    assert b"username or password is not right" in response.content
    event = system_events("approvals.signin.failed").get()
    assert event.detail == {"username": "alice"}
    assert event.source_ip == "127.0.0.1" and event.user_agent == UA
    assert "nope" not in str(event.detail)


def test_it_throttles_sign_in_after_repeated_failures_even_with_the_right_password(cast, settings):
    settings.SIGNIN_MAX_FAILURES = 3
    client = Client()
    for _ in range(3):
        assert password_step(client, cast.alice, password="wrong").status_code == 400
    response = password_step(client, cast.alice)
    assert response.status_code == 400
    assert b"too many failed sign-ins" in response.content
    assert system_events("approvals.signin.throttled").count() == 1
    # Another account from elsewhere is not locked out by alice's attacker.
    assert password_step(Client(REMOTE_ADDR="10.0.0.9"), cast.bob).status_code == 302


def test_a_wrong_code_is_refused_recorded_and_throttled(cast):
    client = Client()
    password_step(client, cast.alice)
    response = client.post(reverse("login_otp"), {"code": wrong_code(totp_code(cast.alice))})
    assert response.status_code == 400 and b"not valid" in response.content
    event = system_events("approvals.signin.otp_failed").get()
    assert event.detail["refusal"] == "otp_invalid"
    assert SealedTOTPDevice.objects.get(user=cast.alice).throttling_failure_count == 1
    # Right after a failure, the device makes you wait (django-otp's throttle, in the database).
    response = client.post(reverse("login_otp"), {"code": fresh_code(cast.alice)})
    assert b"too many failed OTP attempts" in response.content


def test_a_replayed_code_is_refused_at_sign_in(cast):
    first = Client()
    password_step(first, cast.alice)
    code = fresh_code(cast.alice)
    assert first.post(reverse("login_otp"), {"code": code}).status_code == 302
    second = Client()
    password_step(second, cast.alice)
    response = second.post(reverse("login_otp"), {"code": code})
    assert response.status_code == 400 and b"already used" in response.content


def test_the_code_step_needs_the_password_step_first(cast):
    response = Client().get(reverse("login_otp"))
    assert response.status_code == 302 and response.url == reverse("login")


def test_it_returns_to_the_page_asked_for_but_never_off_site(cast):
    client = Client()
    password_step(client, cast.alice, next_url="/requests/new/")
    response = client.post(reverse("login_otp"), {"code": fresh_code(cast.alice)})
    assert response.url == "/requests/new/"
    client = Client()
    password_step(client, cast.bob, next_url="https://evil.example/")
    response = client.post(reverse("login_otp"), {"code": fresh_code(cast.bob)})
    assert response.url == reverse("dashboard")


def test_a_user_without_a_device_enrols_with_a_qr_code_and_a_first_code(cast):
    SealedTOTPDevice.objects.filter(user=cast.carol).delete()
    client = Client()
    response = password_step(client, cast.carol)
    assert response.url == reverse("enrol")
    page = client.get(reverse("enrol"))
    assert page.status_code == 200
    assert page["Cache-Control"].startswith("no-store")
    assert b"<svg" in page.content and b"<path" in page.content
    # The same device (and QR code) across reloads.
    device = SealedTOTPDevice.objects.get(user=cast.carol)
    assert not device.confirmed
    client.get(reverse("enrol"))
    assert SealedTOTPDevice.objects.get(user=cast.carol).pk == device.pk

    response = client.post(reverse("enrol"), {"code": "12345"})
    assert response.status_code == 400 and b"6 characters" in response.content
    response = client.post(reverse("enrol"), {"code": wrong_code(totp_code(cast.carol))})
    assert response.status_code == 400
    assert system_events("approvals.otp.enrolment_refused").count() == 1
    time.sleep(1.1)  # the throttle of the failure just made
    response = client.post(reverse("enrol"), {"code": fresh_code(cast.carol)})
    assert response.status_code == 302
    assert SealedTOTPDevice.objects.get(user=cast.carol).confirmed
    assert client.get(reverse("dashboard")).status_code == 200
    assert system_events("approvals.otp.enrolled").count() == 1


def test_a_user_with_a_device_cannot_enrol_another(cast):
    client = Client()
    password_step(client, cast.alice)
    assert client.get(reverse("enrol")).url == reverse("login_otp")


def test_backup_codes_are_shown_once_stored_hashed_and_work_once(cast, as_user):
    client = as_user(cast.alice)
    response = client.post(reverse("account"), {"code": wrong_code(totp_code(cast.alice))})
    assert response.status_code == 400 and not BackupCode.objects.exists()
    time.sleep(1.1)
    response = client.post(reverse("account"), {"code": fresh_code(cast.alice)})
    assert response.status_code == 200 and response["Cache-Control"].startswith("no-store")
    codes = re.findall(rb"\b[a-z2-7]{4}-[a-z2-7]{4}-[a-z2-7]{4}\b", response.content)
    assert len(codes) == 10
    stored = set(BackupCode.objects.values_list("code_hash", flat=True))
    assert len(stored) == 10 and not any(c.decode() in h for c in codes for h in stored)
    assert not re.findall(rb"[a-z2-7]{4}-[a-z2-7]{4}-[a-z2-7]{4}", client.get("/account/").content)

    code = codes[0].decode()
    signer = Client()
    password_step(signer, cast.alice)
    assert signer.post(reverse("login_otp"), {"code": code}).status_code == 302
    again = Client()
    password_step(again, cast.alice)
    response = again.post(reverse("login_otp"), {"code": code})
    assert response.status_code == 400 and b"already used" in response.content


def test_sign_out_is_a_post_and_ends_the_session(cast, as_user):
    client = as_user(cast.alice)
    assert client.get(reverse("logout")).status_code == 405
    client.post(reverse("logout"))
    assert client.get(reverse("dashboard")).status_code == 302


def test_an_idle_session_expires_even_while_the_live_timeline_polls(cast, as_user, settings):
    access_request = cast.open_request()
    client = as_user(cast.requester)
    client.get(reverse("dashboard"))
    live = reverse("request_live", args=[access_request.pk])
    assert client.get(live).status_code == 200
    session = client.session
    session[LAST_ACTIVITY_KEY] = time.time() - settings.SESSION_IDLE_MINUTES * 60 - 5
    session.save()
    assert client.get(live).status_code == 401
    assert client.get(reverse("dashboard")).status_code == 302
