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
class OfflineCredential:
    """One live offline kit of a profile (issue 18): its IAM user and the key and MFA device the
    user must hold. Not secret: the secrets exist only sealed in the kit."""

    principal_arn: str
    access_key_id: str
    mfa_serial: str


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
    # The offline kits' users the role also trusts (with MFA and an `offline-` source identity).
    offline_credentials: tuple[OfflineCredential, ...] = ()

    @property
    def role_name(self) -> str:
        return self.role_arn.rsplit("/", 1)[-1]


@dataclass(frozen=True)
class PrincipalKeys:
    """The break-glass principal's long-lived keys."""

    access_key_id: str
    secret_access_key: str = field(repr=False)


@dataclass(frozen=True)
class SessionScope:
    """What a grant's sessions may do within the role (a session policy), and from where."""

    name: str
    policy: dict | None = None  # inline session policy document, validated
    managed_policy_arns: tuple[str, ...] = ()  # passed as PolicyArns
    # Each tuple is one list of allowed CIDRs (the profile's, the scope's): a call must come
    # from inside every one of them.
    networks: tuple[tuple[str, ...], ...] = ()


@dataclass(frozen=True)
class Grant:
    """One approved request, as the engine needs to see it."""

    request_id: str  # SourceIdentity of every session issued for the request
    session_name: str  # RoleSessionName, already valid [\w+=,.@-]{2,64}
    tags: dict[str, str]  # session tags: request id, ticket, requester
    expires_at: datetime  # aware UTC
    scope: SessionScope | None = None  # None: the whole role, from anywhere


@dataclass(frozen=True)
class IssuedCredentials:
    access_key_id: str
    secret_access_key: str = field(repr=False)
    session_token: str = field(repr=False)
    expiration: datetime  # aware UTC
    region: str
    endpoint_url: str | None
