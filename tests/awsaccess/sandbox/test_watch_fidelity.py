"""Issue 12: the sandbox blinds a watch exactly where AWS would — a stopped or narrowed trail, a
queue policy that no longer lets the rule send, a cross-region target without its role — so the
portal's tampering alarms and guard are tested against real consequences."""

import json
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

import pytest
from botocore.exceptions import ClientError

from awsaccess.sandbox.bootstrap import TRAIL, TRAIL_SELECTORS

from .trail import details, forwarding_role, queue_policy, receive, wait_recorded, watch

QUIET = 2.0  # seconds without a message that count as "nothing was delivered"


def _user_pattern(name: str) -> dict:
    return {"source": ["aws.iam"], "detail": {"requestParameters": {"userName": [name]}}}


def _touch(aws_sandbox, name: str) -> None:
    """A recorded IAM call naming `name` (it fails: no such user)."""
    with pytest.raises(ClientError):
        aws_sandbox.client("iam", region_name="us-east-1").get_user(UserName=name)
    wait_recorded(aws_sandbox)


@contextmanager
def trail_changed(aws_sandbox, change) -> Iterator[None]:
    trails = aws_sandbox.client("cloudtrail")
    change(trails)
    try:
        yield
    finally:
        trails.put_event_selectors(TrailName=TRAIL, AdvancedEventSelectors=TRAIL_SELECTORS)
        trails.start_logging(Name=TRAIL)


def test_a_stopped_trail_delivers_nothing_but_the_event_history_keeps_recording(aws_sandbox):
    name = f"nobody-{uuid.uuid4().hex[:8]}"
    sqs, url = watch(aws_sandbox, _user_pattern(name), region="us-east-1")

    with trail_changed(aws_sandbox, lambda trails: trails.stop_logging(Name=TRAIL)):
        assert not aws_sandbox.client("cloudtrail").get_trail_status(Name=TRAIL)["IsLogging"]
        _touch(aws_sandbox, name)
        assert receive(sqs, url, 1, timeout=QUIET) == []
        history = aws_sandbox.client("cloudtrail", region_name="us-east-1").lookup_events(
            LookupAttributes=[{"AttributeKey": "ResourceName", "AttributeValue": name}]
        )
        assert [event["EventName"] for event in history["Events"]] == ["GetUser"]

    _touch(aws_sandbox, name)
    [delivered] = details(receive(sqs, url, 1))
    assert delivered["requestParameters"]["userName"] == name


def test_selectors_without_management_events_deliver_none(aws_sandbox):
    name = f"nobody-{uuid.uuid4().hex[:8]}"
    sqs, url = watch(aws_sandbox, _user_pattern(name), region="us-east-1")
    data_only = [
        selector for selector in TRAIL_SELECTORS if selector["Name"] != "Management events"
    ]

    def narrow(trails):
        trails.put_event_selectors(TrailName=TRAIL, AdvancedEventSelectors=data_only)

    with trail_changed(aws_sandbox, narrow):
        _touch(aws_sandbox, name)
        assert receive(sqs, url, 1, timeout=QUIET) == []

    def write_only(trails):
        trails.put_event_selectors(
            TrailName=TRAIL,
            EventSelectors=[{"ReadWriteType": "WriteOnly", "IncludeManagementEvents": True}],
        )

    with trail_changed(aws_sandbox, write_only):
        _touch(aws_sandbox, name)  # GetUser is a read
        assert receive(sqs, url, 1, timeout=QUIET) == []


def test_a_queue_policy_that_no_longer_names_the_rule_stops_delivery(aws_sandbox):
    name = f"nobody-{uuid.uuid4().hex[:8]}"
    sqs, url = watch(aws_sandbox, _user_pattern(name), region="us-east-1")
    queue_arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"][
        "QueueArn"
    ]
    other_rule = queue_arn.replace(":sqs:", ":events:").rsplit(":", 1)[0] + ":rule/elsewhere"
    sqs.set_queue_attributes(
        QueueUrl=url, Attributes={"Policy": queue_policy(queue_arn, other_rule)}
    )

    _touch(aws_sandbox, name)
    assert receive(sqs, url, 1, timeout=QUIET) == []

    rule_arn = other_rule.replace("rule/elsewhere", f"rule/{url.rsplit('/', 1)[-1]}")
    sqs.set_queue_attributes(QueueUrl=url, Attributes={"Policy": queue_policy(queue_arn, rule_arn)})
    _touch(aws_sandbox, name)
    assert len(receive(sqs, url, 1)) == 1


@pytest.mark.parametrize("role", ["none", "may not put events"])
def test_a_cross_region_bus_target_needs_a_role_that_may_put_events(aws_sandbox, role):
    name = f"nobody-{uuid.uuid4().hex[:8]}"
    home_sqs, home_url = watch(aws_sandbox, _user_pattern(name))
    forward = f"ct-forward-{uuid.uuid4().hex[:8]}"
    east_events = aws_sandbox.client("events", region_name="us-east-1")
    east_events.put_rule(Name=forward, EventPattern=json.dumps(_user_pattern(name)))
    target = {
        "Id": "home",
        "Arn": f"arn:aws:events:{aws_sandbox.region}:{aws_sandbox.account_id}:event-bus/default",
    }
    if role != "none":
        target["RoleArn"] = forwarding_role(aws_sandbox, forward, may_put=False)
    east_events.put_targets(Rule=forward, Targets=[target])

    _touch(aws_sandbox, name)
    assert receive(home_sqs, home_url, 1, timeout=QUIET) == []
