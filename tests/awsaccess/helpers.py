"""Shared test helpers for the awsaccess suite (no mocks: real calls to the sandbox)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import boto3
from botocore.client import BaseClient

from awsaccess.types import Grant, IssuedCredentials


def make_grant(minutes: float = 30, *, now: datetime | None = None) -> Grant:
    request_id = str(uuid.uuid4())
    return Grant(
        request_id=request_id,
        session_name=f"INC-42-{request_id[:8]}",
        tags={"request-id": request_id, "ticket": "INC-42", "requester": "alice@example.com"},
        expires_at=(now or datetime.now(UTC)) + timedelta(minutes=minutes),
    )


def s3_with(credentials: IssuedCredentials) -> BaseClient:
    return boto3.client(
        "s3",
        endpoint_url=credentials.endpoint_url,
        region_name=credentials.region,
        aws_access_key_id=credentials.access_key_id,
        aws_secret_access_key=credentials.secret_access_key,
        aws_session_token=credentials.session_token,
    )


def error_code_of(excinfo) -> str:
    return excinfo.value.response["Error"]["Code"]
