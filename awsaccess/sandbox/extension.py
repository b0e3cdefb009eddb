"""Monkeypatches that make moto 5.2.5 faithful for what the portal promises.

Each patch says why. They replace moto's policy evaluation for every request once enforcement is
on (moto ignores conditions, session policies, trust-policy principals and STS expiry), record
what STS sessions need to be told apart (SourceIdentity, issue time), and enforce the AWS limits
our revocation logic depends on. Import `install()` before serving; it is idempotent.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any, cast
from urllib.parse import unquote

import moto
from moto.core.exceptions import _RESTError
from moto.iam.access_control import AssumedRoleAccessKey, IAMRequestBase, S3IAMRequest
from moto.iam.exceptions import LimitExceededException, NotFoundException
from moto.iam.models import IAMBackend, Policy, iam_backends
from moto.s3.exceptions import S3ClientError
from moto.sts.exceptions import STSValidationError
from moto.sts.models import AssumedRole, sts_backends
from moto.sts.responses import TokenResponse

from awsaccess.sandbox import (
    boundaries,
    calls,
    clock,
    consistency,
    event_sources,
    json_errors,
    mfa,
    object_lock,
    queues,
)
from awsaccess.sandbox.evaluation import Decision, Request, evaluate, names_principal_exactly

PINNED_MOTO_VERSION = "5.2.5"
ROLE_INLINE_LIMIT = 10_240
USER_INLINE_LIMIT = 2_048
_ROLE_ACTIONS = {"sts:AssumeRole", "sts:SetSourceIdentity", "sts:TagSession"}
# Operations on one EventBridge rule or one CloudTrail trail, named in the request's body.
_RULE_ACTIONS = {
    f"events:{name}"
    for name in (
        "DescribeRule", "ListTargetsByRule", "DisableRule", "EnableRule", "PutRule",
        "DeleteRule", "PutTargets", "RemoveTargets",
    )
}  # fmt: skip
_TRAIL_ACTIONS = {
    f"cloudtrail:{name}"
    for name in (
        "CreateTrail", "DeleteTrail", "UpdateTrail", "StartLogging", "StopLogging",
        "GetTrailStatus", "GetTrail", "GetEventSelectors", "PutEventSelectors",
    )
}  # fmt: skip
# SQS's batch operations have no IAM actions of their own: AWS authorises each as its single
# form (moto asks for "sqs:DeleteMessageBatch", which no policy names).
_BATCH_ACTIONS = {
    "sqs:SendMessageBatch": "sqs:SendMessage",
    "sqs:DeleteMessageBatch": "sqs:DeleteMessage",
    "sqs:ChangeMessageVisibilityBatch": "sqs:ChangeMessageVisibility",
}
_SOURCE_IDENTITY = re.compile(r"^[\w+=,.@-]{2,64}$")
_installed = False


class ExpiredTokenError(_RESTError):
    # moto has no ExpiredToken error; AWS answers expired STS credentials with this one.
    code = 403

    def __init__(self) -> None:
        super().__init__("ExpiredToken", "The security token included in the request is expired")


class MfaCodeUsedError(_RESTError):
    # What AWS answers an AssumeRole whose MFA code already opened a session.
    code = 403

    def __init__(self) -> None:
        super().__init__(
            "AccessDenied", "MultiFactorAuthentication failed with invalid MFA one time pass code."
        )


class S3ExpiredTokenError(S3ClientError):
    def __init__(self) -> None:
        super().__init__("ExpiredToken", "The provided token has expired.")


# -- helpers ---------------------------------------------------------------------------------


def _param(data: Mapping[str, Any], name: str) -> str | None:
    value = data.get(name)
    if isinstance(value, list):
        value = value[0] if value else None
    return None if value is None else str(value)


def _tags(data: Mapping[str, Any]) -> dict[str, str]:
    tags: dict[str, str] = {}
    for index in range(1, 51):
        key = _param(data, f"Tags.member.{index}.Key")
        if key is None:
            break
        tags[key] = _param(data, f"Tags.member.{index}.Value") or ""
    return tags


def _document(policy: Any) -> dict:
    if isinstance(policy, Policy):
        default = next(version for version in policy.versions if version.is_default)
        policy = default.document
    elif isinstance(policy, Mapping):
        policy = policy["policy_document"]
    if isinstance(policy, str):
        text = policy if policy.lstrip().startswith("{") else unquote(policy)
        return json.loads(text)
    return dict(policy)


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _aware(moment: datetime) -> datetime:
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _session(account_id: str, partition: str, access_key_id: str) -> AssumedRole | None:
    for session in sts_backends[account_id][partition].assumed_roles:
        if session.access_key_id == access_key_id:
            return session
    return None


def _policy_size(document: str) -> int:
    # AWS counts characters except whitespace against inline policy limits.
    return len(re.sub(r"\s", "", unquote(document)))


# -- patch: STS AssumeRole -------------------------------------------------------------------

_original_assume_role = TokenResponse.assume_role


def _assume_role(self: TokenResponse) -> Any:
    """moto drops SourceIdentity, never validates DurationSeconds against the role, and stamps
    expiry with the wall clock; record what revocation and expiry need, on the sandbox clock."""
    duration = self._get_int_param("DurationSeconds", 3600)
    role_arn = self._get_param("RoleArn")
    source_identity = self._get_param("SourceIdentity")
    if source_identity is not None and not _SOURCE_IDENTITY.match(source_identity):
        raise STSValidationError("SourceIdentity must match [\\w+=,.@-]{2,64}")
    try:
        account_id = role_arn.split(":")[4]
        role = iam_backends[account_id][self.partition].get_role_by_arn(role_arn)
        max_duration = int(role.max_session_duration or 3600)
    except (IndexError, KeyError, NotFoundException):
        max_duration = 3600
    if not 900 <= duration <= max_duration:
        raise STSValidationError(
            f"The requested DurationSeconds exceeds the MaxSessionDuration set for this role "
            f"or is below 900: {duration}"
        )
    policy_arns = [
        arn
        for index in range(1, 11)
        if (arn := _param(self.querystring, f"PolicyArns.member.{index}.arn")) is not None
    ]
    device, code = _mfa_device_and_code(self)
    if device is not None and not mfa.session_code_use(device, code):
        raise MfaCodeUsedError()  # a concurrent AssumeRole spent it after authorization
    result = _original_assume_role(self)
    fields = cast(dict[str, Any], result.result)
    session: AssumedRole = fields["Credentials"]
    issued_at = clock.now()
    session.breakglass_source_identity = source_identity  # type: ignore[attr-defined]  # our marks on moto\'s session
    session.breakglass_issued_at = issued_at  # type: ignore[attr-defined]  # our marks on moto\'s session
    session.breakglass_policy_arns = policy_arns  # type: ignore[attr-defined]  # our marks on moto\'s session
    session.breakglass_mfa = device is not None  # type: ignore[attr-defined]  # our marks on moto\'s session
    session.expiration = (issued_at + timedelta(seconds=duration)).replace(tzinfo=None)
    if source_identity is not None:
        fields["SourceIdentity"] = source_identity
    return result


def _mfa_device_and_code(response: TokenResponse) -> tuple[Any, str]:
    """The MFA device the AssumeRole names and its code (None: no MFA, or no such device).
    Authorization already checked that it is the caller's and the code current."""
    serial, code = response._get_param("SerialNumber"), response._get_param("TokenCode")
    if not serial or not code:
        return None, ""
    device = iam_backends[response.current_account][response.partition].virtual_mfa_devices.get(
        serial
    )
    return device, code


# -- patch: authorization --------------------------------------------------------------------


def _caller(request: IAMRequestBase) -> tuple[str, str, AssumedRole | None]:
    """(principal ARN as policies see it, principal type, STS session if any)."""
    key = request._access_key
    if isinstance(key, AssumedRoleAccessKey):
        session = _session(key.account_id, key.partition, key._access_key_id)
        role_arn = session.role_arn if session else ""
        return role_arn, "AssumedRole", session
    return key.arn, "User", None


def _context(request: IAMRequestBase, principal_arn: str, kind: str, session: Any) -> dict:
    now = clock.now()
    context: dict[str, str | list[str]] = {
        "aws:currenttime": _iso(now),
        "aws:epochtime": str(int(now.timestamp())),
        "aws:requestedregion": request._region,
        "aws:principalarn": principal_arn,
        "aws:principalaccount": request.account_id,
        "aws:principaltype": kind,
        "aws:securetransport": "false",
        "aws:viaawsservice": "false",  # every call reaches the sandbox from its caller directly
    }
    source_ip = calls.current_source_ip()
    if source_ip:
        context["aws:sourceip"] = source_ip
    if session is not None:
        # Present for temporary credentials only; long-term keys leave it out (AWS docs).
        mfa_present = getattr(session, "breakglass_mfa", False)
        context["aws:multifactorauthpresent"] = str(mfa_present).lower()
        context["aws:tokenissuetime"] = _iso(_aware(session.breakglass_issued_at))
        source_identity = getattr(session, "breakglass_source_identity", None)
        if source_identity is not None:
            context["aws:sourceidentity"] = source_identity
    data = request._data
    if request._action == "sts:AssumeRole":
        for param, key in (
            ("SourceIdentity", "sts:sourceidentity"),
            ("RoleSessionName", "sts:rolesessionname"),
            ("ExternalId", "sts:externalid"),
        ):
            value = _param(data, param)
            if value is not None:
                context[key] = value
        if _param(data, "SerialNumber") and _param(data, "TokenCode"):
            # Verified before this context is used (see _check_mfa).
            context["aws:multifactorauthpresent"] = "true"
            context["aws:multifactorauthage"] = "0"
        tags = _tags(data)
        for tag_key, tag_value in tags.items():
            context[f"aws:requesttag/{tag_key.lower()}"] = tag_value
        if tags:
            context["aws:tagkeys"] = list(tags)
    return context


def _body_param(request: IAMRequestBase, name: str) -> str | None:
    """A parameter of a JSON-protocol request (EventBridge, SQS), or of a query request."""
    value = _param(request._data, name)
    if value is None and request._body:
        try:
            body = json.loads(request._body)
        except (TypeError, ValueError):
            return None
        value = body.get(name) if isinstance(body, dict) else None
    return None if value is None else str(value)


def _resource(request: IAMRequestBase, resource: str) -> str:
    """moto resolves resources for roles, S3 and SQS queue URLs only; IAM users, queue names and
    EventBridge rules matter to the broker's least-privilege policy."""
    if resource != "*":
        return resource
    where = f"{request._region}:{request.account_id}"
    if request._action == "sqs:GetQueueUrl":
        name = _body_param(request, "QueueName")
        return f"arn:aws:sqs:{where}:{name}" if name else resource
    if request._action in _RULE_ACTIONS:
        name = _body_param(request, "Name") or _body_param(request, "Rule")
        return f"arn:aws:events:{where}:rule/{name}" if name else resource
    if request._action in _TRAIL_ACTIONS:
        name = _body_param(request, "Name") or _body_param(request, "TrailName")
        if name and name.startswith("arn:"):
            return name
        return f"arn:aws:cloudtrail:{where}:trail/{name}" if name else resource
    if not request._action.startswith("iam:"):
        return resource
    group_name = _param(request._data, "GroupName")
    if group_name is not None:
        # AWS authorises every call naming a group against the group, AddUserToGroup and
        # RemoveUserFromGroup included, though they name a user too (resource type "group").
        return _group_arn(request, group_name)
    user_name = _param(request._data, "UserName")
    if user_name is not None:
        return f"arn:aws:iam::{request.account_id}:user/{user_name}"
    role_name = _param(request._data, "RoleName")
    if role_name is not None:
        return f"arn:aws:iam::{request.account_id}:role/{role_name}"
    return _param(request._data, "PolicyArn") or resource


def _group_arn(request: IAMRequestBase, group_name: str) -> str:
    """The group's ARN, its path included (a group not created yet: at the root path)."""
    try:
        return str(request.backend.get_group(group_name).arn)
    except NotFoundException:
        return f"arn:aws:iam::{request.account_id}:group/{group_name}"


def _permitted(
    request: IAMRequestBase,
    action: str,
    resource: str,
    principal_arn: str,
    context: dict,
    identity: list[dict],
    session_policies: list[dict],
    boundary: dict | None,
) -> bool:
    probe = Request(action=action, resource=resource, context=context)
    identity_decision, _ = evaluate(identity, probe)
    if identity_decision is Decision.DENY:
        return False
    if session_policies and evaluate(session_policies, probe)[0] is not Decision.ALLOW:
        return False  # a session policy only narrows: it must allow too
    if boundary is not None and evaluate([boundary], probe)[0] is not Decision.ALLOW:
        return False  # so does a permissions boundary
    if action not in _ROLE_ACTIONS:
        return identity_decision is Decision.ALLOW
    try:
        role = request.backend.get_role_by_arn(resource)
    except NotFoundException:
        return False
    trust_probe = Request(action, resource, context, principal_arn=principal_arn)
    trust_decision, statements = evaluate(
        [_document(role.assume_role_policy_document)], trust_probe, resource_based=True
    )
    if trust_decision is not Decision.ALLOW:
        return False
    if identity_decision is Decision.ALLOW:
        return True
    # AWS: in one account, a trust policy naming the principal itself needs no identity policy.
    same_account = resource.split(":")[4] == principal_arn.split(":")[4]
    return same_account and any(names_principal_exactly(s, principal_arn) for s in statements)


def _mfa_holds(request: IAMRequestBase, principal_arn: str) -> bool:
    """SerialNumber and TokenCode come together and name the caller's device with a current
    code; a request without them is not refused here (the policies decide)."""
    serial, code = _param(request._data, "SerialNumber"), _param(request._data, "TokenCode")
    if serial is None and code is None:
        return True
    if serial is None or code is None:
        return False
    return mfa.session_code_is_valid(request.backend, principal_arn, serial, code)


def _session_policies(backend: IAMBackend, session: AssumedRole | None) -> list[dict]:
    """The inline session policy and the managed ones passed as PolicyArns, evaluated as one
    set: one of them must allow, and a deny in any of them wins."""
    if session is None:
        return []
    documents = [_document(session.policy)] if session.policy else []
    for arn in getattr(session, "breakglass_policy_arns", []):
        try:
            documents.append(_document(backend.get_policy(arn)))
        except NotFoundException:
            documents.append({"Statement": []})
    return documents


def _check_action_permitted(self: IAMRequestBase, resource: str) -> None:
    """Replaces moto's evaluator: conditions, explicit denies, session policies, trust policies
    with principals, SetSourceIdentity/TagSession, and expired STS credentials."""
    self._action = _BATCH_ACTIONS.get(self._action, self._action)
    principal_arn, kind, session = _caller(self)
    expired = session is None or _aware(session.expiration) <= clock.now()
    if kind == "AssumedRole" and expired:
        if isinstance(self, S3IAMRequest):
            raise S3ExpiredTokenError()
        raise ExpiredTokenError()
    if self._action == "sts:GetCallerIdentity":
        return  # AWS answers it for any valid credentials, even under an explicit deny
    if self._action == "sts:AssumeRole" and not _mfa_holds(self, principal_arn):
        self._raise_access_denied()
    context = _context(self, principal_arn, kind, session)
    resource = _resource(self, resource)
    identity = [_document(policy) for policy in self._access_key.collect_policies()]
    session_policies = _session_policies(self.backend, session)
    boundary = boundaries.boundary_document(self.backend, principal_arn, kind)
    actions = [self._action]
    if self._action == "sts:AssumeRole":
        # AWS authorizes these as separate actions when the request sets them.
        if "sts:sourceidentity" in context:
            actions.append("sts:SetSourceIdentity")
        if "aws:tagkeys" in context:
            actions.append("sts:TagSession")
    for action in actions:
        if not _permitted(
            self, action, resource, principal_arn, context, identity, session_policies, boundary
        ):
            self._raise_access_denied()


# -- patch: inline policy size limits --------------------------------------------------------

_original_put_role_policy = IAMBackend.put_role_policy
_original_put_user_policy = IAMBackend.put_user_policy


def _check_inline_limit(
    existing: Mapping[str, str], name: str, document: str, limit: int, kind: str, owner: str
) -> None:
    total = sum(_policy_size(doc) for key, doc in existing.items() if key != name)
    if total + _policy_size(document) > limit:
        raise LimitExceededException(
            f"Maximum policy size of {limit} bytes exceeded for {kind} {owner}"
        )


def _put_role_policy(self: IAMBackend, role_name: str, policy_name: str, policy_json: str) -> None:
    """moto has no size limit; revocation must cope with AWS's 10,240 per role."""
    role = self.get_role(role_name)
    _check_inline_limit(
        role.policies, policy_name, policy_json, ROLE_INLINE_LIMIT, "role", role_name
    )
    _original_put_role_policy(self, role_name, policy_name, policy_json)


def _put_user_policy(self: IAMBackend, user_name: str, policy_name: str, policy_json: str) -> None:
    """AWS allows 2,048 characters of inline policy per user: a handful of concurrent grants."""
    user = self.get_user(user_name)
    _check_inline_limit(
        user.policies, policy_name, policy_json, USER_INLINE_LIMIT, "user", user_name
    )
    _original_put_user_policy(self, user_name, policy_name, policy_json)


def install() -> None:
    global _installed
    if _installed:
        return
    if moto.__version__ != PINNED_MOTO_VERSION:
        # The patches reach into moto internals; another version needs them re-read.
        raise RuntimeError(
            f"sandbox extension is written for moto {PINNED_MOTO_VERSION}, found {moto.__version__}"
        )
    TokenResponse.assume_role = _assume_role  # type: ignore[method-assign]  # patching moto in place
    IAMRequestBase.check_action_permitted = _check_action_permitted  # type: ignore[method-assign]  # patching moto in place
    IAMBackend.put_role_policy = _put_role_policy  # type: ignore[method-assign]  # patching moto in place
    IAMBackend.put_user_policy = _put_user_policy  # type: ignore[method-assign]  # patching moto in place
    json_errors.install()
    boundaries.install()
    consistency.install()
    event_sources.install()
    mfa.install()
    object_lock.install()
    queues.install()
    _installed = True
