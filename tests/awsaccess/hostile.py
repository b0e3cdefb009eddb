"""A live break-glass session in hostile hands: a request activated by the portal against the
sandbox, its credentials revealed to the requester, and clients signed with them (issue 12)."""

from __future__ import annotations

import json
from dataclasses import dataclass

import boto3
from botocore.client import BaseClient
from botocore.config import Config
from botocore.exceptions import ClientError

from approvals.models import AccessRequest, Status
from approvals.services.grants import request_revocation_drive
from approvals.services.requests import credentials_reveal, request_revoke
from awsaccess.types import IssuedCredentials
from tests.aws_profile import SandboxProfile, sandbox_profile
from tests.conftest import fresh_code
from tests.watch.helpers import active_request

# A break-glass role is powerful by design: the attacker's session may do anything the
# protective boundary does not deny.
SESSION_ADMIN_POLICY = "breakglass-test-hostile-admin"
_NO_RETRIES = Config(retries={"max_attempts": 1}, connect_timeout=3, read_timeout=10)


@dataclass
class HostileSession:
    cast: object
    aws: SandboxProfile
    request: AccessRequest
    credentials: IssuedCredentials

    @property
    def source_identity(self) -> str:
        return self.request.source_identity

    @property
    def role_name(self) -> str:
        return self.aws.profile.aws_target().role_name

    @property
    def principal_name(self) -> str:
        return self.aws.profile.principal_arn.rsplit("/", 1)[-1]

    def client(self, service: str, *, region: str | None = None) -> BaseClient:
        """A client signed with the credentials the portal issued to this session."""
        return boto3.client(
            service,
            endpoint_url=self.credentials.endpoint_url,
            region_name=region or ("us-east-1" if service == "iam" else self.aws.profile.region),
            aws_access_key_id=self.credentials.access_key_id,
            aws_secret_access_key=self.credentials.secret_access_key,
            aws_session_token=self.credentials.session_token,
            config=_NO_RETRIES,
        )

    def provisioner(self, service: str) -> BaseClient:
        region = "us-east-1" if service == "iam" else self.aws.profile.region
        return self.aws.sandbox.client(service, region_name=region)

    def works(self) -> bool:
        """Can the session still act? AccessDenied (the revocation deny) means no."""
        try:
            self.client("s3").list_buckets()
        except ClientError as error:
            assert error.response["Error"]["Code"] == "AccessDenied", error.response
            return False
        return True

    def revoke(self) -> None:
        request_revoke(
            access_request_id=self.request.pk,
            actor=self.cast.requester,
            otp_code=fresh_code(self.cast.requester),
            reason="Hostile session: revoke now.",
        )
        request_revocation_drive(access_request_id=self.request.pk)
        self.request.refresh_from_db()


def session_admin_policy_arn(aws_sandbox) -> str:
    iam = aws_sandbox.client("iam", region_name="us-east-1")
    arn = f"arn:aws:iam::{aws_sandbox.account_id}:policy/{SESSION_ADMIN_POLICY}"
    document = {
        "Version": "2012-10-17",
        "Statement": [{"Sid": "Everything", "Effect": "Allow", "Action": "*", "Resource": "*"}],
    }
    try:
        iam.create_policy(PolicyName=SESSION_ADMIN_POLICY, PolicyDocument=json.dumps(document))
    except ClientError as error:
        if error.response["Error"]["Code"] != "EntityAlreadyExists":
            raise
    return arn


def hostile_session(*, cast, aws_sandbox, settings, tmp_path) -> HostileSession:
    aws = sandbox_profile(
        aws_sandbox=aws_sandbox,
        settings=settings,
        tmp_path=tmp_path,
        approver_group=cast.profile.approver_group,
    )
    aws_sandbox.client("iam", region_name="us-east-1").attach_role_policy(
        RoleName=aws.profile.aws_target().role_name,
        PolicyArn=session_admin_policy_arn(aws_sandbox),
    )
    access_request = active_request(cast, aws.profile)
    credentials = credentials_reveal(
        access_request_id=access_request.pk,
        user=cast.requester,
        otp_code=fresh_code(cast.requester),
    )
    session = HostileSession(cast, aws, access_request, credentials)
    assert session.works()
    assert access_request.status == Status.ACTIVE
    return session
