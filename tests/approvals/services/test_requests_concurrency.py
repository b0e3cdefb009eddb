import threading

import pytest
from django.db import connection

from approvals.errors import SignatureRefused
from approvals.models import Status, TimelineEvent
from approvals.services.requests import request_approve
from tests.broker import drain_task_messages
from tests.conftest import totp_code


def race(access_request, approvers) -> list[object]:
    """Every approver signs at the same moment, each in its own thread and DB connection."""
    codes = {a.pk: totp_code(a) for a in approvers}
    barrier = threading.Barrier(len(approvers), timeout=10)
    outcomes: list[object] = []

    def sign(approver):
        try:
            barrier.wait()
            outcomes.append(
                request_approve(
                    access_request_id=access_request.pk,
                    approver=approver,
                    otp_code=codes[approver.pk],
                )
            )
        except SignatureRefused as refused:
            outcomes.append(refused)
        finally:
            connection.close()

    threads = [threading.Thread(target=sign, args=(a,)) for a in approvers]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert not any(t.is_alive() for t in threads)
    return outcomes


@pytest.mark.django_db(transaction=True)
def test_two_simultaneous_approvals_give_one_approved_transition_and_one_activation(cast):
    access_request = cast.open_request()
    drain_task_messages(wait=0.1)

    outcomes = race(access_request, [cast.alice, cast.bob])
    access_request.refresh_from_db()

    assert not [o for o in outcomes if isinstance(o, SignatureRefused)]
    assert access_request.status == Status.APPROVED
    assert (
        TimelineEvent.objects.filter(
            request=access_request, code="approvals.request.approved"
        ).count()
        == 1
    )
    assert drain_task_messages() == [("approvals.activate_request", [str(access_request.pk)])]


@pytest.mark.django_db(transaction=True)
def test_a_third_approver_racing_the_second_is_refused_and_activation_is_sent_once(cast):
    access_request = cast.open_request()
    request_approve(
        access_request_id=access_request.pk, approver=cast.alice, otp_code=totp_code(cast.alice)
    )
    drain_task_messages(wait=0.1)

    outcomes = race(access_request, [cast.bob, cast.carol])
    access_request.refresh_from_db()

    refusals = [o for o in outcomes if isinstance(o, SignatureRefused)]
    assert [r.code for r in refusals] == ["not_pending"]
    assert access_request.status == Status.APPROVED
    assert access_request.approvals.count() == 2
    assert (
        TimelineEvent.objects.filter(
            request=access_request, code="approvals.request.approved"
        ).count()
        == 1
    )
    assert drain_task_messages() == [("approvals.activate_request", [str(access_request.pk)])]
