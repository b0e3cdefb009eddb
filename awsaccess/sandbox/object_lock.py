"""S3 Object Lock as AWS enforces it. moto 5.2.5 refuses to delete a locked version but lets
anyone shorten or drop a COMPLIANCE retention, answers GetObjectRetention with a server error,
and judges retention by the wall clock; here retention is judged on the sandbox clock, and a
COMPLIANCE retention can only be kept or extended until it ends, by anyone, the bucket owner
included."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from moto.s3.exceptions import AccessDeniedByLock, S3ClientError
from moto.s3.models import FakeKey, S3Backend
from moto.s3.responses import S3Response

from awsaccess.sandbox import clock

_original_put_retention = S3Backend.put_object_retention
_original_key_get = S3Response._key_response_get


class NoSuchObjectLockConfiguration(S3ClientError):
    code = "NoSuchObjectLockConfiguration"

    def __init__(self) -> None:
        super().__init__(
            "NoSuchObjectLockConfiguration", "The specified object does not have a ObjectLock"
        )


def _until(value: str | None) -> datetime | None:
    if not value:
        return None
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00")).astimezone(UTC)
    except ValueError:
        return None


def _is_locked(self: FakeKey, governance_bypass: bool) -> bool:
    if self.lock_legal_status == "ON":
        return True
    if self.lock_mode == "GOVERNANCE" and governance_bypass:
        return False
    if self.lock_mode in ("GOVERNANCE", "COMPLIANCE"):
        until = _until(self.lock_until)
        return until is not None and until > clock.now()
    return False


def _put_object_retention(
    self: S3Backend,
    bucket_name: str,
    key_name: str,
    version_id: str | None,
    retention: tuple[str | None, str | None],
) -> None:
    key = self.get_object(bucket_name, key_name, version_id=version_id)
    if key is not None and key.lock_mode == "COMPLIANCE" and _is_locked(key, False):
        current, wanted = _until(key.lock_until), _until(retention[1])
        if retention[0] != "COMPLIANCE" or wanted is None or current is None or wanted < current:
            raise AccessDeniedByLock()
    _original_put_retention(self, bucket_name, key_name, version_id, retention)


def _key_response_get(self: S3Response, query: dict[str, Any], key_name: str) -> Any:
    if "retention" not in query:
        return _original_key_get(self, query, key_name)
    self._set_action("KEY", "GET", query)
    self._authenticate_and_authorize_s3_action(bucket_name=self.bucket_name, key_name=key_name)
    key, _ = self._get_key()
    if not key.lock_mode:
        raise NoSuchObjectLockConfiguration()
    body = (
        '<?xml version="1.0" encoding="UTF-8"?>'
        '<Retention xmlns="http://s3.amazonaws.com/doc/2006-03-01/">'
        f"<Mode>{key.lock_mode}</Mode><RetainUntilDate>{key.lock_until}</RetainUntilDate>"
        "</Retention>"
    )
    return 200, {"Content-Type": "application/xml"}, body


def install() -> None:
    FakeKey.is_locked = _is_locked  # type: ignore[method-assign]  # patching moto in place
    S3Backend.put_object_retention = _put_object_retention  # type: ignore[method-assign]  # patching moto in place
    S3Response._key_response_get = _key_response_get  # type: ignore[method-assign]  # patching moto in place
