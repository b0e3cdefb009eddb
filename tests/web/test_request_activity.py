"""The request page shows what the request's sessions did in AWS, in its live part."""

import re
from datetime import timedelta

from django.urls import reverse
from django.utils import timezone

from approvals.selectors import ACTIVITY_PANEL_LIMIT
from approvals.services.activity import activity_seal
from tests.activity_calls import call_put, calls_record
from tests.web.helpers import active

READ = {
    "service": "s3",
    "action": "ListBuckets",
    "read_only": True,
    "parameters": {"Host": "s3.eu-west-1.amazonaws.com"},  # what S3 logs for ListBuckets
}
WRITE = {
    "service": "s3",
    "action": "CreateBucket",
    "read_only": False,
    "parameters": {"bucketName": "incident-evidence"},
    "resources": [{"type": "AWS::S3::Bucket", "ARN": "arn:aws:s3:::incident-evidence"}],
    "source_ip": "203.0.113.7",
}
DENIED = {
    "service": "sqs",
    "action": "CreateQueue",
    "read_only": False,
    "error_code": "AccessDenied",
    "parameters": {"queueName": "backdoor"},
}


def rows(html: str) -> list[dict[str, str]]:
    """The activity table's rows: their data attributes and their cells' text."""
    table = re.search(r'<table class="activity".*?</table>', html, re.S)
    assert table, "no activity table on the page"
    found = []
    for classes, attributes, body in re.findall(
        r'<tr class="(call-[^"]*)"([^>]*)>(.*?)</tr>', table.group(0), re.S
    ):
        cells = [
            re.sub(r"<[^>]+>", " ", cell) for cell in re.findall(r"<td[^>]*>(.*?)</td>", body, re.S)
        ]
        found.append(
            {
                "action": re.search(r'data-action="([^"]*)"', attributes).group(1),
                "outcome": re.search(r'data-outcome="([^"]*)"', attributes).group(1),
                "mutating": re.search(r'data-mutating="([^"]*)"', attributes).group(1),
                "classes": classes.split(),
                "cells": [" ".join(cell.split()) for cell in cells],
            }
        )
    return found


def page(client, access_request, name: str = "request_detail") -> str:
    response = client.get(reverse(name, args=[access_request.pk]))
    assert response.status_code == 200
    return response.content.decode()


def test_the_request_page_lists_each_call_with_what_it_touched_and_its_outcome(cast, as_user):
    access_request = active(cast)
    start = timezone.now().replace(microsecond=0)
    calls_record(access_request, READ, WRITE, DENIED, start=start)

    html = page(as_user(cast.requester), access_request)

    assert "3 calls: 2 changing, 1 refused or failed" in html
    listed = rows(html)
    assert [row["action"] for row in listed] == [
        "s3:ListBuckets",
        "s3:CreateBucket",
        "sqs:CreateQueue",
    ]
    assert [row["mutating"] for row in listed] == ["false", "true", "true"]
    assert [row["outcome"] for row in listed] == ["allowed", "allowed", "denied"]
    read, write, refused = (row["cells"] for row in listed)
    assert read == [f"{start:%H:%M:%S}", "s3:ListBuckets", "—", "198.51.100.24", "allowed"]
    assert write == [
        f"{start + timedelta(seconds=1):%H:%M:%S}",
        "s3:CreateBucket changes",
        "arn:aws:s3:::incident-evidence",
        "203.0.113.7",
        "allowed",
    ]
    assert refused[2:] == ["queueName=backdoor", "198.51.100.24", "denied (AccessDenied)"]
    # Highlighted: mutating calls, and refused ones.
    assert "call-mutating" in listed[1]["classes"] and "call-mutating" not in listed[0]["classes"]
    assert "call-denied" in listed[2]["classes"]


def test_the_live_part_carries_the_activity_and_changes_version_when_calls_arrive(cast, as_user):
    access_request = active(cast)
    client = as_user(cast.requester)
    before = page(client, access_request, "request_live")
    assert "No calls recorded yet" in before

    calls_record(access_request, READ)
    after = page(client, access_request, "request_live")

    assert [row["action"] for row in rows(after)] == ["s3:ListBuckets"]
    version = re.compile(r'data-version="([^"]*)"')
    # The page's poller swaps the live part in only when its version changed.
    assert version.search(before).group(1) != version.search(after).group(1)


def test_a_call_that_raised_an_alarm_says_why_on_the_page(cast, as_user):
    access_request = active(cast)
    calls_record(access_request, dict(READ, access_key_id="ASIACOPIEDSESSION"))

    [row] = rows(page(as_user(cast.alice), access_request))

    assert "call-unexplained" in row["classes"]
    assert "Alarm: made with a session the portal did not issue" in row["cells"][-1]


def test_what_the_session_sent_is_shown_as_text_never_as_markup(cast, as_user):
    access_request = active(cast)
    hostile = '<img src=x onerror="alert(document.cookie)">'
    calls_record(access_request, dict(WRITE, parameters={"bucketName": hostile}, resources=[]))

    html = page(as_user(cast.auditor), access_request)

    assert hostile not in html
    assert "bucketName=&lt;img src=x onerror=&quot;alert(document.cookie)&quot;&gt;" in html


def test_the_page_shows_the_newest_calls_when_there_are_many(cast, as_user):
    access_request = active(cast)
    start = timezone.now().replace(microsecond=0)
    for n in range(ACTIVITY_PANEL_LIMIT + 5):
        call_put(
            access_request, at=start + timedelta(seconds=n), **dict(READ, action=f"Call{n:03d}")
        )
    activity_seal(access_request_id=access_request.pk)

    html = page(as_user(cast.requester), access_request)

    listed = [row["action"] for row in rows(html)]
    assert listed[0] == "s3:Call005" and listed[-1] == f"s3:Call{ACTIVITY_PANEL_LIMIT + 4:03d}"
    assert len(listed) == ACTIVITY_PANEL_LIMIT
    assert f"The newest {ACTIVITY_PANEL_LIMIT} calls" in html


def test_whoever_may_see_the_request_sees_its_activity_and_nobody_else(cast, as_user):
    access_request = active(cast)
    calls_record(access_request, WRITE)
    own = cast.open_request(requester=cast.outsider, ticket="INC-6666")

    for user in (cast.requester, cast.alice, cast.bob, cast.auditor):
        for name in ("request_detail", "request_live"):
            assert [row["action"] for row in rows(page(as_user(user), access_request, name))] == [
                "s3:CreateBucket"
            ], user
    outsider = as_user(cast.outsider)
    assert "No calls recorded" in page(outsider, own)
    for name in ("request_detail", "request_live"):
        response = outsider.get(reverse(name, args=[access_request.pk]))
        assert response.status_code == 404
        assert b"incident-evidence" not in response.content
