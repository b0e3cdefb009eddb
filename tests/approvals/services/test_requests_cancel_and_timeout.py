from datetime import timedelta

import pytest
from django.utils import timezone

from approvals.errors import NotAllowed, NotFound
from approvals.models import AccessRequest, Status, TimelineEvent
from approvals.services.requests import request_cancel, requests_time_out


def test_the_requester_cancels_a_pending_request(cast):
    access_request = cast.open_request()

    request_cancel(access_request_id=access_request.pk, actor=cast.requester)

    access_request.refresh_from_db()
    assert access_request.status == Status.CANCELLED
    assert (
        TimelineEvent.objects.filter(request=access_request).last().code
        == "approvals.request.cancelled"
    )


def test_nobody_else_can_cancel_it(cast):
    access_request = cast.open_request()

    with pytest.raises(NotAllowed, match="only the requester"):
        request_cancel(access_request_id=access_request.pk, actor=cast.alice)

    access_request.refresh_from_db()
    assert access_request.status == Status.PENDING


def test_a_request_that_is_no_longer_pending_cannot_be_cancelled(cast):
    access_request = cast.open_request()
    request_cancel(access_request_id=access_request.pk, actor=cast.requester)

    with pytest.raises(NotAllowed, match="this one is cancelled"):
        request_cancel(access_request_id=access_request.pk, actor=cast.requester)


def test_an_unknown_request_is_not_found(cast):
    with pytest.raises(NotFound):
        request_cancel(access_request_id="not-a-uuid", actor=cast.requester)
    with pytest.raises(NotFound):
        request_cancel(
            access_request_id="7f6b0d38-4b53-4d9b-9a57-1d7c3c1f0c11", actor=cast.requester
        )


def test_pending_requests_past_their_deadline_time_out_and_others_do_not(cast):
    late = cast.open_request(ticket="INC-1")
    fresh = cast.open_request(ticket="INC-2")
    AccessRequest.objects.filter(pk=late.pk).update(
        approval_deadline=timezone.now() - timedelta(minutes=1)
    )

    assert requests_time_out() == 1
    assert requests_time_out() == 0

    late.refresh_from_db()
    fresh.refresh_from_db()
    assert late.status == Status.TIMED_OUT
    assert fresh.status == Status.PENDING
    event = TimelineEvent.objects.filter(request=late).last()
    assert (event.code, event.actor_name) == ("approvals.request.timed_out", "system")
