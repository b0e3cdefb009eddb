"""Transient failures are retried with backoff, permanent ones are not (no patching: a paused
sandbox, a dead port, bogus keys)."""

import logging
import time

import pytest

from awsaccess.engine import AccessEngine
from awsaccess.errors import PermanentAwsError, TransientAwsError
from awsaccess.types import AwsConnection
from tests.sandbox_plugin import free_port

from .helpers import make_grant

RETRY_LOGGER = "botocore.retries.standard"


def retries_logged(caplog) -> int:
    return sum("Retry needed" in r.getMessage() for r in caplog.records if r.name == RETRY_LOGGER)


def test_a_dead_endpoint_is_retried_then_transient(aws_sandbox, caplog):
    caplog.set_level(logging.DEBUG, logger=RETRY_LOGGER)
    connection = AwsConnection(
        endpoint_url=f"http://127.0.0.1:{free_port()}",
        access_key_id=aws_sandbox.broker.access_key_id,
        secret_access_key=aws_sandbox.broker.secret_access_key,
        connect_timeout=0.5,
        max_attempts=3,
    )
    with pytest.raises(TransientAwsError) as excinfo:
        AccessEngine(connection).grant_attach(aws_sandbox.target(), make_grant())
    assert str(excinfo.value).startswith("iam:PutUserPolicy failed:")
    assert retries_logged(caplog) == 2


def test_a_hung_aws_is_retried_then_transient_and_nothing_is_lost(aws_sandbox, profile, caplog):
    caplog.set_level(logging.DEBUG, logger=RETRY_LOGGER)
    slow = AwsConnection(
        endpoint_url=aws_sandbox.endpoint_url,
        access_key_id=aws_sandbox.broker.access_key_id,
        secret_access_key=aws_sandbox.broker.secret_access_key,
        read_timeout=0.5,
        max_attempts=2,
    )
    engine = AccessEngine(slow)
    grant = make_grant()
    aws_sandbox.pause()
    try:
        started = time.monotonic()
        with pytest.raises(TransientAwsError):
            engine.grant_attach(profile.target, grant)
        assert time.monotonic() - started < 10
    finally:
        aws_sandbox.resume()
    assert retries_logged(caplog) == 1
    engine.grant_attach(profile.target, grant)  # AWS is back, with its state
    assert engine.grant_is_attached(profile.target, grant)


def test_bogus_keys_fail_permanently_without_retry(aws_sandbox, caplog):
    caplog.set_level(logging.DEBUG, logger=RETRY_LOGGER)
    bogus = AwsConnection(aws_sandbox.endpoint_url, "AKIABOGUSBOGUSBOGUS0", "not-a-secret")
    with pytest.raises(PermanentAwsError) as excinfo:
        AccessEngine(bogus).grant_attach(aws_sandbox.target(), make_grant())
    assert excinfo.value.code == "InvalidClientTokenId"
    assert "not-a-secret" not in str(excinfo.value)
    assert retries_logged(caplog) == 0


def test_access_denied_is_permanent_and_names_the_call(aws_sandbox, profile):
    # The principal's own keys may not manage IAM.
    principal = AwsConnection(
        aws_sandbox.endpoint_url,
        profile.principal_keys.access_key_id,
        profile.principal_keys.secret_access_key,
    )
    with pytest.raises(PermanentAwsError) as excinfo:
        AccessEngine(principal).grant_attach(profile.target, make_grant())
    assert str(excinfo.value).startswith("iam:PutUserPolicy failed: AccessDenied")
