"""A second account of one person (same person identifier) is never offered a signature the
service would refuse, on any page: the dashboard, a request's extensions, and the request page's
"Can still approve" list. Each page says why, in the service's own words."""

from html import unescape

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from approvals.models import Decision
from approvals.services.extensions import extension_ask, extension_sign
from approvals.services.persons import person_identifier_set
from approvals.services.requests import request_approve
from tests.conftest import fresh_code, make_user
from tests.web.helpers import active

pytestmark = pytest.mark.django_db

AS_REQUESTER = "your account belongs to the same person as the requester"
AS_SIGNER = "your account belongs to the same person as another signer of this request"


def same_person(identifier: str, *users) -> None:
    for user in users:
        person_identifier_set(user=user, identifier=identifier)


def detail(access_request) -> str:
    return reverse("request_detail", args=[access_request.pk])


def dashboard_html(client) -> str:
    return unescape(client.get(reverse("dashboard")).content.decode())


def test_the_dashboard_offers_no_signature_to_a_second_account_of_the_requester(cast, as_user):
    alias = make_user("rita-approver", cast.profile.approver_group)
    same_person("sso|rita", cast.requester, alias)
    cast.open_request()

    html = dashboard_html(as_user(alias))

    assert "Review and sign" not in html
    assert f"Cannot sign: {AS_REQUESTER}" in html
    assert "Review and sign" in dashboard_html(as_user(cast.alice))


def test_the_dashboard_offers_no_signature_to_a_second_account_of_a_signer(cast, as_user):
    alias = make_user("alice-ops", cast.profile.approver_group)
    same_person("alice@example.com", cast.alice, alias)
    signed = cast.open_request(ticket="INC-1")
    cast.open_request(ticket="INC-2")
    request_approve(
        access_request_id=signed.pk, approver=cast.alice, otp_code=fresh_code(cast.alice)
    )

    html = dashboard_html(as_user(alias))

    assert html.count("Review and sign") == 1  # INC-2, which alice has not signed
    assert f"Cannot sign: {AS_SIGNER}" in html


def dashboard_queries(client) -> int:
    with CaptureQueriesContext(connection) as queries:
        assert client.get(reverse("dashboard")).status_code == 200
    return len(queries)


def test_the_dashboard_reads_who_is_one_person_once_for_all_rows(cast, as_user):
    alias = make_user("alice-ops", cast.profile.approver_group)
    same_person("alice@example.com", cast.alice, alias)
    same_person("carol@example.com", cast.carol)
    client = as_user(alias)
    signed = cast.open_request(ticket="INC-0")
    request_approve(
        access_request_id=signed.pk, approver=cast.alice, otp_code=fresh_code(cast.alice)
    )
    cast.open_request(ticket="INC-1", requester=cast.carol)
    few = dashboard_queries(client)
    for n in range(20):
        cast.open_request(ticket=f"OPS-{n}", requester=cast.carol if n % 2 else cast.requester)

    assert dashboard_queries(client) == few
    assert dashboard_html(client).count("Review and sign") == 21


def pending_extension(cast):
    access_request = active(cast)
    extension = extension_ask(
        access_request_id=access_request.pk,
        requester=cast.requester,
        minutes=10,
        reason="replica still catching up",
    )
    return access_request, extension


def test_an_extension_is_not_offered_to_a_second_account_of_the_requester(cast, as_user):
    alias = make_user("rita-approver", cast.profile.approver_group)
    same_person("sso|rita", cast.requester, alias)
    access_request, _ = pending_extension(cast)

    page = unescape(as_user(alias).get(detail(access_request)).content.decode())

    assert "Approve the extension" not in page
    assert f"You cannot sign it: {AS_REQUESTER}." in page


def test_an_extension_is_not_offered_to_a_second_account_of_its_signer(cast, as_user):
    alias = make_user("alice-ops", cast.profile.approver_group)
    same_person("alice@example.com", cast.alice, alias)
    access_request, extension = pending_extension(cast)
    client = as_user(alias)
    # The extension's own signers count (as in the service): alice signed the request, not it.
    assert "Approve the extension" in client.get(detail(access_request)).content.decode()

    extension_sign(
        access_request_id=access_request.pk,
        extension_id=extension.pk,
        approver=cast.alice,
        otp_code=fresh_code(cast.alice),
        decision=Decision.APPROVE,
    )
    page = unescape(client.get(detail(access_request)).content.decode())

    assert "Approve the extension" not in page
    assert f"You cannot sign it: {AS_SIGNER}." in page
    assert "Approve the extension" in as_user(cast.bob).get(detail(access_request)).content.decode()


def test_can_still_approve_leaves_out_second_accounts_of_the_requester_and_signers(cast, as_user):
    rita_alias = make_user("rita-approver", cast.profile.approver_group)
    alice_alias = make_user("alice-ops", cast.profile.approver_group)
    same_person("sso|rita", cast.requester, rita_alias)
    same_person("alice@example.com", cast.alice, alice_alias)
    access_request = cast.open_request()
    client = as_user(cast.bob)
    assert (
        "Can still approve: alice, alice-ops, bob, carol</p>"
        in client.get(detail(access_request)).content.decode()
    )

    request_approve(
        access_request_id=access_request.pk, approver=cast.alice, otp_code=fresh_code(cast.alice)
    )

    assert (
        "Can still approve: bob, carol</p>" in client.get(detail(access_request)).content.decode()
    )
