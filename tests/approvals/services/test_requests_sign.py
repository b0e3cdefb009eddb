from datetime import timedelta

import pytest
from django.utils import timezone

from approvals.errors import RequestInvalid, SignatureRefused
from approvals.models import (
    AccessRequest,
    Approval,
    Decision,
    SealedTOTPDevice,
    Status,
    TimelineEvent,
)
from approvals.services.requests import request_approve, request_reject
from approvals.timeline import EventSource
from approvals.transitions import request_transition
from tests.broker import drain_task_messages
from tests.conftest import totp_code


def approve(access_request, approver, code=None, **kwargs):
    return request_approve(
        access_request_id=access_request.pk,
        approver=approver,
        otp_code=code if code is not None else totp_code(approver),
        **kwargs,
    )


def refusal_events(access_request):
    return list(
        TimelineEvent.objects.filter(request=access_request, code="approvals.signature.refused")
    )


def test_two_approvals_approve_it_and_enqueue_activation_after_commit(
    cast, django_capture_on_commit_callbacks
):
    access_request = cast.open_request()
    drain_task_messages(wait=0.1)

    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        approve(
            access_request, cast.alice, source=EventSource(ip="192.0.2.10", user_agent="pytest")
        )
    assert callbacks == []
    access_request.refresh_from_db()
    assert access_request.status == Status.PENDING

    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        approve(access_request, cast.bob)
    access_request.refresh_from_db()

    assert access_request.status == Status.APPROVED
    assert access_request.approved_at is not None
    assert len(callbacks) == 1
    assert drain_task_messages() == [("approvals.activate_request", [str(access_request.pk)])]
    approvals = list(access_request.approvals.order_by("created_at"))
    assert [a.approver_name for a in approvals] == ["alice", "bob"]
    assert {a.content_digest for a in approvals} == {access_request.content_digest()}
    assert approvals[0].source_ip == "192.0.2.10"
    codes = list(
        TimelineEvent.objects.filter(request=access_request).values_list("code", flat=True)
    )
    assert codes == [
        "approvals.request.opened",
        "approvals.signature.approved",
        "approvals.signature.approved",
        "approvals.request.approved",
    ]


def test_the_requester_cannot_approve_their_own_request(cast):
    access_request = cast.open_request(requester=cast.alice)

    with pytest.raises(SignatureRefused, match="you cannot approve your own request") as refused:
        approve(access_request, cast.alice)

    assert refused.value.code == "self_approval"
    assert not Approval.objects.exists()
    [event] = refusal_events(access_request)
    assert event.detail["refusal"] == "self_approval"
    assert event.outcome == "refused"


def test_an_approver_cannot_approve_twice(cast):
    access_request = cast.open_request()
    approve(access_request, cast.alice)

    with pytest.raises(SignatureRefused, match="already signed") as refused:
        approve(access_request, cast.alice, code=totp_code(cast.alice, steps_ahead=1))

    assert refused.value.code == "already_signed"
    assert access_request.approvals.count() == 1
    access_request.refresh_from_db()
    assert access_request.status == Status.PENDING


def test_only_members_of_the_profiles_approver_group_may_approve(cast):
    access_request = cast.open_request()

    with pytest.raises(SignatureRefused, match="not in the approver group of profile prod-admin"):
        approve(access_request, cast.outsider)
    with pytest.raises(SignatureRefused, match="not in the approver group"):
        approve(access_request, cast.auditor)

    assert not Approval.objects.exists()
    assert len(refusal_events(access_request)) == 2


def test_a_request_that_is_not_pending_cannot_be_approved(cast):
    access_request = cast.open_request()
    request_transition(
        access_request=access_request,
        to_status=Status.CANCELLED,
        code="approvals.request.cancelled",
    )

    with pytest.raises(SignatureRefused, match="the request is cancelled, not pending"):
        approve(access_request, cast.alice)


def test_a_request_past_its_approval_deadline_cannot_be_approved(cast):
    access_request = cast.open_request()
    AccessRequest.objects.filter(pk=access_request.pk).update(
        approval_deadline=timezone.now() - timedelta(seconds=1)
    )

    with pytest.raises(SignatureRefused, match="approval deadline has passed") as refused:
        approve(access_request, cast.alice)
    assert refused.value.code == "deadline_passed"


def test_an_approver_without_a_confirmed_device_cannot_sign(cast):
    SealedTOTPDevice.objects.filter(user=cast.alice).update(confirmed=False)
    access_request = cast.open_request()

    with pytest.raises(SignatureRefused, match="no confirmed TOTP device") as refused:
        approve(access_request, cast.alice, code="123456")
    assert refused.value.code == "no_otp_device"


def test_a_wrong_code_is_refused_and_recorded(cast):
    access_request = cast.open_request()
    good = totp_code(cast.alice)
    wrong = f"{(int(good) + 1) % 1_000_000:06d}"

    with pytest.raises(SignatureRefused, match="OTP code is not valid") as refused:
        approve(access_request, cast.alice, code=wrong)

    assert refused.value.code == "otp_invalid"
    [event] = refusal_events(access_request)
    assert event.actor_name == "alice"
    assert wrong not in str(event.detail)
    assert not Approval.objects.exists()


def test_a_malformed_code_is_refused_and_still_counts_towards_throttling(cast):
    access_request = cast.open_request()

    with pytest.raises(SignatureRefused, match="must be 6 digits"):
        approve(access_request, cast.alice, code="12ab")

    assert SealedTOTPDevice.objects.get(user=cast.alice).throttling_failure_count == 1


def test_a_replayed_code_is_refused(cast):
    first = cast.open_request()
    second = cast.open_request(ticket="INC-5678")
    code = totp_code(cast.alice)
    approve(first, cast.alice, code=code)

    with pytest.raises(SignatureRefused, match="OTP code already used") as refused:
        approve(second, cast.alice, code=code)

    assert refused.value.code == "otp_replayed"
    assert not second.approvals.exists()


@pytest.mark.django_db(transaction=True)
def test_failed_attempts_throttle_and_the_count_survives_the_refusal(cast):
    access_request = cast.open_request()

    with pytest.raises(SignatureRefused, match="not valid"):
        approve(
            access_request,
            cast.alice,
            code="000000" if totp_code(cast.alice) != "000000" else "111111",
        )
    # The refusal was raised, yet the failure was committed: a fresh read sees it.
    assert SealedTOTPDevice.objects.get(user=cast.alice).throttling_failure_count == 1

    with pytest.raises(SignatureRefused, match="too many failed OTP attempts") as refused:
        approve(access_request, cast.alice)

    assert refused.value.code == "otp_throttled"
    assert not Approval.objects.exists()
    assert [e.detail["refusal"] for e in refusal_events(access_request)] == [
        "otp_invalid",
        "otp_throttled",
    ]


def test_one_rejection_ends_the_request(cast):
    access_request = cast.open_request()

    approval = request_reject(
        access_request_id=access_request.pk,
        approver=cast.alice,
        otp_code=totp_code(cast.alice),
        reason="Not an emergency; use the normal change process.",
    )
    access_request.refresh_from_db()

    assert approval.decision == Decision.REJECT
    assert access_request.status == Status.REJECTED
    with pytest.raises(SignatureRefused, match="rejected, not pending"):
        approve(access_request, cast.bob)


def test_a_rejection_needs_a_reason_and_changes_nothing_without_one(cast):
    access_request = cast.open_request()

    with pytest.raises(RequestInvalid) as refused:
        request_reject(
            access_request_id=access_request.pk,
            approver=cast.alice,
            otp_code=totp_code(cast.alice),
            reason="  ",
        )

    assert refused.value.fields == {"reason": ["reason is required"]}
    assert SealedTOTPDevice.objects.get(user=cast.alice).last_t == -1
    access_request.refresh_from_db()
    assert access_request.status == Status.PENDING
