import itertools

import pytest

from approvals.errors import IllegalTransition, StaleTransition
from approvals.models import AccessRequest, Status, TimelineEvent
from approvals.transitions import ALLOWED_TRANSITIONS, request_transition, transition_check

LIFECYCLE = {
    (Status.PENDING, Status.APPROVED),
    (Status.PENDING, Status.REJECTED),
    (Status.PENDING, Status.CANCELLED),
    (Status.PENDING, Status.TIMED_OUT),
    (Status.APPROVED, Status.ACTIVATING),
    (Status.ACTIVATING, Status.ACTIVE),
    (Status.ACTIVATING, Status.FAILED),
    (Status.ACTIVE, Status.REVOKING),
    (Status.REVOKING, Status.REVOKED),
}


def test_the_table_is_exactly_the_designed_lifecycle():
    table = {(a, b) for a, targets in ALLOWED_TRANSITIONS.items() for b in targets}
    assert table == LIFECYCLE
    assert set(ALLOWED_TRANSITIONS) == set(Status)


@pytest.mark.parametrize(
    ("from_status", "to_status"),
    [pair for pair in itertools.product(Status, Status) if pair not in LIFECYCLE],
)
def test_every_disallowed_pair_raises(from_status, to_status):
    with pytest.raises(IllegalTransition, match=f"from {from_status} to {to_status}"):
        transition_check(from_status, to_status)


def test_an_illegal_transition_changes_nothing_in_the_database(cast):
    access_request = cast.open_request()

    with pytest.raises(IllegalTransition):
        request_transition(access_request=access_request, to_status=Status.ACTIVE, code="x.y")

    access_request.refresh_from_db()
    assert access_request.status == Status.PENDING
    assert TimelineEvent.objects.filter(request=access_request).count() == 1


def test_a_stale_transition_loses_to_whoever_moved_first(cast):
    access_request = cast.open_request()
    stale_copy = AccessRequest.objects.get(pk=access_request.pk)
    request_transition(
        access_request=access_request,
        to_status=Status.CANCELLED,
        code="approvals.request.cancelled",
    )

    with pytest.raises(StaleTransition, match="no longer pending"):
        request_transition(
            access_request=stale_copy,
            to_status=Status.TIMED_OUT,
            code="approvals.request.timed_out",
        )

    assert AccessRequest.objects.get(pk=access_request.pk).status == Status.CANCELLED
    codes = list(
        TimelineEvent.objects.filter(request=access_request).values_list("code", flat=True)
    )
    assert codes == ["approvals.request.opened", "approvals.request.cancelled"]


def test_transitions_may_only_set_lifecycle_fields(cast):
    access_request = cast.open_request()

    with pytest.raises(ValueError, match="cannot set"):
        request_transition(
            access_request=access_request,
            to_status=Status.CANCELLED,
            code="approvals.request.cancelled",
            fields={"justification": "rewritten"},
        )
