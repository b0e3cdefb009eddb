"""The admin pages for scopes and profiles, used as an administrator would: a scope AWS would
refuse is refused on the page with the reason and nothing stored; unticking "default" and
renaming do what they say, on the record, and a rename makes earlier signatures stale; a
profile's networks change only through the command that checks them and tells waiting requests.
"""

import json

import pytest
from django.contrib.auth.models import User

from approvals.models import AccessProfile, AccessScope, Status, TimelineEvent
from approvals.services.identity import totp_device_set
from approvals.services.requests import request_approve
from approvals.services.scopes import scope_set
from approvals.timeline import SYSTEM_CHAIN
from tests.approvals.admin_forms import admin_form_data
from tests.approvals.test_scopes import READ_ONLY, allow, policy
from tests.conftest import fresh_code
from tests.web.conftest import verified_client

pytestmark = pytest.mark.django_db

ADD_URL = "/admin/approvals/accessscope/add/"


@pytest.fixture
def root(cast):
    user = User.objects.create_superuser("root", password="root-password-123")
    totp_device_set(user=user)
    return verified_client(user)


def change_url(scope: AccessScope) -> str:
    return f"/admin/approvals/accessscope/{scope.pk}/change/"


def read_only_scope(cast, **extra) -> AccessScope:
    return scope_set(
        profile_slug=cast.profile.slug, name="read-only", policy_text=json.dumps(READ_ONLY), **extra
    )


def page_errors(response) -> str:
    assert response.status_code == 200, "the page should have refused the form"
    form = response.context["adminform"].form
    return json.dumps(form.errors)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("{not json", "not valid JSON"),
        (policy(allow("s3:getobject")), "write 's3:GetObject' as AWS spells it"),
        (policy(*[allow("s3:GetObject", Sid=f"S{n}") for n in range(60)]), "at most 2048"),
    ],
)
def test_the_add_page_refuses_a_scope_aws_would_refuse_and_stores_nothing(
    cast, root, text, expected
):
    data = admin_form_data(
        root, ADD_URL, profile=cast.profile.pk, name="read-only", policy_text=text
    )
    errors = page_errors(root.post(ADD_URL, data))
    assert expected in errors, errors
    assert not AccessScope.objects.exists()
    assert not TimelineEvent.objects.filter(code__startswith="approvals.scope.").exists()


def test_the_add_page_refuses_a_name_the_profile_already_has(cast, root):
    scope = read_only_scope(cast)
    data = admin_form_data(
        root, ADD_URL, profile=cast.profile.pk, name="read-only", policy_text=policy(allow("*"))
    )
    errors = page_errors(root.post(ADD_URL, data))
    assert "prod-admin already has a scope named read-only" in errors, errors
    scope.refresh_from_db()
    assert scope.policy_document == READ_ONLY and scope.revision == 1


def test_unticking_default_on_the_change_page_makes_it_not_the_default(cast, root):
    scope = read_only_scope(cast, make_default=True)
    url = change_url(scope)
    response = root.post(url, admin_form_data(root, url, is_default=False))
    assert response.status_code == 302, page_errors(response)
    scope.refresh_from_db()
    assert scope.is_default is False and scope.revision == 2
    assert (
        TimelineEvent.objects.filter(chain=SYSTEM_CHAIN).latest("sequence").detail["default"]
        is False
    )


def test_ticking_default_on_a_second_scope_moves_the_default(cast, root):
    first = read_only_scope(cast, make_default=True)
    second = scope_set(profile_slug=cast.profile.slug, name="full", policy_text=policy(allow("*")))
    url = change_url(second)
    response = root.post(url, admin_form_data(root, url, is_default=True))
    assert response.status_code == 302, page_errors(response)
    defaults = AccessScope.objects.filter(is_default=True).values_list("name", flat=True)
    assert list(defaults) == ["full"]
    first.refresh_from_db()
    assert first.is_default is False


def test_renaming_on_the_change_page_renames_on_the_record_and_makes_signatures_stale(cast, root):
    scope = read_only_scope(cast, make_default=True)
    access_request = cast.open_request()
    before = access_request.content_digest()
    request_approve(
        access_request_id=access_request.pk, approver=cast.alice, otp_code=fresh_code(cast.alice)
    )

    url = change_url(scope)
    response = root.post(url, admin_form_data(root, url, name="viewer"))
    assert response.status_code == 302, page_errors(response)
    assert list(AccessScope.objects.values_list("pk", "name")) == [(scope.pk, "viewer")]
    changed = TimelineEvent.objects.filter(chain=SYSTEM_CHAIN, code="approvals.scope.changed")
    assert changed.get().detail["renamed_from"] == "read-only"
    assert changed.get().actor_name == "root"

    access_request.refresh_from_db()
    assert access_request.scope_content()["name"] == "viewer"
    assert access_request.content_digest() != before
    told = TimelineEvent.objects.get(
        request=access_request, code="approvals.request.content_changed"
    )
    assert told.detail["stale_signatures"] == 1
    request_approve(
        access_request_id=access_request.pk, approver=cast.bob, otp_code=fresh_code(cast.bob)
    )
    access_request.refresh_from_db()
    assert access_request.status == Status.PENDING  # alice signed the old name


def test_renaming_onto_another_scopes_name_is_refused(cast, root):
    scope = read_only_scope(cast)
    scope_set(profile_slug=cast.profile.slug, name="full", policy_text=policy(allow("*")))
    url = change_url(scope)
    errors = page_errors(root.post(url, admin_form_data(root, url, name="full")))
    assert "prod-admin already has a scope named full" in errors, errors
    assert sorted(AccessScope.objects.values_list("name", flat=True)) == ["full", "read-only"]


def test_a_scopes_networks_must_lie_within_the_profiles(cast, root):
    AccessProfile.objects.filter(pk=cast.profile.pk).update(allowed_networks=["10.0.0.0/8"])
    data = admin_form_data(
        root,
        ADD_URL,
        profile=cast.profile.pk,
        name="read-only",
        policy_text=json.dumps(READ_ONLY),
        networks_text="10.1.0.0/16\n192.168.0.0/16",
    )
    errors = page_errors(root.post(ADD_URL, data))
    assert "192.168.0.0/16 is not within the profile's networks (10.0.0.0/8)" in errors, errors
    assert "10.1.0.0/16 is not" not in errors
    assert not AccessScope.objects.exists()


def test_the_profile_page_shows_its_networks_and_does_not_change_them(cast, root):
    access_request = cast.open_request()
    before = access_request.content_digest()
    url = f"/admin/approvals/accessprofile/{cast.profile.pk}/change/"
    page = root.get(url).content.decode()
    assert "manage.py profile_networks prod-admin" in page

    data = admin_form_data(root, url, name="Production admin (renamed)")
    data["allowed_networks"] = '["203.0.113.0/24"]'  # as a hand-made POST would send it
    response = root.post(url, data)
    assert response.status_code == 302, page_errors(response)
    cast.profile.refresh_from_db()
    assert cast.profile.name == "Production admin (renamed)"
    assert cast.profile.allowed_networks == []
    access_request.refresh_from_db()
    assert access_request.content_digest() == before
