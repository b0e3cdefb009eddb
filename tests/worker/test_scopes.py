"""Acceptance, against the sandbox with the credentials the portal issued: a scope narrows the
session to exactly what was signed, and the allowed networks decide where the credentials work.

The worker, Redis, PostgreSQL and the sandbox are real; the role is given one write (PutObject
on a bucket of the test's own) so a scope has something to take away.
"""

import json
import uuid

import pytest
from botocore.exceptions import ClientError

from approvals.models import IssuedCredential, Status
from approvals.services.requests import credentials_reveal
from approvals.services.scopes import profile_networks_set, scope_set
from tests.conftest import fresh_code

pytestmark = pytest.mark.django_db(transaction=True)

VERSION = "2012-10-17"
READ_ONLY = {
    "Version": VERSION,
    "Statement": [
        {
            "Effect": "Allow",
            "Action": ["s3:ListAllMyBuckets", "s3:ListBucket", "s3:GetObject"],
            "Resource": "*",
        }
    ],
}
FULL = {"Version": VERSION, "Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}]}


def writable_bucket(live) -> str:
    """A bucket with one object, and a role that may also write to it."""
    bucket = f"scope-test-{uuid.uuid4().hex[:12]}"
    sandbox = live.aws.sandbox
    s3 = sandbox.client("s3")
    s3.create_bucket(
        Bucket=bucket, CreateBucketConfiguration={"LocationConstraint": sandbox.region}
    )
    s3.put_object(Bucket=bucket, Key="runbook.txt", Body=b"read me")
    sandbox.client("iam").put_role_policy(
        RoleName=live.aws.profile.role_arn.rsplit("/", 1)[-1],
        PolicyName="test-write",
        PolicyDocument=json.dumps(
            {
                "Version": VERSION,
                "Statement": [
                    {
                        "Effect": "Allow",
                        "Action": "s3:PutObject",
                        "Resource": f"arn:aws:s3:::{bucket}/*",
                    }
                ],
            }
        ),
    )
    return bucket


def granted(live, **overrides):
    access_request = live.open_approved(**overrides)
    live.wait_for_status(access_request, Status.ACTIVE)
    return access_request, credentials_reveal(
        access_request_id=access_request.pk,
        user=live.cast.requester,
        otp_code=fresh_code(live.cast.requester),
    )


def refused(call) -> str:
    with pytest.raises(ClientError) as excinfo:
        call()
    return excinfo.value.response["Error"]["Code"]


def test_read_only_reads_and_cannot_write_full_does_both(live):
    bucket = writable_bucket(live)
    slug = live.aws.profile.slug
    scope_set(profile_slug=slug, name="read-only", policy_text=json.dumps(READ_ONLY))
    scope_set(profile_slug=slug, name="full", policy_text=json.dumps(FULL), make_default=True)
    live.start_worker()

    read_only, credentials = granted(live, scope="read-only", ticket="INC-1")
    s3 = live.aws.s3_with(credentials)
    assert s3.get_object(Bucket=bucket, Key="runbook.txt")["Body"].read() == b"read me"
    assert refused(lambda: s3.put_object(Bucket=bucket, Key="x", Body=b"x")) == "AccessDenied"

    full, credentials = granted(live, ticket="INC-2")  # the default scope
    assert full.scope.name == "full"
    s3 = live.aws.s3_with(credentials)
    assert s3.get_object(Bucket=bucket, Key="runbook.txt")["Body"].read() == b"read me"
    s3.put_object(Bucket=bucket, Key="written", Body=b"by the full scope")

    # What was granted is frozen: an edit now changes neither the record nor the session.
    digest = read_only.content_digest()
    scope_set(profile_slug=slug, name="read-only", policy_text=json.dumps(FULL))
    read_only.refresh_from_db()
    assert read_only.content_digest() == digest
    assert read_only.granted_scope["policy"] == READ_ONLY
    s3 = live.aws.s3_with(
        credentials_reveal(
            access_request_id=read_only.pk,
            user=live.cast.requester,
            otp_code=fresh_code(live.cast.requester),
        )
    )
    assert refused(lambda: s3.put_object(Bucket=bucket, Key="y", Body=b"y")) == "AccessDenied"


def test_a_scope_edited_after_the_signatures_fails_the_activation_with_nothing_granted(live):
    """An approval of the old content does not count: edited between the last signature and
    the activation (the worker is not running yet), the grant fails cleanly."""
    slug = live.aws.profile.slug
    scope_set(profile_slug=slug, name="read-only", policy_text=json.dumps(READ_ONLY))
    access_request = live.open_approved(scope="read-only")
    scope_set(profile_slug=slug, name="read-only", policy_text=json.dumps(FULL))
    live.start_worker()

    live.wait_for_status(access_request, Status.FAILED)
    assert "only 0 of the 2 required approvals are still valid" in access_request.failure_reason
    assert not IssuedCredential.objects.filter(request=access_request).exists()


def test_networks_that_exclude_loopback_refuse_every_call_and_including_it_works(live):
    bucket = writable_bucket(live)
    slug = live.aws.profile.slug
    live.start_worker()

    profile_networks_set(profile_slug=slug, networks=["192.0.2.0/24", "2001:db8::/32"])
    _, outside = granted(live, ticket="INC-3")
    s3 = live.aws.s3_with(outside)
    assert refused(s3.list_buckets) == "AccessDenied"
    assert refused(lambda: s3.get_object(Bucket=bucket, Key="runbook.txt")) == "AccessDenied"
    assert refused(lambda: s3.put_object(Bucket=bucket, Key="x", Body=b"x")) == "AccessDenied"

    profile_networks_set(profile_slug=slug, networks=["127.0.0.0/8"])
    _, inside = granted(live, ticket="INC-4")
    s3 = live.aws.s3_with(inside)
    assert s3.get_object(Bucket=bucket, Key="runbook.txt")["Body"].read() == b"read me"
    s3.put_object(Bucket=bucket, Key="from-loopback", Body=b"ok")

    # A scope's networks narrow the profile's (they lie within them): both must hold.
    scope_set(
        profile_slug=slug,
        name="elsewhere",
        policy_text=json.dumps(FULL),
        networks=["127.255.0.0/16"],
    )
    _, narrowed = granted(live, ticket="INC-5", scope="elsewhere")
    assert refused(live.aws.s3_with(narrowed).list_buckets) == "AccessDenied"
