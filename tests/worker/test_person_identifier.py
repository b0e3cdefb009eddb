"""Two accounts of one person count as one approver at activation, too: the person identifiers
are read again by the worker, so an identity linked after the signatures still counts once and
nothing reaches AWS. So does a signer who has since left the approver group or been deactivated."""

import pytest

from approvals.models import IssuedCredential, Status
from approvals.services.persons import person_identifier_set

pytestmark = pytest.mark.django_db(transaction=True)


def test_two_signatures_of_one_person_fail_the_activation_with_nothing_granted(live):
    access_request = live.open_approved()  # alice and bob sign
    # The administrator now records what was true all along: bob is alice's second account.
    person_identifier_set(user=live.cast.alice, identifier="alice@example.com")
    person_identifier_set(user=live.cast.bob, identifier="Alice@Example.com")
    live.start_worker()

    live.wait_for_status(access_request, Status.FAILED)

    assert "only 1 of the 2 required approvals are still valid" in access_request.failure_reason
    assert not IssuedCredential.objects.filter(request=access_request).exists()


def test_two_people_still_activate(live):
    person_identifier_set(user=live.cast.alice, identifier="alice@example.com")
    person_identifier_set(user=live.cast.bob, identifier="bob@example.com")
    access_request = live.open_approved()
    live.start_worker()

    live.wait_for_status(access_request, Status.ACTIVE)


@pytest.mark.parametrize("how", ["left the approver group", "deactivated"])
def test_a_signer_who_may_no_longer_approve_is_not_counted_at_activation(live, how):
    access_request = live.open_approved()  # alice and bob sign
    if how == "deactivated":
        live.cast.bob.is_active = False
        live.cast.bob.save(update_fields=["is_active"])
    else:
        live.cast.bob.groups.remove(live.cast.profile.approver_group)
    live.start_worker()

    live.wait_for_status(access_request, Status.FAILED)

    assert "only 1 of the 2 required approvals are still valid" in access_request.failure_reason
    assert not IssuedCredential.objects.filter(request=access_request).exists()
