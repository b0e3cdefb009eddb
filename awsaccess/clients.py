"""boto3 clients built from an AwsConnection, all from one boto3 session per process.

A new boto3 session re-reads and re-parses botocore's endpoint and service data for its first
client of each service (50-500 ms); the shared one parses each once per process, so a further
client costs a few milliseconds. The session never holds a principal's keys: each client is
given its own, so no client can sign with another principal's identity.
"""

from __future__ import annotations

import hashlib
import os
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


# Built on first use; a worker builds its clients before it forks, and its processes inherit them.
_session: boto3.session.Session | None = None
# boto3 sessions are not thread-safe for building clients; clients are, once built.
_session_lock = threading.Lock()


def _lock_renew() -> None:
    """A forked child gets a fresh lock: a lock held by another thread at fork stays held."""
    global _session_lock
    _session_lock = threading.Lock()


os.register_at_fork(after_in_child=_lock_renew)


def _shared_session() -> boto3.session.Session:
    """The process's session (call with _session_lock held)."""
    global _session
    if _session is None:
        _session = boto3.session.Session()
    return _session


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
        client = self._clients.get(key)
        if client is not None:
            return client
        with _session_lock:
            client = self._clients.get(key)
            if client is None:
                endpoint = (
                    sts_endpoint_url(self._connection, region)
                    if service == "sts"
                    else self._connection.endpoint_url
                )
                # Keys given to the client only (None = the default chain, as the connection says).
                client = _shared_session().client(
                    service,
                    region_name=region,
                    endpoint_url=endpoint,
                    aws_access_key_id=access_key_id,
                    aws_secret_access_key=secret_access_key,
                    config=self._config,
                )
                self._clients[key] = client
        return client
