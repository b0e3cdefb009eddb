"""Set the sandbox up like a real account, then switch IAM enforcement on.

While enforcement is off (moto accepts any signature): the broker user with only the runtime
permissions, the provisioner user, the break-glass principal with keys and no policies, an S3
bucket the role may read. Then enforcement goes on and the profile is provisioned with the
provisioner's keys, exactly as on AWS. Idempotent: keys in the state dir are reused while
the sandbox still knows them.
"""

from __future__ import annotations

import json
import os
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

import boto3
from botocore.exceptions import ClientError

from awsaccess import policies
from awsaccess.anchor import AnchorLocation, anchor_bucket_ensure
from awsaccess.provisioning import ProvisionReport, profile_provision
from awsaccess.types import AwsConnection, AwsTarget, PrincipalKeys

if TYPE_CHECKING:  # the stubs are a development dependency
    from mypy_boto3_iam import IAMClient
    from mypy_boto3_s3 import S3Client
    from mypy_boto3_s3.literals import BucketLocationConstraintType

ACCOUNT_ID = "123456789012"  # moto's default account
DEFAULT_REGION = "eu-west-1"
BUCKET = "breakglass-sandbox-evidence"
# The timeline's checkpoints (issue 14): Object Lock, COMPLIANCE mode.
ANCHOR_BUCKET = "breakglass-sandbox-anchor"
ANCHOR_RETENTION_DAYS = 30
TRAIL = "breakglass-sandbox-trail"
BROKER_USER = "breakglass-broker"
PROVISIONER_USER = "breakglass-provisioner"


@dataclass(frozen=True)
class SandboxState:
    endpoint_url: str
    account_id: str
    region: str
    role_arn: str
    principal_arn: str
    broker: AwsConnection
    provisioner: AwsConnection
    principal_keys: PrincipalKeys
    state_dir: Path

    def target(self, max_session_seconds: int = 3600) -> AwsTarget:
        return AwsTarget(
            account_id=self.account_id,
            region=self.region,
            role_arn=self.role_arn,
            principal_arn=self.principal_arn,
            max_session_seconds=max_session_seconds,
        )


def set_enforcement(endpoint_url: str, *, on: bool) -> None:
    """moto's switch: the number of unauthenticated requests still allowed (0 = enforce now)."""
    request = urllib.request.Request(  # noqa: S310 (endpoint is the sandbox)
        f"{endpoint_url}/moto-api/reset-auth",
        data=b"0" if on else b"inf",
        method="POST",
        # Not form-encoded, or werkzeug swallows the body before moto reads it.
        headers={"Content-Type": "text/plain"},
    )
    with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310
        response.read()


def broker_policy(role_name: str, principal_name: str) -> dict:
    """Only what the running portal needs: grants on principals, denies on break-glass roles,
    reading the watch queues and rules, and the reads of the guard's integrity check."""
    iam = f"arn:aws:iam::{ACCOUNT_ID}"
    return {
        "Version": policies.VERSION,
        "Statement": [
            *_broker_iam_statements(iam, role_name, principal_name),
            *_broker_watch_statements(iam),
            _broker_anchor_statement(),
        ],
    }


def _broker_anchor_statement() -> dict[str, Any]:
    """Checkpoints: add and read them; never delete one or touch a retention or the lock."""
    return {
        "Sid": "AnchorAddAndRead",
        "Effect": "Allow",
        "Action": [
            "s3:PutObject",
            "s3:GetObject",
            "s3:GetObjectVersion",
            "s3:ListBucket",
            "s3:ListBucketVersions",
            "s3:GetObjectRetention",
            "s3:GetBucketObjectLockConfiguration",
        ],
        "Resource": [f"arn:aws:s3:::{ANCHOR_BUCKET}", f"arn:aws:s3:::{ANCHOR_BUCKET}/*"],
    }


def _broker_principal_statements(iam: str, principal_name: str) -> list[dict[str, Any]]:
    """Grants on the break-glass principals, and the guard's reads of them and of the offline
    kits' users."""
    return [
        {
            "Sid": "GrantsOnBreakGlassPrincipals",
            "Effect": "Allow",
            "Action": [
                "iam:PutUserPolicy",
                "iam:DeleteUserPolicy",
                "iam:GetUserPolicy",
                "iam:ListUserPolicies",
                # Revocation deletes any key the portal does not hold (a way back in).
                "iam:DeleteAccessKey",
            ],
            "Resource": sorted(
                {f"{iam}:user/{principal_name}", f"{iam}:user/breakglass-principal*"}
            ),
        },
        {
            # The guard checks that the principal holds nothing but grants.
            "Sid": "ReadBreakGlassPrincipals",
            "Effect": "Allow",
            "Action": [
                "iam:GetUser",
                "iam:ListAttachedUserPolicies",
                "iam:ListGroupsForUser",
                "iam:ListAccessKeys",
                "iam:GetLoginProfile",
            ],
            "Resource": sorted(
                {f"{iam}:user/{principal_name}", f"{iam}:user/breakglass-principal*"}
            ),
        },
        {
            # The guard checks the offline kits' users (issue 18); it may only read them.
            "Sid": "ReadOfflineKitPrincipals",
            "Effect": "Allow",
            "Action": [
                "iam:GetUser",
                "iam:ListUserPolicies",
                "iam:GetUserPolicy",
                "iam:ListAttachedUserPolicies",
                "iam:ListGroupsForUser",
                "iam:ListAccessKeys",
                "iam:ListMFADevices",
            ],
            "Resource": f"{iam}:user/breakglass-offline-*",
        },
    ]


def _broker_iam_statements(iam: str, role_name: str, principal_name: str) -> list[dict[str, Any]]:
    """Grants on the principals, revocations on the roles, and the guard's reads of both."""
    return [
        *_broker_principal_statements(iam, principal_name),
        {
            "Sid": "RevocationsOnBreakGlassRoles",
            "Effect": "Allow",
            "Action": [
                "iam:PutRolePolicy",
                "iam:DeleteRolePolicy",
                "iam:GetRolePolicy",
                "iam:ListRolePolicies",
                "iam:ListAttachedRolePolicies",
                "iam:GetRole",
            ],
            "Resource": sorted({f"{iam}:role/{role_name}", f"{iam}:role/breakglass-*"}),
        },
    ]


def _broker_watch_statements(iam: str) -> list[dict[str, Any]]:
    """Reading the watch queues and rules, the trail, and the protective boundary."""
    return [
        {
            # The guard reads the role's protective boundary.
            "Sid": "ReadBreakGlassBoundaries",
            "Effect": "Allow",
            "Action": ["iam:GetPolicy", "iam:GetPolicyVersion"],
            "Resource": f"{iam}:policy/{policies.BOUNDARY_POLICY_PREFIX}*",
        },
        {
            "Sid": "ReadWatch",
            "Effect": "Allow",
            "Action": [
                "sqs:ReceiveMessage",
                "sqs:DeleteMessage",
                "sqs:GetQueueUrl",
                "sqs:GetQueueAttributes",
                "events:DescribeRule",
                "events:ListTargetsByRule",
            ],
            "Resource": [
                f"arn:aws:sqs:*:{ACCOUNT_ID}:{policies.WATCH_NAME_PREFIX}*",
                f"arn:aws:events:*:{ACCOUNT_ID}:rule/{policies.WATCH_NAME_PREFIX}*",
            ],
        },
        {
            # The activity backstop and the guard's trail check; LookupEvents and
            # DescribeTrails take no resource-level permissions on AWS.
            "Sid": "ReadTrail",
            "Effect": "Allow",
            "Action": [
                "cloudtrail:LookupEvents",
                "cloudtrail:DescribeTrails",
                "cloudtrail:GetTrailStatus",
                "cloudtrail:GetEventSelectors",
            ],
            "Resource": "*",
        },
    ]


PROVISIONER_POLICY = {
    "Version": policies.VERSION,
    "Statement": [{"Sid": "Provisioning", "Effect": "Allow", "Action": "*", "Resource": "*"}],
}

ROLE_PERMISSIONS = {
    "Version": policies.VERSION,
    "Statement": [
        {
            "Sid": "SandboxBreakGlassPermissions",
            "Effect": "Allow",
            "Action": ["s3:ListAllMyBuckets", "s3:ListBucket", "s3:GetObject", "ec2:Describe*"],
            "Resource": "*",
        }
    ],
}


def _ensure_user(iam: IAMClient, name: str) -> None:
    try:
        iam.create_user(UserName=name)
    except ClientError as error:
        if error.response["Error"]["Code"] != "EntityAlreadyExists":
            raise


def _ensure_managed_policy(iam: IAMClient, name: str, document: dict) -> str:
    arn = f"arn:aws:iam::{ACCOUNT_ID}:policy/{name}"
    text = json.dumps(document)
    try:
        iam.create_policy(PolicyName=name, PolicyDocument=text)
    except ClientError as error:
        if error.response["Error"]["Code"] != "EntityAlreadyExists":
            raise
        for version in iam.list_policy_versions(PolicyArn=arn)["Versions"]:
            if not version["IsDefaultVersion"]:
                iam.delete_policy_version(PolicyArn=arn, VersionId=version["VersionId"])
        iam.create_policy_version(PolicyArn=arn, PolicyDocument=text, SetAsDefault=True)
    return arn


def _ensure_keys(iam: IAMClient, user: str, stored: dict[str, str] | None) -> dict[str, str]:
    """Reuse the keys on file if the sandbox still has them (it forgets them on restart)."""
    known = {k["AccessKeyId"] for k in iam.list_access_keys(UserName=user)["AccessKeyMetadata"]}
    if stored and stored.get("access_key_id") in known:
        return stored
    for key_id in known:
        iam.delete_access_key(UserName=user, AccessKeyId=key_id)
    key = iam.create_access_key(UserName=user)["AccessKey"]
    return {"access_key_id": key["AccessKeyId"], "secret_access_key": key["SecretAccessKey"]}


def _read_json(path: Path) -> Any:
    return json.loads(path.read_text()) if path.exists() else None


def _write_secret(path: Path, content: Any) -> None:
    # Created 0600 from the start, never world-readable for an instant.
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        json.dump(content, handle, indent=2)
    os.chmod(path, 0o600)


def _identities_ensure(
    iam: IAMClient, state_dir: Path, role_name: str, principal_name: str
) -> tuple[tuple[dict, dict, dict], str]:
    """The broker, provisioner and principal users with their policies and keys (kept in the
    state dir, so a second bootstrap reuses them) → ((broker, provisioner, principal) keys,
    the ARN of the role's permissions policy)."""
    for user in (BROKER_USER, PROVISIONER_USER, principal_name):
        _ensure_user(iam, user)
    iam.attach_user_policy(
        UserName=BROKER_USER,
        PolicyArn=_ensure_managed_policy(
            iam, "breakglass-broker", broker_policy(role_name, principal_name)
        ),
    )
    iam.put_user_policy(
        UserName=PROVISIONER_USER,
        PolicyName="provisioning",
        PolicyDocument=json.dumps(PROVISIONER_POLICY),
    )
    role_permissions_arn = _ensure_managed_policy(
        iam, "breakglass-sandbox-role-permissions", ROLE_PERMISSIONS
    )
    broker = _ensure_keys(iam, BROKER_USER, _read_json(state_dir / "broker.json"))
    _write_secret(state_dir / "broker.json", broker)
    provisioner = _ensure_keys(iam, PROVISIONER_USER, _read_json(state_dir / "provisioner.json"))
    _write_secret(state_dir / "provisioner.json", provisioner)
    principal_arn = f"arn:aws:iam::{ACCOUNT_ID}:user/{principal_name}"
    principals = _read_json(state_dir / "principals.json") or {}
    principals[principal_arn] = _ensure_keys(iam, principal_name, principals.get(principal_arn))
    _write_secret(state_dir / "principals.json", principals)
    return (broker, provisioner, principals[principal_arn]), role_permissions_arn


def _demo_bucket_ensure(s3: S3Client, region: str) -> None:
    """A bucket with one object: reading it proves a session has access."""
    try:
        s3.create_bucket(
            Bucket=BUCKET,
            CreateBucketConfiguration={
                "LocationConstraint": cast("BucketLocationConstraintType", region)
            },
        )
    except ClientError as error:
        if error.response["Error"]["Code"] != "BucketAlreadyOwnedByYou":
            raise
    s3.put_object(Bucket=BUCKET, Key="README.txt", Body=b"Reading this proves access.\n")


# What a real account's trail should record for the watch: every management event, and the
# data events the activity record shows (S3 objects, SQS messages).
TRAIL_SELECTORS = [
    {
        "Name": "Management events",
        "FieldSelectors": [{"Field": "eventCategory", "Equals": ["Management"]}],
    },
    {
        "Name": "S3 object and SQS message events",
        "FieldSelectors": [
            {"Field": "eventCategory", "Equals": ["Data"]},
            {"Field": "resources.type", "Equals": ["AWS::S3::Object", "AWS::SQS::Queue"]},
        ],
    },
]


def _trail_ensure(session: boto3.session.Session, endpoint_url: str, region: str) -> None:
    """One multi-region trail with global service events, logging: without a logging trail
    no CloudTrail event reaches EventBridge (as on AWS)."""
    trails = session.client("cloudtrail", endpoint_url=endpoint_url, region_name=region)
    try:
        trails.create_trail(
            Name=TRAIL,
            S3BucketName=BUCKET,
            IsMultiRegionTrail=True,
            IncludeGlobalServiceEvents=True,
        )
    except ClientError as error:
        if error.response["Error"]["Code"] != "TrailAlreadyExistsException":
            raise
    trails.put_event_selectors(TrailName=TRAIL, AdvancedEventSelectors=TRAIL_SELECTORS)  # type: ignore[arg-type]  # plain dicts
    trails.start_logging(Name=TRAIL)


def _state_file_write(state: SandboxState, state_dir: Path) -> None:
    (state_dir / "sandbox.json").write_text(
        json.dumps(
            {
                "endpoint_url": state.endpoint_url,
                "account_id": state.account_id,
                "region": state.region,
                "role_arn": state.role_arn,
                "principal_arn": state.principal_arn,
                "bucket": BUCKET,
                "anchor_bucket": ANCHOR_BUCKET,
            },
            indent=2,
        )
    )


def _unenforced_setup(
    endpoint_url: str, state_dir: Path, *, role_name: str, principal_name: str, region: str
) -> tuple[tuple[dict, dict, dict], str]:
    """The identities, the demo bucket and the trail, made while the sandbox checks no
    signatures → ((broker, provisioner, principal) keys, the role's permissions policy ARN)."""
    # Any signature passes while enforcement is off.
    anyone = boto3.session.Session(
        aws_access_key_id="bootstrap",
        aws_secret_access_key="bootstrap",  # noqa: S106
        region_name=region,
    )
    iam = anyone.client("iam", endpoint_url=endpoint_url, region_name="us-east-1")
    s3 = anyone.client("s3", endpoint_url=endpoint_url)
    set_enforcement(endpoint_url, on=False)
    try:
        keys, role_permissions_arn = _identities_ensure(iam, state_dir, role_name, principal_name)
        _demo_bucket_ensure(s3, region)
        _trail_ensure(anyone, endpoint_url, region)
    finally:
        set_enforcement(endpoint_url, on=True)
    return keys, role_permissions_arn


def _role_permissions_attach(
    endpoint_url: str, provisioner: dict, role_name: str, role_permissions_arn: str
) -> None:
    """The role's permissions, attached by the provisioner."""
    role_iam = boto3.session.Session(
        aws_access_key_id=provisioner["access_key_id"],
        aws_secret_access_key=provisioner["secret_access_key"],
    ).client("iam", endpoint_url=endpoint_url, region_name="us-east-1")
    # A managed policy, so the role's 10,240 inline characters stay free for revocations.
    role_iam.attach_role_policy(RoleName=role_name, PolicyArn=role_permissions_arn)


def bootstrap(
    endpoint_url: str,
    state_dir: Path,
    *,
    role_name: str = "breakglass-admin",
    principal_name: str = "breakglass-principal",
    region: str = DEFAULT_REGION,
) -> tuple[SandboxState, ProvisionReport]:
    state_dir.mkdir(parents=True, exist_ok=True)
    os.chmod(state_dir, 0o700)
    keys, role_permissions_arn = _unenforced_setup(
        endpoint_url, state_dir, role_name=role_name, principal_name=principal_name, region=region
    )
    broker, provisioner, principal = keys
    principal_arn = f"arn:aws:iam::{ACCOUNT_ID}:user/{principal_name}"

    provisioner_connection = AwsConnection(
        endpoint_url=endpoint_url,
        access_key_id=provisioner["access_key_id"],
        secret_access_key=provisioner["secret_access_key"],
    )
    state = SandboxState(
        endpoint_url=endpoint_url,
        account_id=ACCOUNT_ID,
        region=region,
        role_arn=f"arn:aws:iam::{ACCOUNT_ID}:role/{role_name}",
        principal_arn=principal_arn,
        broker=AwsConnection(
            endpoint_url=endpoint_url,
            access_key_id=broker["access_key_id"],
            secret_access_key=broker["secret_access_key"],
        ),
        provisioner=provisioner_connection,
        principal_keys=PrincipalKeys(principal["access_key_id"], principal["secret_access_key"]),
        state_dir=state_dir,
    )
    report = profile_provision(provisioner_connection, state.target(), check_only=False)
    anchor_bucket_ensure(
        provisioner_connection,
        AnchorLocation(ANCHOR_BUCKET, "", region),
        retention_days=ANCHOR_RETENTION_DAYS,
    )
    _role_permissions_attach(endpoint_url, provisioner, role_name, role_permissions_arn)
    _state_file_write(state, state_dir)
    return state, report


def load_state(endpoint_url: str, state_dir: Path) -> SandboxState:
    """Read a bootstrapped state dir back (for tests, benchmarks and `make run`)."""
    info = json.loads((state_dir / "sandbox.json").read_text())
    broker = json.loads((state_dir / "broker.json").read_text())
    provisioner = json.loads((state_dir / "provisioner.json").read_text())
    principal = json.loads((state_dir / "principals.json").read_text())[info["principal_arn"]]
    return SandboxState(
        endpoint_url=endpoint_url,
        account_id=info["account_id"],
        region=info["region"],
        role_arn=info["role_arn"],
        principal_arn=info["principal_arn"],
        broker=AwsConnection(endpoint_url, broker["access_key_id"], broker["secret_access_key"]),
        provisioner=AwsConnection(
            endpoint_url, provisioner["access_key_id"], provisioner["secret_access_key"]
        ),
        principal_keys=PrincipalKeys(principal["access_key_id"], principal["secret_access_key"]),
        state_dir=state_dir,
    )
