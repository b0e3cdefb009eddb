"""An access profile wired to a fresh break-glass role in the AWS sandbox, for one test."""

import json
from dataclasses import dataclass
from pathlib import Path

import boto3
from botocore.config import Config

from approvals.models import AccessProfile
from tests.administration import administration_alarms_cleared


@dataclass
class SandboxProfile:
    profile: AccessProfile
    env: dict[str, str]  # what worker processes need to reach the same sandbox
    sandbox: object

    def s3_with(self, credentials):
        """An S3 client using issued credentials: ListBuckets is allowed by the role only."""
        return boto3.client(
            "s3",
            endpoint_url=self.sandbox.endpoint_url,
            region_name=self.profile.region,
            aws_access_key_id=credentials.access_key_id,
            aws_secret_access_key=credentials.secret_access_key,
            aws_session_token=credentials.session_token,
            config=Config(retries={"max_attempts": 1}, connect_timeout=3, read_timeout=5),
        )


def sandbox_profile(
    *, aws_sandbox, settings, tmp_path: Path, approver_group, **extra_env
) -> SandboxProfile:
    extra = aws_sandbox.new_target()
    principals = tmp_path / "principals.json"
    principals.write_text(
        json.dumps(
            {
                extra.target.principal_arn: {
                    "access_key_id": extra.principal_keys.access_key_id,
                    "secret_access_key": extra.principal_keys.secret_access_key,
                }
            }
        )
    )
    broker = aws_sandbox.state_dir / "broker.json"
    settings.AWS_ENDPOINT_URL = aws_sandbox.endpoint_url
    settings.AWS_BROKER_CREDENTIALS_FILE = str(broker)
    settings.AWS_PRINCIPAL_CREDENTIALS_FILE = str(principals)
    settings.AWS_PROPAGATION_TIMEOUT_SECONDS = 0
    profile = AccessProfile.objects.create(
        slug=f"sandbox-{extra.target.role_name[-12:].strip('-')}",
        name="Sandbox admin",
        account_id=extra.target.account_id,
        region=extra.target.region,
        role_arn=extra.target.role_arn,
        principal_arn=extra.target.principal_arn,
        role_max_session_seconds=extra.target.max_session_seconds,
        max_duration_minutes=60,
        approver_group=approver_group,
    )
    administration_alarms_cleared()
    env = {
        "BREAKGLASS_AWS_ENDPOINT_URL": aws_sandbox.endpoint_url,
        "BREAKGLASS_AWS_BROKER_CREDENTIALS_FILE": str(broker),
        "BREAKGLASS_AWS_PRINCIPAL_CREDENTIALS_FILE": str(principals),
        "BREAKGLASS_AWS_PROPAGATION_TIMEOUT_SECONDS": "0",
        "BREAKGLASS_AWS_CONNECT_TIMEOUT_SECONDS": "1",
        "BREAKGLASS_AWS_READ_TIMEOUT_SECONDS": "2",
        **{key: str(value) for key, value in extra_env.items()},
    }
    return SandboxProfile(profile=profile, env=env, sandbox=aws_sandbox)
