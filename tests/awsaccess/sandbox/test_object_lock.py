"""S3 Object Lock in compliance mode, as the checkpoint anchor relies on it: nobody, the bucket
owner included, deletes a locked version or shortens its retention before it ends."""

import uuid
from datetime import UTC, datetime, timedelta

import pytest
from botocore.exceptions import ClientError

from ..helpers import error_code_of


@pytest.fixture
def locked(aws_sandbox):
    """A bucket with a one-day COMPLIANCE default and one object version, as its owner."""
    s3 = aws_sandbox.client("s3")
    bucket = f"anchor-{uuid.uuid4().hex[:8]}"
    s3.create_bucket(
        Bucket=bucket,
        CreateBucketConfiguration={"LocationConstraint": aws_sandbox.region},
        ObjectLockEnabledForBucket=True,
    )
    s3.put_object_lock_configuration(
        Bucket=bucket,
        ObjectLockConfiguration={
            "ObjectLockEnabled": "Enabled",
            "Rule": {"DefaultRetention": {"Mode": "COMPLIANCE", "Days": 1}},
        },
    )
    version = s3.put_object(Bucket=bucket, Key="checkpoint.json", Body=b"v1")["VersionId"]
    return s3, bucket, version


def test_a_locked_version_cannot_be_deleted_by_its_owner(locked):
    s3, bucket, version = locked
    for delete in (
        lambda: s3.delete_object(Bucket=bucket, Key="checkpoint.json", VersionId=version),
        lambda: s3.delete_object(
            Bucket=bucket, Key="checkpoint.json", VersionId=version, BypassGovernanceRetention=True
        ),
    ):
        with pytest.raises(ClientError) as excinfo:
            delete()
        assert error_code_of(excinfo) == "AccessDenied"
    answer = s3.delete_objects(
        Bucket=bucket, Delete={"Objects": [{"Key": "checkpoint.json", "VersionId": version}]}
    )
    assert answer["Errors"][0]["Code"] == "AccessDenied"
    assert (
        s3.get_object(Bucket=bucket, Key="checkpoint.json", VersionId=version)["Body"].read()
        == b"v1"
    )


def test_an_overwrite_adds_a_version_and_keeps_the_locked_one(locked):
    s3, bucket, version = locked
    s3.put_object(Bucket=bucket, Key="checkpoint.json", Body=b"forged")
    versions = s3.list_object_versions(Bucket=bucket)["Versions"]
    assert version in [v["VersionId"] for v in versions]
    assert (
        s3.get_object(Bucket=bucket, Key="checkpoint.json", VersionId=version)["Body"].read()
        == b"v1"
    )


def test_compliance_retention_can_be_extended_never_shortened_or_weakened(locked):
    s3, bucket, version = locked
    shown = s3.get_object_retention(Bucket=bucket, Key="checkpoint.json", VersionId=version)
    assert shown["Retention"]["Mode"] == "COMPLIANCE"
    original = shown["Retention"]["RetainUntilDate"]
    now = datetime.now(UTC)
    for mode, until in (
        ("COMPLIANCE", now + timedelta(hours=1)),
        ("GOVERNANCE", now + timedelta(days=9)),
    ):
        with pytest.raises(ClientError) as excinfo:
            s3.put_object_retention(
                Bucket=bucket,
                Key="checkpoint.json",
                VersionId=version,
                Retention={"Mode": mode, "RetainUntilDate": until},
                BypassGovernanceRetention=True,
            )
        assert error_code_of(excinfo) == "AccessDenied"
    kept = s3.get_object_retention(Bucket=bucket, Key="checkpoint.json", VersionId=version)
    assert kept["Retention"]["RetainUntilDate"] == original

    longer = now + timedelta(days=3)
    s3.put_object_retention(
        Bucket=bucket,
        Key="checkpoint.json",
        VersionId=version,
        Retention={"Mode": "COMPLIANCE", "RetainUntilDate": longer},
    )
    extended = s3.get_object_retention(Bucket=bucket, Key="checkpoint.json", VersionId=version)
    assert extended["Retention"]["RetainUntilDate"] > original


def test_the_lock_ends_on_the_sandbox_clock(locked, sandbox_clock):
    s3, bucket, version = locked
    sandbox_clock.advance(timedelta(days=2))
    s3.delete_object(Bucket=bucket, Key="checkpoint.json", VersionId=version)
    versions = s3.list_object_versions(Bucket=bucket).get("Versions", [])
    assert version not in [v["VersionId"] for v in versions]
