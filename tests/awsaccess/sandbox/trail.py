"""Helpers for the CloudTrail tests: a watch queue behind an EventBridge rule, bounded receives,
and the sandbox's `/_sandbox/cloudtrail` control API."""

from __future__ import annotations

import itertools
import json
import os
import time
import urllib.request
from typing import Any

_names = itertools.count(1)
RECEIVE_TIMEOUT = 10.0


def watch(aws_sandbox, pattern: dict, *, region: str | None = None, **target: Any) -> tuple:
    """A fresh queue and rule (default bus of `region`) with `pattern`; returns (sqs, url)."""
    region = region or aws_sandbox.region
    name = f"ct-test-{os.getpid()}-{next(_names)}"
    sqs = aws_sandbox.client("sqs", region_name=region)
    url = sqs.create_queue(QueueName=name)["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"][
        "QueueArn"
    ]
    events = aws_sandbox.client("events", region_name=region)
    events.put_rule(Name=name, EventPattern=json.dumps(pattern))
    events.put_targets(Rule=name, Targets=[{"Id": "watch", "Arn": arn, **target}])
    return sqs, url


def receive(sqs, url: str, count: int, *, timeout: float = RECEIVE_TIMEOUT) -> list[str]:
    """Message bodies, until `count` arrived or `timeout` passed (then what arrived)."""
    bodies: list[str] = []
    deadline = time.monotonic() + timeout
    while len(bodies) < count and time.monotonic() < deadline:
        answer = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, WaitTimeSeconds=1)
        for message in answer.get("Messages", []):
            bodies.append(message["Body"])
            sqs.delete_message(QueueUrl=url, ReceiptHandle=message["ReceiptHandle"])
    return bodies


def details(bodies: list[str]) -> list[dict]:
    return [json.loads(body)["detail"] for body in bodies]


def control(aws_sandbox, body: dict | None = None) -> dict:
    request = urllib.request.Request(  # noqa: S310 (loopback sandbox)
        f"{aws_sandbox.endpoint_url}/_sandbox/cloudtrail",
        data=None if body is None else json.dumps(body).encode(),
        method="GET" if body is None else "POST",
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=5) as response:  # noqa: S310
        return json.loads(response.read())


def wait_recorded(aws_sandbox, timeout: float = RECEIVE_TIMEOUT) -> None:
    """Until the trail worker has handled every call served so far (bounded)."""
    deadline = time.monotonic() + timeout
    while control(aws_sandbox)["pending"] and time.monotonic() < deadline:
        time.sleep(0.05)


def session_pattern(role_arn: str) -> dict:
    return {
        "detail-type": ["AWS API Call via CloudTrail"],
        "detail": {"userIdentity": {"sessionContext": {"sessionIssuer": {"arn": [role_arn]}}}},
    }
