"""Grant, issue, revoke: the runtime AWS calls, made with the broker's (least) privileges.

Every method is idempotent and safe to re-drive after a crash at any point.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from botocore.exceptions import BotoCoreError, ClientError

from awsaccess import policies, session_policies
from awsaccess.clients import ClientFactory
from awsaccess.errors import (
    AwsError,
    PermanentAwsError,
    aws_call,
    error_code,
    translate,
)
from awsaccess.role_space import RevocationUnconfirmedError, RoleSpace
from awsaccess.types import AwsConnection, AwsTarget, Grant, IssuedCredentials, PrincipalKeys

if TYPE_CHECKING:
    from mypy_boto3_iam import IAMClient
    from mypy_boto3_sts import STSClient
    from mypy_boto3_sts.type_defs import AssumeRoleRequestTypeDef, AssumeRoleResponseTypeDef

logger = logging.getLogger(__name__)

IAM_REGION = "us-east-1"  # IAM is global; any region signs for it
_PRINCIPAL_ARN = re.compile(
    r"^arn:[\w-]+:iam::\d{12}:(?P<kind>user|role)/(?:[^/]+/)*(?P<name>[^/]+)$"
)


class GrantExpiredError(Exception):
    """The grant's expiry has passed; AWS would refuse to issue anyway."""


@dataclass(frozen=True)
class PrincipalExpectation:
    """What the break-glass principal may hold once a grant is removed: the grants of the other
    live requests (their exact documents) and the one access key the portal holds."""

    live_grants: Sequence[Grant]
    # None: this process cannot name the portal's key (no keys file here, or it is unreadable):
    # keys are left alone, and the caller checks that the principal holds only one.
    access_key_id: str | None


def principal_kind_and_name(principal_arn: str) -> tuple[str, str]:
    match = _PRINCIPAL_ARN.match(principal_arn)
    if match is None:
        raise ValueError("principal must be an IAM user or role ARN")
    return match["kind"], match["name"]


def _utcnow() -> datetime:
    return datetime.now(UTC)


class AccessEngine(RoleSpace):
    def __init__(self, connection: AwsConnection, *, propagation_timeout: float = 15.0) -> None:
        self._connection = connection
        self._clients = ClientFactory(connection)
        self._propagation_timeout = propagation_timeout

    # -- grant ---------------------------------------------------------------------------------

    def grant_attach(self, target: AwsTarget, grant: Grant) -> None:
        """Put the per-request grant policy on the principal (a put of the same document is a no-op
        for AWS, so this is idempotent)."""
        policies.check_source_identity(grant.request_id)
        document = policies.to_json(policies.grant_policy(target, grant))
        self._grant_policy_call(target, grant, "Put", PolicyDocument=document)
        logger.info("grant attached request=%s role=%s", grant.request_id, target.role_arn)

    def grant_is_attached(self, target: AwsTarget, grant: Grant) -> bool:
        try:
            self._grant_policy_call(target, grant, "Get")
        except AwsError as error:
            if error.code == "NoSuchEntity":
                return False
            raise
        return True

    # -- issue ---------------------------------------------------------------------------------

    def credentials_issue(
        self,
        target: AwsTarget,
        grant: Grant,
        keys: PrincipalKeys,
        *,
        now: datetime | None = None,
    ) -> IssuedCredentials:
        """AssumeRole as the principal. Retries AccessDenied for `propagation_timeout` seconds,
        because a freshly attached grant takes a few seconds to reach every IAM endpoint."""
        now = now or _utcnow()
        remaining = int((grant.expires_at - now).total_seconds())
        if remaining <= 0:
            raise GrantExpiredError(f"grant for request {grant.request_id} has expired")
        params: AssumeRoleRequestTypeDef = {
            "RoleArn": target.role_arn,
            "RoleSessionName": grant.session_name,
            "SourceIdentity": grant.request_id,
            "Tags": [{"Key": key, "Value": value} for key, value in grant.tags.items()],
            "DurationSeconds": max(
                policies.MIN_SESSION_SECONDS, min(remaining, target.max_session_seconds)
            ),
        }
        # The grant's scope and networks, and for a grant under AWS's 15-minute minimum
        # session, a dated deny at its expiry (session_policies).
        params.update(
            session_policies.assume_role_scope_parameters(grant, remaining_seconds=remaining)
        )
        response = self._assume_role_until_propagated(self._sts(target, keys), params)
        credentials = response["Credentials"]
        logger.info(
            "credentials issued request=%s role=%s expiration=%s",
            grant.request_id,
            target.role_arn,
            credentials["Expiration"].isoformat(),
        )
        return IssuedCredentials(
            access_key_id=credentials["AccessKeyId"],
            secret_access_key=credentials["SecretAccessKey"],
            session_token=credentials["SessionToken"],
            expiration=credentials["Expiration"].astimezone(UTC),
            region=target.region,
            endpoint_url=self._connection.endpoint_url,
        )

    def _assume_role_until_propagated(
        self, sts: STSClient, params: AssumeRoleRequestTypeDef
    ) -> AssumeRoleResponseTypeDef:
        deadline = time.monotonic() + self._propagation_timeout
        delay = 0.2
        while True:
            try:
                return sts.assume_role(**params)
            except ClientError as error:
                if error_code(error) != "AccessDenied" or time.monotonic() + delay > deadline:
                    raise translate("sts:AssumeRole", error) from None
                logger.debug("sts:AssumeRole denied, waiting %.1fs for IAM propagation", delay)
            except BotoCoreError as error:
                raise translate("sts:AssumeRole", error) from None
            time.sleep(delay)
            delay = min(delay * 2, 2.0)

    # -- revoke --------------------------------------------------------------------------------

    def grant_revoke(
        self,
        target: AwsTarget,
        grant: Grant,
        *,
        now: datetime | None = None,
        principal: PrincipalExpectation | None = None,
    ) -> datetime | None:
        """Deny the request's sessions on the role, then delete the grant. → None, or the moment
        before which every session of the role was cut off because its inline policies were full
        of live denies (the other live grants need new sessions).

        The deny goes first: it kills live sessions, and since the grant only allows sessions
        carrying this request's SourceIdentity, it also kills any session issued before the
        delete lands. The deny is confirmed by reading back its content, never by its name (a
        session of the role may have planted a harmless policy under that name). With
        `principal`, everything on the principal beyond the expected grants and key goes too:
        a hostile session may have given it a way back in. Raises RevocationUnconfirmedError
        unless AWS holds exactly what revocation requires.
        """
        policies.check_source_identity(grant.request_id)
        now = now or _utcnow()
        cut = self._deny_sessions(target, grant, now)
        self._grant_detach(target, grant)
        if principal is not None:
            self._principal_restrict(target, principal)
        logger.info("grant revoked request=%s role=%s", grant.request_id, target.role_arn)
        return cut

    def _deny_sessions(self, target: AwsTarget, grant: Grant, now: datetime) -> datetime | None:
        """Write the exact deny (PutRolePolicy is idempotent), read it back, and only then drop
        the other policies naming this request (an earlier attempt's, or planted ones). → the
        moment before which every session of the role was cut off, if the role was full."""
        name = policies.revocation_policy_name(
            grant.request_id, policies.revocation_not_after(target, grant, now)
        )
        document = policies.revocation_policy(grant.request_id)
        try:
            self._put_role_policy(target, name, policies.to_json(document))
        except PermanentAwsError as error:
            if error.code != "LimitExceeded":
                raise
            cut = self._make_room(target, grant, now)
            try:
                self._put_role_policy(target, name, policies.to_json(document))
            except PermanentAwsError as retry_error:
                if retry_error.code != "LimitExceeded" or cut is None:
                    raise
                # The revoke-older-sessions deny already covers every session issued so far.
                logger.warning(
                    "revocation for request=%s folded into older-sessions deny", grant.request_id
                )
                return cut
            if cut is not None:
                self._role_policy_confirm(target, name, document)
                return cut
        self._role_policy_confirm(target, name, document)
        for other in self._revocation_policy_names(target):
            if other != name and policies.revocation_request_id(other) == grant.request_id:
                self._delete_role_policy(target, other)
        return None

    def _principal_restrict(self, target: AwsTarget, expected: PrincipalExpectation) -> None:
        """Leave the principal with the live requests' exact grants and the portal's key only;
        anything else (a planted `breakglass-grant-zzz`, a second key) is a way back in."""
        grants = {
            policies.grant_policy_name(live): policies.grant_policy(target, live)
            for live in expected.live_grants
        }
        # Confirmed only by what AWS answers after the last change: a first answer that needs
        # no change (the usual case) is that answer already, and is not asked twice.
        policies_changed = False
        for policy_name, document in self._principal_policies(target).items():
            if policy_name not in grants:
                self._principal_policy_call(target, "Delete", policy_name)
                policies_changed = True
            elif not policies.same_document(document, grants[policy_name]):
                self._principal_policy_call(
                    target, "Put", policy_name, PolicyDocument=policies.to_json(grants[policy_name])
                )
                policies_changed = True
        if policies_changed:
            left = self._principal_policies(target)
            if set(left) - set(grants) or any(
                not policies.same_document(document, grants[name])
                for name, document in left.items()
            ):
                raise RevocationUnconfirmedError(
                    "iam:ListUserPolicies", "the principal still holds a policy that is not a grant"
                )
        if expected.access_key_id is None:
            return
        kept = {expected.access_key_id}
        extra_keys = self._principal_key_ids(target) - kept
        for key_id in extra_keys:
            self._principal_key_delete(target, key_id)
        if extra_keys and self._principal_key_ids(target) - kept:
            raise RevocationUnconfirmedError(
                "iam:ListAccessKeys", "the principal still holds a key the portal does not"
            )

    def _principal_policies(self, target: AwsTarget) -> dict[str, object]:
        kind, name = principal_kind_and_name(target.principal_arn)
        entity = "User" if kind == "user" else "Role"
        iam = self._iam()
        names: list[str] = []
        with aws_call(f"iam:List{entity}Policies"):
            if kind == "user":
                for page in iam.get_paginator("list_user_policies").paginate(UserName=name):
                    names.extend(page["PolicyNames"])
            else:
                for page in iam.get_paginator("list_role_policies").paginate(RoleName=name):
                    names.extend(page["PolicyNames"])
        documents: dict[str, object] = {}
        for policy_name in names:
            try:
                with aws_call(f"iam:Get{entity}Policy"):
                    call = getattr(iam, f"get_{kind}_policy")
                    documents[policy_name] = call(
                        **{f"{entity}Name": name}, PolicyName=policy_name
                    )["PolicyDocument"]
            except PermanentAwsError as error:
                if error.code != "NoSuchEntity":  # deleted meanwhile
                    raise
        return documents

    def principal_key_ids(self, target: AwsTarget) -> set[str]:
        """The access keys the break-glass principal holds (none for a role)."""
        return self._principal_key_ids(target)

    def _principal_key_ids(self, target: AwsTarget) -> set[str]:
        kind, name = principal_kind_and_name(target.principal_arn)
        if kind != "user":
            return set()
        with aws_call("iam:ListAccessKeys"):
            metadata = self._iam().list_access_keys(UserName=name)["AccessKeyMetadata"]
        return {key["AccessKeyId"] for key in metadata}

    def _principal_key_delete(self, target: AwsTarget, key_id: str) -> None:
        _, name = principal_kind_and_name(target.principal_arn)
        try:
            with aws_call("iam:DeleteAccessKey"):
                self._iam().delete_access_key(UserName=name, AccessKeyId=key_id)
        except PermanentAwsError as error:
            if error.code != "NoSuchEntity":
                raise
        logger.warning("deleted access key %s the portal does not hold", key_id)

    def _grant_detach(self, target: AwsTarget, grant: Grant) -> None:
        try:
            self._grant_policy_call(target, grant, "Delete")
        except AwsError as error:
            if error.code != "NoSuchEntity":  # already gone counts as done
                raise

    def _grant_policy_call(self, target: AwsTarget, grant: Grant, verb: str, **params: str) -> None:
        """Put, Get or Delete the request's grant policy on the principal (IAM user or role)."""
        self._principal_policy_call(target, verb, policies.grant_policy_name(grant), **params)

    def _principal_policy_call(
        self, target: AwsTarget, verb: str, policy_name: str, **params: str
    ) -> None:
        kind, name = principal_kind_and_name(target.principal_arn)
        entity = "User" if kind == "user" else "Role"
        call = getattr(self._iam(), f"{verb.lower()}_{kind}_policy")
        try:
            with aws_call(f"iam:{verb}{entity}Policy"):
                call(**{f"{entity}Name": name}, PolicyName=policy_name, **params)
        except AwsError as error:
            if verb != "Delete" or error.code != "NoSuchEntity":
                raise

    # -- plumbing ------------------------------------------------------------------------------

    def clients_prepare(self, target: AwsTarget, keys: PrincipalKeys | None) -> None:
        """Build the clients that grants and revocations on `target` call AWS with, without
        calling it: the process's first client of a service parses botocore's endpoint and
        service data (50-500 ms), each further one still takes a few ms; a grant waits for
        neither."""
        self._iam()
        if keys is not None:
            self._sts(target, keys)

    def _iam(self) -> IAMClient:
        return self._clients.client("iam", IAM_REGION)

    def _sts(self, target: AwsTarget, keys: PrincipalKeys) -> STSClient:
        return self._clients.client(
            "sts",
            target.region,
            access_key_id=keys.access_key_id,
            secret_access_key=keys.secret_access_key,
        )
