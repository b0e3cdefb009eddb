"""Sources beginning "aws." are AWS's: the sandbox's PutEvents refuses them entry by entry, as
AWS does, while the sandbox's own service door still puts them on a bus (for records of calls
it never served)."""

import json
import uuid

from .trail import receive, watch


def _entry(source: str, marker: str) -> dict:
    return {
        "Source": source,
        "DetailType": "AWS API Call via CloudTrail",
        "Detail": json.dumps({"marker": marker}),
    }


def test_put_events_refuses_aws_sources_and_sends_the_others(aws_sandbox):
    marker = uuid.uuid4().hex
    sqs, url = watch(aws_sandbox, {"detail": {"marker": [marker]}})
    events = aws_sandbox.client("events")

    answer = events.put_events(
        Entries=[_entry("forged.by.session", marker), _entry("aws.events", marker)]
    )

    accepted, refused = answer["Entries"]
    assert answer["FailedEntryCount"] == 1
    assert "EventId" in accepted
    assert refused == {
        "ErrorCode": "NotAuthorizedForSourceException",
        "ErrorMessage": "Not authorized for the source.",
    }
    sources = [json.loads(body)["source"] for body in receive(sqs, url, 2, timeout=3)]
    assert sources == ["forged.by.session"]


def test_the_service_door_puts_aws_sources_on_the_bus(aws_sandbox):
    marker = uuid.uuid4().hex
    sqs, url = watch(aws_sandbox, {"source": [{"prefix": "aws."}], "detail": {"marker": [marker]}})

    answer = aws_sandbox.service_events_put(aws_sandbox.region, [_entry("aws.iam", marker)])

    assert "ErrorCode" not in answer[0]
    [body] = receive(sqs, url, 1)
    assert json.loads(body)["source"] == "aws.iam"
