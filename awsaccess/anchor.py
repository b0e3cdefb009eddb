"""The timeline's anchor outside the database: an S3 bucket with Object Lock in COMPLIANCE mode.

The portal only ever adds objects. Versioning keeps every version written under a name and the
bucket's default retention locks each one, so nobody, the bucket owner included, deletes or
shortens it before the retention ends; the broker's policy allows PutObject and reads, never a
delete or a retention change. A second write under a name adds a version next to the locked one:
readers get every version and decide (`anchor_versions`).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from functools import lru_cache
from typing import TYPE_CHECKING, Any

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from awsaccess.errors import error_code, translate
from awsaccess.types import AwsConnection

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

LIST_PAGE = 1000


@dataclass(frozen=True)
class AnchorLocation:
    bucket: str
    prefix: str
    region: str

    def key(self, name: str) -> str:
        return f"{self.prefix}{name}"


@dataclass(frozen=True)
class AnchoredVersion:
    name: str
    version_id: str
    body: bytes
    last_modified: datetime


@lru_cache(maxsize=8)
def _client(connection: AwsConnection, region: str) -> S3Client:
    session = boto3.session.Session(
        aws_access_key_id=connection.access_key_id,
        aws_secret_access_key=connection.secret_access_key,
        region_name=region,
    )
    config = Config(
        connect_timeout=connection.connect_timeout,
        read_timeout=connection.read_timeout,
        retries={"total_max_attempts": connection.max_attempts, "mode": "standard"},
    )
    return session.client("s3", endpoint_url=connection.endpoint_url, config=config)


def _call(operation: str, call: Any, **kwargs: Any) -> Any:
    try:
        return call(**kwargs)
    except (ClientError, BotoCoreError) as error:
        raise translate(operation, error) from None


def anchor_put(connection: AwsConnection, location: AnchorLocation, name: str, body: bytes) -> str:
    """Add `body` under `name`; returns the version id the bucket locked."""
    s3 = _client(connection, location.region)
    answer = _call(
        "s3:PutObject",
        s3.put_object,
        Bucket=location.bucket,
        Key=location.key(name),
        Body=body,
        ContentType="application/json",
    )
    return str(answer.get("VersionId") or "")


def anchor_versions(
    connection: AwsConnection, location: AnchorLocation, name: str
) -> list[AnchoredVersion]:
    """Every version stored under `name`, oldest first ([] when there is none)."""
    s3 = _client(connection, location.region)
    key = location.key(name)
    listed = _call(
        "s3:ListObjectVersions",
        s3.list_object_versions,
        Bucket=location.bucket,
        Prefix=key,
        MaxKeys=LIST_PAGE,
    )
    versions = [v for v in listed.get("Versions", []) if v["Key"] == key]
    found = []
    for version in sorted(versions, key=lambda v: v["LastModified"]):
        body = _call(
            "s3:GetObject",
            s3.get_object,
            Bucket=location.bucket,
            Key=key,
            VersionId=version["VersionId"],
        )["Body"].read()
        found.append(
            AnchoredVersion(name, str(version["VersionId"]), body, version["LastModified"])
        )
    return found


def anchor_names(
    connection: AwsConnection, location: AnchorLocation, folder: str, *, after: str = ""
) -> list[str]:
    """The names under `folder` (sorted), those after `after` only."""
    s3 = _client(connection, location.region)
    names: list[str] = []
    kwargs: dict[str, Any] = {"Bucket": location.bucket, "Prefix": location.key(folder)}
    if after:
        kwargs["StartAfter"] = location.key(after)
    while True:
        page = _call("s3:ListObjectsV2", s3.list_objects_v2, **kwargs)
        names += [item["Key"][len(location.prefix) :] for item in page.get("Contents", [])]
        if not page.get("IsTruncated"):
            return names
        kwargs["ContinuationToken"] = page["NextContinuationToken"]


def anchor_bucket_problems(connection: AwsConnection, location: AnchorLocation) -> list[str]:
    """What makes the bucket unfit to anchor the record ([] when it is fit)."""
    s3 = _client(connection, location.region)
    try:
        lock = s3.get_object_lock_configuration(Bucket=location.bucket)["ObjectLockConfiguration"]
    except ClientError as error:
        return [f"bucket {location.bucket}: no Object Lock configuration ({error_code(error)})"]
    except BotoCoreError as error:
        raise translate("s3:GetObjectLockConfiguration", error) from None
    problems = []
    if lock.get("ObjectLockEnabled") != "Enabled":
        problems.append(f"bucket {location.bucket}: Object Lock is not enabled")
    retention = lock.get("Rule", {}).get("DefaultRetention", {})
    if retention.get("Mode") != "COMPLIANCE":
        problems.append(
            f"bucket {location.bucket}: default retention is {retention.get('Mode') or 'none'}, "
            "not COMPLIANCE (a privileged user could delete checkpoints)"
        )
    return problems


def anchor_bucket_ensure(
    connection: AwsConnection, location: AnchorLocation, *, retention_days: int
) -> list[str]:
    """Create the bucket with Object Lock and a COMPLIANCE default retention (provisioner's
    keys). Idempotent; a compliance retention can be lengthened, never shortened."""
    s3 = _client(connection, location.region)
    done = []
    try:
        create: dict[str, Any] = {"Bucket": location.bucket, "ObjectLockEnabledForBucket": True}
        if location.region != "us-east-1":
            create["CreateBucketConfiguration"] = {"LocationConstraint": location.region}
        s3.create_bucket(**create)
        done.append(f"created bucket {location.bucket} with Object Lock")
    except ClientError as error:
        if error_code(error) != "BucketAlreadyOwnedByYou":
            raise translate("s3:CreateBucket", error) from None
    _call(
        "s3:PutObjectLockConfiguration",
        s3.put_object_lock_configuration,
        Bucket=location.bucket,
        ObjectLockConfiguration={
            "ObjectLockEnabled": "Enabled",
            "Rule": {"DefaultRetention": {"Mode": "COMPLIANCE", "Days": retention_days}},
        },
    )
    done.append(f"default retention COMPLIANCE, {retention_days} days")
    return done
