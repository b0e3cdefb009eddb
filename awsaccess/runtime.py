"""The portal's AWS identities, built from settings (the one place awsaccess reads them)."""

import json
from functools import lru_cache
from pathlib import Path

from django.conf import settings

from awsaccess.engine import AccessEngine
from awsaccess.types import AwsConnection, PrincipalKeys


class MissingAwsKeys(Exception):
    """No usable keys are configured for a break-glass principal."""


def _read_json(path: str) -> dict:
    return json.loads(Path(path).read_text())


def _connection(credentials_file: str | None) -> AwsConnection:
    keys = _read_json(credentials_file) if credentials_file else {}
    return AwsConnection(
        endpoint_url=settings.AWS_ENDPOINT_URL,
        access_key_id=keys.get("access_key_id"),
        secret_access_key=keys.get("secret_access_key"),
        connect_timeout=settings.AWS_CONNECT_TIMEOUT_SECONDS,
        read_timeout=settings.AWS_READ_TIMEOUT_SECONDS,
    )


def broker_connection() -> AwsConnection:
    """The least-privileged identity the running portal uses (default chain when no file)."""
    return _connection(settings.AWS_BROKER_CREDENTIALS_FILE)


def provisioner_connection(credentials_file: str | None = None) -> AwsConnection:
    """The more privileged identity that provisioning runs with (an operator's)."""
    return _connection(credentials_file or settings.AWS_PROVISIONER_CREDENTIALS_FILE)


def principal_keys(principal_arn: str) -> PrincipalKeys:
    """The break-glass principal's keys, from the secrets file mapping ARN to keys.

    A file that cannot be read or parsed is reported like a missing key, never as whatever the
    parser raised: revocation reads it too (for the key it must keep), and a broken secrets file
    must fail activations cleanly without stopping a revocation. Messages never quote the file.
    """
    path = settings.AWS_PRINCIPAL_CREDENTIALS_FILE
    if not path:
        raise MissingAwsKeys(f"no keys configured for break-glass principal {principal_arn}")
    try:
        known = _read_json(path)
    except OSError as exc:
        raise MissingAwsKeys(f"the principals' keys file cannot be read ({exc.strerror})") from None
    except ValueError:  # json.JSONDecodeError and UnicodeDecodeError; the text may hold secrets
        raise MissingAwsKeys("the principals' keys file is not valid JSON") from None
    keys = known.get(principal_arn) if isinstance(known, dict) else None
    if not keys:
        raise MissingAwsKeys(f"no keys configured for break-glass principal {principal_arn}")
    if not (
        isinstance(keys, dict)
        and isinstance(keys.get("access_key_id"), str)
        and isinstance(keys.get("secret_access_key"), str)
    ):
        raise MissingAwsKeys(
            f"the keys of break-glass principal {principal_arn} need an access_key_id and a "
            "secret_access_key"
        )
    return PrincipalKeys(
        access_key_id=keys["access_key_id"], secret_access_key=keys["secret_access_key"]
    )


@lru_cache(maxsize=4)
def _engine(connection: AwsConnection, propagation_timeout: float) -> AccessEngine:
    return AccessEngine(connection, propagation_timeout=propagation_timeout)


def access_engine() -> AccessEngine:
    # Cached per connection: boto3 clients are expensive to build and safe to reuse per process.
    return _engine(broker_connection(), settings.AWS_PROPAGATION_TIMEOUT_SECONDS)
