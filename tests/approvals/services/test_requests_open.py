import pytest

from approvals.errors import RequestInvalid
from approvals.models import AccessRequest, Status, TimelineEvent


def test_it_opens_a_pending_request_with_a_deadline(cast):
    access_request = cast.open_request()

    assert access_request.status == Status.PENDING
    assert access_request.requester_name == "rita"
    assert access_request.approval_deadline > access_request.created_at
    opened = TimelineEvent.objects.get(request=access_request)
    assert opened.code == "approvals.request.opened"
    assert opened.detail["content_digest"] == access_request.content_digest()


@pytest.mark.parametrize(
    ("overrides", "field", "message"),
    [
        ({"ticket": "INC-" + "1" * 40}, "ticket", "at most 32 characters"),
        ({"ticket": "inc 42"}, "ticket", "must look like INC-1234"),
        ({"ticket": ""}, "ticket", "ticket is required"),
        ({"justification": ""}, "justification", "justification is required"),
        ({"justification": "x" * 2001}, "justification", "at most 2000 characters"),
        ({"duration_minutes": 0}, "duration_minutes", "between 1 and 60 for profile prod-admin"),
        ({"duration_minutes": 61}, "duration_minutes", "between 1 and 60 for profile prod-admin"),
        ({"duration_minutes": "30"}, "duration_minutes", "whole number"),
        ({"profile_slug": "nope"}, "profile", "unknown access profile 'nope'"),
    ],
)
def test_it_rejects_bad_input_field_by_field_and_changes_nothing(cast, overrides, field, message):
    with pytest.raises(RequestInvalid) as refused:
        cast.open_request(**overrides)

    assert list(refused.value.fields) == [field]
    assert message in refused.value.fields[field][0]
    assert AccessRequest.objects.count() == 0
    assert TimelineEvent.objects.filter(request__isnull=False).count() == 0


def test_a_request_is_immutable_once_created(cast):
    access_request = cast.open_request()
    access_request.justification = "something else"

    with pytest.raises(TypeError, match="immutable"):
        access_request.save()
    access_request.refresh_from_db()
    assert access_request.justification.startswith("Database failover")


def test_the_content_digest_changes_with_the_content(cast):
    access_request = cast.open_request()
    digest = access_request.content_digest()
    access_request.duration_minutes = 60  # in memory only

    assert access_request.content_digest() != digest


def test_a_profile_refuses_fewer_than_two_approvals(cast):
    from django.db import IntegrityError, transaction

    with pytest.raises(IntegrityError), transaction.atomic():
        type(cast.profile).objects.filter(pk=cast.profile.pk).update(required_approvals=1)
