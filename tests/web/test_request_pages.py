import json

import pytest
from django.contrib.auth.models import Group
from django.test import Client
from django.urls import reverse

from approvals.models import AccessProfile, AccessRequest
from tests.web.helpers import codes

pytestmark = pytest.mark.django_db


def valid_form(cast, **overrides) -> dict:
    return {
        "profile": cast.profile.slug,
        "ticket": "INC-4242",
        "justification": "Primary database is read-only; need to fail over.",
        "duration_minutes": "30",
    } | overrides


def test_the_request_form_lists_profiles_with_their_limit_and_approvers(cast, as_user):
    page = as_user(cast.requester).get(reverse("request_new"))
    assert page.status_code == 200
    html = page.content.decode()
    assert "up to 60 min" in html and "alice, bob, carol" in html
    assert 'for="id_ticket"' in html and 'for="id_justification"' in html


def test_filing_a_request_opens_it_and_shows_its_page(cast, as_user):
    client = as_user(cast.requester)
    response = client.post(reverse("request_new"), valid_form(cast))
    access_request = AccessRequest.objects.get()
    assert response.url == reverse("request_detail", args=[access_request.pk])
    assert access_request.requester == cast.requester
    page = client.get(response.url)
    assert b"PENDING" in page.content and b"INC-4242" in page.content
    event = access_request.events.get()
    assert event.source_ip == "127.0.0.1"


@pytest.mark.parametrize(
    ("overrides", "field", "message"),
    [
        ({"ticket": "not a ticket"}, "ticket", "must look like INC-1234"),
        ({"ticket": ""}, "ticket", "This field is required"),
        ({"justification": "  "}, "justification", "This field is required"),
        ({"duration_minutes": "61"}, "duration_minutes", "between 1 and 60"),
        ({"duration_minutes": "0"}, "duration_minutes", "greater than or equal to 1"),
        ({"duration_minutes": "ten"}, "duration_minutes", "Enter a whole number"),
        ({"profile": "nope"}, "profile", "Select a valid choice"),
    ],
)
def test_the_request_form_shows_each_error_next_to_its_field(
    cast, as_user, overrides, field, message
):
    response = as_user(cast.requester).post(reverse("request_new"), valid_form(cast, **overrides))
    assert response.status_code == 400
    assert message in " ".join(response.context["form"].errors[field])
    assert f'id="id_{field}_error"' in response.content.decode()
    assert not AccessRequest.objects.exists()


def test_pages_need_a_verified_session(cast):
    access_request = cast.open_request()
    client = Client()
    for url in (
        reverse("dashboard"),
        reverse("request_new"),
        reverse("request_detail", args=[access_request.pk]),
        reverse("request_export", args=[access_request.pk, "json"]),
        reverse("account"),
    ):
        response = client.get(url)
        assert response.status_code == 302 and response.url.startswith(reverse("login"))
    unverified = Client()
    unverified.force_login(cast.requester)
    assert unverified.get(reverse("dashboard")).url == reverse("login_otp")
    assert unverified.get(reverse("request_live", args=[access_request.pk])).status_code == 401


def test_requester_approvers_and_auditors_see_a_request_and_nobody_else(cast, as_user):
    access_request = cast.open_request()
    others = Group.objects.create(name="other-approvers")
    other_profile = AccessProfile.objects.create(
        slug="other",
        name="Other",
        account_id=cast.profile.account_id,
        region="eu-west-1",
        role_arn=cast.profile.role_arn,
        principal_arn=cast.profile.principal_arn,
        approver_group=others,
    )
    hidden = cast.open_request(profile_slug=other_profile.slug, requester=cast.outsider)
    urls = [
        reverse("request_detail", args=[access_request.pk]),
        reverse("request_live", args=[access_request.pk]),
        reverse("request_export", args=[access_request.pk, "json"]),
        reverse("request_export", args=[access_request.pk, "csv"]),
    ]
    for user in (cast.requester, cast.alice, cast.auditor):
        client = as_user(user)
        assert all(client.get(url).status_code == 200 for url in urls), user
        assert client.get(reverse("request_detail", args=[hidden.pk])).status_code == (
            200 if user == cast.auditor else 404
        )
    outsider = as_user(cast.outsider)
    for url in urls:
        response = outsider.get(url)
        assert response.status_code == 404
        assert b"not something you may see" in response.content
    for action in ("approve", "reject", "cancel", "revoke", "credentials"):
        url = reverse(f"request_{action}", args=[access_request.pk])
        assert outsider.post(url, {"code": "123456"}).status_code == 404
    assert codes(access_request) == ["approvals.request.opened"]


def test_an_unknown_request_is_the_same_404(cast, as_user):
    response = as_user(cast.alice).get("/requests/00000000-0000-0000-0000-000000000000/")
    assert response.status_code == 404


def test_the_export_is_the_verified_record(cast, as_user):
    access_request = cast.open_request()
    client = as_user(cast.auditor)
    response = client.get(reverse("request_export", args=[access_request.pk, "json"]))
    record = json.loads(response.content)
    assert record["chain_verified"] and record["request"]["ticket"] == "INC-1234"
    assert "attachment" in response["Content-Disposition"]
    csv = client.get(reverse("request_export", args=[access_request.pk, "csv"]))
    assert csv.content.decode().splitlines()[0].startswith("sequence,at,actor,code")
    assert client.get(f"/requests/{access_request.pk}/export.xml").status_code == 404


def test_every_form_carries_a_csrf_token_and_a_post_without_one_is_refused(cast, as_user):
    access_request = cast.open_request()
    client = as_user(cast.requester)
    page = client.get(reverse("request_detail", args=[access_request.pk])).content.decode()
    assert page.count("<form") == page.count('name="csrfmiddlewaretoken"')
    strict = Client(enforce_csrf_checks=True)
    strict.cookies = client.cookies
    response = strict.post(reverse("request_cancel", args=[access_request.pk]))
    assert response.status_code == 403 and b"This form has expired" in response.content
    assert codes(access_request) == ["approvals.request.opened"]


def test_pages_send_security_headers(cast, as_user):
    response = as_user(cast.requester).get(reverse("dashboard"))
    assert "script-src 'self'" in response["Content-Security-Policy"]
    assert "frame-ancestors 'none'" in response["Content-Security-Policy"]
    assert response["X-Frame-Options"] == "DENY"
    assert response["X-Content-Type-Options"] == "nosniff"
