"""The offline kit's AWS side (issue 18): per profile, an IAM user that may assume the break-glass
role only with its virtual MFA device's code and a source identity starting `offline-`, in the
profile's region; its one access key and MFA device, issued and retired here.

Written with the provisioner identity (kit_create, kit_rotate). The trust statement is built here
and added to the role's trust policy by provisioning (`role_trust_policy`); the guard checks the
user with the broker's read permissions (`offline_principal_findings`).
"""

from __future__ import annotations

import base64
import time
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Literal

from botocore.exceptions import ClientError
from cryptography.hazmat.primitives.hashes import SHA1
from cryptography.hazmat.primitives.twofactor.totp import TOTP

from awsaccess import policies
from awsaccess.clients import ClientFactory
from awsaccess.engine import IAM_REGION, principal_kind_and_name
from awsaccess.errors import PermanentAwsError, aws_call, error_code, translate
from awsaccess.types import AwsConnection, AwsTarget, OfflineCredential

if TYPE_CHECKING:
    from mypy_boto3_iam import IAMClient

OFFLINE_SOURCE_PREFIX = "offline-"
OFFLINE_USER_PREFIX = "breakglass-offline-"
OFFLINE_POLICY_NAME = "breakglass-offline-assume"
TRUST_SID = "BreakGlassOfflineKit"
MFA_STEP_SECONDS = 30
MFA_DIGITS = 6

# (resource, status, detail), as provisioning reports findings.
FindingTuple = tuple[str, Literal["ok", "drift", "missing"], str]


@dataclass(frozen=True)
class OfflineSecrets:
    """What opens the kit: returned once by `offline_credentials_issue`, sealed into the kit by
    the caller, and never stored by the portal."""

    access_key_id: str
    secret_access_key: str = field(repr=False)
    mfa_serial: str
    mfa_seed: str = field(repr=False)  # base32, as AWS hands it out


def offline_principal_arn(account_id: str, profile_slug: str) -> str:
    """The profile's offline user: under the machinery prefix, so the role's protective
    boundary denies every session any IAM write on it; outside `breakglass-principal*`, so the
    portal's broker can neither write to it nor delete its key."""
    return f"arn:aws:iam::{account_id}:user/{OFFLINE_USER_PREFIX}{profile_slug}"[:600]


def mfa_code(seed_base32: str, at: float) -> str:
    """RFC 6238 (SHA-1, 6 digits, 30 s), AWS's virtual MFA parameters."""
    # SHA-1 is what AWS virtual MFA devices use (RFC 6238 HMAC, not a collision use).
    totp = TOTP(base64.b32decode(seed_base32), MFA_DIGITS, SHA1(), MFA_STEP_SECONDS)  # noqa: S303
    return totp.generate(int(at)).decode()


# -- policies --------------------------------------------------------------------------------


def _offline_conditions(target: AwsTarget) -> dict:
    return {
        "Bool": {"aws:MultiFactorAuthPresent": "true"},
        "StringLike": {"sts:SourceIdentity": f"{OFFLINE_SOURCE_PREFIX}*"},
        "StringEquals": {"aws:RequestedRegion": target.region},
    }


def offline_trust_statement(target: AwsTarget, principal_arns: Iterable[str]) -> dict:
    """The role trusts the offline users with an MFA code and an `offline-` source identity only,
    in the profile's region (the same region lock as the portal's path)."""
    arns = sorted(set(principal_arns))
    return {
        "Sid": TRUST_SID,
        "Effect": "Allow",
        "Principal": {"AWS": f"arn:aws:iam::{policies.account_of(target.role_arn)}:root"},
        "Action": ["sts:AssumeRole", "sts:SetSourceIdentity"],
        "Condition": {
            "ArnEquals": {"aws:PrincipalArn": arns if len(arns) > 1 else arns[0]},
            **_offline_conditions(target),
        },
    }


def role_trust_policy(target: AwsTarget) -> dict:
    """The role's whole expected trust policy: the portal's statement, and the offline kits'
    when the profile has any."""
    document = policies.trust_policy(target)
    arns = {credential.principal_arn for credential in target.offline_credentials}
    if arns:
        document["Statement"].append(offline_trust_statement(target, arns))
    return document


def offline_principal_policy(target: AwsTarget) -> dict:
    """The offline user's only permission, with the same conditions as the trust statement."""
    return {
        "Version": policies.VERSION,
        "Statement": [
            {
                "Sid": "BreakGlassOfflineAssume",
                "Effect": "Allow",
                "Action": ["sts:AssumeRole", "sts:SetSourceIdentity"],
                "Resource": target.role_arn,
                "Condition": _offline_conditions(target),
            }
        ],
    }


# -- writes (provisioner) --------------------------------------------------------------------


def _iam(connection: AwsConnection) -> IAMClient:
    return ClientFactory(connection).client("iam", IAM_REGION)


def offline_principal_ensure(
    connection: AwsConnection, target: AwsTarget, principal_arn: str
) -> None:
    """Idempotent: the user with exactly its one inline policy, and the role trusting it.

    `target` describes the profile as it is before this kit: the live trust policy must be
    what provisioning expects for it (or already include this user), so a drifted trust is
    reported to be looked at rather than silently rewritten."""
    iam = _iam(connection)
    _, name = principal_kind_and_name(principal_arn)
    with_kit = replace(
        target,
        offline_credentials=(*target.offline_credentials, OfflineCredential(principal_arn, "", "")),
    )
    with aws_call("iam:GetRole"):
        live = iam.get_role(RoleName=target.role_name)["Role"]["AssumeRolePolicyDocument"]
    trusted = policies.same_document(live, role_trust_policy(with_kit))
    if not trusted and not policies.same_document(live, role_trust_policy(target)):
        raise PermanentAwsError(
            "iam:UpdateAssumeRolePolicy",
            "TrustPolicyDrift",
            f"the trust policy of {target.role_name} differs from what provisioning expects; "
            "check it with provision_profile --check before adding a kit",
        )
    try:
        with aws_call("iam:CreateUser"):
            iam.create_user(UserName=name)
    except PermanentAwsError as error:
        if error.code != "EntityAlreadyExists":
            raise
    with aws_call("iam:PutUserPolicy"):
        iam.put_user_policy(
            UserName=name,
            PolicyName=OFFLINE_POLICY_NAME,
            PolicyDocument=policies.to_json(offline_principal_policy(target)),
        )
    if not trusted:
        with aws_call("iam:UpdateAssumeRolePolicy"):
            iam.update_assume_role_policy(
                RoleName=target.role_name,
                PolicyDocument=policies.to_json(role_trust_policy(with_kit)),
            )


def offline_credentials_issue(
    connection: AwsConnection, principal_arn: str, kit_id: str
) -> OfflineSecrets:
    """A new access key and virtual MFA device for the offline user (enabled with two
    consecutive codes, as AWS asks). On any failure what was created is taken back."""
    iam = _iam(connection)
    _, name = principal_kind_and_name(principal_arn)
    with aws_call("iam:CreateAccessKey"):
        key = iam.create_access_key(UserName=name)["AccessKey"]
    serial = ""
    try:
        with aws_call("iam:CreateVirtualMFADevice"):
            device = iam.create_virtual_mfa_device(
                VirtualMFADeviceName=f"{OFFLINE_USER_PREFIX}{kit_id}"
            )["VirtualMFADevice"]
        serial = device["SerialNumber"]
        seed = device["Base32StringSeed"]
        seed_text = seed.decode() if isinstance(seed, bytes) else str(seed)
        now = time.time()
        with aws_call("iam:EnableMFADevice"):
            iam.enable_mfa_device(
                UserName=name,
                SerialNumber=serial,
                AuthenticationCode1=mfa_code(seed_text, now - MFA_STEP_SECONDS),
                AuthenticationCode2=mfa_code(seed_text, now),
            )
    except BaseException:
        offline_credentials_retire(connection, principal_arn, key["AccessKeyId"], serial)
        raise
    return OfflineSecrets(key["AccessKeyId"], key["SecretAccessKey"], serial, seed_text)


def offline_credentials_retire(
    connection: AwsConnection, principal_arn: str, access_key_id: str, mfa_serial: str
) -> None:
    """Delete the key and the MFA device (idempotent): whatever opens the old kit opens nothing."""
    iam = _iam(connection)
    _, name = principal_kind_and_name(principal_arn)
    try:
        iam.delete_access_key(UserName=name, AccessKeyId=access_key_id)
    except ClientError as error:
        if error_code(error) != "NoSuchEntity":
            raise translate("iam:DeleteAccessKey", error) from None
    if not mfa_serial:
        return
    try:
        iam.deactivate_mfa_device(UserName=name, SerialNumber=mfa_serial)
    except ClientError as error:
        if error_code(error) not in ("NoSuchEntity", "EntityDoesNotExist"):
            raise translate("iam:DeactivateMFADevice", error) from None
    try:
        iam.delete_virtual_mfa_device(SerialNumber=mfa_serial)
    except ClientError as error:
        if error_code(error) not in ("NoSuchEntity", "EntityDoesNotExist"):
            raise translate("iam:DeleteVirtualMFADevice", error) from None


# -- reads (the guard, with the broker's read permissions) ------------------------------------


def offline_principal_findings(iam: IAMClient, target: AwsTarget) -> list[FindingTuple]:
    """Each offline user holds exactly its policy, the keys and MFA devices of the live kits,
    nothing else: a planted key or policy is a second way in that no kit accounts for."""
    by_principal: dict[str, list[OfflineCredential]] = {}
    for credential in target.offline_credentials:
        by_principal.setdefault(credential.principal_arn, []).append(credential)
    findings: list[FindingTuple] = []
    for principal_arn, credentials in sorted(by_principal.items()):
        findings += _principal_findings(iam, target, principal_arn, credentials)
    return findings


def _principal_findings(
    iam: IAMClient, target: AwsTarget, principal_arn: str, credentials: list[OfflineCredential]
) -> list[FindingTuple]:
    _, name = principal_kind_and_name(principal_arn)
    try:
        inline = iam.list_user_policies(UserName=name)["PolicyNames"]
        attached = iam.list_attached_user_policies(UserName=name)["AttachedPolicies"]
        groups = iam.list_groups_for_user(UserName=name)["Groups"]
        keys = {k["AccessKeyId"] for k in iam.list_access_keys(UserName=name)["AccessKeyMetadata"]}
        devices = {d["SerialNumber"] for d in iam.list_mfa_devices(UserName=name)["MFADevices"]}
        policy = (
            iam.get_user_policy(UserName=name, PolicyName=OFFLINE_POLICY_NAME)["PolicyDocument"]
            if OFFLINE_POLICY_NAME in inline
            else None
        )
    except ClientError as error:
        if error_code(error) == "NoSuchEntity":
            return [("offline principal", "missing", principal_arn)]
        raise translate("iam:GetUser", error) from None
    problems = [f"extra policy {n}" for n in sorted(inline) if n != OFFLINE_POLICY_NAME]
    problems += [f"attached {p['PolicyName']}" for p in attached]
    problems += [f"group {g['GroupName']}" for g in groups]
    if policy is None or not policies.same_document(policy, offline_principal_policy(target)):
        problems.append("its assume policy differs")
    expected_keys = {c.access_key_id for c in credentials}
    problems += [f"access key {k} belongs to no kit" for k in sorted(keys - expected_keys)]
    problems += [f"kit key {k} is gone" for k in sorted(expected_keys - keys)]
    problems += [
        f"MFA device {s} belongs to no kit"
        for s in sorted(devices - {c.mfa_serial for c in credentials})
    ]
    if problems:
        return [("offline principal", "drift", f"{name}: " + "; ".join(problems))]
    return [("offline principal", "ok", name)]
