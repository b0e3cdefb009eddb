"""The activity backstop: with EventBridge deliveries dropped (the sandbox's switch), CloudTrail's
event history (LookupEvents) still puts every call of a session on the record, once."""

import contextlib
import json
import time
from datetime import datetime

import pytest
from botocore.exceptions import ClientError
from django.utils.dateparse import parse_datetime

from approvals.models import (
    ActivityLookupCursor,
    ActivitySource,
    ObservedUse,
    SecurityAlarm,
    SessionActivity,
    Status,
)
from approvals.selectors import activity_complete_until
from approvals.services.activity import activity_seal_verify
from approvals.services.activity_backstop import activity_backstop
from approvals.services.requests import credentials_reveal
from tests.awsaccess.sandbox.trail import control, wait_recorded
from tests.conftest import fresh_code
from tests.processes import wait_until
from tests.sandbox_plugin import free_port
from tests.watch.helpers import active_request
from tests.watch.test_activity import client, issued_keys, principal_keys

SETTLE_SECONDS = 1


@pytest.fixture
def backstop(settings):
    settings.ACTIVITY_BACKSTOP_SETTLE_SECONDS = SETTLE_SECONDS
    settings.ACTIVITY_BACKSTOP_LOOKBACK_SECONDS = 60
    settings.ACTIVITY_BACKSTOP_PACE_MS = 0
    settings.ACTIVITY_BACKSTOP_MAX_PAGES = 20
    return settings


@pytest.fixture
def dropping(aws_sandbox):
    """Drop a share of the sandbox's EventBridge deliveries (seeded); always switched back."""

    def drop(fraction: float) -> None:
        control(aws_sandbox, {"drop_fraction": fraction, "seed": 7})

    yield drop
    control(aws_sandbox, {"drop_fraction": 0.0})


def session_events(watched, access_key_id: str) -> list[dict]:
    """What the sandbox's CloudTrail recorded of one session: its management events."""
    wait_recorded(watched.aws.sandbox)
    return [
        record
        for record in watched.sandbox_records(limit=5000)
        if record["userIdentity"].get("accessKeyId") == access_key_id and record["managementEvent"]
    ]


def settled_backstop():
    """One run of the backstop once the calls so far are older than the settle time."""
    time.sleep(SETTLE_SECONDS + 0.2)
    return activity_backstop()


def backstop_read_in_full(
    access_request=None, *, until: datetime | None = None, runs: int = 10
) -> int:
    """Settled backstop runs until every cursor's window is read to its end (and the request's
    history is vouched for up to `until`) → the calls they recorded. The sandbox is shared by the
    whole suite: a busy minute of its history can take more than one run's pages."""
    recorded = 0
    for _ in range(runs):
        recorded += settled_backstop().recorded
        if ActivityLookupCursor.objects.filter(window_end__isnull=False).exists():
            continue
        if access_request is None:
            return recorded
        complete = activity_complete_until(access_request)
        if complete is not None and (until is None or complete >= until):
            return recorded
    raise AssertionError(f"the history was not read in full in {runs} runs")


def test_with_half_the_deliveries_dropped_every_call_is_recorded_once(watched, backstop, dropping):
    dropping(0.5)
    access_request = active_request(watched.cast, watched.profile)
    keys = issued_keys(watched, access_request)
    for _ in range(12):
        client(watched, "s3", keys).list_buckets()
    for _ in range(6):
        with contextlib.suppress(ClientError):  # a refused call is on the record all the same
            client(watched, "iam", keys).list_roles()  # recorded in us-east-1
    with pytest.raises(ClientError):
        client(watched, "sqs", keys).create_queue(QueueName="backdoor")
    calls = session_events(watched, keys["aws_access_key_id"])
    assert len(calls) == 19
    dropped = set(control(watched.aws.sandbox)["dropped_event_ids"])
    assert dropped & {call["eventID"] for call in calls}, "the switch dropped none of the calls"
    # The watch records what reached the queue (the region's calls that were not dropped).
    delivered = {
        call["eventID"]
        for call in calls
        if call["eventID"] not in dropped and call["awsRegion"] == watched.profile.region
    }
    watched.poll_until(
        lambda: delivered <= set(SessionActivity.objects.values_list("event_id", flat=True))
    )

    last_call = max(parse_datetime(call["eventTime"]) for call in calls)
    recorded = backstop_read_in_full(access_request, until=last_call)

    rows = list(SessionActivity.objects.filter(request=access_request))
    assert sorted(row.event_id for row in rows) == sorted(call["eventID"] for call in calls)
    by_source = {row.event_id: row.source for row in rows}
    assert {by_source[event_id] for event_id in dropped & set(by_source)} == {ActivitySource.LOOKUP}
    assert recorded >= len(dropped & set(by_source))
    assert not SecurityAlarm.objects.filter(kind="unexplained_activity").exists()
    assert activity_seal_verify(access_request) == []
    # The worker's own AssumeRole is on the record too, whichever way it came.
    assert ObservedUse.objects.filter(request=access_request, explained=True).exists()
    complete = activity_complete_until(access_request)
    assert complete is not None and complete >= max(row.event_time for row in rows)

    # Looking again finds nothing new: no call is recorded twice.
    assert settled_backstop().recorded == 0
    assert SessionActivity.objects.filter(request=access_request).count() == len(calls)


def test_a_session_assumed_by_hand_is_alarmed_from_the_history_when_every_delivery_is_lost(
    watched, backstop, dropping, settings
):
    dropping(1.0)
    # An attacker with the principal's keys and IAM write access lifts the grant's conditions.
    watched.aws.sandbox.client("iam").put_user_policy(
        UserName=watched.profile.principal_arn.rsplit("/", 1)[-1],
        PolicyName="attacker",
        PolicyDocument=json.dumps(
            {
                "Version": "2012-10-17",
                "Statement": [
                    {
                        "Effect": "Allow",
                        "Action": ["sts:AssumeRole", "sts:SetSourceIdentity", "sts:TagSession"],
                        "Resource": watched.profile.role_arn,
                    }
                ],
            }
        ),
    )
    session = client(watched, "sts", principal_keys(settings)).assume_role(
        RoleArn=watched.profile.role_arn, RoleSessionName="by-hand", SourceIdentity="not-a-request"
    )["Credentials"]
    keys = {
        "aws_access_key_id": session["AccessKeyId"],
        "aws_secret_access_key": session["SecretAccessKey"],
        "aws_session_token": session["SessionToken"],
    }
    client(watched, "s3", keys).list_buckets()
    session_events(watched, keys["aws_access_key_id"])

    backstop_read_in_full()

    call = SessionActivity.objects.get(access_key_id=keys["aws_access_key_id"])
    assert call.source == ActivitySource.LOOKUP and call.request is None
    assert "names no request" in call.unexplained
    kinds = set(SecurityAlarm.objects.values_list("kind", flat=True))
    assert {"unexplained_use", "unexplained_activity"} <= kinds
    use = ObservedUse.objects.get(source_identity="not-a-request")
    assert not use.explained


def test_a_window_is_read_a_bounded_number_of_pages_per_run_and_the_cursor_moves_when_complete(
    watched, backstop, dropping
):
    access_request = active_request(watched.cast, watched.profile)
    backstop_read_in_full(access_request)  # the first look: its cursors start before the request
    backstop.ACTIVITY_BACKSTOP_MAX_PAGES = 1
    dropping(1.0)
    keys = issued_keys(watched, access_request)
    s3 = client(watched, "s3", keys)
    for _ in range(120):
        s3.list_buckets()
    session_events(watched, keys["aws_access_key_id"])
    before = activity_complete_until(access_request)
    cursor = ActivityLookupCursor.objects.get(
        profile=watched.profile, region=watched.profile.region
    )
    region_before = cursor.complete_until
    assert before is not None

    time.sleep(SETTLE_SECONDS + 0.2)
    unfinished_runs = 0
    for _ in range(12):
        activity_backstop()
        if SessionActivity.objects.filter(request=access_request).count() == 120:
            break
        # One page (50 events) a run: the window is unfinished and the cursor stays.
        unfinished_runs += 1
        cursor = ActivityLookupCursor.objects.get(
            profile=watched.profile, region=watched.profile.region
        )
        assert cursor.next_token and cursor.window_end is not None
        # us-east-1's cursor may move on meanwhile; the region's, with its window unread, may not.
        assert cursor.complete_until == region_before
        assert activity_complete_until(access_request) <= region_before
    assert SessionActivity.objects.filter(request=access_request).count() == 120
    assert unfinished_runs >= 2  # 120 calls do not fit in fewer than three pages of 50
    backstop_read_in_full(access_request)  # the window's last page, if not read yet
    assert activity_complete_until(access_request) > before


def test_a_token_aws_no_longer_accepts_restarts_the_window(watched, backstop, dropping):
    access_request = active_request(watched.cast, watched.profile)
    backstop_read_in_full(access_request)
    dropping(1.0)
    keys = issued_keys(watched, access_request)
    client(watched, "s3", keys).list_buckets()
    [call] = session_events(watched, keys["aws_access_key_id"])
    cursor = ActivityLookupCursor.objects.get(
        profile=watched.profile, region=watched.profile.region
    )
    cursor.window_end = cursor.complete_until + (cursor.complete_until - cursor.covered_from)
    cursor.next_token = "bm90LWEtdG9rZW4"  # a page token from nowhere
    cursor.save()

    report = activity_backstop()

    assert report.errors == 1
    cursor.refresh_from_db()
    assert "InvalidNextToken" in cursor.last_error and cursor.next_token == ""
    backstop_read_in_full(access_request)
    assert SessionActivity.objects.filter(event_id=call["eventID"]).exists()
    cursor.refresh_from_db()
    assert cursor.last_error == ""


def test_an_unreadable_history_leaves_the_cursor_where_it_was(watched, backstop, settings):
    access_request = active_request(watched.cast, watched.profile)
    backstop_read_in_full(access_request)
    reached = activity_complete_until(access_request)
    assert reached is not None
    settings.AWS_ENDPOINT_URL = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    settings.AWS_CONNECT_TIMEOUT_SECONDS = 1

    time.sleep(SETTLE_SECONDS + 0.2)
    report = activity_backstop()

    assert report.errors == 2  # the profile's region and us-east-1
    assert activity_complete_until(access_request) == reached
    assert all(
        cursor.last_error for cursor in ActivityLookupCursor.objects.filter(profile=watched.profile)
    )


def test_complete_until_vouches_for_nothing_before_the_first_look(watched, backstop):
    access_request = active_request(watched.cast, watched.profile)
    assert activity_complete_until(access_request) is None  # never looked
    backstop.ACTIVITY_BACKSTOP_LOOKBACK_SECONDS = 0
    time.sleep(SETTLE_SECONDS + 0.2)
    activity_backstop()
    # The first look began after the request was opened: its earliest calls are not vouched for.
    assert activity_complete_until(access_request) is None


@pytest.mark.django_db(transaction=True)
def test_the_worker_runs_the_backstop_every_period(live, aws_sandbox, dropping):
    live.env.update(
        {
            "BREAKGLASS_ACTIVITY_BACKSTOP_SECONDS": "2",
            "BREAKGLASS_ACTIVITY_BACKSTOP_SETTLE_SECONDS": str(SETTLE_SECONDS),
            "BREAKGLASS_ACTIVITY_BACKSTOP_LOOKBACK_SECONDS": "60",
            "BREAKGLASS_ACTIVITY_BACKSTOP_PACE_MS": "0",
        }
    )
    dropping(1.0)  # nothing reaches the watch queue: only the backstop can record the call
    live.start_worker()
    live.start_beat()
    access_request = live.wait_for_status(live.open_approved(), Status.ACTIVE)
    credentials = credentials_reveal(
        access_request_id=access_request.pk,
        user=live.cast.requester,
        otp_code=fresh_code(live.cast.requester),
    )
    live.aws.s3_with(credentials).list_buckets()

    row = wait_until(
        lambda: SessionActivity.objects.filter(
            request=access_request, action="ListBuckets"
        ).first(),
        timeout=30,
        what="the dropped call recorded by the backstop",
    )
    assert row.source == ActivitySource.LOOKUP
