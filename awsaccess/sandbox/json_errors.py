"""moto answers an authorization failure in XML even when the request spoke AWS's JSON protocol
(EventBridge, CloudTrail, SQS), so boto3 sees a bare "403" instead of the error code. Answer in
the request's own protocol, with the codes those services use."""

from __future__ import annotations

from moto.core.exceptions import JsonRESTError
from moto.iam.access_control import IAMRequest

_original_access_denied = IAMRequest._raise_access_denied
_original_invalid_key = IAMRequest._raise_invalid_access_key


def _target(request: IAMRequest) -> str | None:
    for name, value in request._headers.items():
        if name.lower() == "x-amz-target":
            return str(value)
    return None


def _code(target: str, json_code: str, query_code: str) -> str:
    # SQS kept its query-protocol codes when it moved to JSON; the others use "...Exception".
    return query_code if target.startswith("AmazonSQS.") else json_code


def _raise_access_denied(self: IAMRequest) -> None:
    target = _target(self)
    if target is None:
        _original_access_denied(self)
        return
    error = JsonRESTError(
        _code(target, "AccessDeniedException", "AccessDenied"),
        f"User: {self._access_key.arn} is not authorized to perform: {self._action}",
    )
    error.code = 403
    raise error


def _raise_invalid_access_key(self: IAMRequest, _: str) -> None:
    target = _target(self)
    if target is None:
        _original_invalid_key(self, _)
        return
    error = JsonRESTError(
        "UnrecognizedClientException"
        if not target.startswith("AmazonSQS.")
        else "InvalidClientTokenId",
        "The security token included in the request is invalid.",
    )
    error.code = 403
    raise error


def install() -> None:
    IAMRequest._raise_access_denied = _raise_access_denied  # type: ignore[method-assign]  # patching moto in place
    IAMRequest._raise_invalid_access_key = _raise_invalid_access_key  # type: ignore[method-assign]  # patching moto in place
