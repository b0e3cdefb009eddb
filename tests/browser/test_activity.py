"""The request page follows what the session does in AWS without a reload, in a real browser,
with the real worker and beat (the watcher) and the sandbox's own CloudTrail."""

import json

import pytest
from botocore.exceptions import ClientError
from playwright.sync_api import expect

from approvals.models import Status
from approvals.services.requests import credentials_reveal
from tests.conftest import fresh_code

pytestmark = pytest.mark.django_db(transaction=True)


def test_the_request_page_shows_the_sessions_calls_as_they_happen(live, people):
    cast = live.cast
    cast.profile.delete()  # only the test's own role is watched
    live.start_worker()
    live.start_beat()
    access_request = live.open_approved()
    live.wait_for_status(access_request, Status.ACTIVE, timeout=40)
    alice = people(cast.alice).sign_in()
    page = alice.go(f"/requests/{access_request.pk}/")
    expect(page.get_by_text("No calls recorded yet")).to_be_visible()

    credentials = credentials_reveal(
        access_request_id=access_request.pk,
        user=cast.requester,
        otp_code=fresh_code(cast.requester),
    )
    s3 = live.aws.s3_with(credentials)
    s3.list_buckets()
    with pytest.raises(ClientError):
        s3.create_bucket(
            Bucket="not-allowed",
            CreateBucketConfiguration={"LocationConstraint": live.aws.profile.region},
        )

    # No reload: the page's poll brings the calls in.
    rows = page.get_by_test_id("activity").locator("tbody tr")
    expect(rows).to_have_count(2, timeout=30_000)
    shown = rows.evaluate_all(
        "rows => rows.map(r => [r.dataset.action, r.dataset.outcome, r.dataset.mutating])"
    )
    assert sorted(json.dumps(row) for row in shown) == sorted(
        json.dumps(row)
        for row in (["s3:ListBuckets", "allowed", "false"], ["s3:CreateBucket", "denied", "true"])
    )
    expect(rows.filter(has_text="CreateBucket")).to_contain_text("denied (AccessDenied)")
    expect(rows.filter(has_text="CreateBucket")).to_contain_text("changes")
    alice.screenshot("08-request-activity")
