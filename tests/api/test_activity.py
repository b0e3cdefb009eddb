"""GET /api/v1/requests/{id}/activity/: the AWS calls of a request's sessions, oldest first,
cursor-paginated, filterable, visible exactly to whoever may see the request."""

from datetime import timedelta

import pytest
from django.contrib.auth.models import Group
from django.utils import timezone

from approvals.models import AccessProfile, AccessRequest, SessionActivity
from approvals.services.activity import activity_seal
from approvals.services.api_access import personal_token_create
from tests.activity_calls import call_put, calls_record
from tests.api.conftest import INTEGRATION, assert_error
from tests.conftest import make_user
from tests.web.helpers import active

READ = {"service": "s3", "action": "ListBuckets", "read_only": True}
WRITE = {
    "service": "s3",
    "action": "CreateBucket",
    "read_only": False,
    "parameters": {"bucketName": "incident-evidence"},
    "resources": [{"type": "AWS::S3::Bucket", "ARN": "arn:aws:s3:::incident-evidence"}],
}
DENIED = {
    "service": "sqs",
    "action": "CreateQueue",
    "read_only": False,
    "error_code": "AccessDenied",
    "parameters": {"queueName": "backdoor"},
}
FAILED = {"service": "s3", "action": "GetObject", "error_code": "NoSuchKey"}
UNKNOWN_FLAG = {"service": "ec2", "action": "RebootInstances", "read_only": None}


def url(access_request, query: str = "") -> str:
    return f"/api/v1/requests/{access_request.pk}/activity/{query}"


def actions(response) -> list[str]:
    assert response.status_code == 200, response.content
    return [f"{c['service']}:{c['action']}" for c in response.json()["results"]]


def test_the_calls_come_oldest_first_with_what_they_touched_and_their_outcome(api):
    access_request = active(api.cast)
    calls_record(access_request, READ, WRITE, DENIED, FAILED, UNKNOWN_FLAG)

    response = api.get("rita", url(access_request))

    assert actions(response) == [
        "s3:ListBuckets",
        "s3:CreateBucket",
        "sqs:CreateQueue",
        "s3:GetObject",
        "ec2:RebootInstances",
    ]
    calls = response.json()["results"]
    assert [c["outcome"] for c in calls] == ["allowed", "allowed", "denied", "failed", "allowed"]
    assert [c["mutating"] for c in calls] == [False, True, True, False, True]
    assert [c["error_code"] for c in calls] == ["", "", "AccessDenied", "NoSuchKey", ""]
    write = calls[1]
    assert write["resources"] == [
        {"type": "AWS::S3::Bucket", "ARN": "arn:aws:s3:::incident-evidence"}
    ]
    assert write["request_parameters"] == {"bucketName": "incident-evidence"}
    assert (write["source_ip"], write["user_agent"]) == ("198.51.100.24", "aws-cli/2.15.30")
    assert write["source_identity"] == str(access_request.pk)
    assert write["access_key_id"] == "ASIATESTKEY"
    assert write["unexplained"] == ""
    seal = access_request.events.get(code="approvals.activity.sealed")
    assert {c["sealed_by"] for c in calls} == {seal.sequence}
    assert response.json()["next"] is None


def test_a_call_not_yet_sealed_is_listed_with_no_seal(api):
    access_request = active(api.cast)
    calls_record(access_request, READ)
    SessionActivity.objects.update(seal=None)

    [call] = api.get("rita", url(access_request)).json()["results"]

    assert call["sealed_by"] is None


def test_only_the_calls_of_this_request_are_listed(api):
    mine = active(api.cast)
    other = active(api.cast, ticket="INC-9999")
    calls_record(mine, READ)
    calls_record(other, WRITE, DENIED)

    assert actions(api.get("audrey", url(mine))) == ["s3:ListBuckets"]
    assert actions(api.get("audrey", url(other))) == ["s3:CreateBucket", "sqs:CreateQueue"]


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("?mutating=true", ["s3:CreateBucket", "sqs:CreateQueue", "ec2:RebootInstances"]),
        ("?mutating=false", ["s3:ListBuckets", "s3:GetObject"]),
        ("?errors=true", ["sqs:CreateQueue", "s3:GetObject"]),
        ("?errors=false", ["s3:ListBuckets", "s3:CreateBucket", "ec2:RebootInstances"]),
        ("?mutating=true&errors=true", ["sqs:CreateQueue"]),
        ("?mutating=false&errors=false", ["s3:ListBuckets"]),
    ],
)
def test_filters_pick_mutating_and_refused_calls(api, query, expected):
    access_request = active(api.cast)
    calls_record(access_request, READ, WRITE, DENIED, FAILED, UNKNOWN_FLAG)

    assert actions(api.get("alice", url(access_request, query))) == expected


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ("?mutating=yes", 'mutating: "yes" is not valid: use true or false.'),
        ("?errors=1", 'errors: "1" is not valid: use true or false.'),
        ("?error=true", "unknown parameter(s): error; filter with mutating or errors"),
        ("?mutating=true&readonly=false", "unknown parameter(s): readonly;"),
    ],
)
def test_a_bad_filter_is_a_400_that_names_it(api, query, message):
    access_request = active(api.cast)
    calls_record(access_request, READ)

    assert_error(api.get("rita", url(access_request, query)), 400, "invalid", message)


def test_pages_follow_the_cursor_in_event_time_order_without_gaps_or_repeats(api):
    access_request = active(api.cast)
    start = timezone.now().replace(microsecond=0)
    # CloudTrail times have whole seconds: many calls share one; the id keeps their order.
    specs = [dict(READ, action=f"Call{n:02d}") for n in range(11)]
    calls_record(access_request, *specs[:4], start=start)
    for spec in specs[4:]:
        call_put(access_request, at=start + timedelta(seconds=10), **spec)
    activity_seal(access_request_id=access_request.pk)

    seen: list[str] = []
    path = url(access_request, "?page_size=3")
    for _ in range(10):
        body = api.get("rita", path).json()
        seen += [call["action"] for call in body["results"]]
        if body["next"] is None:
            break
        path = body["next"].removeprefix("http://testserver")
    assert seen == [f"Call{n:02d}" for n in range(11)]


def test_an_invalid_cursor_is_refused_in_the_api_shape(api):
    access_request = active(api.cast)

    assert_error(api.get("rita", url(access_request, "?cursor=bogus")), 404, "not_found")


def test_who_may_read_the_activity_is_who_may_read_the_request(api):
    opened = api.post(INTEGRATION, "/api/v1/requests/", api.open_body(requester="rita")).json()
    by_integration = AccessRequest.objects.get(pk=opened["id"])
    access_request = active(api.cast)
    calls_record(access_request, READ, WRITE)

    for reader in ("rita", "alice", "bob", "audrey"):
        assert actions(api.get(reader, url(access_request))) == [
            "s3:ListBuckets",
            "s3:CreateBucket",
        ]
    assert api.get(INTEGRATION, url(by_integration)).status_code == 200


def test_a_requester_of_another_request_cannot_read_this_activity(api):
    victim = active(api.cast)
    calls_record(victim, READ, WRITE)
    own = api.cast.open_request(requester=api.cast.outsider, ticket="INC-6666")

    assert api.get("oscar", url(own)).status_code == 200
    for query in ("", "?mutating=true", "?errors=true", "?page_size=1"):
        error = assert_error(api.get("oscar", url(victim, query)), 404, "not_found")
        # The same answer as for an id that does not exist: nothing confirms the request.
        assert error["message"] == f"no request {victim.pk}"
    assert_error(
        api.get("oscar", "/api/v1/requests/00000000-0000-0000-0000-000000000000/activity/"),
        404,
        "not_found",
    )


def test_an_integration_sees_only_the_activity_of_requests_it_opened(api):
    access_request = active(api.cast)
    calls_record(access_request, READ)

    assert_error(api.get(INTEGRATION, url(access_request)), 404, "not_found")


def test_an_approver_of_another_profile_cannot_read_this_activity(api):
    others = Group.objects.create(name="other-approvers")
    AccessProfile.objects.create(
        slug="other",
        name="Other",
        account_id=api.cast.profile.account_id,
        region="eu-west-1",
        role_arn=api.cast.profile.role_arn,
        principal_arn=api.cast.profile.principal_arn,
        approver_group=others,
    )
    stranger = make_user("olga", others)
    api.secrets["olga"] = personal_token_create(user=stranger, name="tests")
    access_request = active(api.cast)
    calls_record(access_request, READ)

    assert_error(api.get("olga", url(access_request)), 404, "not_found")


def test_without_credentials_the_activity_is_a_401(api):
    access_request = active(api.cast)

    assert_error(api.get(None, url(access_request)), 401)


def test_the_activity_cannot_be_written_through_the_api(api):
    access_request = active(api.cast)
    calls_record(access_request, READ)

    for method in ("POST", "PUT", "PATCH", "DELETE"):
        response = api.call("audrey", method, url(access_request), {"action": "Nothing"})
        assert_error(response, 405, "method_not_allowed")
    assert SessionActivity.objects.get().action == "ListBuckets"
