"""From the attacker's side: the offline user's key alone (without the MFA code), or with a
source identity that is not `offline-`, or in another region, opens nothing; a session of an
opening is still held by the role's protective boundary; the portal's broker cannot touch the
kit's user; a key planted on it is drift to the guard."""

import time

import boto3
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError
from breakglass_cli.kit_format import kit_load, kit_unseal, share_load

from approvals.services.guard import guard_check
from awsaccess.offline_kit import mfa_code
from tests.awsaccess.hostile import session_admin_policy_arn

pytestmark = pytest.mark.django_db(transaction=True)


def _stolen(kits):
    """What an attacker holding the opened kit's secrets (not just one share) has."""
    kit_id, directory = kits.create()
    kit = kit_load(directory / f"kit-{kit_id}.json")
    shares = [share_load(directory / f"share-{n}.txt", kit) for n in ("alice", "bob")]
    return kit, kit_unseal(kit, shares)


def _sts(kits, kit, secrets, region=None):
    return boto3.client(
        "sts",
        endpoint_url=kits.sandbox.endpoint_url,
        region_name=region or kit["region"],
        aws_access_key_id=kit["access_key_id"],
        aws_secret_access_key=secrets.secret_access_key,
        config=Config(retries={"max_attempts": 1}),
    )


def _denied(call) -> None:
    with pytest.raises(ClientError) as excinfo:
        call()
    assert excinfo.value.response["Error"]["Code"] == "AccessDenied"


def test_the_offline_user_needs_the_mfa_code_and_an_offline_source_identity(kits):
    kit, secrets = _stolen(kits)
    sts = _sts(kits, kit, secrets)
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
    elsewhere = _sts(kits, kit, secrets, region="us-east-1")
    _denied(lambda: elsewhere.assume_role(**role, **mfa, SourceIdentity=offline))

    # The same key with the code and an offline- identity does open it (the rules above bite).
    assert sts.assume_role(**role, **mfa, SourceIdentity=offline)["Credentials"]


def test_an_opened_session_is_still_held_by_the_roles_protective_boundary(kits):
    kit, secrets = _stolen(kits)
    # The role allows everything (as a real break-glass role may): only the boundary refuses.
    kits.sandbox.client("iam", region_name="us-east-1").attach_role_policy(
        RoleName=kit["role_arn"].rsplit("/", 1)[1], PolicyArn=session_admin_policy_arn(kits.sandbox)
    )
    code = mfa_code(secrets.mfa_seed, time.time())
    credentials = _sts(kits, kit, secrets).assume_role(
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
