"""AWS failures as our own exceptions: transient (retry later) or permanent (fix something).

Messages name the AWS call and AWS's reason, never request parameters: those can carry
credentials or policy documents.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    HTTPClientError,
    NoCredentialsError,
)
from botocore.exceptions import (
    ConnectionError as BotoConnectionError,
)

TRANSIENT_ERROR_CODES = frozenset(
    {
        "Throttling",
        "ThrottlingException",
        "ThrottledException",
        "RequestThrottled",
        "RequestThrottledException",
        "TooManyRequestsException",
        "RequestLimitExceeded",
        "SlowDown",
        "ServiceUnavailable",
        "ServiceUnavailableException",
        "ServiceFailure",
        "InternalError",
        "InternalFailure",
        "InternalServerError",
        "RequestTimeout",
        "RequestTimeoutException",
        "PriorRequestNotComplete",
        "IDPCommunicationError",
    }
)


class AwsError(Exception):
    """An AWS call failed. `operation` is e.g. "iam:PutUserPolicy"; `code` is AWS's code."""

    def __init__(self, operation: str, code: str, reason: str) -> None:
        self.operation = operation
        self.code = code
        self.reason = reason
        super().__init__(f"{operation} failed: {code} {reason}".rstrip())


class TransientAwsError(AwsError):
    """Throttling, 5xx, network trouble: the same call may succeed later."""


class PermanentAwsError(AwsError):
    """Access denied, validation, missing entities: retrying will not help."""


def error_code(error: ClientError) -> str:
    return str(error.response.get("Error", {}).get("Code", ""))


def translate(operation: str, error: Exception) -> AwsError:
    """Map a botocore exception to ours (botocore has already spent its own retries)."""
    if isinstance(error, ClientError):
        code = error_code(error)
        message = str(error.response.get("Error", {}).get("Message", ""))
        status = int(error.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0) or 0)
        if code in TRANSIENT_ERROR_CODES or status >= 500:
            return TransientAwsError(operation, code or str(status), message)
        return PermanentAwsError(operation, code or str(status), message)
    if isinstance(error, NoCredentialsError):
        return PermanentAwsError(operation, "NoCredentials", "no AWS credentials configured")
    if isinstance(error, BotoConnectionError | HTTPClientError):
        # Connect/read timeouts and EndpointConnectionError all land here.
        return TransientAwsError(operation, type(error).__name__, "network error reaching AWS")
    if isinstance(error, BotoCoreError):
        return PermanentAwsError(operation, type(error).__name__, "request could not be made")
    raise TypeError(f"not an AWS error: {type(error).__name__}")


@contextmanager
def aws_call(operation: str) -> Iterator[None]:
    """Run one AWS call, re-raising its failure as an AwsError named after `operation`."""
    try:
        yield
    except (ClientError, BotoCoreError) as error:
        # `from None`: botocore's exception text can echo request parameters.
        raise translate(operation, error) from None
