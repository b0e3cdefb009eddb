"""Each rule has one home: what a page says before you act is what the service refuses with."""

from datetime import timedelta

import pytest
from django.utils import timezone

from approvals import rules, selectors
from approvals.errors import SignatureRefused
from approvals.models import AccessRequest
from approvals.services.requests import request_approve
from tests.conftest import fresh_code


def _page_blocker(user, access_request: AccessRequest) -> str | None:
    scope = selectors.viewer_scope(user=user)
    signed = access_request.approvals.filter(approver=user).exists()
    return selectors.signing_blocker(scope=scope, access_request=access_request, signed=signed)


@pytest.mark.parametrize(
    ("who", "code", "explanation"),
    [
        ("requester", "self_approval", "this is your own request"),
        ("outsider", "not_an_approver", "you are not in the approver group of prod-admin"),
    ],
)
def test_the_page_and_the_service_refuse_a_signer_with_the_same_rule(cast, who, code, explanation):
    access_request = cast.open_request()
    user = getattr(cast, who)

    assert _page_blocker(user, access_request) == explanation
    with pytest.raises(SignatureRefused) as refused:
        request_approve(access_request_id=access_request.pk, approver=user, otp_code="000000")
    assert refused.value.code == code


def test_a_second_signature_is_refused_by_the_page_and_the_service_alike(cast):
    access_request = cast.open_request()
    request_approve(
        access_request_id=access_request.pk, approver=cast.alice, otp_code=fresh_code(cast.alice)
    )

    assert _page_blocker(cast.alice, access_request) == "you have already signed it"
    with pytest.raises(SignatureRefused) as refused:
        request_approve(
            access_request_id=access_request.pk,
            approver=cast.alice,
            otp_code=fresh_code(cast.alice),
        )
    assert refused.value.code == "already_signed"


def test_an_approval_stops_counting_when_its_signer_leaves_the_group_or_the_content_changes(cast):
    access_request = cast.open_request()
    approval = request_approve(
        access_request_id=access_request.pk, approver=cast.alice, otp_code=fresh_code(cast.alice)
    )

    assert rules.approval_still_counts(
        access_request=access_request, approval=approval, is_approver=True
    )
    assert not rules.approval_still_counts(
        access_request=access_request, approval=approval, is_approver=False
    )
    AccessRequest.objects.filter(pk=access_request.pk).update(justification="rewritten")
    access_request.refresh_from_db()
    assert not rules.approval_still_counts(
        access_request=access_request, approval=approval, is_approver=True
    )


def test_cancel_revoke_and_credentials_rules_name_who_may_act(cast):
    access_request = cast.open_request()

    assert rules.cancel_refusal(access_request=access_request, user_id=cast.requester.pk) is None
    assert rules.cancel_refusal(access_request=access_request, user_id=cast.alice.pk) is not None
    assert (
        rules.cancel_refusal(access_request=access_request, user_id=None, integration="other")
        is not None
    )
    refusal = rules.revoke_refusal(
        access_request=access_request, user_id=cast.requester.pk, is_approver=False
    )
    assert refusal is not None and "only an active grant" in refusal.message
    refusal = rules.credentials_refusal(access_request=access_request, user_id=cast.alice.pk)
    assert refusal is not None and "only the requester" in refusal.message


def test_a_deadline_in_the_past_blocks_signing(cast):
    access_request = cast.open_request()
    refusal = rules.signing_refusal(
        access_request=access_request,
        signer_id=cast.alice.pk,
        is_approver=True,
        already_signed=False,
        now=access_request.approval_deadline + timedelta(seconds=1),
    )
    assert refusal is not None and refusal.code == "deadline_passed"
    assert timezone.now() < access_request.approval_deadline
