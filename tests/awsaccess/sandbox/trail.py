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
    rule_arn = events.put_rule(Name=name, EventPattern=json.dumps(pattern))["RuleArn"]
    events.put_targets(Rule=name, Targets=[{"Id": "watch", "Arn": arn, **target}])
    sqs.set_queue_attributes(QueueUrl=url, Attributes={"Policy": queue_policy(arn, rule_arn)})
    return sqs, url


def queue_policy(queue_arn: str, rule_arn: str) -> str:
    """Only this rule may send (without it, AWS's EventBridge cannot deliver)."""
    return json.dumps(
        {
            "Version": "2012-10-17",
            "Statement": [
                {
                    "Effect": "Allow",
                    "Principal": {"Service": "events.amazonaws.com"},
                    "Action": "sqs:SendMessage",
                    "Resource": queue_arn,
                    "Condition": {"ArnEquals": {"aws:SourceArn": rule_arn}},
                }
            ],
        }
    )


def forwarding_role(aws_sandbox, name: str, *, may_put: bool = True) -> str:
    """A role EventBridge assumes to put events on other regions' default buses."""
    iam = aws_sandbox.client("iam", region_name="us-east-1")
    trust = {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Effect": "Allow",
                "Principal": {"Service": "events.amazonaws.com"},
                "Action": "sts:AssumeRole",
            }
        ],
    }
    arn = iam.create_role(RoleName=name, AssumeRolePolicyDocument=json.dumps(trust))["Role"]["Arn"]
    action = "events:PutEvents" if may_put else "events:DescribeRule"
    iam.put_role_policy(
        RoleName=name,
        PolicyName="forward",
        PolicyDocument=json.dumps(
            {
                "Version": "2012-10-17",
                "Statement": [
                    {
                        "Effect": "Allow",
                        "Action": action,
                        "Resource": f"arn:aws:events:*:{aws_sandbox.account_id}:event-bus/default",
                    }
                ],
            }
        ),
    )
    return str(arn)


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
