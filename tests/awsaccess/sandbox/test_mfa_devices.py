"""What the offline kit's rotation relies on in the sandbox's MFA (issue 18): a device taken
off its user and deleted no longer counts, a code from minutes ago is refused, and a code opens
one session only."""

import threading
from concurrent.futures import ThreadPoolExecutor

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


def test_a_code_opens_one_session_and_an_older_one_none_after_it(aws_sandbox):
    """As on AWS: a code once accepted, and every code of an earlier step, is refused; the offline
    kit's client says to wait for the next code when it meets this."""
    name, keys, serial, seed = _user_with_mfa(aws_sandbox)
    role_arn = _mfa_role(aws_sandbox, f"arn:aws:iam::{aws_sandbox.account_id}:user/{name}")
    assert _assume(aws_sandbox, keys, role_arn, serial, _code(seed))["Credentials"]

    with pytest.raises(ClientError) as replayed:
        _assume(aws_sandbox, keys, role_arn, serial, _code(seed))
    assert error_code_of(replayed) == "AccessDenied"

    # The next step's code (within the clock tolerance) still works once; then the current
    # step's, older, no longer does.
    assert _assume(aws_sandbox, keys, role_arn, serial, _code(seed, 1))["Credentials"]
    with pytest.raises(ClientError) as older:
        _assume(aws_sandbox, keys, role_arn, serial, _code(seed, -1))
    assert error_code_of(older) == "AccessDenied"


def test_one_code_sent_at_once_from_four_places_opens_one_session(aws_sandbox):
    name, keys, serial, seed = _user_with_mfa(aws_sandbox)
    role_arn = _mfa_role(aws_sandbox, f"arn:aws:iam::{aws_sandbox.account_id}:user/{name}")
    code = _code(seed)
    # Built here: boto3 does not build clients safely from several threads at once.
    clients = [_as(aws_sandbox, "sts", keys) for _ in range(4)]
    start = threading.Barrier(4, timeout=30)

    def attempt(sts) -> str:
        start.wait()
        try:
            sts.assume_role(
                RoleArn=role_arn, RoleSessionName="mfa", SerialNumber=serial, TokenCode=code
            )
        except ClientError as refused:
            return refused.response["Error"]["Code"]
        return "opened"

    with ThreadPoolExecutor(4) as pool:
        outcomes = sorted(pool.map(attempt, clients, timeout=60))

    assert outcomes == ["AccessDenied"] * 3 + ["opened"]
