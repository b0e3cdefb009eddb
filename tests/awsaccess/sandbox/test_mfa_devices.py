"""What the offline kit's rotation relies on in the sandbox's MFA (issue 18): a device taken
off its user and deleted no longer counts, and a code from minutes ago is refused."""

import pytest
from botocore.exceptions import ClientError

from ..helpers import error_code_of
from .test_conditions_and_mfa import _as, _code, _mfa_role, _user_with_mfa


def _assume(aws_sandbox, keys, role_arn, serial, code):
    return _as(aws_sandbox, "sts", keys).assume_role(
        RoleArn=role_arn, RoleSessionName="mfa", SerialNumber=serial, TokenCode=code
    )


def test_a_deactivated_and_deleted_device_no_longer_counts(aws_sandbox):
    name, keys, serial, seed = _user_with_mfa(aws_sandbox)
    role_arn = _mfa_role(aws_sandbox, f"arn:aws:iam::{aws_sandbox.account_id}:user/{name}")
    assert _assume(aws_sandbox, keys, role_arn, serial, _code(seed))["Credentials"]
    iam = aws_sandbox.client("iam")

    iam.deactivate_mfa_device(UserName=name, SerialNumber=serial)
    iam.delete_virtual_mfa_device(SerialNumber=serial)

    with pytest.raises(ClientError) as excinfo:
        _assume(aws_sandbox, keys, role_arn, serial, _code(seed))
    assert error_code_of(excinfo) == "AccessDenied"
    assert iam.list_mfa_devices(UserName=name)["MFADevices"] == []


def test_a_code_from_minutes_ago_is_refused(aws_sandbox):
    name, keys, serial, seed = _user_with_mfa(aws_sandbox)
    role_arn = _mfa_role(aws_sandbox, f"arn:aws:iam::{aws_sandbox.account_id}:user/{name}")

    with pytest.raises(ClientError) as excinfo:
        _assume(aws_sandbox, keys, role_arn, serial, _code(seed, -10))
    assert error_code_of(excinfo) == "AccessDenied"
