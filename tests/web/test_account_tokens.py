"""A person's own API tokens on /account/: listed, created (shown once, expiring), revoked."""

import re
from datetime import timedelta

import pytest
from django.core.exceptions import ValidationError
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from approvals.models import PersonalToken
from approvals.services.api_access import personal_token_create

pytestmark = pytest.mark.django_db
TOKEN = re.compile(r"bgp_[A-Za-z0-9_-]{20,}")


def api_me(token: str) -> int:
    return Client().get("/api/v1/me/", HTTP_AUTHORIZATION=f"Bearer {token}").status_code


def create(client: Client, name: str = "laptop CLI", days: int = 30):
    return client.post(
        reverse("account"), {"action": "token_create", "token-name": name, "token-days": days}
    )


def test_a_token_made_on_the_account_page_is_shown_once_expires_and_works(cast, as_user):
    client = as_user(cast.alice)

    response = create(client)

    assert response.status_code == 200 and response["Cache-Control"].startswith("no-store")
    (token,) = set(TOKEN.findall(response.content.decode()))
    assert api_me(token) == 200
    stored = PersonalToken.objects.get(user=cast.alice)
    assert stored.token_hash != token and token not in str(stored.__dict__)
    expected = timezone.now() + timedelta(days=30)
    assert abs((stored.expires_at - expected).total_seconds()) < 60
    page = client.get(reverse("account")).content.decode()
    assert not TOKEN.findall(page) and stored.prefix in page and "laptop CLI" in page


def test_revoking_a_token_on_the_account_page_shuts_the_api(cast, as_user):
    client = as_user(cast.alice)
    token = personal_token_create(user=cast.alice, name="old laptop")
    stored = PersonalToken.objects.get(user=cast.alice)

    response = client.post(reverse("account"), {"action": "token_revoke", "token_id": stored.pk})

    assert response.status_code == 302
    assert api_me(token) == 401
    assert "revoked" in client.get(reverse("account")).content.decode()


def test_nobody_revokes_someone_elses_token(cast, as_user):
    victim = personal_token_create(user=cast.bob)
    bobs = PersonalToken.objects.get(user=cast.bob)

    as_user(cast.alice).post(reverse("account"), {"action": "token_revoke", "token_id": bobs.pk})

    bobs.refresh_from_db()
    assert bobs.revoked_at is None and api_me(victim) == 200
    assert str(bobs.prefix) not in as_user(cast.alice).get(reverse("account")).content.decode()


def test_an_expired_token_is_refused_and_says_so(cast):
    token = personal_token_create(user=cast.alice, days=1)
    PersonalToken.objects.filter(user=cast.alice).update(
        expires_at=timezone.now() - timedelta(seconds=1)
    )

    response = Client().get("/api/v1/me/", HTTP_AUTHORIZATION=f"Bearer {token}")

    assert response.status_code == 401
    assert "expired" in response.json()["error"]["message"]


@pytest.mark.parametrize(("days", "status"), [(0, 400), (9999, 400), ("x", 400)])
def test_a_token_lifetime_outside_the_choices_is_refused_and_makes_nothing(
    cast, as_user, days, status
):
    response = create(as_user(cast.alice), days=days)

    assert response.status_code == status
    assert not PersonalToken.objects.exists()


def test_every_new_token_expires_by_default_after_90_days(cast):
    personal_token_create(user=cast.alice)

    stored = PersonalToken.objects.get(user=cast.alice)
    assert abs((stored.expires_at - timezone.now()) - timedelta(days=90)) < timedelta(minutes=1)


def test_a_profile_cannot_promise_grants_longer_than_the_roles_session(cast):
    cast.profile.role_max_session_seconds = 3600
    cast.profile.max_duration_minutes = 120

    with pytest.raises(ValidationError) as refused:
        cast.profile.full_clean()

    assert "max_duration_minutes" in refused.value.message_dict
    cast.profile.max_duration_minutes = 60
    cast.profile.full_clean()
