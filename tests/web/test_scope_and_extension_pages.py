"""The pages: the request form offers the profile's scopes (and picks the profile and its
default when there is only one), the request page shows the scope in full and where the
credentials work, and extensions are asked for and signed there, with refusals explained."""

import json
from html import unescape

import pytest
from django.urls import reverse

from approvals.models import AccessProfile, ExtensionStatus, GrantExtension
from approvals.services.scopes import profile_networks_set, scope_set
from tests.conftest import fresh_code
from tests.web.helpers import active, wrong_code

pytestmark = pytest.mark.django_db

READ_ONLY = {
    "Version": "2012-10-17",
    "Statement": [{"Effect": "Allow", "Action": "s3:GetObject", "Resource": "*"}],
}


def read_only_default(cast) -> None:
    scope_set(
        profile_slug=cast.profile.slug,
        name="read-only",
        policy_text=json.dumps(READ_ONLY),
        make_default=True,
    )


def test_the_form_preselects_the_only_profile_and_its_default_scope(cast, as_user):
    read_only_default(cast)
    scope_set(profile_slug=cast.profile.slug, name="full", policy_text=json.dumps(READ_ONLY))
    page = as_user(cast.requester).get(reverse("request_new")).content.decode()
    assert '<option value="prod-admin" selected>' in page
    assert '<option value="read-only" selected>read-only (default)</option>' in page
    assert '<option value="full">full</option>' in page


def test_the_form_preselects_nothing_when_the_requester_has_two_profiles(cast, as_user):
    read_only_default(cast)
    AccessProfile.objects.create(
        slug="staging-admin",
        name="Staging admin",
        account_id=cast.profile.account_id,
        region=cast.profile.region,
        role_arn=cast.profile.role_arn,
        principal_arn=cast.profile.principal_arn,
        approver_group=cast.profile.approver_group,
    )
    page = as_user(cast.requester).get(reverse("request_new")).content.decode()
    assert '<option value="prod-admin">' in page
    assert '<option value="staging-admin">' in page
    assert '<option value="read-only">read-only (default)</option>' in page
    assert '<option value="" selected>Choose a profile…</option>' in page
    assert '<option value="" selected>The profile&#x27;s default scope</option>' in page


def test_filing_with_a_scope_and_refusing_an_unknown_one(cast, as_user):
    read_only_default(cast)
    body = {
        "profile": "prod-admin",
        "ticket": "INC-77",
        "justification": "Need to read the runbook bucket.",
        "duration_minutes": 20,
        "scope": "read-only",
    }
    response = as_user(cast.requester).post(reverse("request_new"), body)
    assert response.status_code == 302
    response = as_user(cast.requester).post(reverse("request_new"), {**body, "scope": "admin"})
    assert response.status_code == 400
    assert "Select a valid choice" in unescape(response.content.decode())


def test_the_request_page_shows_the_scope_in_full_and_where_it_works(cast, as_user):
    read_only_default(cast)
    profile_networks_set(profile_slug=cast.profile.slug, networks=["203.0.113.0/24"])
    access_request = cast.open_request()
    page = unescape(
        as_user(cast.alice)
        .get(reverse("request_detail", args=[access_request.pk]))
        .content.decode()
    )
    assert 'data-testid="scope-name">read-only' in page
    assert '"Action": "s3:GetObject"' in page
    assert "only\n      203.0.113.0/24" in page or "203.0.113.0/24 <span" in page

    scope_set(profile_slug=cast.profile.slug, name="read-only", policy_text=json.dumps(READ_ONLY))
    page = as_user(cast.alice).get(reverse("request_detail", args=[access_request.pk]))
    assert b'data-testid="scope-edited"' in page.content


def test_asking_for_more_time_and_signing_it_on_the_pages(cast, as_user):
    access_request = active(cast)
    detail = reverse("request_detail", args=[access_request.pk])
    ask = reverse("extension_ask", args=[access_request.pk])
    assert b"Ask for more time" in as_user(cast.requester).get(detail).content
    assert b"Ask for more time" not in as_user(cast.alice).get(detail).content

    refused = as_user(cast.requester).post(ask, {"extend-minutes": "45", "extend-reason": "x"})
    assert refused.status_code == 400
    assert "allows at most 60" in unescape(refused.content.decode())
    assert not GrantExtension.objects.exists()

    response = as_user(cast.requester).post(
        ask, {"extend-minutes": "10", "extend-reason": "replica still catching up"}
    )
    assert response.status_code == 302
    extension = GrantExtension.objects.get()
    sign = reverse("extension_sign", args=[access_request.pk, extension.pk, "approve"])

    own = as_user(cast.requester).post(sign, {"ext-code": fresh_code(cast.requester)})
    assert own.status_code == 403
    assert "you cannot approve your own request" in unescape(own.content.decode())
    bad = as_user(cast.alice).post(sign, {"ext-code": wrong_code(fresh_code(cast.alice))})
    assert bad.status_code == 403
    assert as_user(cast.bob).post(sign, {"ext-code": fresh_code(cast.bob)}).status_code == 302
    page = as_user(cast.bob).get(detail).content.decode()
    assert "You cannot sign it: you have already signed it." in unescape(page)
    assert as_user(cast.carol).post(sign, {"ext-code": fresh_code(cast.carol)}).status_code == 302
    extension.refresh_from_db()
    assert extension.status == ExtensionStatus.APPROVED
