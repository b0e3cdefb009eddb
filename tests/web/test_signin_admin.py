"""The admin has no front door of its own: /admin/login/ sends everyone to the portal's sign-in
(same throttle, same record), and nothing it receives signs anyone in."""

from urllib.parse import parse_qs, urlsplit

import pytest
from django.contrib.auth.models import User
from django.test import Client
from django.urls import reverse

from approvals.models import TimelineEvent
from approvals.services.identity import totp_device_set
from tests.conftest import fresh_code
from tests.web.helpers import system_events

pytestmark = pytest.mark.django_db

ROOT_PASSWORD = "root-password-123"


@pytest.fixture
def root() -> User:
    user = User.objects.create_superuser("root", password=ROOT_PASSWORD)
    totp_device_set(user=user)
    return user


def _admin_login_post(client: Client, password: str, otp_token: str = ""):
    return client.post(
        "/admin/login/?next=/admin/",
        {"username": "root", "password": password, "otp_token": otp_token, "next": "/admin/"},
    )


def test_the_admin_login_is_no_password_oracle_and_signs_nobody_in(root):
    events_before = TimelineEvent.objects.count()
    wrong = _admin_login_post(Client(), "wrong-password")
    right = _admin_login_post(Client(), ROOT_PASSWORD)
    both = _admin_login_post(Client(), ROOT_PASSWORD, fresh_code(root))
    # Whatever it is sent, it answers the same redirect: it never looks at the password.
    for response in (wrong, right, both):
        assert response.status_code == 302
        assert response.url == reverse("login") + "?next=/admin/"
        assert "_auth_user_id" not in response.wsgi_request.session
    assert TimelineEvent.objects.count() == events_before


def test_a_code_posted_to_the_admin_login_opens_no_portal_session(root):
    client = Client()
    _admin_login_post(client, ROOT_PASSWORD, fresh_code(root))
    assert client.get("/admin/").status_code == 302
    assert client.get(reverse("dashboard")).status_code == 302
    assert not system_events("approvals.signin.succeeded").exists()


def test_guessing_the_admin_password_goes_through_the_portal_throttle(root, settings):
    settings.SIGNIN_MAX_FAILURES = 3
    client = Client()
    for _ in range(10):
        _admin_login_post(client, "wrong-password")
    # The admin login checked nothing; the portal's sign-in is the only place passwords count.
    assert not system_events("approvals.signin.failed").exists()
    for _ in range(3):
        client.post(reverse("login"), {"username": "root", "password": "wrong-password"})
    assert system_events("approvals.signin.failed").count() == 3
    response = client.post(reverse("login"), {"username": "root", "password": ROOT_PASSWORD})
    assert response.status_code == 400


def test_the_admin_signs_in_through_the_portal_and_is_recorded(root):
    client = Client()
    response = client.get("/admin/")
    assert response.status_code == 302
    follow = client.get(response.url)
    assert follow.status_code == 302
    login_url = urlsplit(follow.url)
    assert login_url.path == reverse("login")
    assert parse_qs(login_url.query)["next"] == ["/admin/"]
    client.post(follow.url, {"username": "root", "password": ROOT_PASSWORD})
    response = client.post(reverse("login_otp"), {"code": fresh_code(root)})
    assert response.url == "/admin/"
    assert client.get("/admin/").status_code == 200
    event = system_events("approvals.signin.succeeded").get()
    assert event.actor_name == "root"


def test_the_admin_login_never_forwards_to_another_site(root):
    response = Client().get("/admin/login/?next=https://evil.example/")
    assert response.status_code == 302
    assert response.url == reverse("login")


def test_a_verified_portal_user_who_is_not_staff_is_refused_by_the_admin(cast, as_user):
    client = as_user(cast.alice)
    response = client.get("/admin/")
    assert response.status_code == 302
    assert client.get("/admin/approvals/accessprofile/").status_code == 302
