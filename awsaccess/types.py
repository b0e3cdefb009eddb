"""Plain values exchanged between the domain and the AWS engine."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime


@dataclass(frozen=True)
class AwsConnection:
    """How to reach AWS (or the sandbox, which is just another endpoint)."""

    endpoint_url: str | None  # None = real AWS
    access_key_id: str | None = None  # None = boto3 default credential chain
    secret_access_key: str | None = field(default=None, repr=False)
    connect_timeout: float = 3.0
    read_timeout: float = 10.0
    max_attempts: int = 3  # botocore retries for transient errors


@dataclass(frozen=True)
class AwsTarget:
    """One access profile: the break-glass role and the principal allowed to assume it."""

    account_id: str
    region: str
    role_arn: str
    principal_arn: str
    max_session_seconds: int  # the role's MaxSessionDuration (>= 3600 on AWS)
    # The role's protective boundary also denies the persistence moves (new users, keys …).
    protect_persistence: bool = True

    @property
    def role_name(self) -> str:
        return self.role_arn.rsplit("/", 1)[-1]


@dataclass(frozen=True)
class PrincipalKeys:
    """The break-glass principal's long-lived keys."""

    access_key_id: str
    secret_access_key: str = field(repr=False)


@dataclass(frozen=True)
class Grant:
    """One approved request, as the engine needs to see it."""

    request_id: str  # SourceIdentity of every session issued for the request
    session_name: str  # RoleSessionName, already valid [\w+=,.@-]{2,64}
    tags: dict[str, str]  # session tags: request id, ticket, requester
    expires_at: datetime  # aware UTC


@dataclass(frozen=True)
class IssuedCredentials:
    access_key_id: str
    secret_access_key: str = field(repr=False)
    session_token: str = field(repr=False)
    expiration: datetime  # aware UTC
    region: str
    endpoint_url: str | None
