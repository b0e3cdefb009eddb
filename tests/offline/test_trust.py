"""From the attacker's side: the offline user's key alone (without the MFA code), or with a
source identity that is not `offline-`, or in another region, opens nothing; a session of an
opening is still held by the role's protective boundary; the portal's broker cannot touch the
kit's user; a key planted on it is drift to the guard."""

import json
import time

import boto3
import pytest
from botocore.exceptions import ClientError
from breakglass_cli.kit_format import kit_load

from approvals.services.guard import guard_check
from awsaccess.offline_kit import (
    OFFLINE_POLICY_NAME,
    TRUST_SID,
    mfa_code,
    offline_principal_policy,
)
from tests.awsaccess.hostile import session_admin_policy_arn

pytestmark = pytest.mark.django_db(transaction=True)


def _denied(call) -> None:
    with pytest.raises(ClientError) as excinfo:
        call()
    assert excinfo.value.response["Error"]["Code"] == "AccessDenied"


def test_the_offline_user_needs_the_mfa_code_and_an_offline_source_identity(kits):
    kit, secrets = kits.stolen()
    sts = kits.sts(kit, secrets)
    role = {"RoleArn": kit["role_arn"], "RoleSessionName": "attempt"}
    offline = f"offline-{kit['kit_id']}-20300101T000000Z"
    code = mfa_code(secrets.mfa_seed, time.time())
    wrong = f"{(int(code) + 1) % 1_000_000:06d}"
    mfa = {"SerialNumber": kit["mfa_serial"], "TokenCode": code}

    _denied(lambda: sts.assume_role(**role, SourceIdentity=offline))  # no MFA code
    _denied(
        lambda: sts.assume_role(
            **role, SourceIdentity=offline, SerialNumber=kit["mfa_serial"], TokenCode=wrong
        )
    )
    _denied(lambda: sts.assume_role(**role, **mfa))  # no source identity
    for disguise in ("INC-1234", "00000000-0000-4000-8000-000000000000", "xoffline-1"):
        _denied(lambda d=disguise: sts.assume_role(**role, **mfa, SourceIdentity=d))
    elsewhere = kits.sts(kit, secrets, region="us-east-1")
    _denied(lambda: elsewhere.assume_role(**role, **mfa, SourceIdentity=offline))

    # The same key with the code and an offline- identity does open it (the rules above bite).
    assert sts.assume_role(**role, **mfa, SourceIdentity=offline)["Credentials"]


def test_an_opened_session_is_still_held_by_the_roles_protective_boundary(kits):
    kit, secrets = kits.stolen()
    # The role allows everything (as a real break-glass role may): only the boundary refuses.
    kits.sandbox.client("iam", region_name="us-east-1").attach_role_policy(
        RoleName=kit["role_arn"].rsplit("/", 1)[1], PolicyArn=session_admin_policy_arn(kits.sandbox)
    )
    code = mfa_code(secrets.mfa_seed, time.time())
    credentials = kits.sts(kit, secrets).assume_role(
        RoleArn=kit["role_arn"],
        RoleSessionName="opened",
        SourceIdentity=f"offline-{kit['kit_id']}-20300101T000000Z",
        SerialNumber=kit["mfa_serial"],
        TokenCode=code,
    )["Credentials"]
    iam = boto3.client(
        "iam",
        endpoint_url=kits.sandbox.endpoint_url,
        region_name="us-east-1",
        aws_access_key_id=credentials["AccessKeyId"],
        aws_secret_access_key=credentials["SecretAccessKey"],
        aws_session_token=credentials["SessionToken"],
    )
    user = kit["principal_arn"].rsplit("/", 1)[1]
    assert iam.list_users()["Users"]  # what the role allows, the session may do
    _denied(lambda: iam.create_access_key(UserName=user))  # a way back in after rotation
    _denied(lambda: iam.delete_role(RoleName=kit["role_arn"].rsplit("/", 1)[1]))
    _denied(lambda: iam.create_user(UserName="offline-persistence"))


def test_the_portals_broker_cannot_touch_the_kits_user(kits):
    kit_id, directory = kits.create()
    kit = kit_load(directory / f"kit-{kit_id}.json")
    broker = kits.sandbox.client("iam", kits.sandbox.broker, region_name="us-east-1")
    user = kit["principal_arn"].rsplit("/", 1)[1]

    _denied(lambda: broker.delete_access_key(UserName=user, AccessKeyId=kit["access_key_id"]))
    _denied(lambda: broker.create_access_key(UserName=user))
    _denied(lambda: broker.put_user_policy(UserName=user, PolicyName="x", PolicyDocument="{}"))


def test_a_key_planted_on_the_kits_user_is_drift_but_the_kits_own_key_is_not(kits):
    kit_id, directory = kits.create()
    [intact] = guard_check(profile_slugs=[kits.profile.slug])
    assert intact.intact, intact.drifts
    user = kit_load(directory / f"kit-{kit_id}.json")["principal_arn"].rsplit("/", 1)[1]

    planted = kits.sandbox.client("iam", region_name="us-east-1").create_access_key(UserName=user)

    [result] = guard_check(profile_slugs=[kits.profile.slug])
    key_id = planted["AccessKey"]["AccessKeyId"]
    assert any(f"access key {key_id} belongs to no kit" in d.change for d in result.drifts)
    assert result.alarm_id is not None


def _refuses_without_the_mfa_code_or_an_offline_identity(kits, kit, secrets) -> None:
    sts = kits.sts(kit, secrets)
    role = {"RoleArn": kit["role_arn"], "RoleSessionName": "attempt"}
    offline = f"offline-{kit['kit_id']}-20300101T000000Z"
    mfa = {"SerialNumber": kit["mfa_serial"], "TokenCode": mfa_code(secrets.mfa_seed, time.time())}
    _denied(lambda: sts.assume_role(**role, SourceIdentity=offline))
    _denied(lambda: sts.assume_role(**role, **mfa, SourceIdentity="INC-1234"))
    _denied(lambda: sts.assume_role(**role, **mfa))
    elsewhere = kits.sts(kit, secrets, region="us-east-1")
    _denied(lambda: elsewhere.assume_role(**role, **mfa, SourceIdentity=offline))


def _drifts(kits) -> list[str]:
    [result] = guard_check(profile_slugs=[kits.profile.slug])
    return [f"{drift.resource}: {drift.change}" for drift in result.drifts]


def test_the_trust_policy_and_the_users_policy_each_refuse_on_their_own(kits):
    """Either policy alone holds the line: an administrator who loosens one (by mistake or to
    plant a way in) still leaves no MFA-less or non-offline opening, and the guard names it."""
    kit, secrets = kits.stolen()
    iam = kits.sandbox.client("iam", region_name="us-east-1")
    user = kit["principal_arn"].rsplit("/", 1)[1]
    role_name = kit["role_arn"].rsplit("/", 1)[1]
    assume = ["sts:AssumeRole", "sts:SetSourceIdentity"]

    iam.put_user_policy(
        UserName=user,
        PolicyName=OFFLINE_POLICY_NAME,
        PolicyDocument=json.dumps(
            {
                "Version": "2012-10-17",
                "Statement": [{"Effect": "Allow", "Action": assume, "Resource": kit["role_arn"]}],
            }
        ),
    )
    _refuses_without_the_mfa_code_or_an_offline_identity(kits, kit, secrets)  # the trust refuses
    assert f"offline principal: drift: {user}: its assume policy differs" in _drifts(kits)

    target = kits.profile.aws_target()
    iam.put_user_policy(
        UserName=user,
        PolicyName=OFFLINE_POLICY_NAME,
        PolicyDocument=json.dumps(offline_principal_policy(target)),
    )
    trust = iam.get_role(RoleName=role_name)["Role"]["AssumeRolePolicyDocument"]
    [offline] = [s for s in trust["Statement"] if s.get("Sid") == TRUST_SID]
    # "This user may assume the role", through the account (so the user's policy still counts).
    offline["Condition"] = {"ArnEquals": {"aws:PrincipalArn": kit["principal_arn"]}}
    iam.update_assume_role_policy(RoleName=role_name, PolicyDocument=json.dumps(trust))

    _refuses_without_the_mfa_code_or_an_offline_identity(kits, kit, secrets)  # the user's refuses
    drifts = _drifts(kits)
    assert not [d for d in drifts if d.startswith("offline principal")], drifts
    for dropped in ("aws:MultiFactorAuthPresent", "sts:SourceIdentity", "aws:RequestedRegion"):
        assert any(
            d.startswith(f"role trust policy: statement {TRUST_SID}: condition")
            and f"{dropped} dropped" in d
            for d in drifts
        ), drifts
