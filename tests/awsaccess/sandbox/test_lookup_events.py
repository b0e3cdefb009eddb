"""`cloudtrail:LookupEvents` answered from the sandbox's record, and the switch that drops a
share of EventBridge deliveries (the portal's backstop must find those calls here)."""

import json
import urllib.error
from datetime import UTC, datetime, timedelta

import boto3
import pytest
from botocore.exceptions import ClientError

from ..helpers import error_code_of, make_grant, s3_with
from .trail import control, receive, session_pattern, wait_recorded, watch


def _session(engine, profile):
    grant = make_grant()
    engine.grant_attach(profile.target, grant)
    return grant, engine.credentials_issue(profile.target, grant, profile.principal_keys)


def _lookup_all(cloudtrail, **params) -> list[dict]:
    events, token = [], None
    for _ in range(100):
        page = cloudtrail.lookup_events(**params, **({"NextToken": token} if token else {}))
        events.extend(page["Events"])
        token = page.get("NextToken")
        if not token:
            return events
    raise AssertionError("pagination did not end")


def test_lookup_events_finds_a_sessions_calls_newest_first(aws_sandbox, engine, profile):
    grant, credentials = _session(engine, profile)
    s3 = s3_with(credentials)
    s3.list_buckets()
    s3.get_object(Bucket="breakglass-sandbox-evidence", Key="README.txt")  # a data event
    with pytest.raises(ClientError):
        s3.create_bucket(
            Bucket="not-allowed-here",
            CreateBucketConfiguration={"LocationConstraint": aws_sandbox.region},
        )
    wait_recorded(aws_sandbox)
    cloudtrail = aws_sandbox.client("cloudtrail")

    events = cloudtrail.lookup_events(
        LookupAttributes=[
            {"AttributeKey": "AccessKeyId", "AttributeValue": credentials.access_key_id}
        ]
    )["Events"]

    # As on AWS: management events only, newest first.
    assert [e["EventName"] for e in events] == ["CreateBucket", "ListBuckets"]
    denied, listed = events
    assert listed["EventSource"] == "s3.amazonaws.com"
    assert listed["ReadOnly"] == "true" and denied["ReadOnly"] == "false"
    assert listed["Username"] == grant.session_name
    assert listed["AccessKeyId"] == credentials.access_key_id
    record = json.loads(listed["CloudTrailEvent"])
    assert record["eventID"] == listed["EventId"]
    assert record["userIdentity"]["sessionContext"]["sourceIdentity"] == grant.request_id
    assert json.loads(denied["CloudTrailEvent"])["errorCode"] == "AccessDenied"


def test_lookup_events_paginates_and_filters_by_time_and_attribute(aws_sandbox, engine, profile):
    _, credentials = _session(engine, profile)
    before = datetime.now(UTC) - timedelta(seconds=1)
    s3 = s3_with(credentials)
    for _ in range(5):
        s3.list_buckets()
    wait_recorded(aws_sandbox)
    cloudtrail = aws_sandbox.client("cloudtrail")
    by_key = [{"AttributeKey": "AccessKeyId", "AttributeValue": credentials.access_key_id}]

    pages = _lookup_all(cloudtrail, LookupAttributes=by_key, MaxResults=2)
    assert len(pages) == 5
    assert len({e["EventId"] for e in pages}) == 5
    times = [e["EventTime"] for e in pages]
    assert times == sorted(times, reverse=True)
    assert _lookup_all(cloudtrail, LookupAttributes=by_key, EndTime=before) == []
    in_window = _lookup_all(
        cloudtrail, LookupAttributes=by_key, StartTime=before, EndTime=datetime.now(UTC)
    )
    assert len(in_window) == 5
    by_name = _lookup_all(
        cloudtrail,
        LookupAttributes=[
            {"AttributeKey": "ResourceName", "AttributeValue": profile.target.role_arn}
        ],
    )
    assert any(e["EventName"] == "AssumeRole" for e in by_name)
    assert {e["EventName"] for e in by_name} <= {"AssumeRole"}


def test_lookup_events_validates_like_aws(aws_sandbox):
    cloudtrail = aws_sandbox.client("cloudtrail")
    with pytest.raises(ClientError) as excinfo:
        cloudtrail.lookup_events(
            LookupAttributes=[
                {"AttributeKey": "EventName", "AttributeValue": "ListBuckets"},
                {"AttributeKey": "Username", "AttributeValue": "x"},
            ]
        )
    assert error_code_of(excinfo) == "InvalidLookupAttributesException"
    with pytest.raises(ClientError) as excinfo:
        cloudtrail.lookup_events(MaxResults=51)
    assert error_code_of(excinfo) == "InvalidMaxResultsException"


def test_lookup_events_is_authorized_like_any_call(aws_sandbox, engine, profile):
    """The role allows no CloudTrail reads: its session is refused, in JSON, like AWS."""
    _, credentials = _session(engine, profile)
    cloudtrail = boto3.client(
        "cloudtrail",
        endpoint_url=credentials.endpoint_url,
        region_name=credentials.region,
        aws_access_key_id=credentials.access_key_id,
        aws_secret_access_key=credentials.secret_access_key,
        aws_session_token=credentials.session_token,
    )
    with pytest.raises(ClientError) as excinfo:
        cloudtrail.lookup_events()
    assert error_code_of(excinfo) == "AccessDeniedException"


def test_dropped_deliveries_are_still_in_the_lookup_history(aws_sandbox, engine, profile):
    sqs, url = watch(aws_sandbox, session_pattern(profile.target.role_arn))
    _, credentials = _session(engine, profile)
    s3 = s3_with(credentials)
    control(aws_sandbox, {"drop_fraction": 0.5, "seed": 7})
    try:
        for _ in range(20):
            s3.list_buckets()
        wait_recorded(aws_sandbox)
        stats = control(aws_sandbox)
    finally:
        control(aws_sandbox, {"drop_fraction": 0.0})

    delivered = [json.loads(body)["detail"]["eventID"] for body in receive(sqs, url, 20, timeout=3)]
    history = _lookup_all(
        aws_sandbox.client("cloudtrail"),
        LookupAttributes=[
            {"AttributeKey": "AccessKeyId", "AttributeValue": credentials.access_key_id}
        ],
    )
    recorded = {e["EventId"] for e in history}
    assert len(recorded) == 20
    assert 0 < len(delivered) < 20  # seed 7 drops some, not all
    assert set(delivered) <= recorded
    assert recorded - set(delivered) <= set(stats["dropped_event_ids"])
    assert stats["drop_fraction"] == 0.5 and stats["seed"] == 7


def test_the_drop_switch_refuses_nonsense(aws_sandbox):
    with pytest.raises(urllib.error.HTTPError) as excinfo:
        control(aws_sandbox, {"drop_fraction": 2})
    assert excinfo.value.code == 400
    assert control(aws_sandbox)["drop_fraction"] == 0.0


def test_the_broker_may_look_up_events_for_the_backstop(aws_sandbox):
    cloudtrail = aws_sandbox.client("cloudtrail", aws_sandbox.broker)
    assert "Events" in cloudtrail.lookup_events(MaxResults=1)
