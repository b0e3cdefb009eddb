from html import unescape

import pytest
from django.urls import reverse

from approvals.models import AccessRequest, Approval, Status
from approvals.services.persons import person_identifier_set
from tests.conftest import fresh_code, make_user, totp_code
from tests.web.helpers import active, codes, wrong_code

pytestmark = pytest.mark.django_db


def url(name: str, access_request) -> str:
    return reverse(f"request_{name}", args=[access_request.pk])


def test_an_approver_signs_with_a_fresh_code_and_the_second_signature_approves(cast, as_user):
    access_request = cast.open_request()
    page = as_user(cast.alice).get(url("detail", access_request)).content.decode()
    assert "Approve with this code" in page and "Can still approve: alice, bob, carol" in page
    response = as_user(cast.alice).post(
        url("approve", access_request), {"code": fresh_code(cast.alice)}
    )
    assert response.status_code == 302
    response = as_user(cast.bob).post(
        url("approve", access_request), {"code": fresh_code(cast.bob)}
    )
    assert response.status_code == 302
    access_request.refresh_from_db()
    assert access_request.status == Status.APPROVED
    assert Approval.objects.filter(request=access_request).count() == 2
    assert "approvals.request.approved" in codes(access_request)


def test_approving_needs_a_code_even_in_a_verified_session(cast, as_user):
    access_request = cast.open_request()
    response = as_user(cast.alice).post(url("approve", access_request), {})
    assert response.status_code == 400
    assert b"Enter the 6-digit code" in response.content
    assert not Approval.objects.exists()


def test_a_wrong_code_is_refused_and_recorded_on_the_request(cast, as_user):
    access_request = cast.open_request()
    response = as_user(cast.alice).post(
        url("approve", access_request), {"code": wrong_code(totp_code(cast.alice))}
    )
    assert response.status_code == 403
    assert b"not valid" in response.content
    event = access_request.events.get(code="approvals.signature.refused")
    assert event.detail["refusal"] == "otp_invalid" and event.source_ip == "127.0.0.1"
    assert not Approval.objects.exists()


def test_a_replayed_code_cannot_sign_twice(cast, as_user):
    first, second = cast.open_request(), cast.open_request(ticket="INC-2")
    code = fresh_code(cast.alice)
    assert as_user(cast.alice).post(url("approve", first), {"code": code}).status_code == 302
    response = as_user(cast.alice).post(url("approve", second), {"code": code})
    assert response.status_code == 403 and b"already used" in response.content


def test_the_requester_gets_no_sign_button_and_a_forged_approval_is_refused(cast, as_user):
    access_request = cast.open_request()
    client = as_user(cast.requester)
    page = client.get(url("detail", access_request)).content.decode()
    assert "You cannot sign: this is your own request" in page
    assert "Approve with this code" not in page
    response = client.post(url("approve", access_request), {"code": fresh_code(cast.requester)})
    assert response.status_code == 403
    assert b"you cannot approve your own request" in response.content
    assert access_request.events.filter(code="approvals.signature.refused").count() == 1
    assert not Approval.objects.exists()


def test_the_page_says_why_an_approver_cannot_sign(cast, as_user):
    access_request = cast.open_request()
    as_user(cast.alice).post(url("approve", access_request), {"code": fresh_code(cast.alice)})
    page = as_user(cast.alice).get(url("detail", access_request)).content.decode()
    assert "You cannot sign: you have already signed it" in page
    page = as_user(cast.auditor).get(url("detail", access_request)).content.decode()
    assert "You cannot sign: you are not in the approver group of prod-admin" in page
    response = as_user(cast.auditor).post(
        url("approve", access_request), {"code": fresh_code(cast.auditor)}
    )
    assert response.status_code == 403


def test_a_second_account_of_the_requester_gets_no_sign_button_and_is_told_why(cast, as_user):
    alias = make_user("rita-approver", cast.profile.approver_group)
    person_identifier_set(user=cast.requester, identifier="sso|rita")
    person_identifier_set(user=alias, identifier="sso|rita")
    access_request = cast.open_request()

    page = as_user(alias).get(url("detail", access_request)).content.decode()

    assert "Approve with this code" not in page
    assert "You cannot sign: your account belongs to the same person as the requester" in page


def test_a_second_account_of_a_signer_gets_no_sign_button_and_is_told_why(cast, as_user):
    alias = make_user("alice-ops", cast.profile.approver_group)
    person_identifier_set(user=cast.alice, identifier="alice@example.com")
    person_identifier_set(user=alias, identifier="alice@example.com")
    access_request = cast.open_request()
    as_user(cast.alice).post(url("approve", access_request), {"code": fresh_code(cast.alice)})

    page = as_user(alias).get(url("detail", access_request)).content.decode()

    assert "Approve with this code" not in page
    assert (
        "You cannot sign: your account belongs to the same person as another signer of this "
        "request" in page
    )
    assert (
        "Approve with this code"
        in as_user(cast.bob).get(url("detail", access_request)).content.decode()
    )


def test_a_rejection_needs_a_reason_and_a_code(cast, as_user):
    access_request = cast.open_request()
    client = as_user(cast.alice)
    response = client.post(url("reject", access_request), {"reject-code": fresh_code(cast.alice)})
    assert response.status_code == 400
    assert response.context["reject_form"].errors["reason"]
    response = client.post(
        url("reject", access_request),
        {"reject-code": fresh_code(cast.alice), "reject-reason": "not an incident"},
    )
    assert response.status_code == 302
    access_request.refresh_from_db()
    assert access_request.status == Status.REJECTED


def test_only_the_requester_can_cancel(cast, as_user):
    access_request = cast.open_request()
    assert as_user(cast.alice).post(url("cancel", access_request)).status_code == 403
    assert as_user(cast.requester).post(url("cancel", access_request)).status_code == 302
    access_request.refresh_from_db()
    assert access_request.status == Status.CANCELLED
    page = as_user(cast.requester).get(url("detail", access_request)).content.decode()
    assert "Cancel my request" not in page


def test_the_requester_sees_credentials_after_a_fresh_code_and_nobody_else(cast, as_user):
    access_request = active(cast)
    page = as_user(cast.requester).get(url("detail", access_request)).content.decode()
    assert "Show my credentials" in page and "data-countdown" in page
    assert (
        "Show my credentials"
        not in as_user(cast.alice).get(url("detail", access_request)).content.decode()
    )

    response = as_user(cast.alice).post(
        url("credentials", access_request), {"code": fresh_code(cast.alice)}
    )
    assert response.status_code == 403 and b"test-secret-value" not in response.content

    client = as_user(cast.requester)
    response = client.post(url("credentials", access_request), {})
    assert response.status_code == 400 and b"test-secret-value" not in response.content
    response = client.post(url("credentials", access_request), {"code": fresh_code(cast.requester)})
    assert response.status_code == 200
    assert response["Cache-Control"].startswith("no-store")
    html = unescape(response.content.decode())
    assert "export AWS_SECRET_ACCESS_KEY=test-secret-value" in html
    assert "aws_session_token = test-session-token" in html
    assert '"SecretAccessKey": "test-secret-value"' in html
    # The sandbox has no console: no console link there.
    assert "Open the AWS console" not in html
    assert codes(access_request)[-1] == "approvals.credentials.viewed"
    assert client.get(url("credentials", access_request)).status_code == 405


def test_a_credentials_view_with_a_wrong_code_is_recorded_and_shows_nothing(cast, as_user):
    access_request = active(cast)
    response = as_user(cast.requester).post(
        url("credentials", access_request), {"code": wrong_code(totp_code(cast.requester))}
    )
    assert response.status_code == 403 and b"test-secret-value" not in response.content
    assert response["Cache-Control"].startswith("no-store")
    assert codes(access_request)[-1] == "approvals.credentials.refused"


def test_an_approver_revokes_early_with_a_reason_and_a_code(cast, as_user):
    access_request = active(cast)
    client = as_user(cast.carol)
    page = client.get(url("detail", access_request)).content.decode()
    assert "Revoke now" in page
    response = client.post(url("revoke", access_request), {"revoke-code": fresh_code(cast.carol)})
    assert response.status_code == 400
    response = client.post(
        url("revoke", access_request),
        {"revoke-code": fresh_code(cast.carol), "revoke-reason": "incident over"},
    )
    assert response.status_code == 302
    access_request.refresh_from_db()
    assert access_request.status == Status.REVOKING
    assert "approvals.revocation.requested" in codes(access_request)


def test_an_outsider_cannot_revoke_and_an_auditor_is_refused(cast, as_user):
    access_request = active(cast)
    assert (
        as_user(cast.outsider)
        .post(url("revoke", access_request), {"revoke-code": "123456", "revoke-reason": "x"})
        .status_code
        == 404
    )
    page = as_user(cast.auditor).get(url("detail", access_request)).content.decode()
    assert "Revoke now" not in page
    response = as_user(cast.auditor).post(
        url("revoke", access_request),
        {"revoke-code": fresh_code(cast.auditor), "revoke-reason": "x"},
    )
    assert response.status_code == 403
    assert AccessRequest.objects.get(pk=access_request.pk).status == Status.ACTIVE
