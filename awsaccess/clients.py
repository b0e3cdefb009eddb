"""boto3 clients built from an AwsConnection, cached because building one costs ~20 ms."""

from __future__ import annotations

import hashlib
import threading
from typing import TYPE_CHECKING, Literal, overload

import boto3
from botocore.config import Config

from awsaccess import log_redaction
from awsaccess.types import AwsConnection

if TYPE_CHECKING:
    from mypy_boto3_cloudtrail import CloudTrailClient
    from mypy_boto3_events import EventBridgeClient
    from mypy_boto3_iam import IAMClient
    from mypy_boto3_sqs import SQSClient
    from mypy_boto3_sts import STSClient

# The only AWS services the portal talks to.
Service = Literal["iam", "sts", "sqs", "events", "cloudtrail"]


def sts_endpoint_url(connection: AwsConnection, region: str) -> str | None:
    """The regional STS endpoint: the trust policy pins aws:RequestedRegion, and the global
    endpoint would report us-east-1 and deliver the CloudTrail event outside the watched region."""
    if connection.endpoint_url is not None:
        return connection.endpoint_url
    suffix = "amazonaws.com.cn" if region.startswith("cn-") else "amazonaws.com"
    return f"https://sts.{region}.{suffix}"


class ClientFactory:
    """Thread-safe cache of clients per (service, region, access key)."""

    def __init__(self, connection: AwsConnection) -> None:
        log_redaction.install()
        self._connection = connection
        self._config = Config(
            connect_timeout=connection.connect_timeout,
            read_timeout=connection.read_timeout,
            retries={"total_max_attempts": connection.max_attempts, "mode": "standard"},
        )
        self._clients: dict[
            tuple[Service, str, str | None, str],
            IAMClient | STSClient | SQSClient | EventBridgeClient | CloudTrailClient,
        ] = {}
        # boto3 sessions are not thread-safe; clients are, once built.
        self._lock = threading.Lock()

    # One overload per service, so each caller gets that service's typed client.
    @overload
    def client(
        self,
        service: Literal["iam"],
        region: str,
        *,
        access_key_id: str | None = None,
        secret_access_key: str | None = None,
    ) -> IAMClient: ...

    @overload
    def client(
        self,
        service: Literal["sts"],
        region: str,
        *,
        access_key_id: str | None = None,
        secret_access_key: str | None = None,
    ) -> STSClient: ...

    @overload
    def client(
        self,
        service: Literal["sqs"],
        region: str,
        *,
        access_key_id: str | None = None,
        secret_access_key: str | None = None,
    ) -> SQSClient: ...

    @overload
    def client(
        self,
        service: Literal["events"],
        region: str,
        *,
        access_key_id: str | None = None,
        secret_access_key: str | None = None,
    ) -> EventBridgeClient: ...

    @overload
    def client(
        self,
        service: Literal["cloudtrail"],
        region: str,
        *,
        access_key_id: str | None = None,
        secret_access_key: str | None = None,
    ) -> CloudTrailClient: ...

    def client(
        self,
        service: Service,
        region: str,
        *,
        access_key_id: str | None = None,
        secret_access_key: str | None = None,
    ) -> IAMClient | STSClient | SQSClient | EventBridgeClient | CloudTrailClient:
        """A client signed with the given keys, or with the connection's own identity."""
        if access_key_id is None:
            access_key_id = self._connection.access_key_id
            secret_access_key = self._connection.secret_access_key
        # Key on a digest of the secret too, so a wrong secret never reuses a good client.
        digest = hashlib.sha256((secret_access_key or "").encode()).hexdigest()
        key = (service, region, access_key_id, digest)
        with self._lock:
            client = self._clients.get(key)
            if client is None:
                endpoint = (
                    sts_endpoint_url(self._connection, region)
                    if service == "sts"
                    else self._connection.endpoint_url
                )
                session = boto3.session.Session(
                    aws_access_key_id=access_key_id,
                    aws_secret_access_key=secret_access_key,
                    region_name=region,
                )
                client = session.client(service, endpoint_url=endpoint, config=self._config)
                self._clients[key] = client
        return client
